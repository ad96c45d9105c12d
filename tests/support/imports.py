"""Drive the management API (registries, importImage, operations) as a client would, and
inspect what an import left behind (manifests by Host, blob files, `transship check`)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tests.peers.clients import Skopeo
from tests.peers.images import BuiltImage, BuiltIndex
from tests.peers.transship import SRC_DIR
from tests.support.app import RunningRegistry

API_VERSION = "2025-04-01"
PROVIDER = "providers/Microsoft.ContainerRegistry"


@dataclass(frozen=True)
class Operation:
    status: int
    body: dict[str, Any]
    location: str | None
    async_operation: str | None

    @property
    def id(self) -> str:
        return str(self.body["name"])


def status_url_of(status: int, body: Any) -> str | None:
    """The status URL of an accepted import: the 202 body's `id` (the answer, as ACR's,
    has no Azure-AsyncOperation header)."""
    if status != 202 or not isinstance(body, dict) or "/operationStatuses/" not in body["id"]:
        return None
    return str(body["id"])


def basic_auth(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def admin_authorization(data_dir: Path) -> str:
    """The `Authorization` header of the bootstrap admin written to `data_dir`."""
    credential = json.loads((data_dir / "owner-credential.json").read_text())
    return basic_auth(credential["clientId"], credential["clientSecret"])


class Management:
    """The admin's view of a running server: in-process (`Management(reg, data_dir)`) or a
    subprocess (`await Management.remote(url, http, data_dir)`)."""

    def __init__(
        self,
        reg: RunningRegistry | None,
        data_dir: Path,
        *,
        url: str | None = None,
        http: aiohttp.ClientSession | None = None,
        subscription_id: str | None = None,
        resource_group: str | None = None,
        location: str | None = None,
    ) -> None:
        self.reg = reg
        self.url = url or (reg.url if reg is not None else "")
        http_session = http or (reg.http if reg is not None else None)
        assert http_session is not None and self.url, "need a RunningRegistry or url + http"
        self.http = http_session
        self.authorization = admin_authorization(data_dir)
        if reg is not None:
            identity = reg.services.identity
            subscription_id = subscription_id or identity.subscription_id
            resource_group = resource_group or identity.resource_group
            location = location or identity.location
        assert subscription_id and resource_group and location
        self.subscription_id = subscription_id
        self.resource_group = resource_group
        self.location = location
        self.base = (
            f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}"
            f"/{PROVIDER}/registries"
        )

    @classmethod
    async def remote(cls, url: str, http: aiohttp.ClientSession, data_dir: Path) -> Management:
        """Management of a server reached only over HTTP (identity from /transship/v1/info)."""
        async with http.get(
            f"{url}/transship/v1/info", headers={"Authorization": admin_authorization(data_dir)}
        ) as r:
            assert r.status == 200, await r.text()
            info = await r.json()
        return cls(
            None,
            data_dir,
            url=url,
            http=http,
            subscription_id=info["subscriptionId"],
            resource_group=info["resourceGroup"],
            location=info["location"],
        )

    # -- raw calls -----------------------------------------------------------------------
    def registry_id(self, name: str) -> str:
        return f"{self.base}/{name}"

    def operation_path(self, op_id: str, kind: str = "operationStatuses") -> str:
        return (
            f"/subscriptions/{self.subscription_id}/{PROVIDER}"
            f"/locations/{self.location}/{kind}/{op_id}"
        )

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        authorization: str | None = "admin",
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, Any, Mapping[str, str]]:
        """One management request. `authorization`: "admin" (the default) sends the admin
        credential, None sends none, any other string is sent as the header."""
        separator = "&" if "?" in path else "?"
        url = path if path.startswith("http") else self.url + path
        headers = dict(headers or {})
        if authorization == "admin":
            headers["Authorization"] = self.authorization
        elif isinstance(authorization, str):
            headers["Authorization"] = authorization
        kwargs: dict[str, Any] = {"json": body} if raw is None else {"data": raw}
        if raw is not None:
            headers["Content-Type"] = "application/json"
        async with self.http.request(
            method,
            f"{url}{separator}api-version={API_VERSION}",
            headers=headers,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=30),
            **kwargs,
        ) as r:
            text = await r.text()
            return r.status, (json.loads(text) if text else None), r.headers

    # -- registries ----------------------------------------------------------------------
    async def create_registry(self, name: str) -> dict[str, Any]:
        body: dict[str, Any] = {"location": "local", "sku": {"name": "Premium"}}
        status, payload, _ = await self.call("PUT", f"{self.base}/{name}", body)
        assert status in (200, 201), payload
        if self.reg is not None:
            await self.reg.services.resolver.refresh()
        return dict(payload)

    # -- imports -------------------------------------------------------------------------
    async def start_import(self, registry: str, body: dict[str, Any]) -> Operation:
        status, payload, headers = await self.call(
            "POST", f"{self.base}/{registry}/importImage", body
        )
        return Operation(status, payload, headers.get("Location"), status_url_of(status, payload))

    async def status(self, operation: Operation) -> dict[str, Any]:
        assert operation.async_operation is not None, operation
        status, body, _ = await self.call("GET", operation.async_operation.split("?")[0])
        assert status == 200, body
        return dict(body)

    async def follow(
        self, operation: Operation, seen: tuple[dict[str, Any], str] | None, wait_seconds: float
    ) -> tuple[dict[str, Any], str]:
        """The operation's status through the long poll (`GET /transship/v1/subscriptions/
        {sub}/importOperations/{id}`): at once without `seen`, else as soon as it differs
        from `seen` (the status and ETag of the last answer), or `seen` itself after
        `wait_seconds` without a change. Returns the status and its ETag."""
        assert operation.async_operation is not None, operation
        op_id = operation.async_operation.split("?")[0].rsplit("/", 1)[-1]
        path = f"/transship/v1/subscriptions/{self.subscription_id}/importOperations/{op_id}"
        headers: dict[str, str] = {}
        if seen is not None:
            path += f"?waitSeconds={wait_seconds:g}"
            headers["If-None-Match"] = seen[1]
        status, body, answer = await self.call("GET", path, headers=headers)
        if status == 304 and seen is not None:
            return seen
        assert status == 200, body
        return dict(body), answer["ETag"]

    async def result(self, operation: Operation) -> tuple[int, Any]:
        """GET the operation's Location (operationResults) once."""
        assert operation.location is not None, operation
        status, body, _ = await self.call("GET", operation.location.split("?")[0])
        return status, body

    async def cancel(self, operation: Operation) -> tuple[int, Any]:
        status, body, _ = await self.call("POST", self.operation_path(operation.id) + "/cancel")
        return status, body

    async def operations(self, registry: str) -> list[dict[str, Any]]:
        status, body, _ = await self.call("GET", f"{self.base}/{registry}/importOperations")
        assert status == 200, body
        return list(body["value"])

    async def wait_for(
        self,
        operation: Operation,
        predicate: Callable[[dict[str, Any]], bool],
        timeout: float = 30.0,
        what: str = "condition",
    ) -> dict[str, Any]:
        """Poll the status until `predicate(status)` holds; returns that status."""
        assert operation.status == 202, operation.body
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            body = await self.status(operation)
            if predicate(body):
                return body
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{what} not reached in {timeout} s: {body}")
            # Every management request costs the server a scrypt verification of the admin
            # credential on its event loop (~0.1 s): poll gently, or the polling itself
            # becomes the load.
            await asyncio.sleep(0.2)

    async def wait(self, operation: Operation, timeout: float = 60.0) -> dict[str, Any]:
        """Poll the status URL until the operation ends; returns its status."""
        return await self.wait_for(
            operation, lambda body: body["status"] != "InProgress", timeout, "the end"
        )

    async def run_import(
        self, registry: str, body: dict[str, Any], timeout: float = 60.0
    ) -> dict[str, Any]:
        return await self.wait(await self.start_import(registry, body), timeout)


def describe_failure(final: dict[str, Any]) -> str:
    return f"{final['status']}: {final.get('error')} {final['properties'].get('failure')}"


def assert_succeeded(final: dict[str, Any]) -> dict[str, Any]:
    """The operation's progress, after asserting it succeeded with every item done."""
    assert final["status"] == "Succeeded", describe_failure(final)
    assert final["properties"]["state"] == "succeeded"
    progress: dict[str, Any] = final["properties"]["progress"]
    assert progress["manifestsDone"] == progress["manifestsTotal"] > 0, progress
    assert progress["blobsDone"] == progress["blobsTotal"], progress
    assert progress["bytesDone"] == progress["bytesTotal"], progress
    return progress


def assert_failed(final: dict[str, Any], code: str) -> dict[str, Any]:
    """The operation's error, after asserting it failed with `code`."""
    assert final["status"] == "Failed", describe_failure(final)
    assert final["properties"]["state"] == "failed"
    error: dict[str, Any] = final["error"]
    assert error["code"] == code, describe_failure(final)
    return error


# -- the data plane ------------------------------------------------------------------------
@dataclass(frozen=True)
class Fetched:
    status: int
    body: bytes
    headers: Mapping[str, str]


async def fetch(
    http: aiohttp.ClientSession, url: str, path: str, host: str | None = None
) -> Fetched:
    """GET `url + path` (with `Host: host` when given), every manifest type accepted."""
    headers = {
        "Accept": ", ".join(
            (
                "application/vnd.oci.image.index.v1+json",
                "application/vnd.oci.image.manifest.v1+json",
                "application/vnd.docker.distribution.manifest.list.v2+json",
                "application/vnd.docker.distribution.manifest.v2+json",
            )
        )
    }
    if host is not None:
        headers["Host"] = host
    async with http.get(
        url + path, headers=headers, allow_redirects=False, timeout=aiohttp.ClientTimeout(total=30)
    ) as r:
        return Fetched(r.status, await r.read(), dict(r.headers))


async def push_built(
    http: aiohttp.ClientSession,
    url: str,
    host: str,
    repository: str,
    tag: str | None,
    built: BuiltIndex | BuiltImage,
) -> None:
    """Push a built image or index (blobs, children by digest, root by `tag`) to a server of
    ours, routed by `Host: host`. Foreign layers are skipped, as a client does."""
    headers = {"Host": host}
    timeout = aiohttp.ClientTimeout(total=60)
    children = built.children if isinstance(built, BuiltIndex) else (built,)
    for child in children:
        for descriptor in (child.config, *(layer.descriptor for layer in child.layers)):
            if descriptor.is_foreign:
                continue
            data = child.layout.read_blob(descriptor.digest)
            async with http.post(
                f"{url}/v2/{repository}/blobs/uploads/?digest={descriptor.digest}",
                data=data,
                headers=headers,
                timeout=timeout,
            ) as r:
                assert r.status == 201, await r.text()
    manifests: list[tuple[str, bytes, str]] = [
        (c.digest, c.manifest_bytes, c.media_type) for c in children
    ]
    if isinstance(built, BuiltIndex):
        manifests.append((tag or built.digest, built.index_bytes, built.media_type))
    else:
        manifests[-1] = (tag or built.digest, built.manifest_bytes, built.media_type)
    for reference, body, media_type in manifests:
        async with http.put(
            f"{url}/v2/{repository}/manifests/{reference}",
            data=body,
            headers={**headers, "Content-Type": media_type},
            timeout=timeout,
        ) as r:
            assert r.status == 201, await r.text()


def blob_files(data_dir: Path) -> dict[str, tuple[int, int, int]]:
    """Every file under `<data_dir>/blobs`: relative path → (size, inode, mtime_ns)."""
    root = data_dir / "blobs"
    found: dict[str, tuple[int, int, int]] = {}
    if root.exists():
        for path in root.rglob("*"):
            if path.is_file():
                st = path.stat()
                found[str(path.relative_to(root))] = (st.st_size, st.st_ino, st.st_mtime_ns)
    return found


def has_blob_file(data_dir: Path, digest: str) -> bool:
    return any(Path(name).name == digest.split(":", 1)[1] for name in blob_files(data_dir))


@dataclass(frozen=True)
class CheckResult:
    returncode: int
    report: dict[str, Any]
    output: str


async def run_check(
    data_dir: Path, database_url: str | None, *, timeout: float = 60.0
) -> CheckResult:
    """`python -m transship check --verify-digests -o json` as a subprocess (the loop stays
    free, so an in-process server keeps serving meanwhile)."""
    argv = [
        sys.executable,
        "-m",
        "transship",
        "check",
        "--verify-digests",
        "-o",
        "json",
        "--data-dir",
        str(data_dir),
    ]
    if database_url:
        argv += ["--database-url", database_url]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(SRC_DIR), os.environ.get("PYTHONPATH", "")) if p
        ),
    }
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    text = out.decode()
    start = text.find("{")
    report = json.loads(text[start:]) if start >= 0 else {}
    return CheckResult(proc.returncode or 0, report, text + err.decode())


async def assert_check_clean(data_dir: Path, database_url: str | None) -> CheckResult:
    result = await run_check(data_dir, database_url)
    assert result.returncode == 0 and result.report.get("ok") is True, result.output
    assert result.report["problems"] == [], result.output
    return result


# -- clients: skopeo runs in a thread, so an in-process server on this loop keeps serving ----
def docker_ref(host: str, repository: str, reference: str) -> str:
    separator = "@" if ":" in reference else ":"
    return f"docker://{host}/{repository}{separator}{reference}"


def root_bytes(built: BuiltIndex | BuiltImage) -> bytes:
    return built.index_bytes if isinstance(built, BuiltIndex) else built.manifest_bytes


async def assert_served_as_built(
    skopeo: Skopeo, host: str, repository: str, reference: str, built: BuiltIndex | BuiltImage
) -> None:
    """`skopeo inspect --raw` shows the built root (by `reference`) and every child (by
    digest) byte for byte, hence with the same digests."""
    raw = await asyncio.to_thread(skopeo.inspect_raw, docker_ref(host, repository, reference))
    assert raw == root_bytes(built), (
        f"{host}/{repository}:{reference} is not the source's root manifest"
    )
    if isinstance(built, BuiltIndex):
        listed = [m["digest"] for m in json.loads(raw)["manifests"]]
        assert listed == list(built.child_digests)
        for child in built.children:
            raw_child = await asyncio.to_thread(
                skopeo.inspect_raw, docker_ref(host, repository, child.digest)
            )
            assert raw_child == child.manifest_bytes, f"child {child.digest} differs"


async def assert_copies_out(
    skopeo: Skopeo,
    host: str,
    repository: str,
    reference: str,
    destination_host: str,
    built: BuiltIndex | BuiltImage,
) -> None:
    """`skopeo copy --all` from `host` into another registry succeeds, and the copy has the
    source's digests."""
    await asyncio.to_thread(
        skopeo.copy,
        docker_ref(host, repository, reference),
        docker_ref(destination_host, "copied/" + repository, "out"),
        all=True,
        preserve_digests=True,
    )
    await assert_served_as_built(skopeo, destination_host, "copied/" + repository, "out", built)
