"""Server-side import: Transship's ``importImage`` against ``skopeo copy --all`` between
docker-registries, side by side. Four benchmarks:

- ``import``: a 4-platform OCI index (5 incompressible layers per platform, >= 1 GiB in
  all; 256 MiB with --quick) sits in a source docker-registry. Runs alternate T R T R …:
  (T) a **fresh** Transship (new data dir, so no blob is already in its store) imports it,
  timed from the POST to the operation's ``Succeeded``; (R) ``skopeo copy --all
  --preserve-digests`` copies it into a **fresh** second docker-registry (an empty store: the
  root-wide skopeo blob-info cache has nothing there to mount from). Target T/R <= 0.5.
- ``import_noop``: the same image imported again into the same Transship (``Force``, another
  tag; everything present) against ``skopeo copy --all`` again into the same docker-registry
  repository (every blob HEADs 200). ``bytesFetched`` must be 0.
- ``import_same_service``: an import whose source is another registry of the same Transship
  service (``resourceId``) against ``skopeo copy --all`` between two repositories of one
  docker-registry (cross-repository mounts). ``bytesFetched`` must be 0 and neither store's
  blob bytes may grow.
- ``import_rss``: peak RSS (``VmHWM`` after a reset, and a 20 ms ``VmRSS`` poll) of a fresh
  Transship importing an image whose one layer is 2 GiB (512 MiB with --quick), against the
  fresh docker-registry receiving the same ``skopeo copy``. Target: Transship < 200 MB.

Every fresh server first gets a small unmeasured warm-up image (imported or copied) so the
measured run does not pay for first-use costs. After every import or copy the target's
manifest bytes are read back and must hash to the source digests (the index and each child),
and on Transship every blob must answer HEAD with its size. The bytes each store gained are
checked against the image, so an import that stored nothing is caught, not timed.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.harness import (
    REGISTRY,
    TRANSSHIP,
    Context,
    GiB,
    MiB,
    S3Bucket,
    Target,
    median,
    prefault_memory,
)
from bench.procstat import (
    CpuMeter,
    RssSampler,
    io_chars,
    peak_rss_bytes,
    reset_peak_rss,
    rss_bytes,
    thread_cpu_seconds,
)
from bench.regclient import Endpoint, RegistryHttpError
from bench.report import BenchResult, Metric
from tests.peers.clients import Skopeo
from tests.peers.distribution import DistributionRegistry
from tests.peers.images import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    BuiltImage,
    BuiltIndex,
    OciLayout,
    build_image,
    build_index,
)
from tests.peers.object_stores import SeaweedFS
from tests.peers.transship import TransshipServer
from transship.config import Settings

IMPORT = "import"
NOOP = "import_noop"
SAME_SERVICE = "import_same_service"
RSS = "import_rss"

PLATFORMS = ("linux/amd64", "linux/arm64", "linux/arm/v7", "linux/ppc64le")
FULL_LAYERS_MIB = (120, 80, 40, 15, 1)  # per platform: 256 MiB of data, 1 GiB + framing in all
QUICK_LAYERS_MIB = (32, 20, 8, 3, 1)  # 64 MiB per platform
WARMUP_LAYERS_MIB = (1,)
RSS_LAYER = {False: 2 * GiB, True: 512 * MiB}
RSS_LIMIT_MB = 200.0
IMPORT_TARGET = 0.3  # issue 14; wave 1's target was 0.5
CEILING_MODES = ("discard", "store", "threads")
# The ceiling fetches as many blobs at a time as an import does by default.
CEILING_CONCURRENCY: int = Settings.model_fields["import_blob_concurrency"].default
SOURCE_REPO = "bench/image"
WARMUP_REPO = "bench/warmup"
TAG = "v1"
API_VERSION = "2025-04-01"
PROVIDER = "providers/Microsoft.ContainerRegistry"
FOLLOW_WAIT_SECONDS = 25.0  # as `transship import` follows an operation
IMPORT_TIMEOUT = 1800.0
MB = 1e6
ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST))

Figures = dict[str, float]
Built = BuiltIndex | BuiltImage


# --------------------------------------------------------------------------------------------
# The management API (a synchronous client over http.client)


class Management:
    """The owner service principal's view of one Transship server (Basic with its client id
    and secret; the management API accepts that as well as bearer tokens)."""

    def __init__(self, server: TransshipServer) -> None:
        self.endpoint = Endpoint.from_url(server.url)
        credential = json.loads((server.data_dir / "owner-credential.json").read_text())
        token = f"{credential['clientId']}:{credential['clientSecret']}".encode()
        self.authorization = "Basic " + base64.b64encode(token).decode("ascii")
        info = self.call("GET", "/transship/v1/info", expect=(200,))
        self.subscription = str(info["subscriptionId"])
        self.base = (
            f"/subscriptions/{self.subscription}/resourceGroups/{info['resourceGroup']}"
            f"/{PROVIDER}/registries"
        )

    def call(
        self, method: str, path: str, body: Any = None, *, expect: Sequence[int] = (200,)
    ) -> Any:
        """One management request; its JSON answer (RegistryHttpError unless ``expect``ed)."""
        headers = {"Authorization": self.authorization}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        separator = "&" if "?" in path else "?"
        reply = self.endpoint.request(
            method, f"{path}{separator}api-version={API_VERSION}", body=data, headers=headers
        )
        if reply.status not in expect:
            raise RegistryHttpError(f"{method} {path}: HTTP {reply.status} {reply.body[:500]!r}")
        return json.loads(reply.body) if reply.body else None

    def registry_id(self, name: str) -> str:
        return f"{self.base}/{name}"

    def put_registry(self, name: str) -> dict[str, Any]:
        body = {"location": "local", "sku": {"name": "Premium"}}
        registry: dict[str, Any] = self.call("PUT", self.registry_id(name), body, expect=(200, 201))
        return registry

    def start_import(self, registry: str, body: Mapping[str, Any]) -> str:
        """POST importImage (202); the path of its operation status URL."""
        headers = {"Authorization": self.authorization, "Content-Type": "application/json"}
        reply = self.endpoint.request(
            "POST",
            f"{self.registry_id(registry)}/importImage?api-version={API_VERSION}",
            body=json.dumps(body).encode(),
            headers=headers,
        )
        if reply.status != 202:
            raise RegistryHttpError(f"importImage: HTTP {reply.status} {reply.body[:500]!r}")
        # As ACR's, the answer has no Azure-AsyncOperation header: the body's `id` is the
        # operation status URL (with Location, the result URL, beside it).
        status_url = reply.headers.get("azure-asyncoperation") or json.loads(reply.body)["id"]
        return urllib.parse.urlsplit(status_url).path

    def wait(self, status_path: str, timeout: float = IMPORT_TIMEOUT) -> tuple[dict[str, Any], int]:
        """Follow the operation until it ends, as `transship import` does: the long poll
        (`importOperations/{id}`, answered as soon as the operation changes), not a status
        request every few milliseconds, each of which would cost the server a credential
        check and a read while it imports; (final status, requests made)."""
        operation = status_path.rstrip("/").rsplit("/", 1)[-1]
        path = f"/transship/v1/subscriptions/{self.subscription}/importOperations/{operation}"
        deadline = time.monotonic() + timeout
        polls, etag = 0, ""
        while True:
            headers = {"Authorization": self.authorization}
            query = f"?api-version={API_VERSION}"
            if etag:
                headers["If-None-Match"] = etag
                query += f"&waitSeconds={FOLLOW_WAIT_SECONDS:g}"
            reply = self.endpoint.request("GET", path + query, headers=headers)
            polls += 1
            if reply.status == 200:
                status: dict[str, Any] = json.loads(reply.body)
                if status["status"] != "InProgress":
                    return status, polls
                etag = reply.headers.get("etag", "")
            elif reply.status != 304:
                raise RegistryHttpError(f"follow: HTTP {reply.status} {reply.body[:500]!r}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"import not finished after {timeout:.0f} s")


def _progress_of(final: Mapping[str, Any]) -> dict[str, Any]:
    """The progress of a Succeeded operation; RuntimeError with the failure otherwise."""
    props = final.get("properties", {})
    if final.get("status") != "Succeeded":
        raise RuntimeError(
            f"import {final.get('status')}: {final.get('error')} {props.get('failure')}"
        )
    progress: dict[str, Any] = props["progress"]
    return progress


def _server_seconds(final: Mapping[str, Any]) -> float:
    """endTime - startTime of an operation, as the server recorded them."""
    start = datetime.fromisoformat(str(final["startTime"]).replace("Z", "+00:00"))
    end = datetime.fromisoformat(str(final["endTime"]).replace("Z", "+00:00"))
    return (end - start).total_seconds()


# --------------------------------------------------------------------------------------------
# Images, stores, verification


def _build_index(ctx: Context, name: str, layers_mib: Sequence[int], seed: str) -> BuiltIndex:
    layout = OciLayout(ctx.workdir / "layouts" / name)
    return build_index(
        layout,
        platforms=PLATFORMS if name != "warmup" else PLATFORMS[:2],
        layer_sizes=[size * MiB for size in layers_mib],
        seed=seed,
        tag=TAG,
    )


def _children(image: Built) -> tuple[BuiltImage, ...]:
    return image.children if isinstance(image, BuiltIndex) else (image,)


def _blob_sizes(image: Built) -> dict[str, int]:
    return {
        d.digest: d.size
        for child in _children(image)
        for d in (child.config, *(layer.descriptor for layer in child.layers))
        if not d.is_foreign
    }


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def verify_copy(
    who: str,
    ep: Endpoint,
    repo: str,
    tag: str,
    image: Built,
    *,
    host: str | None = None,
    blobs: bool = False,
) -> None:
    """The manifest under ``repo:tag`` hashes to the image's root digest, each child (by
    digest) to its own; with ``blobs``, every blob answers HEAD 200 with its size."""
    headers = {"Accept": ACCEPT, **({"Host": host} if host else {})}
    reply = ep.request("GET", f"/v2/{repo}/manifests/{tag}", headers=headers)
    if reply.status != 200 or _sha256(reply.body) != image.digest:
        raise RegistryHttpError(
            f"{who}: {repo}:{tag} reads back as HTTP {reply.status}, {len(reply.body)} bytes "
            f"hashing to {_sha256(reply.body)}, not the source's {image.digest}"
        )
    if isinstance(image, BuiltIndex):
        for child in image.children:
            got = ep.request("GET", f"/v2/{repo}/manifests/{child.digest}", headers=headers)
            if got.status != 200 or _sha256(got.body) != child.digest:
                raise RegistryHttpError(f"{who}: child {child.digest} of {repo} differs")
    if blobs:
        for digest, size in _blob_sizes(image).items():
            head = ep.request("HEAD", f"/v2/{repo}/blobs/{digest}", headers=headers)
            if head.status != 200 or head.headers.get("content-length") != str(size):
                raise RegistryHttpError(
                    f"{who}: blob {digest} of {repo}: HTTP {head.status}, "
                    f"length {head.headers.get('content-length')} (want {size})"
                )


def tree_bytes(root: Path) -> tuple[int, int]:
    """(files, bytes) under ``root``."""
    files = size = 0
    if root.exists():
        for path in root.rglob("*"):
            with contextlib.suppress(FileNotFoundError):
                if path.is_file():
                    files += 1
                    size += path.stat().st_size
    return files, size


StoreProbe = Callable[[], tuple[int, int]]


def _blob_store(server: TransshipServer | DistributionRegistry) -> StoreProbe:
    """What reads (files or objects, bytes) of ``server``'s blob store: its directory, or
    its prefix of the S3 bucket (set up by :func:`fresh_transship` / :func:`fresh_registry`)."""
    if isinstance(server, TransshipServer):
        url = server.extra_env.get("TRANSSHIP_STORAGE_URL")
        if url is None:
            return lambda: tree_bytes(server.data_dir / "blobs")
        parts = urllib.parse.urlsplit(url)
        endpoint = urllib.parse.parse_qs(parts.query)["endpoint"][0]
        env = server.extra_env
        bucket = S3Bucket(
            endpoint, parts.netloc, env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
        )
        prefix = parts.path.strip("/")
        return lambda: bucket.usage(prefix)
    s3 = (server.storage or {}).get("s3")
    if not isinstance(s3, dict):
        return lambda: tree_bytes(server.storage_dir / "docker" / "registry" / "v2" / "blobs")
    bucket = S3Bucket(s3["regionendpoint"], s3["bucket"], s3["accesskey"], s3["secretkey"])
    blobs = f"{str(s3['rootdirectory']).strip('/')}/docker/registry/v2/blobs"
    return lambda: bucket.usage(blobs)


# --------------------------------------------------------------------------------------------
# Servers


def _transship_target(server: TransshipServer) -> Target:
    return Target(TRANSSHIP, server.url, server.host, server.pid)


def _s3_prefix(workdir: Path) -> str:
    """A key prefix as unique as the work dir: its last two path parts (``round0-transship``)."""
    return f"{workdir.parent.name}-{workdir.name}"


@contextlib.contextmanager
def fresh_transship(
    workdir: Path, upstream_hosts: Sequence[str], s3: S3Bucket | None = None
) -> Iterator[TransshipServer]:
    """A Transship with an empty data dir whose imports may reach ``upstream_hosts`` over
    plain HTTP (``TRANSSHIP_CONFIG`` names a TOML file with ``[upstreams."HOST"]``); with
    ``s3``, its blobs go to a prefix of that bucket named after ``workdir`` (storage_url).

    The work dir is removed after a clean exit (kept, for its log, when the block raised).
    """
    workdir.mkdir(parents=True)
    config = workdir / "transship.toml"
    config.write_text("".join(f'[upstreams."{h}"]\ninsecure = true\n\n' for h in upstream_hosts))
    env = {"TRANSSHIP_CONFIG": str(config)}
    if s3 is not None:
        env |= s3.transship_env(_s3_prefix(workdir))
    server = TransshipServer(workdir, env=env, ready_timeout=60.0)
    server.start()
    try:
        yield server
    finally:
        server.stop()
    shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def fresh_registry(workdir: Path, s3: S3Bucket | None = None) -> Iterator[DistributionRegistry]:
    """A docker-registry with an empty store (with ``s3``: its S3 driver, under a prefix of
    that bucket named after ``workdir``, redirects off); removed after a clean exit."""
    if s3 is None:
        registry = DistributionRegistry(workdir)
    else:
        registry = DistributionRegistry(
            workdir, storage=s3.registry_storage(_s3_prefix(workdir)), env=s3.registry_env()
        )
    registry.start()
    try:
        yield registry
    finally:
        registry.stop()
    shutil.rmtree(workdir, ignore_errors=True)


@dataclass
class Source:
    """The source docker-registry holding the image (and a small warm-up image)."""

    registry: DistributionRegistry
    image: Built
    warmup: BuiltIndex
    skopeo: Skopeo
    s3: S3Bucket | None = None  # every server's blobs in this bucket (--storage s3)

    @property
    def host(self) -> str:
        return self.registry.host

    def ref(self, repo: str = SOURCE_REPO, tag: str = TAG) -> str:
        return f"docker://{self.host}/{repo}:{tag}"

    def import_body(
        self, target: str, *, repo: str = SOURCE_REPO, force: bool = False
    ) -> dict[str, Any]:
        return {
            "source": {"registryUri": self.host, "sourceImage": f"{repo}:{TAG}"},
            "targetTags": [target],
            "mode": "Force" if force else "NoForce",
        }


@contextlib.contextmanager
def source_registry(ctx: Context, image: Built, s3: S3Bucket | None = None) -> Iterator[Source]:
    """Start the source docker-registry (on ``s3`` when given) and copy ``image`` and the
    warm-up image into it from their layouts (``skopeo copy --all --preserve-digests``); the
    layouts then go."""
    warmup = _build_index(ctx, "warmup", WARMUP_LAYERS_MIB, f"{ctx.name}-warmup")
    skopeo = Skopeo(ctx.workdir / "skopeo", timeout=IMPORT_TIMEOUT)
    with fresh_registry(ctx.workdir / "source", s3) as registry:
        source = Source(registry, image, warmup, skopeo, s3)
        for built, repo in ((image, SOURCE_REPO), (warmup, WARMUP_REPO)):
            skopeo.copy(
                built.layout.skopeo_ref(TAG),
                source.ref(repo),
                all=True,
                preserve_digests=True,
            )
            verify_copy("source docker-registry", registry_endpoint(registry), repo, TAG, built)
        shutil.rmtree(ctx.workdir / "layouts", ignore_errors=True)
        yield source


def registry_endpoint(registry: DistributionRegistry) -> Endpoint:
    return Endpoint.from_url(registry.url)


# --------------------------------------------------------------------------------------------
# One measured import / copy


@dataclass
class Watch:
    """What to measure around one action: CPU of these process groups, RSS of one pid."""

    cpu: dict[str, int]  # label → process-group id
    rss_pid: int | None = None
    stores: dict[str, StoreProbe] = field(default_factory=dict)  # label → blob store usage


@contextlib.contextmanager
def _measured(watch: Watch, figures: Figures) -> Iterator[None]:
    """Fill ``figures`` with seconds, CPU per group, RSS peak and store growth."""
    stores0 = {label: probe() for label, probe in watch.stores.items()}
    with contextlib.ExitStack() as stack:
        meters = {label: stack.enter_context(CpuMeter(pid)) for label, pid in watch.cpu.items()}
        sampler = None
        if watch.rss_pid is not None:
            figures["idle_rss_mb"] = (rss_bytes(watch.rss_pid) or 0) / MB
            figures["hwm_reset"] = float(reset_peak_rss(watch.rss_pid))
            sampler = stack.enter_context(RssSampler(watch.rss_pid))
        start = time.perf_counter()
        yield
        figures["seconds"] = time.perf_counter() - start
    for label, meter in meters.items():
        figures[f"{label}_cpu_s"] = meter.total
        figures[f"{label}_user_s"] = meter.user
        figures[f"{label}_sys_s"] = meter.system
    if watch.rss_pid is not None and sampler is not None:
        hwm = peak_rss_bytes(watch.rss_pid) or 0
        figures["vmhwm_mb"] = hwm / MB
        figures["sampled_mb"] = sampler.peak / MB
        figures["peak_mb"] = max(hwm, sampler.peak) / MB
    for label, probe in watch.stores.items():
        files, size = probe()
        figures[f"{label}_files_added"] = float(files - stores0[label][0])
        figures[f"{label}_bytes_added"] = float(size - stores0[label][1])


def timed_import(
    ctx: Context,
    server: TransshipServer,
    mgmt: Management,
    registry: str,
    body: Mapping[str, Any],
    phase: str,
    *,
    source_pid: int | None = None,
    store_pid: int | None = None,
    rss: bool = False,
) -> Figures:
    """POST importImage and poll until the operation ends: wall seconds (POST → Succeeded
    seen), Transship CPU (and the source's, and the object store's), the progress counters,
    blob-store growth."""
    figures: Figures = {}
    cpu = {"server": server.pid, **({"source": source_pid} if source_pid else {})}
    if store_pid is not None:
        cpu["objstore"] = store_pid
    watch = Watch(cpu, server.pid if rss else None, {"store": _blob_store(server)})
    prefault_memory()
    written0 = io_chars(server.pid)[1]
    loop0 = thread_cpu_seconds(server.pid)
    with _measured(watch, figures), ctx.profile(_transship_target(server), phase):
        final, polls = mgmt.wait(mgmt.start_import(registry, body))
    figures["loop_cpu_s"] = thread_cpu_seconds(server.pid) - loop0
    progress = _progress_of(final)
    figures["server_written_bytes"] = float(io_chars(server.pid)[1] - written0)
    figures["server_seconds"] = _server_seconds(final)
    figures["polls"] = float(polls)
    for key in ("bytesTotal", "bytesDone", "bytesFetched", "blobsTotal", "manifestsTotal"):
        figures[key] = float(progress[key])
    # The copier's CPU, comparable with skopeo + target registry on the R side.
    figures["copier_cpu_s"] = figures["server_cpu_s"]
    return figures


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_copy(
    source: Source,
    dest: DistributionRegistry,
    repo: str,
    *,
    tag: str = TAG,
    from_repo: str = SOURCE_REPO,
    rss: bool = False,
    all_platforms: bool = True,
    extra: Sequence[str] = (),
) -> Figures:
    """``skopeo copy --all --preserve-digests`` (without ``--all`` when not
    ``all_platforms``; ``extra`` options added) from the source into ``dest``: wall
    seconds, skopeo's CPU (reaped-children rusage), the target registry's (and the
    source's) CPU, store growth."""
    figures: Figures = {}
    cpu = {"server": dest.pid}
    if source.registry.pid != dest.pid:
        cpu["source"] = source.registry.pid
    if source.s3 is not None and source.s3.pid is not None:
        cpu["objstore"] = source.s3.pid
    watch = Watch(cpu, dest.pid if rss else None, {"store": _blob_store(dest)})
    prefault_memory()
    written0 = io_chars(dest.pid)[1]
    children0 = _children_cpu()
    with _measured(watch, figures):
        source.skopeo.copy(
            source.ref(from_repo),
            f"docker://{dest.host}/{repo}:{tag}",
            all=all_platforms,
            preserve_digests=True,
            extra=extra,
        )
    figures["skopeo_cpu_s"] = _children_cpu() - children0
    figures["server_written_bytes"] = float(io_chars(dest.pid)[1] - written0)
    figures["copier_cpu_s"] = figures["skopeo_cpu_s"] + figures["server_cpu_s"]
    return figures


def ceiling_copy(source: Source, image: Built, mode: str, outdir: Path) -> Figures:
    """The reference ceiling (``bench/import_ceiling.py``, a subprocess): a plain aiohttp
    download of the image's blobs from the source, as many at a time as Transship fetches
    (its default ``import_blob_concurrency``), bytes dropped (``discard``) or hashed and
    written (``store``), or read by threads from blocking sockets (``threads``): wall
    seconds, its CPU, its event loop's CPU, the source's CPU."""
    digests = sorted(_blob_sizes(image))
    outdir.mkdir(parents=True)
    figures: Figures = {}
    watch = Watch({"source": source.registry.pid}, None, {})
    try:
        with _measured(watch, figures):
            done = subprocess.run(
                [sys.executable, "-m", "bench.import_ceiling", source.registry.url,
                 SOURCE_REPO, str(CEILING_CONCURRENCY), mode, str(outdir), *digests],
                check=True, capture_output=True, text=True, timeout=IMPORT_TIMEOUT,
                cwd=Path(__file__).resolve().parent.parent,
            )  # fmt: skip
    finally:
        shutil.rmtree(outdir, ignore_errors=True)
    reported = json.loads(done.stdout)
    if reported["bytes"] != sum(_blob_sizes(image).values()):
        raise RuntimeError(f"the ceiling download got {reported['bytes']} bytes")
    figures["copier_cpu_s"] = float(reported["cpu_s"])
    figures["loop_cpu_s"] = float(reported["loop_cpu_s"])
    return figures


def warm_transship(source: Source, server: TransshipServer, mgmt: Management) -> None:
    """One small unmeasured import, so the measured one pays no first-use costs."""
    body = source.import_body(f"{WARMUP_REPO}:{TAG}", repo=WARMUP_REPO)
    _progress_of(mgmt.wait(mgmt.start_import("default", body))[0])


def warm_registry(source: Source, dest: DistributionRegistry) -> None:
    source.skopeo.copy(
        source.ref(WARMUP_REPO),
        f"docker://{dest.host}/{WARMUP_REPO}:{TAG}",
        all=True,
        preserve_digests=True,
    )


def _check_stored(who: str, figures: Figures, image: Built) -> None:
    """A copy into an empty store must have stored the image's bytes."""
    want = sum(_blob_sizes(image).values())
    if figures["store_bytes_added"] < want:
        raise RuntimeError(
            f"{who}: the blob store grew by {figures['store_bytes_added']:.0f} bytes for an "
            f"image of {want}: blobs were mounted or skipped, not copied"
        )


def _log_run(ctx: Context, what: str, figures: Figures) -> None:
    extra = ""
    if "bytesFetched" in figures:
        extra = f", fetched {figures['bytesFetched'] / MiB:.0f} MiB"
    if "peak_mb" in figures:
        extra += f", peak RSS {figures['peak_mb']:.0f} MB"
    if "loop_cpu_s" in figures:
        extra += f", event loop {figures['loop_cpu_s']:.2f} CPU-s"
    if "store_bytes_added" in figures:
        extra = f", store +{figures['store_bytes_added'] / MiB:.0f} MiB{extra}"
    ctx.log(f"{what}: {figures['seconds']:.2f}s, copier {figures['copier_cpu_s']:.2f} CPU-s{extra}")


def _image_details(image: Built, layers_mib: Sequence[int] | None = None) -> dict[str, Any]:
    return {
        "digest": image.digest,
        "platforms": [str(c.platform) for c in _children(image)],
        "layers_per_platform_mib": list(layers_mib or []),
        "blobs": len(_blob_sizes(image)),
        "blob_bytes": sum(_blob_sizes(image).values()),
    }


# --------------------------------------------------------------------------------------------
# import


def _bucket_for(ctx: Context, stack: contextlib.ExitStack) -> S3Bucket | None:
    """With ``--storage s3``: one SeaweedFS (stopped with ``stack``) whose bucket holds
    every registry's blobs, each under a prefix of its own; else None (the filesystem)."""
    if ctx.storage == "filesystem":
        return None
    s3 = S3Bucket.of(stack.enter_context(SeaweedFS()))
    ctx.log(f"SeaweedFS at {s3.endpoint}: every registry's blobs in its S3 API")
    return s3


def run_import(ctx: Context, result: BenchResult) -> None:
    layers = QUICK_LAYERS_MIB if ctx.quick else FULL_LAYERS_MIB
    rounds = 2 if ctx.quick else 3
    ctx.log(f"building a {len(PLATFORMS)}-platform index, layers {layers} MiB per platform")
    image = _build_index(ctx, "image", layers, f"{ctx.name}-image")
    size = sum(_blob_sizes(image).values())
    if not ctx.quick and size < GiB:
        raise RuntimeError(f"the image is {size} bytes, under 1 GiB")
    samples: dict[str, list[Figures]] = {TRANSSHIP: [], REGISTRY: []}
    samples |= {f"ceiling_{mode}": [] for mode in CEILING_MODES}
    with contextlib.ExitStack() as stack:
        s3 = _bucket_for(ctx, stack)
        source = stack.enter_context(source_registry(ctx, image, s3))
        ctx.log(f"source docker-registry holds {size / MiB:.0f} MiB; {rounds} rounds T R")
        for index in range(rounds):
            workdir = ctx.workdir / f"round{index}"
            with fresh_transship(workdir / "transship", [source.host], s3) as server:
                mgmt = Management(server)
                warm_transship(source, server, mgmt)
                repo = f"imported/run{index}"
                got = timed_import(
                    ctx,
                    server,
                    mgmt,
                    "default",
                    source.import_body(f"{repo}:{TAG}"),
                    "import",
                    source_pid=source.registry.pid,
                    store_pid=None if s3 is None else s3.pid,
                )
                verify_copy(TRANSSHIP, Endpoint.from_url(server.url), repo, TAG, image, blobs=True)
                _check_stored(TRANSSHIP, got, image)
                if got["bytesFetched"] != size:
                    raise RuntimeError(f"bytesFetched {got['bytesFetched']:.0f}, image {size}")
            samples[TRANSSHIP].append(got)
            _log_run(ctx, f"round {index + 1}/{rounds} {TRANSSHIP} import", got)
            for mode in CEILING_MODES:
                got = ceiling_copy(source, image, mode, workdir / f"ceiling-{mode}")
                samples[f"ceiling_{mode}"].append(got)
                _log_run(ctx, f"round {index + 1}/{rounds} ceiling ({mode})", got)
            with fresh_registry(workdir / "docker-registry", s3) as dest:
                warm_registry(source, dest)
                repo = f"copied/run{index}"
                got = timed_copy(source, dest, repo)
                verify_copy(REGISTRY, registry_endpoint(dest), repo, TAG, image)
                _check_stored(REGISTRY, got, image)
            samples[REGISTRY].append(got)
            _log_run(ctx, f"round {index + 1}/{rounds} skopeo copy --all", got)
    result.details["runs"] = samples
    result.details["image"] = _image_details(image, layers)
    _import_metrics(result, samples, size, rounds)
    result.notes += [
        "T: a fresh Transship (empty data dir) per run, imports from the source docker-registry "
        "(registryUri, upstream insecure), timed POST → Succeeded (followed by the long poll, "
        "as `transship import` does); R: `skopeo copy --all --preserve-digests` into a fresh "
        "docker-registry per run (an empty store, so skopeo's root-wide blob-info cache cannot "
        "turn uploads into mounts); both stores checked to have grown by the image's bytes",
        "CPU row: T = the Transship server (it pulls and stores); R = skopeo + the target "
        "docker-registry (the pair doing the same work); the source registry serves both alike",
        f"ceiling rows: bench/import_ceiling.py, a plain aiohttp download of the same blobs "
        f"from the same source, {CEILING_CONCURRENCY} at a time, after each import: bytes "
        "dropped, or hashed and written in a worker thread (no database, no fsync); what any "
        "asyncio copier in Python gets here, to read the import's figures against; and the "
        "same with each body read from a blocking socket in a thread (recv_into one buffer)",
    ]
    if ctx.storage != "filesystem":
        result.notes.append(
            "--storage s3: one SeaweedFS, every registry under a prefix of one bucket: the "
            "source and target docker-registries through their S3 driver (redirect disabled, "
            "so blobs stream through them), each fresh Transship through storage_url "
            "(streaming); store growth = the bytes under the target's prefix"
        )


def _med(rows: list[Figures], key: str) -> float:
    return median([row[key] for row in rows])


def _import_metrics(
    result: BenchResult, samples: dict[str, list[Figures]], size: int, rounds: int
) -> None:
    t, r = samples[TRANSSHIP], samples[REGISTRY]
    label = f"import {len(PLATFORMS)} platforms/{size / MiB:.0f} MiB, median of {rounds}"
    metric = result.add(
        Metric(
            label,
            "s",
            _med(t, "seconds"),
            _med(r, "seconds"),
            "lower",
            target=f"<= {IMPORT_TARGET}x",
            digits=2,
        )
    )
    metric.met = metric.ratio is not None and metric.ratio <= IMPORT_TARGET
    result.add(
        Metric(
            "import effective rate",
            "MB/s",
            size / _med(t, "seconds") / MB,
            size / _med(r, "seconds") / MB,
            "higher",
            digits=0,
        )
    )
    result.add(
        Metric(
            "copier CPU (T: server; R: skopeo+registry)",
            "CPU-s",
            _med(t, "copier_cpu_s"),
            _med(r, "copier_cpu_s"),
            "lower",
            digits=2,
        )
    )
    result.add(
        Metric(
            "source docker-registry CPU",
            "CPU-s",
            _med(t, "source_cpu_s"),
            _med(r, "source_cpu_s"),
            "lower",
            digits=2,
        )
    )
    result.add(
        Metric(
            "event-loop thread CPU (T: server; R: ceiling store)",
            "CPU-s",
            _med(t, "loop_cpu_s"),
            _med(samples["ceiling_store"], "loop_cpu_s"),
            "lower",
            digits=2,
        )
    )
    for mode, what in (
        ("discard", "bytes dropped"),
        ("store", "sha256 + write"),
        ("threads", "sockets read in threads, sha256 + write"),
    ):
        ceiling = samples[f"ceiling_{mode}"]
        result.add(
            Metric(
                f"ceiling: plain GET, {what} (T: it; R: skopeo)",
                "s",
                _med(ceiling, "seconds"),
                _med(r, "seconds"),
                "lower",
                digits=2,
            )
        )
        result.add(
            Metric(
                f"ceiling CPU, {what} (T: it; R: skopeo+registry)",
                "CPU-s",
                _med(ceiling, "copier_cpu_s"),
                _med(r, "copier_cpu_s"),
                "lower",
                digits=2,
            )
        )
    if "objstore_cpu_s" in t[0]:
        result.add(
            Metric(
                "SeaweedFS CPU (serves the source, stores the copy)",
                "CPU-s",
                _med(t, "objstore_cpu_s"),
                _med(r, "objstore_cpu_s"),
                "lower",
                digits=2,
            )
        )
    _server_side_row(result, t, 2)


def _linked_import_rows(
    result: BenchResult, t: list[Figures], r: list[Figures], cpu_label: str
) -> None:
    """The rows of an import whose blobs are all linked, not fetched: CPU, server-side time,
    and the two zero-bytes checks."""
    result.add(
        Metric(
            cpu_label,
            "CPU-s",
            _med(t, "copier_cpu_s"),
            _med(r, "copier_cpu_s"),
            "lower",
            digits=3,
        )
    )
    _server_side_row(result, t, 3)
    _zero_row(result, "bytesFetched, max over runs", [x["bytesFetched"] for x in t], None)
    _zero_row(
        result,
        "blob store growth, max over runs",
        [x["store_bytes_added"] for x in t],
        [x["store_bytes_added"] for x in r],
    )


def _server_side_row(result: BenchResult, t: list[Figures], digits: int) -> None:
    """Transship's own startTime → endTime of the operation (no polling granularity)."""
    result.add(
        Metric(
            "T server-side startTime→endTime, median",
            "s",
            _med(t, "server_seconds"),
            None,
            "lower",
            digits=digits,
        )
    )


# --------------------------------------------------------------------------------------------
# import_noop and import_same_service


def _build_full_image(ctx: Context) -> tuple[BuiltIndex, Sequence[int]]:
    layers = QUICK_LAYERS_MIB if ctx.quick else FULL_LAYERS_MIB
    ctx.log(f"building a {len(PLATFORMS)}-platform index, layers {layers} MiB per platform")
    return _build_index(ctx, "image", layers, f"{ctx.name}-image"), layers


def _alternate(
    ctx: Context,
    rounds: int,
    transship_run: Callable[[int], Figures],
    registry_run: Callable[[int], Figures],
) -> dict[str, list[Figures]]:
    samples: dict[str, list[Figures]] = {TRANSSHIP: [], REGISTRY: []}
    for index in range(rounds):
        for name, action in ((TRANSSHIP, transship_run), (REGISTRY, registry_run)):
            got = action(index)
            samples[name].append(got)
            _log_run(ctx, f"run {index + 1}/{rounds} {name}", got)
    return samples


def _zero_row(
    result: BenchResult, label: str, t_values: list[float], r_values: list[float] | None
) -> None:
    """A row whose target is: Transship's figure is 0 in every run (max over runs shown)."""
    metric = result.add(
        Metric(
            label,
            "bytes",
            max(t_values),
            max(r_values) if r_values is not None else None,
            "lower",
            target="T == 0",
            digits=0,
        )
    )
    metric.met = max(t_values) == 0


def run_noop(ctx: Context, result: BenchResult) -> None:
    image, layers = _build_full_image(ctx)
    size = sum(_blob_sizes(image).values())
    rounds = 3 if ctx.quick else 5
    repo = "noop/image"
    with (
        source_registry(ctx, image) as source,
        fresh_transship(ctx.workdir / "transship", [source.host]) as server,
        fresh_registry(ctx.workdir / "docker-registry") as dest,
    ):
        mgmt = Management(server)
        ep = Endpoint.from_url(server.url)
        first_t = timed_import(
            ctx, server, mgmt, "default", source.import_body(f"{repo}:{TAG}"), "first"
        )
        verify_copy(TRANSSHIP, ep, repo, TAG, image, blobs=True)
        first_r = timed_copy(source, dest, repo)
        verify_copy(REGISTRY, registry_endpoint(dest), repo, TAG, image)
        ctx.log(
            f"first import {first_t['seconds']:.2f}s, first copy {first_r['seconds']:.2f}s; "
            f"now {rounds} no-op rounds T R"
        )

        def transship_run(index: int) -> Figures:
            tag = f"again{index}"
            body = source.import_body(f"{repo}:{tag}", force=True)
            got = timed_import(ctx, server, mgmt, "default", body, "noop")
            verify_copy(TRANSSHIP, ep, repo, tag, image, blobs=True)
            return got

        def registry_run(index: int) -> Figures:
            tag = f"again{index}"
            got = timed_copy(source, dest, repo, tag=tag)
            verify_copy(REGISTRY, registry_endpoint(dest), repo, tag, image)
            return got

        samples = _alternate(ctx, rounds, transship_run, registry_run)
    result.details["first"] = {TRANSSHIP: first_t, REGISTRY: first_r}
    result.details["runs"] = samples
    result.details["image"] = _image_details(image, layers)
    t, r = samples[TRANSSHIP], samples[REGISTRY]
    result.add(
        Metric(
            f"no-op re-import {size / MiB:.0f} MiB, median of {rounds}",
            "s",
            _med(t, "seconds"),
            _med(r, "seconds"),
            "lower",
            digits=3,
        )
    )
    _linked_import_rows(result, t, r, "copier CPU per no-op (T: server; R: skopeo+registry)")
    result.add(
        Metric(
            "first (full) import, for scale",
            "s",
            first_t["seconds"],
            first_r["seconds"],
            "lower",
            digits=2,
        )
    )
    result.notes.append(
        "T: importImage mode=Force into the same repository under a new tag, the image already "
        "imported; R: `skopeo copy --all` again into the same docker-registry repository "
        "(every blob HEADs 200, manifests re-PUT)"
    )


def run_same_service(ctx: Context, result: BenchResult) -> None:
    image, layers = _build_full_image(ctx)
    size = sum(_blob_sizes(image).values())
    rounds = 3 if ctx.quick else 5
    with (
        source_registry(ctx, image) as source,
        fresh_transship(ctx.workdir / "transship", [source.host]) as server,
    ):
        mgmt = Management(server)
        ep = Endpoint.from_url(server.url)
        holder = mgmt.put_registry("benchsource")
        login_server = str(holder["properties"]["loginServer"])
        setup = timed_import(
            ctx, server, mgmt, "benchsource", source.import_body(f"{SOURCE_REPO}:{TAG}"), "setup"
        )
        verify_copy(TRANSSHIP, ep, SOURCE_REPO, TAG, image, host=login_server, blobs=True)
        ctx.log(
            f"registry benchsource ({login_server}) holds the image (import "
            f"{setup['seconds']:.2f}s); {rounds} rounds T R"
        )

        def transship_run(index: int) -> Figures:
            repo = f"same/run{index}"
            body = {
                "source": {"resourceId": holder["id"], "sourceImage": f"{SOURCE_REPO}:{TAG}"},
                "targetTags": [f"{repo}:{TAG}"],
            }
            got = timed_import(ctx, server, mgmt, "default", body, "same_service")
            verify_copy(TRANSSHIP, ep, repo, TAG, image, blobs=True)
            return got

        def registry_run(index: int) -> Figures:
            repo = f"same/run{index}"
            got = timed_copy(source, source.registry, repo)
            verify_copy(REGISTRY, registry_endpoint(source.registry), repo, TAG, image)
            return got

        samples = _alternate(ctx, rounds, transship_run, registry_run)
    result.details["setup_import"] = setup
    result.details["runs"] = samples
    result.details["image"] = _image_details(image, layers)
    t, r = samples[TRANSSHIP], samples[REGISTRY]
    result.add(
        Metric(
            f"same-service import {size / MiB:.0f} MiB, median of {rounds}",
            "s",
            _med(t, "seconds"),
            _med(r, "seconds"),
            "lower",
            digits=3,
        )
    )
    _linked_import_rows(result, t, r, "copier CPU (T: server; R: skopeo+registry)")
    result.add(
        Metric(
            "server bytes written (wchar), median",
            "bytes",
            _med(t, "server_written_bytes"),
            _med(r, "server_written_bytes"),
            "lower",
            digits=0,
        )
    )
    if max(x["server_written_bytes"] for x in r) >= size / 2:
        result.flags.append("docker-registry received the image again: skopeo did not mount")
    result.notes.append(
        "T: import into the default registry from registry `benchsource` of the same service "
        "(source.resourceId); R: `skopeo copy --all` between two repositories of one "
        "docker-registry (skopeo mounts blobs across repositories)"
    )


# --------------------------------------------------------------------------------------------
# import_rss


def run_rss(ctx: Context, result: BenchResult) -> None:
    layer = RSS_LAYER[ctx.quick]
    ctx.log(f"building an image with one {layer // MiB} MiB layer")
    image = build_image(
        OciLayout(ctx.workdir / "layouts" / "big"),
        layer_sizes=[layer],
        seed=f"{ctx.name}-big",
        tag=TAG,
    )
    size = sum(_blob_sizes(image).values())
    with contextlib.ExitStack() as stack:
        s3 = _bucket_for(ctx, stack)
        source = stack.enter_context(source_registry(ctx, image, s3))
        with fresh_transship(ctx.workdir / "transship", [source.host], s3) as server:
            started_mb = (rss_bytes(server.pid) or 0) / MB
            mgmt = Management(server)
            warm_transship(source, server, mgmt)
            t = timed_import(
                ctx,
                server,
                mgmt,
                "default",
                source.import_body(f"big/image:{TAG}"),
                "import_rss",
                source_pid=source.registry.pid,
                rss=True,
            )
            verify_copy(
                TRANSSHIP, Endpoint.from_url(server.url), "big/image", TAG, image, blobs=True
            )
            _check_stored(TRANSSHIP, t, image)
        _log_run(ctx, f"{TRANSSHIP} import", t)
        with fresh_registry(ctx.workdir / "docker-registry", s3) as dest:
            warm_registry(source, dest)
            r = timed_copy(source, dest, "big/image", rss=True)
            verify_copy(REGISTRY, registry_endpoint(dest), "big/image", TAG, image)
            _check_stored(REGISTRY, r, image)
        _log_run(ctx, "skopeo copy into docker-registry", r)
    result.details["runs"] = {TRANSSHIP: t, REGISTRY: r}
    result.details["transship_rss_after_start_mb"] = started_mb
    result.details["image"] = _image_details(image, [layer // MiB])
    result.add(
        Metric(
            "RSS idle, after warm-up", "MB", t["idle_rss_mb"], r["idle_rss_mb"], "lower", digits=0
        )
    )
    metric = result.add(
        Metric(
            f"peak RSS importing a {layer // MiB} MiB layer",
            "MB",
            t["peak_mb"],
            r["peak_mb"],
            "lower",
            target=f"T < {RSS_LIMIT_MB:.0f}",
            digits=0,
        )
    )
    metric.met = t["peak_mb"] < RSS_LIMIT_MB
    result.add(Metric("import wall", "s", t["seconds"], r["seconds"], "lower", digits=2))
    result.add(
        Metric(
            "import effective rate",
            "MB/s",
            size / t["seconds"] / MB,
            size / r["seconds"] / MB,
            "higher",
            digits=0,
        )
    )
    result.add(
        Metric(
            "copier CPU (T: server; R: skopeo+registry)",
            "CPU-s/GiB",
            t["copier_cpu_s"] / (size / GiB),
            r["copier_cpu_s"] / (size / GiB),
            "lower",
            digits=2,
        )
    )
    if t["peak_mb"] >= RSS_LIMIT_MB:
        result.flags.append(
            f"Transship peak RSS {t['peak_mb']:.0f} MB importing a {layer // MiB} MiB layer "
            f"(limit {RSS_LIMIT_MB:.0f} MB)"
        )
    if not (t["hwm_reset"] and r["hwm_reset"]):
        result.notes.append("VmHWM could not be reset; peaks include the warm-up")
    result.notes.append(
        "R: the peak RSS of the target docker-registry receiving `skopeo copy` "
        "(skopeo's own memory is not counted)"
    )


Runner = Callable[[Context, BenchResult], None]


def _noting_load(runner: Runner) -> Runner:
    """``runner``, plus the 1-minute load average before and after it in a note: other
    processes on these shared 2-core machines weigh on every figure."""

    def run(ctx: Context, result: BenchResult) -> None:
        before = os.getloadavg()[0]
        runner(ctx, result)
        after = os.getloadavg()[0]
        result.details["loadavg_1min"] = {"before": before, "after": after}
        result.notes.append(f"load average (1 min) {before:.2f} before, {after:.2f} after")

    return run


BENCHMARKS: dict[str, Runner] = {
    IMPORT: _noting_load(run_import),
    NOOP: _noting_load(run_noop),
    SAME_SERVICE: _noting_load(run_same_service),
    RSS: _noting_load(run_rss),
}
