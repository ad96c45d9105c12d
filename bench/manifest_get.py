"""manifest_get: requests/s of manifest GET by tag at 64 connections, with ``wrk``.

A small multi-arch OCI index (3 platforms) is pushed to both registries with
``skopeo copy --all``. Each registry is checked first: GET by tag with the Accept header
answers 200 with the index's exact bytes. Then, after a short unmeasured warm-up,
``wrk -t2 -c64`` runs alternately against each (T R T R …), GET (wrk hangs on HEAD),
``Accept: <OCI index>, <Docker list>``. bench/wrk_report.lua prints the summary as JSON.
Any non-2xx answer or socket error is flagged.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.harness import REGISTRY, TRANSSHIP, Context, ServerPair, Target, median
from bench.procstat import CpuMeter
from bench.regclient import RegistryHttpError
from bench.report import BenchResult, Metric
from tests.peers.clients import Skopeo
from tests.peers.images import DOCKER_LIST, OCI_INDEX, BuiltIndex, OciLayout, build_index

NAME = "manifest_get"
REPO = "bench/multiarch"
TAG = "latest"
ACCEPT = f"{OCI_INDEX}, {DOCKER_LIST}"
LUA = Path(__file__).with_name("wrk_report.lua")
MARKER = "BENCH_JSON "


def wrk(
    url: str, seconds: int, connections: int = 64, threads: int = 2, headers: Sequence[str] = ()
) -> dict[str, Any]:
    """Run wrk against ``url`` (with extra ``headers``, "Name: value"); its summary (from
    the Lua script) as a dict."""
    binary = shutil.which("wrk")
    if binary is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    argv = [
        binary,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "-H",
        f"Accept: {ACCEPT}",
        *(arg for header in headers for arg in ("-H", header)),
        "-s",
        str(LUA),
        url,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    for line in done.stdout.splitlines():
        if line.startswith(MARKER):
            summary: dict[str, Any] = json.loads(line[len(MARKER) :])
            return summary
    raise RuntimeError(f"wrk gave no summary (exit {done.returncode}): {done.stdout}{done.stderr}")


def _check(target: Target, index: BuiltIndex) -> None:
    reply = target.endpoint.request(
        "GET", f"/v2/{REPO}/manifests/{TAG}", headers={"Accept": ACCEPT}
    )
    content_type = reply.headers.get("content-type", "")
    if reply.status != 200 or reply.body != index.index_bytes or content_type != OCI_INDEX:
        raise RegistryHttpError(
            f"{target.name}: GET by tag answered {reply.status} ({content_type}, "
            f"{len(reply.body)} bytes; expected {len(index.index_bytes)} bytes of the index)"
        )


def measure(
    ctx: Context, target: Target, seconds: int, headers: Sequence[str] = ()
) -> dict[str, float]:
    """One wrk run against ``target``'s manifest URL, with the server's CPU per request."""
    url = f"{target.url}/v2/{REPO}/manifests/{TAG}"
    with CpuMeter(target.pid) as cpu, ctx.profile(target, "wrk"):
        summary = wrk(url, seconds, headers=headers)
    requests = summary["requests"]
    errors = sum(summary[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts"))
    return {
        "req_per_s": requests / (summary["duration_us"] / 1e6),
        "p50_ms": summary["p50_us"] / 1000,
        "p99_ms": summary["p99_us"] / 1000,
        "server_cpu_us_per_req": cpu.total / max(requests, 1) * 1e6,
        "server_user_us_per_req": cpu.user / max(requests, 1) * 1e6,
        "server_sys_us_per_req": cpu.system / max(requests, 1) * 1e6,
        "requests": requests,
        "non_2xx": summary["status_errors"],
        "socket_errors": errors,
    }


def flag(result: BenchResult, name: str, rows: list[dict[str, float]]) -> None:
    bad = sum(r["non_2xx"] for r in rows)
    errors = sum(r["socket_errors"] for r in rows)
    if bad:
        result.flags.append(f"{name}: {bad:.0f} non-2xx responses under wrk")
    if errors:
        result.flags.append(f"{name}: {errors:.0f} socket errors/timeouts under wrk")


def run(ctx: Context, result: BenchResult) -> None:
    run_against(ctx, result)


def run_against(
    ctx: Context,
    result: BenchResult,
    transship_args: Sequence[str] = (),
    target_ratio: float = 3.0,
    before: Callable[[Target], None] | None = None,
) -> None:
    """The benchmark with `transship serve` given `transship_args`, against `target_ratio`;
    `before(target)` runs once Transship is up, before anything is pushed."""
    seconds, rounds, warmup = (5, 2, 1) if ctx.quick else (10, 3, 2)
    layout = OciLayout(ctx.workdir / "layout")
    index = build_index(layout, tag=TAG, seed="bench-manifest")
    with ServerPair(ctx.workdir / "servers", transship_args, storage=ctx.storage) as pair:
        if before is not None:
            before(pair.targets[0])
        for target in pair.targets:
            skopeo = Skopeo(ctx.workdir / "skopeo" / target.name)
            skopeo.copy(layout.skopeo_ref(TAG), f"docker://{target.host}/{REPO}:{TAG}", all=True)
            _check(target, index)
            wrk(f"{target.url}/v2/{REPO}/manifests/{TAG}", warmup)
        ctx.log("index pushed and checked on both; warm-up done")
        samples: dict[str, list[dict[str, float]]] = {TRANSSHIP: [], REGISTRY: []}
        for number, target in pair.alternating(rounds):
            got = measure(ctx, target, seconds)
            samples[target.name].append(got)
            ctx.log(
                f"wrk {number + 1}/{rounds} {target.name}: {got['req_per_s']:.0f} req/s, "
                f"p99 {got['p99_ms']:.1f} ms, non-2xx {got['non_2xx']:.0f}"
            )
        pair.check_alive()
    result.details["runs"] = samples
    for name, rows in samples.items():
        flag(result, name, rows)
    med = {n: {k: median([r[k] for r in rows]) for k in rows[0]} for n, rows in samples.items()}
    t, r = med[TRANSSHIP], med[REGISTRY]
    rate = result.add(
        Metric(
            f"GET by tag, 64 conns, {seconds}s x{rounds}",
            "req/s",
            t["req_per_s"],
            r["req_per_s"],
            "higher",
            target=f">= {target_ratio:.1f}x",
            digits=0,
        )
    )
    rate.met = rate.ratio is not None and rate.ratio >= target_ratio
    result.add(Metric("latency p50", "ms", t["p50_ms"], r["p50_ms"], "lower", digits=2))
    result.add(Metric("latency p99", "ms", t["p99_ms"], r["p99_ms"], "lower", digits=2))
    result.add(
        Metric(
            "server CPU per request",
            "CPU-us",
            t["server_cpu_us_per_req"],
            r["server_cpu_us_per_req"],
            "lower",
            digits=0,
        )
    )
    result.notes.append("wrk shares the 2 cores with the server under test")
