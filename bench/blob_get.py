"""blob_get: GET one large random blob from each registry; MB/s and server CPU-s/GiB.

The blob (1 GiB; 256 MiB with --quick) is generated into a temp file and uploaded to both
registries with a streamed POST + PUT. Then it is fetched ``runs`` times from each,
alternating, by ``bench/fetch.py`` in a subprocess (``readinto`` a reused 1 MiB buffer,
bytes discarded). Server CPU is the utime+stime delta of the server's process group over
each download (with ``--storage s3-redirect`` the servers only sign a URL and the client
follows the 307 to SeaweedFS). The upload's own throughput and CPU cost are reported too
(one sample).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from bench.harness import REGISTRY, TRANSSHIP, Context, GiB, MiB, ServerPair, Target, median
from bench.procstat import CpuMeter
from bench.regclient import upload, write_random_file
from bench.report import BenchResult, Metric

NAME = "blob_get"
REPO = "bench/blob"
FETCH = Path(__file__).with_name("fetch.py")
CPU_TARGET = 0.5
RUNS = 3

Figures = dict[str, float]


def fetch(url: str, timeout: float = 600.0) -> Figures:
    """Run bench/fetch.py on ``url``; its JSON result."""
    done = subprocess.run(
        [sys.executable, str(FETCH), url],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"fetch {url} failed ({done.returncode}): {done.stderr[-2000:]}")
    out: Figures = json.loads(done.stdout)
    return out


def cpu_figures(cpu: CpuMeter, size: int) -> Figures:
    """Server CPU per GiB moved, in total and split into user and system time."""
    gib = size / GiB
    return {
        "server_cpu_s_per_gib": cpu.total / gib,
        "server_user_s_per_gib": cpu.user / gib,
        "server_sys_s_per_gib": cpu.system / gib,
    }


def _measured_fetch(ctx: Context, target: Target, url: str, size: int) -> Figures:
    with CpuMeter(target.pid) as cpu, ctx.profile(target, "get"):
        got = fetch(url)
    if got["status"] != 200 or got["bytes"] != size:
        raise RuntimeError(
            f"{target.name}: GET answered {got['status']} with {got['bytes']} of {size} bytes"
        )
    return {
        "mb_per_s": size / got["seconds"] / 1e6,
        "seconds": got["seconds"],
        "client_cpu_s": got["client_cpu_seconds"],
        "redirects": got["redirects"],
        **cpu_figures(cpu, size),
    }


def _measured_upload(ctx: Context, target: Target, blob: Path, digest: str) -> Figures:
    size = blob.stat().st_size
    start = time.perf_counter()
    with CpuMeter(target.pid) as cpu, ctx.profile(target, "upload"):
        finish = upload(target.endpoint, REPO, digest, blob, "post_put")
    seconds = time.perf_counter() - start
    ctx.log(f"uploaded to {target.name}: {seconds:.1f}s, server {cpu.total:.2f} CPU-s")
    return {
        "mb_per_s": size / seconds / 1e6,
        "seconds": seconds,
        "last_byte_to_201_s": finish,
        **cpu_figures(cpu, size),
    }


def _fetch_all(ctx: Context, pair: ServerPair, digest: str, size: int) -> dict[str, list[Figures]]:
    samples: dict[str, list[Figures]] = {TRANSSHIP: [], REGISTRY: []}
    for index, target in pair.alternating(RUNS):
        got = _measured_fetch(ctx, target, f"{target.url}/v2/{REPO}/blobs/{digest}", size)
        samples[target.name].append(got)
        ctx.log(
            f"GET {index + 1}/{RUNS} {target.name}: {got['mb_per_s']:.0f} MB/s, "
            f"{got['server_cpu_s_per_gib']:.2f} CPU-s/GiB"
        )
    return samples


def _medians(samples: dict[str, list[Figures]]) -> dict[str, Figures]:
    return {n: {k: median([r[k] for r in rows]) for k in rows[0]} for n, rows in samples.items()}


def _metrics(
    result: BenchResult, up: dict[str, Figures], get: dict[str, Figures], size: int
) -> None:
    t, r = get[TRANSSHIP], get[REGISTRY]
    speed = result.add(
        Metric(f"GET {size // MiB} MiB, median of {RUNS}", "MB/s", t["mb_per_s"],
               r["mb_per_s"], "higher", target=">= 1.0x", digits=0)
    )  # fmt: skip
    speed.met = speed.ratio is not None and speed.ratio >= 1.0
    cpu = result.add(
        Metric("GET server CPU", "CPU-s/GiB", t["server_cpu_s_per_gib"],
               r["server_cpu_s_per_gib"], "lower", target=f"T <= {CPU_TARGET}", digits=2)
    )  # fmt: skip
    cpu.met = t["server_cpu_s_per_gib"] <= CPU_TARGET
    t, r = up[TRANSSHIP], up[REGISTRY]
    result.add(
        Metric("upload (POST+PUT), 1 run", "MB/s", t["mb_per_s"], r["mb_per_s"], "higher", digits=0)
    )
    result.add(
        Metric("upload server CPU", "CPU-s/GiB", t["server_cpu_s_per_gib"],
               r["server_cpu_s_per_gib"], "lower", digits=2)
    )  # fmt: skip


def run(ctx: Context, result: BenchResult) -> None:
    size = 256 * MiB if ctx.quick else GiB
    blob = ctx.workdir / "blob.bin"
    ctx.log(f"writing a {size // MiB} MiB random blob")
    digest = write_random_file(blob, size)
    with ServerPair(ctx.workdir / "servers", storage=ctx.storage) as pair:
        uploads = {t.name: _measured_upload(ctx, t, blob, digest) for t in pair.targets}
        blob.unlink()
        samples = _fetch_all(ctx, pair, digest, size)
        pair.check_alive()
    result.details.update(upload=uploads, get_runs=samples, get_median=_medians(samples))
    _metrics(result, uploads, _medians(samples), size)
    result.notes.append(
        "GET client: bench/fetch.py (http.client readinto a 1 MiB buffer, bytes discarded)"
    )
    if ctx.storage == "s3-redirect":
        redirected = {name: min(r["redirects"] for r in rows) for name, rows in samples.items()}
        if not all(redirected.values()):
            raise RuntimeError(f"--storage s3-redirect, but a GET was not redirected: {redirected}")
        result.notes.append(
            "s3-redirect: both answer the GET with a 307 to a presigned SeaweedFS URL, which "
            "the client follows; the time includes the redirect, the bytes come from SeaweedFS"
        )
