"""Pull-through on first pull: a client pulling a multi-arch image through a cache rule,
against the same client pulling it straight from the upstream (docker-registry).

The client is skopeo (``copy --all --preserve-digests`` into a fresh OCI directory each
time), the image the import benches' 4-platform index (1 GiB; 256 MiB with ``--quick``) in
a source docker-registry. Transship runs in this process, on a thread and a loop of its own
(as the tests' in-process servers do), with one cache rule ``cache/*`` → ``bench/*`` on the
source: cache rules come from the composition root's ``cache_rules``.

- first pull: skopeo through the rule on an empty Transship (T) against skopeo straight
  from the source (R); target T ≤ 1.3 x R wall.
- second pull: once the pull-through's import job has committed the image, skopeo from
  Transship (T) against skopeo from the source docker-registry (R), both warm; target
  T ≤ 1.0 x R wall (≥ 1.0 x docker-registry's speed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import statistics
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from bench.harness import REGISTRY, TRANSSHIP, Context, MiB, prefault_memory
from bench.imports import SOURCE_REPO, TAG, _blob_sizes, _build_full_image, source_registry
from bench.report import BenchResult, Metric
from tests.peers.clients import Skopeo
from tests.peers.images import BuiltIndex
from tests.support.app import make_settings
from tests.support.cache_rules import Rule, StaticCacheRules, cached_registry

NAME = "cache_pull"
FIRST_TARGET = 1.3
SECOND_TARGET = 1.0
CACHED_REPO = "cache/" + SOURCE_REPO.split("/", 1)[1]


@contextlib.contextmanager
def pull_through_server(workdir: Path, upstream: str) -> Iterator[str]:
    """A Transship with the cache rule on its own loop in a thread: yields its host:port."""
    settings = make_settings(workdir / "transship", None, upstreams={upstream: {"insecure": True}})
    rules = StaticCacheRules([Rule("bench", "cache/*", upstream, "bench/*")])
    ready = threading.Event()
    holder: dict[str, object] = {}
    loop = asyncio.new_event_loop()

    async def serve() -> None:
        stop = asyncio.Event()
        holder["stop"] = stop
        try:
            async with cached_registry(settings, rules) as reg:
                holder["host"] = reg.url.removeprefix("http://")
                ready.set()
                await stop.wait()
        finally:
            ready.set()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    if not ready.wait(60) or "host" not in holder:
        raise RuntimeError("the pull-through server did not start")
    try:
        yield str(holder["host"])
    finally:
        stop = holder["stop"]
        assert isinstance(stop, asyncio.Event)
        loop.call_soon_threadsafe(stop.set)
        thread.join(60)
        loop.close()


def _pull(skopeo: Skopeo, ref: str, out: Path) -> float:
    """Wall seconds of `skopeo copy --all` of `ref` into a fresh OCI directory `out`."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    prefault_memory()
    began = time.monotonic()
    skopeo.copy(ref, f"oci:{out}:{TAG}", all=True, preserve_digests=True)
    seconds = time.monotonic() - began
    shutil.rmtree(out, ignore_errors=True)
    return seconds


def _wait_committed(host: str, timeout: float = 600.0) -> None:
    """Until the pull-through's import job has tagged the image in Transship."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{host}/v2/{CACHED_REPO}/tags/list") as r:
                if TAG in (json.loads(r.read()).get("tags") or []):
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the pull-through import did not commit the image")


def run(ctx: Context, result: BenchResult) -> None:
    image, layers = _build_full_image(ctx)
    assert isinstance(image, BuiltIndex)
    whole = sum(_blob_sizes(image).values())
    rounds = 1 if ctx.quick else 3
    first: dict[str, list[float]] = {TRANSSHIP: [], REGISTRY: []}
    second: dict[str, list[float]] = {TRANSSHIP: [], REGISTRY: []}
    with source_registry(ctx, image) as source:
        ctx.log(f"image {whole / MiB:.0f} MiB; {rounds} rounds")
        for index in range(rounds):
            out = ctx.workdir / "out"
            first[REGISTRY].append(_pull(source.skopeo, source.ref(), out))
            workdir = ctx.workdir / f"round{index}"
            with pull_through_server(workdir, source.host) as host:
                ref = f"docker://{host}/{CACHED_REPO}:{TAG}"
                first[TRANSSHIP].append(_pull(source.skopeo, ref, out))
                _wait_committed(host)
                second[TRANSSHIP].append(_pull(source.skopeo, ref, out))
                second[REGISTRY].append(_pull(source.skopeo, source.ref(), out))
            shutil.rmtree(workdir, ignore_errors=True)
            ctx.log(
                f"round {index + 1}: first pull T {first[TRANSSHIP][-1]:.2f}s "
                f"R {first[REGISTRY][-1]:.2f}s; second pull T {second[TRANSSHIP][-1]:.2f}s "
                f"R {second[REGISTRY][-1]:.2f}s"
            )
    for label, samples, target in (
        ("first pull through a cache rule (R: straight from the upstream)", first, FIRST_TARGET),
        ("second pull (R: docker-registry)", second, SECOND_TARGET),
    ):
        t = statistics.median(samples[TRANSSHIP])
        r = statistics.median(samples[REGISTRY])
        metric = result.add(
            Metric(
                f"{label}: wall, median of {rounds}",
                "s",
                t,
                r,
                "lower",
                target=f"≤ {target:.1f}x R",
                digits=2,
            )
        )
        metric.met = metric.ratio is not None and metric.ratio <= target
    result.details["runs"] = {"first": first, "second": second}
    result.details["image"] = {"bytes": whole, "layers_mib": list(layers)}
    result.notes.append(
        "client: skopeo copy --all --preserve-digests into a fresh OCI directory; Transship "
        "in-process on its own thread and loop, one cache rule cache/* → bench/*"
    )
