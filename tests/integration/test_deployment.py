"""The reference deployment (deploy/, docs/deployment.md) started by its own script,
`deploy/local/up`: HAProxy balancing every request round robin over 3 replicas, 2 workers,
PostgreSQL and the shared blob store. Through the balancer only, as a user meets it:

- consecutive requests of one keep-alive client are answered by different replicas;
- the OCI distribution spec tests (tests/integration/test_distribution_spec.py, each on a
  registry of its own);
- skopeo copies a multi-arch image in and out byte for byte, podman pulls one platform;
- a chunked upload whose chunks land on different replicas completes and verifies;
- an import from a docker-registry peer, run by a worker;
- the RBAC test of a revocation (tests/integration/test_rbac_matrix.py);
- under load (pushes, pulls, an import), `kill -9` of a replica and a worker: clients
  retry through the balancer, the import finishes, nothing acknowledged is lost and
  `transship check` finds no problem.

One deployment for the module (started once, stopped at the end even on failure); the
kill test runs last.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import itertools
import json
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest

from tests.integration import test_distribution_spec as spec
from tests.integration import test_rbac_matrix as rbac
from tests.integration.conftest import small_index
from tests.peers.clients import Podman, Skopeo
from tests.peers.deployment import LocalDeployment
from tests.peers.distribution import DistributionRegistry
from tests.peers.fault_proxy import FaultProxy
from tests.peers.images import OciLayout, build_index, push_layout_http
from tests.peers.procs import PeerUnavailable
from tests.support.app import RunningRegistry, push_image, sha256
from tests.support.identity import IdentityClient, owner_credential
from tests.support.imports import (
    Management,
    assert_copies_out,
    assert_served_as_built,
    assert_succeeded,
    docker_ref,
)

pytestmark = [pytest.mark.peers, pytest.mark.slow]

# A crashed worker's import is taken over after this (the default is 15 s; shorter keeps the
# test quick, the mechanism is the same).
LEASE_SECONDS = 4.0


@dataclass
class Scene:
    """The running deployment, the docker-registry imports come from, and a fault proxy in
    front of that registry (to slow an import down)."""

    deployment: LocalDeployment
    upstream: DistributionRegistry
    slow_upstream: FaultProxy

    @property
    def url(self) -> str:
        """The service's public URL: the login server suffix (the balancer's address), the
        name management tokens are minted for."""
        return f"http://{self.host}"

    @property
    def host(self) -> str:
        return self.deployment.login_server_suffix

    @property
    def owner_dir(self) -> Path:
        return self.deployment.owner_credential_file.parent

    @property
    def owner_basic(self) -> str:
        return owner_credential(self.owner_dir).basic

    @property
    def owner_creds(self) -> str:
        credential = owner_credential(self.owner_dir)
        return f"{credential.client_id}:{credential.secret}"


def _unavailable(exc: Exception) -> None:
    if os.environ.get("TRANSSHIP_REQUIRE_PEERS") == "1":
        pytest.fail(f"peer unavailable but TRANSSHIP_REQUIRE_PEERS=1: {exc}", pytrace=False)
    pytest.skip(str(exc))


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    """Everything started once for the module, and stopped at its end (also when a start
    fails half-way: each part is stopped once it has started)."""
    root = tmp_path_factory.mktemp("deployment")
    with contextlib.ExitStack() as stack:
        try:
            upstream = stack.enter_context(DistributionRegistry(root / "upstream", "anonymous"))
        except PeerUnavailable as exc:
            _unavailable(exc)
        slow = stack.enter_context(FaultProxy("127.0.0.1", upstream.port))
        deployment = LocalDeployment(
            root / "deploy",
            lease_seconds=LEASE_SECONDS,
            extra_settings="".join(
                f'[upstreams."{host}"]\ninsecure = true\n' for host in (upstream.host, slow.host)
            ),
        )
        # Registered before the start: `up` may fail after starting some processes.
        stack.callback(deployment.stop)
        try:
            deployment.start()
        except PeerUnavailable as exc:
            _unavailable(exc)
        yield Scene(deployment, upstream, slow)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        yield session


async def _new_registry(scene: Scene, http: aiohttp.ClientSession, **properties: Any) -> str:
    """A fresh registry (through the balancer); its login server."""
    credential = owner_credential(scene.owner_dir)
    owner = IdentityClient(http, scene.url, credential)
    name = "r" + uuid.uuid4().hex[:12]
    body = await owner.create_registry(credential.subscription_id, "default", name, **properties)
    return str(body["properties"]["loginServer"])


# -- round robin ------------------------------------------------------------------------------
async def test_one_clients_consecutive_requests_go_to_different_replicas(
    scene: Scene, http: aiohttp.ClientSession
) -> None:
    served: list[str] = []
    for _ in range(9):  # one session: aiohttp keeps the connection alive between them
        async with http.get(f"{scene.url}/healthz") as r:
            assert r.status == 200
            served.append(r.headers["X-Transship-Replica"])
    replicas = {m.name for m in scene.deployment.members("replica")}
    assert set(served) == replicas, served
    assert all(a != b for a, b in itertools.pairwise(served)), served


# -- the OCI spec tests, through the balancer ------------------------------------------------
@dataclass
class BalancedRegistry:
    """What the spec tests use of a RunningRegistry (`url`, `http`, the request and push
    helpers, the very same methods), reached through the balancer: `http` sends the owner's
    credential and the `Host` of a registry of its own with every request."""

    url: str
    http: aiohttp.ClientSession
    request = RunningRegistry.request
    push_blob = RunningRegistry.push_blob
    push_manifest = RunningRegistry.push_manifest
    push_image = RunningRegistry.push_image


def _spec_tests() -> list[Callable[..., Awaitable[None]]]:
    """The spec module's tests that need nothing but `reg` and use only its HTTP face (not
    its in-process services)."""
    found = []
    for name, function in vars(spec).items():
        if not name.startswith("test_") or not inspect.iscoroutinefunction(function):
            continue
        if list(inspect.signature(function).parameters) != ["reg"]:
            continue
        if hasattr(function, "pytestmark") or "reg.services" in inspect.getsource(function):
            continue
        found.append(function)
    return found


SPEC_TESTS = _spec_tests()


@pytest.mark.parametrize("spec_test", SPEC_TESTS, ids=[t.__name__ for t in SPEC_TESTS])
async def test_oci_spec_through_the_balancer(
    scene: Scene, http: aiohttp.ClientSession, spec_test: Callable[..., Awaitable[None]]
) -> None:
    login_server = await _new_registry(scene, http)
    headers = {"Authorization": scene.owner_basic, "Host": login_server}
    async with aiohttp.ClientSession(
        headers=headers, timeout=aiohttp.ClientTimeout(total=60)
    ) as session:
        await spec_test(BalancedRegistry(scene.url, session))


def test_spec_tests_are_found() -> None:
    assert len(SPEC_TESTS) >= 30, [t.__name__ for t in SPEC_TESTS]


# -- clients -------------------------------------------------------------------------------
async def test_skopeo_copies_a_multi_arch_image_in_and_out_and_podman_pulls_it(
    scene: Scene,
    http: aiohttp.ClientSession,
    tmp_path: Path,
    skopeo: Skopeo,
    podman: Podman,
    spare_registry: DistributionRegistry,
) -> None:
    # Anonymous pull, so the shared helpers (which read without credentials) check it.
    login_server = await _new_registry(scene, http, anonymousPullEnabled=True)
    await _until_every_replica_allows_anonymous_pull(scene, http, login_server, "multi/app")
    index = await asyncio.to_thread(small_index, tmp_path, seed="deploy-clients", tag="v1")
    await asyncio.to_thread(
        skopeo.copy,
        index.layout.skopeo_ref("v1"),
        docker_ref(login_server, "multi/app", "v1"),
        all=True,
        preserve_digests=True,
        dest_creds=scene.owner_creds,
    )
    await assert_served_as_built(skopeo, login_server, "multi/app", "v1", index)
    await assert_copies_out(skopeo, login_server, "multi/app", "v1", spare_registry.host, index)
    arm64 = next(c for c in index.children if str(c.platform) == "linux/arm64")
    image_id = await asyncio.to_thread(
        podman.pull, docker_ref(login_server, "multi/app", "v1"), platform="linux/arm64"
    )
    assert arm64.config.digest.endswith(image_id), (image_id, arm64.config.digest)


async def _until_every_replica_allows_anonymous_pull(
    scene: Scene, http: aiohttp.ClientSession, login_server: str, repository: str
) -> None:
    """Wait until each replica, asked directly, gives anonymous callers `pull`: a replica
    learns a registry's access settings from the database within its cache time (5 s), or
    at once when told of the change (cross-process invalidation)."""
    for replica in scene.deployment.members("replica"):
        assert replica.url is not None
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            async with http.get(
                f"{replica.url}/oauth2/token",
                params={"service": login_server, "scope": f"repository:{repository}:pull"},
                headers={"Host": login_server},
            ) as r:
                body = await r.json(content_type=None)
            if r.status == 200 and "pull" in json.dumps(_claims(body["access_token"])):
                break
            assert asyncio.get_running_loop().time() < deadline, (replica.name, r.status, body)
            await asyncio.sleep(0.2)


def _claims(token: str) -> Any:
    return jwt.decode(token, options={"verify_signature": False})


async def test_a_chunked_upload_spread_over_replicas_completes_and_verifies(
    scene: Scene, http: aiohttp.ClientSession
) -> None:
    data = await asyncio.to_thread(os.urandom, 6 * 1024 * 1024)
    chunk = 1024 * 1024
    headers = {"Authorization": scene.owner_basic}
    served: list[str] = []
    async with http.post(f"{scene.url}/v2/chunked/app/blobs/uploads/", headers=headers) as r:
        assert r.status == 202, await r.text()
        location = r.headers["Location"]
    for offset in range(0, len(data), chunk):
        part = data[offset : offset + chunk]
        async with http.patch(
            f"{scene.url}{location}",
            data=part,
            headers={
                **headers,
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{offset}-{offset + len(part) - 1}",
            },
        ) as r:
            assert r.status == 202, await r.text()
            assert r.headers["Range"] == f"0-{offset + len(part) - 1}"
            location = r.headers["Location"]
            served.append(r.headers["X-Transship-Replica"])
    assert len(set(served)) >= 2, served
    digest = sha256(data)
    separator = "&" if "?" in location else "?"
    async with http.put(f"{scene.url}{location}{separator}digest={digest}", headers=headers) as r:
        assert r.status == 201, await r.text()
    for _ in range(3):  # every replica serves it whole
        async with http.get(f"{scene.url}/v2/chunked/app/blobs/{digest}", headers=headers) as r:
            assert r.status == 200
            got = await r.read()
            assert hashlib.sha256(got).hexdigest() == digest.split(":", 1)[1]


# -- imports -------------------------------------------------------------------------------
async def test_an_import_from_a_docker_registry_is_run_by_a_worker(
    scene: Scene, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    index = await asyncio.to_thread(small_index, tmp_path, seed="deploy-import")
    await asyncio.to_thread(push_layout_http, index, scene.upstream.url, "team/app", "v1")
    admin = await Management.remote(scene.url, http, scene.owner_dir)
    final = await admin.run_import(
        "default",
        {
            "source": {"registryUri": scene.upstream.host, "sourceImage": "team/app:v1"},
            "targetTags": ["imported/app:v1"],
            "mode": "Force",
        },
    )
    progress = assert_succeeded(final)
    assert progress["manifestsTotal"] == 4
    for _ in range(3):
        async with http.get(
            f"{scene.url}/v2/imported/app/manifests/v1",
            headers={"Authorization": scene.owner_basic, "Accept": index.media_type},
        ) as r:
            assert r.status == 200
            assert await r.read() == index.index_bytes
    if scene.deployment.split:
        # Replicas run no background loop: a worker ran it.
        for replica in scene.deployment.members("replica"):
            async with http.get(f"{replica.url}/readyz") as r:
                loops = [loop["name"] for loop in (await r.json())["loops"]]
                assert not [name for name in loops if "import" in name], (replica.name, loops)


# -- RBAC ------------------------------------------------------------------------------------
async def test_a_revoked_role_assignment_stops_working_on_every_replica(
    scene: Scene, http: aiohttp.ClientSession
) -> None:
    credential = owner_credential(scene.owner_dir)
    owner = IdentityClient(http, scene.url, credential)
    await owner.create_group(credential.subscription_id, rbac.GROUP)
    world = rbac.World(
        BalancedRegistry(scene.url, http),  # type: ignore[arg-type]
        owner,
        credential.subscription_id,
        scene.owner_dir,
    )
    await rbac.test_removing_an_assignment_revokes_at_once(world)


# -- crashes under load ------------------------------------------------------------------------
@dataclass
class Pushed:
    repository: str
    digest: str


async def _retrying(what: str, attempt: Callable[[], Awaitable[Any]], seconds: float = 30) -> Any:
    """`attempt()` again while the balancer answers 502/503 or a connection breaks (a client
    retrying after a replica died under it); AssertionError carrying the last failure."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        try:
            return await attempt()
        except (aiohttp.ClientError, AssertionError, TimeoutError) as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{what}: still failing after {seconds} s: {exc!r}") from exc
            await asyncio.sleep(0.2)


async def test_kill9_of_a_replica_and_a_worker_under_load_loses_nothing(
    scene: Scene, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    deployment = scene.deployment
    admin = await Management.remote(scene.url, http, scene.owner_dir)
    # An import slow enough to be running when its worker dies: two 3 MiB layers through a
    # proxy capping each connection at 256 KiB/s (about 12 s), uncapped after the crash.
    index = await asyncio.to_thread(
        build_index,
        OciLayout(tmp_path / "layout-crash"),
        platforms=("linux/amd64", "linux/arm64"),
        seed="deploy-crash",
        layer_sizes=(3 * 1024 * 1024,),
        shared_layer_size=10_000,
    )
    await asyncio.to_thread(push_layout_http, index, scene.upstream.url, "big/app", "v1")
    scene.slow_upstream.bandwidth(256 * 1024)
    operation = await admin.start_import(
        "default",
        {
            "source": {"registryUri": scene.slow_upstream.host, "sourceImage": "big/app:v1"},
            "targetTags": ["crash/app:v1"],
            "mode": "Force",
        },
    )
    await admin.wait_for(
        operation,
        lambda body: body["properties"].get("progress", {}).get("bytesDone", 0) > 0,
        timeout=30,
        what="the import copying",
    )

    pushed: list[Pushed] = []
    stop = asyncio.Event()

    async def pusher(number: int) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            round_ = 0
            while not stop.is_set():
                repository = f"load/p{number}"
                tag = f"t{round_}"
                layer = os.urandom(200_000)
                digest = await _retrying(
                    f"push {repository}:{tag}",
                    partial(
                        push_image,
                        session,
                        scene.url,
                        scene.host,
                        scene.owner_basic,
                        repository,
                        tag,
                        layer=layer,
                    ),
                )
                pushed.append(Pushed(repository, digest))
                got = await _retrying(
                    f"pull {repository}:{tag}", partial(_pull, session, scene, repository, tag)
                )
                assert sha256(got) == digest
                round_ += 1

    # The worker fetching the import is the one with a connection to the slow upstream.
    importer = None
    if deployment.split:
        fetching = [
            worker.name
            for worker in deployment.members("worker")
            if await asyncio.to_thread(worker.connected_to, scene.slow_upstream.port)
        ]
        assert len(fetching) == 1, fetching
        importer = fetching[0]

    pushers = [asyncio.create_task(pusher(n)) for n in range(4)]
    try:
        await asyncio.sleep(1.0)
        await asyncio.to_thread(deployment.kill9, "replica2")
        if importer is not None:
            await asyncio.to_thread(deployment.kill9, importer)
            # Killed mid-copy: what follows is another worker taking the import over.
            status = await admin.status(operation)
            assert status["status"] == "InProgress", status
        await asyncio.sleep(3.0)
    finally:
        stop.set()
        results = await asyncio.gather(*pushers, return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    assert not failures, failures
    assert len(pushed) >= 4, pushed

    scene.slow_upstream.passthrough()
    final = await admin.wait(operation, timeout=60 + LEASE_SECONDS)
    assert_succeeded(final)
    async with http.get(
        f"{scene.url}/v2/crash/app/manifests/v1",
        headers={"Authorization": scene.owner_basic, "Accept": index.media_type},
    ) as r:
        assert r.status == 200 and await r.read() == index.index_bytes

    # Everything acknowledged is there, through the replicas still alive.
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        for item in pushed:
            got = await _retrying(
                f"re-pull {item.repository}",
                partial(_pull, session, scene, item.repository, item.digest),
            )
            assert sha256(got) == item.digest
    report = await asyncio.to_thread(deployment.check)
    assert report["returncode"] == 0 and report.get("ok") is True, report["output"]
    assert report["problems"] == [], report["output"]
    assert report["manifests"] >= len(pushed)


async def _pull(
    session: aiohttp.ClientSession, scene: Scene, repository: str, reference: str
) -> bytes:
    async with session.get(
        f"{scene.url}/v2/{repository}/manifests/{reference}",
        headers={
            "Authorization": scene.owner_basic,
            "Accept": "application/vnd.oci.image.manifest.v1+json",
        },
    ) as r:
        assert r.status == 200, (r.status, await r.text())
        return await r.read()
