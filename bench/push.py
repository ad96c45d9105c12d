"""push: wall time of ``skopeo copy`` of a multi-layer OCI image into each registry.

Images (8 incompressible layers, 300 MiB; 4 layers, 64 MiB with --quick) are written as
OCI layouts with tests/peers/images.py, one per round: skopeo (as root) keeps a
machine-wide blob-info cache, and would turn a second push of the same blobs to the same
registry into cross-repository mounts. One unmeasured warm-up push of a small image goes
to each registry; then measured pushes alternate T R T R …, round i pushing image i into
a fresh repository of each. The server's ``wchar`` (bytes it wrote with write calls) is
checked to cover the image, so a push that stored no bytes is caught, not timed. Server
CPU over each push is reported too.
"""

from __future__ import annotations

import re
import time

from bench.harness import REGISTRY, TRANSSHIP, Context, MiB, ServerPair, Target, median
from bench.procstat import CpuMeter, io_chars
from bench.regclient import RegistryHttpError
from bench.report import BenchResult, Metric
from tests.peers.clients import Skopeo
from tests.peers.images import OCI_MANIFEST, BuiltImage, OciLayout, build_image

NAME = "push"
TAG = "v1"
FULL_LAYERS_MIB = (80, 60, 50, 40, 30, 20, 12, 8)
QUICK_LAYERS_MIB = (24, 16, 16, 8)
WARMUP_LAYERS_MIB = (8, 4)


_METRIC_LINE = re.compile(
    r'transship_http_request_seconds_total\{method="(\w+)",route="([^"]+)"\} ([0-9.e+-]+)'
)


def request_seconds(target: Target) -> dict[str, float]:
    """Transship's own time spent per ``METHOD route`` so far (from /metrics); {} for others."""
    if target.name != TRANSSHIP:
        return {}
    reply = target.endpoint.request("GET", "/metrics")
    found = _METRIC_LINE.findall(reply.body.decode())
    return {f"{method} {surface}": float(seconds) for method, surface, seconds in found}


def _push(ctx: Context, image: BuiltImage, target: Target, repo: str) -> dict[str, float]:
    skopeo = Skopeo(ctx.workdir / "skopeo" / f"{target.name}-{repo.replace('/', '-')}", timeout=600)
    written0 = io_chars(target.pid)[1]
    handled0 = request_seconds(target)
    start = time.perf_counter()
    with CpuMeter(target.pid) as cpu, ctx.profile(target, "push"):
        skopeo.copy(image.layout.skopeo_ref(TAG), f"docker://{target.host}/{repo}:{TAG}", all=False)
    seconds = time.perf_counter() - start
    handled = {
        f"handler_s {key}": value - handled0.get(key, 0.0)
        for key, value in request_seconds(target).items()
    }
    return {
        "seconds": seconds,
        "server_cpu_s": cpu.total,
        "server_user_s": cpu.user,
        "server_sys_s": cpu.system,
        "server_written_bytes": float(io_chars(target.pid)[1] - written0),
        **{key: value for key, value in handled.items() if value > 0},
    }


def _verify(target: Target, repo: str, image: BuiltImage, pushed: dict[str, float]) -> None:
    reply = target.endpoint.request(
        "GET", f"/v2/{repo}/manifests/{TAG}", headers={"Accept": OCI_MANIFEST}
    )
    if reply.status != 200 or reply.body != image.manifest_bytes:
        raise RegistryHttpError(
            f"{target.name}: pushed manifest reads back as HTTP {reply.status}, "
            f"{'same' if reply.body == image.manifest_bytes else 'different'} bytes"
        )
    if pushed["server_written_bytes"] < image.blob_bytes:
        raise RuntimeError(
            f"{target.name} wrote {pushed['server_written_bytes']:.0f} bytes for a push of "
            f"{image.blob_bytes}: blobs were mounted or skipped, not uploaded"
        )


def _build(ctx: Context, name: str, sizes: tuple[int, ...]) -> BuiltImage:
    layout = OciLayout(ctx.workdir / "layouts" / name)
    return build_image(layout, layer_sizes=[s * MiB for s in sizes], seed=f"bench-{name}", tag=TAG)


def _metrics(
    result: BenchResult, samples: dict[str, list[dict[str, float]]], image: BuiltImage, runs: int
) -> None:
    wall = {name: median([s["seconds"] for s in rows]) for name, rows in samples.items()}
    cpu = {name: median([s["server_cpu_s"] for s in rows]) for name, rows in samples.items()}
    total = image.blob_bytes
    label = f"skopeo copy {len(image.layers)} layers/{total / MiB:.0f} MiB, median of {runs}"
    metric = result.add(
        Metric(label, "s", wall[TRANSSHIP], wall[REGISTRY], "lower", target="<= 1.0x", digits=2)
    )
    metric.met = metric.ratio is not None and metric.ratio <= 1.0
    rate = {name: total / seconds / 1e6 for name, seconds in wall.items()}
    result.add(
        Metric("push effective rate", "MB/s", rate[TRANSSHIP], rate[REGISTRY], "higher", digits=0)
    )
    result.add(
        Metric("server CPU per push", "CPU-s", cpu[TRANSSHIP], cpu[REGISTRY], "lower", digits=2)
    )


def run(ctx: Context, result: BenchResult) -> None:
    sizes = QUICK_LAYERS_MIB if ctx.quick else FULL_LAYERS_MIB
    runs = 2 if ctx.quick else 5
    ctx.log(f"building {runs} images of {len(sizes)} layers, {sum(sizes)} MiB each")
    images = [_build(ctx, f"round{i}", sizes) for i in range(runs)]
    warmup = _build(ctx, "warmup", WARMUP_LAYERS_MIB)
    with ServerPair(ctx.workdir / "servers", storage=ctx.storage) as pair:
        for target in pair.targets:
            warm = _push(ctx, warmup, target, "warmup/image")
            ctx.log(f"warm-up push to {target.name}: {warm['seconds']:.2f}s")
        samples: dict[str, list[dict[str, float]]] = {TRANSSHIP: [], REGISTRY: []}
        for index, target in pair.alternating(runs):
            repo = f"push/run{index}"
            got = _push(ctx, images[index], target, repo)
            _verify(target, repo, images[index], got)
            samples[target.name].append(got)
            ctx.log(
                f"push {index + 1}/{runs} {target.name}: {got['seconds']:.2f}s, "
                f"server {got['server_cpu_s']:.2f} CPU-s"
            )
        pair.check_alive()
    result.details["runs"] = samples
    result.details["image"] = {"layers": len(sizes), "blob_bytes": images[0].blob_bytes}
    _metrics(result, samples, images[0], runs)
