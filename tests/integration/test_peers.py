"""Self-checks of the peer infrastructure in ``tests/peers``: each peer really works here.

These tests exercise only third-party programs and our helpers, never Transship itself
(except the launcher, against a stand-in server), so a failure here means the test
infrastructure or the machine is broken, not the product.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import requests
from alembic.script import ScriptDirectory

from tests.peers import ports
from tests.peers.clients import CommandError, DockerCli, Podman, Skopeo, docker_ref
from tests.peers.distribution import DistributionRegistry
from tests.peers.fault_proxy import FaultProxy
from tests.peers.images import (
    DOCKER_FOREIGN_LAYER,
    DOCKER_LIST,
    OCI_INDEX,
    BuiltIndex,
    OciLayout,
    build_artifact,
    build_docker_list_with_foreign_layer,
    build_image,
    build_index,
    push_layout_http,
    sha256_digest,
)
from tests.peers.oci_http import RegistryClient, RegistryError, UploadMode
from tests.peers.ports import BLOCK_SIZE, worker_port_block
from tests.peers.postgres import PostgresCluster
from tests.peers.procs import ManagedProcess, peer_env
from tests.peers.token_server import TokenServer, TokenUser
from tests.peers.transship import TransshipServer
from transship import metadata

MIGRATIONS = Path(metadata.__file__).parent / "migrations"

pytestmark = pytest.mark.peers


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    return session


@pytest.fixture
def multiarch(oci_layout: OciLayout) -> BuiltIndex:
    """A 3-platform OCI index with a shared base layer, tagged ``multi`` in the layout."""
    return build_index(
        oci_layout, tag="multi", layer_sizes=(1024, 200_000), shared_layer_size=50_000
    )


# -- images ------------------------------------------------------------------------------------


def test_images_are_deterministic(tmp_path: Path) -> None:
    first = build_index(OciLayout(tmp_path / "a"), layer_sizes=(10, 70_000))
    second = build_index(OciLayout(tmp_path / "b"), layer_sizes=(10, 70_000))
    assert first.digest == second.digest
    assert first.index_bytes == second.index_bytes
    assert json.loads(first.index_bytes)["mediaType"] == OCI_INDEX
    assert [str(c.platform) for c in first.children] == [
        "linux/amd64",
        "linux/arm64",
        "linux/arm/v7",
    ]
    for digest in first.blob_digests:
        assert sha256_digest(first.layout.read_blob(digest)) == digest


def test_large_layer_streams_to_disk(tmp_path: Path) -> None:
    layout = OciLayout(tmp_path / "big")
    image = build_image(layout, layer_sizes=(24 << 20,))
    layer = image.layers[0]
    assert layer.uncompressed_size > 24 << 20
    sha = hashlib.sha256()
    with layout.blob_path(layer.digest).open("rb") as fh:
        while chunk := fh.read(1 << 20):
            sha.update(chunk)
    assert "sha256:" + sha.hexdigest() == layer.digest
    assert layout.blob_path(layer.digest).stat().st_size == layer.descriptor.size


# -- docker-registry + skopeo ------------------------------------------------------------------


def test_skopeo_copies_multiarch_index_byte_identically(
    multiarch: BuiltIndex,
    oci_layout: OciLayout,
    distribution_anon: DistributionRegistry,
    skopeo: Skopeo,
) -> None:
    dest = docker_ref(distribution_anon.host, "peers/multi", "v1")
    skopeo.copy(oci_layout.skopeo_ref("multi"), dest)

    raw = skopeo.inspect_raw(dest)
    assert sha256_digest(raw) == multiarch.digest
    assert raw == multiarch.index_bytes
    for child in multiarch.children:
        child_raw = skopeo.inspect_raw(
            docker_ref(distribution_anon.host, "peers/multi", child.digest)
        )
        assert child_raw == child.manifest_bytes
    assert skopeo.list_tags(f"docker://{distribution_anon.host}/peers/multi") == ["v1"]
    with RegistryClient(distribution_anon.url) as client:
        for digest in multiarch.blob_digests:
            assert client.blob_exists("peers/multi", digest)

    skopeo.delete(docker_ref(distribution_anon.host, "peers/multi", multiarch.digest))
    assert skopeo.list_tags(f"docker://{distribution_anon.host}/peers/multi") == []


@pytest.mark.parametrize("registry_fixture", ["distribution_htpasswd", "distribution_token"])
def test_auth_registry_refuses_anonymous_push_and_accepts_credentials(
    registry_fixture: str, request: pytest.FixtureRequest, oci_layout: OciLayout, skopeo: Skopeo
) -> None:
    registry: DistributionRegistry = request.getfixturevalue(registry_fixture)
    image = build_image(oci_layout, tag="one", layer_sizes=(4096,))
    dest = docker_ref(registry.host, "peers/auth", "v1")

    with pytest.raises(CommandError) as refused:
        skopeo.copy(oci_layout.skopeo_ref("one"), dest)
    assert (
        "unauthorized" in refused.value.stderr.lower() or "denied" in refused.value.stderr.lower()
    )
    with pytest.raises(CommandError):
        skopeo.copy(oci_layout.skopeo_ref("one"), dest, dest_creds=f"{registry.username}:wrong")

    skopeo.copy(oci_layout.skopeo_ref("one"), dest, dest_creds=registry.creds)
    assert skopeo.inspect_raw(dest, creds=registry.creds) == image.manifest_bytes

    if registry.mode == "token":
        assert registry.token_server is not None
        requests_seen = registry.token_server.requests
        pushes = [
            r
            for r in requests_seen
            if r.authenticated
            and r.username == registry.username
            and any("push" in g["actions"] for g in r.granted)
        ]
        assert pushes, requests_seen
        assert pushes[0].authorization is not None and pushes[0].authorization.startswith("Basic ")
        anonymous = [r for r in requests_seen if r.username is None]
        assert anonymous and all(g["actions"] == ["pull"] for r in anonymous for g in r.granted)
        # Anonymous callers may pull from the token registry.
        assert skopeo.inspect_raw(dest) == image.manifest_bytes
    else:
        with pytest.raises(CommandError):
            skopeo.inspect_raw(dest)


# -- Docker manifest list with a foreign layer, pushed over HTTP -------------------------------


@pytest.mark.parametrize("registry_fixture", ["distribution_anon", "distribution_token"])
@pytest.mark.parametrize("upload", ["post_put", "monolithic", "chunked"])
def test_docker_list_with_foreign_layer_round_trips(
    registry_fixture: str, upload: UploadMode, request: pytest.FixtureRequest, oci_layout: OciLayout
) -> None:
    registry: DistributionRegistry = request.getfixturevalue(registry_fixture)
    built = build_docker_list_with_foreign_layer(
        oci_layout, tag="win", linux_layer_sizes=(300_000,)
    )
    windows = built.child("windows/amd64")
    assert windows.platform is not None and windows.platform.os_version
    assert [f.media_type for f in windows.foreign_layers] == [DOCKER_FOREIGN_LAYER]
    assert not oci_layout.has_blob(windows.foreign_layers[0].digest)

    result = push_layout_http(
        oci_layout, registry.url, "peers/win", "ltsc2019", registry.auth, upload=upload
    )
    assert result.root_digest == built.digest
    assert result.manifest_digests == (*built.child_digests, built.digest)
    assert set(result.uploaded_blobs) == set(built.blob_digests)
    assert result.skipped_foreign == (windows.foreign_layers[0].digest,)

    with RegistryClient(registry.url, auth=registry.auth) as client:
        fetched = client.get_manifest("peers/win", "ltsc2019")
        assert fetched.data == built.index_bytes
        assert fetched.media_type == DOCKER_LIST
        assert fetched.digest_header == built.digest
        for child in built.children:
            assert client.get_manifest("peers/win", child.digest).data == child.manifest_bytes
        assert not client.blob_exists("peers/win", windows.foreign_layers[0].digest)
        assert client.get_blob("peers/win", windows.config.digest) == oci_layout.read_blob(
            windows.config.digest
        )
        # Pushing again uploads nothing.
        again = push_layout_http(
            built, registry.url, "peers/win", "again", registry.auth, client=client
        )
        assert again.uploaded_blobs == () and set(again.existing_blobs) == set(built.blob_digests)


def test_artifact_with_subject_pushes(
    oci_layout: OciLayout, distribution_anon: DistributionRegistry
) -> None:
    image = build_image(oci_layout, layer_sizes=(100,))
    artifact = build_artifact(oci_layout, subject=image)
    manifest = json.loads(artifact.manifest_bytes)
    assert manifest["subject"]["digest"] == image.digest
    assert manifest["artifactType"] == artifact.descriptor.artifact_type
    push_layout_http(image, distribution_anon.url, "peers/art", "img")
    pushed = push_layout_http(artifact, distribution_anon.url, "peers/art", None)
    assert pushed.root_digest == artifact.digest
    with RegistryClient(distribution_anon.url) as client:
        assert client.get_manifest("peers/art", artifact.digest).data == artifact.manifest_bytes
        # distribution 2.8 has no referrers API: it is not a reference for it.
        with pytest.raises(RegistryError):
            client.referrers("peers/art", image.digest)


# -- podman and the docker CLI ------------------------------------------------------------------


def test_podman_pulls_one_platform_and_pushes(
    multiarch: BuiltIndex,
    oci_layout: OciLayout,
    distribution_htpasswd: DistributionRegistry,
    skopeo: Skopeo,
    podman: Podman,
) -> None:
    registry = distribution_htpasswd
    skopeo.copy(
        oci_layout.skopeo_ref("multi"),
        docker_ref(registry.host, "peers/multi", "v1"),
        dest_creds=registry.creds,
    )
    assert registry.username is not None and registry.password is not None
    assert podman.login(registry.host, registry.username, "wrong", check=False).returncode != 0
    podman.login(registry.host, registry.username, registry.password)

    image_id = podman.pull(f"{registry.host}/peers/multi:v1", platform="linux/arm/v7")
    info = podman.image_inspect(image_id)
    assert (info["Os"], info["Architecture"]) == ("linux", "arm")
    arm = multiarch.child("linux/arm/v7")
    assert f"sha256:{image_id}" == arm.config.digest

    podman.tag(image_id, f"{registry.host}/peers/arm:v7")
    podman.push(f"{registry.host}/peers/arm:v7")
    assert skopeo.list_tags(f"docker://{registry.host}/peers/arm", creds=registry.creds) == ["v7"]


def test_docker_cli_logs_in_with_tokens_and_inspects(
    multiarch: BuiltIndex,
    oci_layout: OciLayout,
    distribution_token: DistributionRegistry,
    skopeo: Skopeo,
    docker_cli: DockerCli,
) -> None:
    registry = distribution_token
    assert registry.username is not None and registry.password is not None
    skopeo.copy(
        oci_layout.skopeo_ref("multi"),
        docker_ref(registry.host, "peers/multi", "v1"),
        dest_creds=registry.creds,
    )
    assert docker_cli.login(registry.host, registry.username, "wrong", check=False).returncode != 0
    docker_cli.login(registry.host, registry.username, registry.password)
    assert registry.host in docker_cli.config()["auths"]

    listed = docker_cli.manifest_inspect(f"{registry.host}/peers/multi:v1")
    assert listed["mediaType"] == OCI_INDEX
    platforms = {
        (m["platform"]["architecture"], m["platform"].get("variant")) for m in listed["manifests"]
    }
    assert platforms == {("amd64", None), ("arm64", None), ("arm", "v7")}
    assert registry.token_server is not None
    assert any(r.authenticated for r in registry.token_server.requests)


# -- token server ------------------------------------------------------------------------------


def test_token_server_grants(tmp_path: Path) -> None:
    users = {
        "alice": TokenUser("pw"),
        "reader": TokenUser("pw", actions=("pull",), repositories=("pub/*",), catalog=False),
    }
    with TokenServer(tmp_path, users=users) as server, _session() as http:
        scopes = [
            "repository:a/b:pull,push",
            "repository:pub/x:pull,push,delete registry:catalog:*",
        ]
        anon = http.get(server.realm, params={"service": server.service, "scope": scopes}).json()
        assert server.decode(anon["token"])["access"] == [
            {"type": "repository", "name": "a/b", "actions": ["pull"]},
            {"type": "repository", "name": "pub/x", "actions": ["pull"]},
        ]
        assert "refresh_token" not in anon

        reader = http.get(
            server.realm, params={"service": server.service, "scope": scopes}, auth=("reader", "pw")
        ).json()
        assert server.decode(reader["access_token"])["access"] == [
            {"type": "repository", "name": "pub/x", "actions": ["pull"]},
        ]
        assert (
            http.get(server.realm, params={"scope": scopes}, auth=("alice", "bad")).status_code
            == 401
        )

        form = {
            "grant_type": "password",
            "username": "alice",
            "password": "pw",
            "service": server.service,
            "client_id": "test",
            "access_type": "offline",
            "scope": " ".join(scopes),
        }
        granted = http.post(server.realm, data=form).json()
        assert set(granted) >= {"token", "access_token", "expires_in", "issued_at", "refresh_token"}
        claims = server.decode(granted["access_token"])
        assert claims["sub"] == "alice" and claims["aud"] == server.service
        assert {"type": "registry", "name": "catalog", "actions": ["*"]} in claims["access"]

        refreshed = http.post(
            server.realm,
            data={
                "grant_type": "refresh_token",
                "service": server.service,
                "refresh_token": granted["refresh_token"],
                "scope": "repository:a/b:delete",
            },
        ).json()
        assert server.decode(refreshed["token"])["access"] == [
            {"type": "repository", "name": "a/b", "actions": ["delete"]}
        ]
        bad = http.post(server.realm, data={"grant_type": "refresh_token", "refresh_token": "nope"})
        assert bad.status_code == 401
        assert [r.status for r in server.requests] == [200, 200, 401, 200, 200, 401]


# -- PostgreSQL -----------------------------------------------------------------------------


async def test_postgres_gives_connectable_fresh_databases(postgres: PostgresCluster) -> None:
    # `new_database` runs psql and waits for it: a thread's work, not the test loop's (under
    # a loaded CI run it held the loop for 149 ms and the stall guard failed the test).
    first = await asyncio.to_thread(postgres.new_database)
    second = await asyncio.to_thread(postgres.new_database)
    assert first != second and first.startswith(f"postgresql://postgres@127.0.0.1:{postgres.port}/")
    conn = await asyncpg.connect(first)
    try:
        await conn.execute("CREATE TABLE t (x int)")
        assert await conn.fetchval("SELECT current_database()") == first.rsplit("/", 1)[1]
    finally:
        await conn.close()
    conn = await asyncpg.connect(second)
    try:
        assert await conn.fetchval("SELECT count(*) FROM pg_tables WHERE tablename = 't'") == 0
    finally:
        await conn.close()


async def test_database_url_matrix(database_url: str | None) -> None:
    """On PostgreSQL, a database of the test's own, already at the newest migration (a copy
    of the session's template, not a migration run per test)."""
    if database_url is None:
        return  # sqlite: the embedded default, nothing to connect to here
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT current_database()") != "transship_template"
        assert await conn.fetchval("SELECT version_num FROM alembic_version") == head
    finally:
        await conn.close()


@pytest.mark.empty_database
async def test_database_url_is_empty_when_the_test_asks(database_url: str | None) -> None:
    if database_url is None:
        return  # sqlite: the embedded default, nothing to connect to here
    conn = await asyncpg.connect(database_url)
    try:
        assert (
            await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0
        )
    finally:
        await conn.close()


def test_a_copy_of_the_template_is_independent_of_it(
    postgres: PostgresCluster, postgres_template: str
) -> None:
    url = postgres.new_database(template=postgres_template)
    name = url.rsplit("/", 1)[1]
    try:
        postgres.psql("DELETE FROM alembic_version", database=name)
        assert postgres.psql("SELECT count(*) FROM alembic_version", database=name).strip() == "0"
        kept = postgres.psql("SELECT count(*) FROM alembic_version", database=postgres_template)
        assert kept.strip() == "1"
    finally:
        postgres.drop_database(name)


# -- ports ------------------------------------------------------------------------------------


def test_xdist_workers_have_disjoint_port_blocks_below_the_ephemeral_range() -> None:
    blocks = [set(worker_port_block(f"gw{i}", "run-1")) for i in range(16)]
    assert all(len(block) == BLOCK_SIZE for block in blocks)
    assert sum(len(b) for b in blocks) == len(set().union(*blocks))  # no port in two blocks
    assert min(min(b) for b in blocks) >= 10_000 and max(max(b) for b in blocks) < 32_768
    assert worker_port_block("gw0", "run-1") == worker_port_block("gw0", "run-1")


def test_a_worker_passes_over_a_port_someone_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            spare = probe.getsockname()[1]
        monkeypatch.setattr(ports, "_worker_cycle", iter([taken, spare]))
        assert ports.free_port() == spare


# -- fault proxy ------------------------------------------------------------------------------


def test_fault_proxy_reset_cuts_a_download(
    tmp_path: Path,
    oci_layout: OciLayout,
    distribution_anon: DistributionRegistry,
    fault_proxy_factory: Callable[[str, int], FaultProxy],
    skopeo: Skopeo,
) -> None:
    image = build_image(oci_layout, tag="one", layer_sizes=(1 << 20,))
    push_layout_http(image, distribution_anon.url, "peers/cut", "v1")
    layer = image.layers[0]
    proxy = fault_proxy_factory("127.0.0.1", distribution_anon.port)
    url = f"{proxy.url}/v2/peers/cut/blobs/{layer.digest}"

    with _session() as http:
        proxy.reset_after(200_000)
        received = 0
        with (
            pytest.raises(requests.exceptions.RequestException),
            http.get(url, stream=True) as response,
        ):
            assert response.status_code == 200
            for chunk in response.iter_content(64 * 1024):
                received += len(chunk)
        assert 0 < received < layer.descriptor.size
        assert proxy.stats.resets == 1
        assert proxy.mode.kind == "pass"  # reset once, then pass again
        whole = http.get(url).content
        assert sha256_digest(whole) == layer.digest

    # A fresh layout: skopeo would not download blobs the destination already has.
    copy = OciLayout(tmp_path / "copy")
    proxy.reset_after(100_000, once=False)
    with pytest.raises(CommandError, match="connection reset by peer"):
        skopeo.copy(f"docker://{proxy.host}/peers/cut:v1", copy.skopeo_ref("x"), all=False)
    proxy.passthrough()
    skopeo.copy(f"docker://{proxy.host}/peers/cut:v1", copy.skopeo_ref("x"), all=False)
    assert copy.has_blob(layer.digest)
    assert proxy.stats.resets == 2


def test_fault_proxy_refuse_and_blackhole(
    distribution_anon: DistributionRegistry, fault_proxy_factory: Callable[[str, int], FaultProxy]
) -> None:
    proxy = fault_proxy_factory("127.0.0.1", distribution_anon.port)
    with _session() as http:
        assert http.get(f"{proxy.url}/v2/").status_code == 200
        proxy.refuse()  # also drops the connection the session keeps alive
        with pytest.raises(requests.exceptions.ConnectionError):
            http.get(f"{proxy.url}/v2/")
        proxy.blackhole()
        with pytest.raises(requests.exceptions.Timeout):
            http.get(f"{proxy.url}/v2/", timeout=0.5, headers={"Connection": "close"})
        proxy.latency(0.2)
        started = time.monotonic()
        assert http.get(f"{proxy.url}/v2/", headers={"Connection": "close"}).status_code == 200
        assert time.monotonic() - started >= 0.4


# -- processes and our own launcher -------------------------------------------------------------


def test_managed_process_stops_its_whole_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    script = f"trap '' TERM; sleep 300 & echo $! > {pidfile}; wait"
    proc = ManagedProcess(["sh", "-c", script], log_path=tmp_path / "sh.log").start()
    deadline = time.monotonic() + 5
    while not (pidfile.exists() and pidfile.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.02)
    child = int(pidfile.read_text())
    proc.stop(grace=0.5)
    assert not proc.running
    assert not _alive(child)


@pytest.fixture
def forking(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forking on, as the test run has it unless TRANSSHIP_TEST_FORK_SERVER=0."""
    monkeypatch.setenv("TRANSSHIP_TEST_FORK_SERVER", "1")


def _forked(argv: list[str], **kwargs: Any) -> ManagedProcess:
    """`python -m ARGV…` forked from the fork server (tests/peers/forked.py)."""
    return ManagedProcess([sys.executable, "-m", *argv], fork=True, **kwargs)


@pytest.mark.usefixtures("forking")
def test_a_forked_child_is_a_process_of_its_own_in_its_working_directory(
    tmp_path: Path,
) -> None:
    (tmp_path / "served.txt").write_text("from the working directory")
    port = ports.free_port()
    proc = _forked(
        ["http.server", str(port), "--bind", "127.0.0.1"],
        log_path=tmp_path / "http.log",
        cwd=tmp_path,
    ).start()
    try:
        assert proc.fork
        ports.wait_for_http(f"http://127.0.0.1:{port}/", 20, statuses={200})
        assert _session().get(f"http://127.0.0.1:{port}/served.txt").text == (
            "from the working directory"
        )
        assert os.getpgid(proc.pid) == os.getsid(proc.pid) == proc.pid
        parent = int(Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        assert parent != os.getpid()  # the fork server's child
        assert proc.running and proc.returncode is None
        assert proc.kill9() == -signal.SIGKILL
        assert not proc.running and not _alive(proc.pid)
    finally:
        proc.stop()
    assert "GET /served.txt" in proc.log_text()


# Exits with a message while a thread it started still runs and an atexit handler waits.
_EXITING = """
import atexit, sys, threading, time
print("main")
atexit.register(lambda: print("atexit ran"))
threading.Thread(target=lambda: (time.sleep(0.3), print("thread joined"))).start()
sys.exit("bye")
"""


@pytest.mark.usefixtures("forking")
@pytest.mark.parametrize(
    "argv",
    [
        ["site", "--user-base"],
        ["calendar", "not-a-year"],
        ["json.tool", "missing.json"],
        ["exiting_module"],
    ],
)
def test_a_forked_child_exits_and_logs_as_a_started_one(argv: list[str], tmp_path: Path) -> None:
    (tmp_path / "exiting_module.py").write_text(_EXITING)
    env = peer_env({"PYTHONUSERBASE": str(tmp_path / "user-base"), "PYTHONUNBUFFERED": "1"})
    started = subprocess.run(
        [sys.executable, "-m", *argv],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        check=False,
    )
    proc = _forked(argv, log_path=tmp_path / "forked.log", env=env, cwd=tmp_path)
    assert proc.start().wait(timeout=30) == started.returncode
    assert proc.log_text() == started.stdout.decode()
    assert proc.log_text(), "the command printed nothing to compare"


# Prints which of the modules a server imports at its first connection or migration it has.
_DRIVERS = """
import sys
print(",".join(m for m in ("aiosqlite", "asyncpg", "alembic.command") if m in sys.modules))
"""


@pytest.mark.usefixtures("forking")
def test_a_forked_child_starts_with_the_database_drivers_imported(tmp_path: Path) -> None:
    """A forked server imports no driver inside its first callbacks (tens of milliseconds of
    one callback each, over the stall guard's bound on a loaded machine)."""
    (tmp_path / "drivers_module.py").write_text(_DRIVERS)
    env = peer_env({"PYTHONUNBUFFERED": "1"})
    proc = _forked(["drivers_module"], log_path=tmp_path / "forked.log", env=env, cwd=tmp_path)
    assert proc.start().wait(timeout=30) == 0
    assert proc.log_text().strip() == "aiosqlite,asyncpg,alembic.command"


@pytest.mark.usefixtures("forking")
def test_a_forked_child_ended_by_sigterm_reports_the_signal(tmp_path: Path) -> None:
    port = ports.free_port()
    argv = ["http.server", str(port), "--bind", "127.0.0.1"]
    proc = _forked(argv, log_path=tmp_path / "http.log", cwd=tmp_path).start()
    ports.wait_for_http(f"http://127.0.0.1:{port}/", 20, statuses={200})
    assert proc.stop(grace=10) == -signal.SIGTERM


@pytest.mark.usefixtures("forking")
def test_forking_is_off_when_the_run_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    argv = [sys.executable, "-m", "site"]
    assert ManagedProcess(argv, log_path=Path("x.log"), fork=True).fork
    assert not ManagedProcess(["sh", "-c", "true"], log_path=Path("x.log"), fork=True).fork
    assert not ManagedProcess(argv, log_path=Path("x.log"), fork=True, user="nobody").fork
    assert not ManagedProcess(argv, log_path=Path("x.log")).fork
    monkeypatch.setenv("TRANSSHIP_TEST_FORK_SERVER", "0")
    assert not ManagedProcess(argv, log_path=Path("x.log"), fork=True).fork


def _alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie (PID 1 here may reap orphans late)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


_STAND_IN = """
import argparse, http.server, os, sys
parser = argparse.ArgumentParser()
parser.add_argument("-m"); parser.add_argument("command")
parser.add_argument("--host"); parser.add_argument("--port", type=int)
parser.add_argument("--data-dir"); parser.add_argument("--database-url")
args = parser.parse_args()
assert (args.m, args.command) == ("transship", "serve"), sys.argv
counter = os.path.join(args.data_dir, "starts")
n = int(open(counter).read()) + 1 if os.path.exists(counter) else 1
open(counter, "w").write(str(n))
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{n} {args.database_url}".encode()
        self.send_response(200 if self.path in ("/v2/", "/healthz") else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
print("serving", args.port, flush=True)
http.server.HTTPServer((args.host, args.port), H).serve_forever()
"""


def test_transship_launcher_restarts_on_same_port_and_data(tmp_path: Path) -> None:
    """The launcher contract, checked against a stand-in that speaks
    ``python -m transship serve``."""
    stand_in = tmp_path / "fake-python"
    stand_in.write_text(f"#!{sys.executable}\n" + textwrap.dedent(_STAND_IN))
    stand_in.chmod(0o755)
    with (
        TransshipServer(
            tmp_path / "srv", python=str(stand_in), database_url="postgresql://x/y"
        ) as server,
        _session() as http,
    ):
        port, pid = server.port, server.pid
        assert http.get(f"{server.url}/v2/").text == "1 postgresql://x/y"
        server.restart()
        assert server.port == port and server.pid != pid
        assert http.get(f"{server.url}/v2/").text.startswith("2 ")
        server.kill9()
        assert not server.running
        server.restart()
        assert http.get(f"{server.url}/v2/").text.startswith("3 ")
        assert "serving" in server.log_text()
    assert not server.running


def test_transship_launcher_reports_a_dead_server(tmp_path: Path) -> None:
    stand_in = tmp_path / "fake-python"
    stand_in.write_text(
        f"#!{sys.executable}\nimport sys\nprint('boom: bad config', flush=True)\nsys.exit(3)\n"
    )
    stand_in.chmod(0o755)
    with pytest.raises(RuntimeError, match="boom: bad config"):
        TransshipServer(tmp_path / "srv", python=str(stand_in), ready_timeout=5).start()
