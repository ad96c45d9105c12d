"""rss: peak resident memory of each server while receiving and serving a 2 GiB blob.

Per server, three phases on one random blob (2 GiB; 256 MiB with --quick):

1. receive, monolithic: ``POST /blobs/uploads/?digest=`` with the whole body in one
   request (streamed from the file). A registry that does not complete such a POST
   (docker-registry answers 202) gets the two-request form instead: POST, then
   ``PUT ?digest=`` with the whole body;
2. receive, chunked: POST, ``PATCH`` chunks of 64 MiB (32 MiB with --quick) with
   Content-Range, then PUT ``?digest=``, into another repository;
3. serve: one GET of the blob (bench/fetch.py, bytes discarded).

Before each phase the kernel's peak counter is reset (``clear_refs`` 5) and ``VmHWM`` is
read after it; a 20 ms VmRSS poller runs alongside as a cross-check. The phase peak is the
larger of the two. Upload throughput, server CPU per GiB, and the time from the last byte
sent to the 201 (the server finishing: digest, fsync, commit) come along.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from bench.blob_get import fetch
from bench.harness import REGISTRY, TRANSSHIP, Context, GiB, MiB, ServerPair, Target
from bench.procstat import CpuMeter, RssSampler, peak_rss_bytes, reset_peak_rss, rss_bytes
from bench.regclient import (
    UploadMode,
    supports_post_digest,
    upload,
    write_random_file,
)
from bench.report import BenchResult, Metric

NAME = "rss"
LIMIT_MB = 150.0
MB = 1e6


def _phase(
    ctx: Context, target: Target, name: str, action: Callable[[], float]
) -> dict[str, float]:
    """Run ``action``; the server's peak RSS (MB), wall seconds and CPU seconds over it, and
    what ``action`` returned (seconds from the last byte sent to the final answer)."""
    reset = reset_peak_rss(target.pid)
    start = time.perf_counter()
    with CpuMeter(target.pid) as cpu, RssSampler(target.pid) as sampler, ctx.profile(target, name):
        finish = action()
    seconds = time.perf_counter() - start
    hwm = peak_rss_bytes(target.pid) or 0
    return {
        "last_byte_to_answer_s": finish,
        "peak_mb": max(hwm, sampler.peak) / MB,
        "vmhwm_mb": hwm / MB,
        "sampled_mb": sampler.peak / MB,
        "hwm_reset": float(reset),
        "seconds": seconds,
        "cpu_s": cpu.total,
        "user_s": cpu.user,
        "sys_s": cpu.system,
    }


def _server_phases(
    ctx: Context, target: Target, blob: Path, digest: str, chunk: int
) -> dict[str, dict[str, float]]:
    ep = target.endpoint
    single_post = supports_post_digest(ep, "rss/probe")
    mono_mode: UploadMode = "post_digest" if single_post else "post_put"
    idle = (rss_bytes(target.pid) or 0) / MB
    phases = {
        "receive_monolithic": _phase(
            ctx, target, "monolithic", lambda: upload(ep, "rss/mono", digest, blob, mono_mode)
        ),
        "receive_chunked": _phase(
            ctx,
            target,
            "chunked",
            lambda: upload(ep, "rss/chunked", digest, blob, "chunked", chunk),
        ),
        "serve": _phase(ctx, target, "serve", lambda: _serve(target, digest, blob.stat().st_size)),
    }
    phases["idle"] = {"peak_mb": idle}
    phases["receive_monolithic"]["single_post"] = float(single_post)
    for name, figures in phases.items():
        ctx.log(f"{target.name} {name}: peak {figures['peak_mb']:.0f} MB")
    return phases


def _serve(target: Target, digest: str, size: int) -> float:
    got = fetch(f"{target.url}/v2/rss/mono/blobs/{digest}")
    if got["status"] != 200 or got["bytes"] != size:
        raise RuntimeError(f"{target.name}: GET answered {got['status']} with {got['bytes']} bytes")
    return got["first_byte_seconds"]


def _add_metrics(
    result: BenchResult, phases: dict[str, dict[str, dict[str, float]]], size: int
) -> None:
    t, r = phases[TRANSSHIP], phases[REGISTRY]
    result.add(
        Metric(
            "RSS idle, before", "MB", t["idle"]["peak_mb"], r["idle"]["peak_mb"], "lower", digits=0
        )
    )
    labels = {
        "receive_monolithic": "peak RSS receiving, monolithic",
        "receive_chunked": "peak RSS receiving, chunked PATCH",
        "serve": "peak RSS serving (GET)",
    }
    for key, label in labels.items():
        metric = result.add(
            Metric(
                label,
                "MB",
                t[key]["peak_mb"],
                r[key]["peak_mb"],
                "lower",
                target=f"T < {LIMIT_MB:.0f}",
                digits=0,
            )
        )
        metric.met = t[key]["peak_mb"] < LIMIT_MB
    for key, label in (("receive_monolithic", "monolithic"), ("receive_chunked", "chunked")):
        result.add(
            Metric(
                f"receive {label}: last byte to 201",
                "s",
                t[key]["last_byte_to_answer_s"],
                r[key]["last_byte_to_answer_s"],
                "lower",
                digits=2,
            )
        )
        result.add(
            Metric(
                f"receive {label} {size // MiB} MiB",
                "MB/s",
                size / t[key]["seconds"] / MB,
                size / r[key]["seconds"] / MB,
                "higher",
                digits=0,
            )
        )
        result.add(
            Metric(
                f"receive {label} server CPU",
                "CPU-s/GiB",
                t[key]["cpu_s"] / (size / GiB),
                r[key]["cpu_s"] / (size / GiB),
                "lower",
                digits=2,
            )
        )


def run(ctx: Context, result: BenchResult) -> None:
    size = 256 * MiB if ctx.quick else 2 * GiB
    chunk = 32 * MiB if ctx.quick else 64 * MiB
    blob = ctx.workdir / "blob.bin"
    ctx.log(f"writing a {size // MiB} MiB random blob")
    digest = write_random_file(blob, size)
    phases: dict[str, dict[str, dict[str, float]]] = {}
    with ServerPair(ctx.workdir / "servers", storage=ctx.storage) as pair:
        for target in pair.targets:
            phases[target.name] = _server_phases(ctx, target, blob, digest, chunk)
            pair.check_alive()
    result.details["phases"] = phases
    _add_metrics(result, phases, size)
    peak = max(
        phases[TRANSSHIP][k]["peak_mb"] for k in ("receive_monolithic", "receive_chunked", "serve")
    )
    if peak >= LIMIT_MB:
        result.flags.append(
            f"Transship peak RSS {peak:.0f} MB is not flat (limit {LIMIT_MB:.0f} MB)"
        )
    if not phases[REGISTRY]["receive_monolithic"]["single_post"]:
        result.notes.append("docker-registry does not complete POST ?digest=; it got POST + PUT")
    if not all(p.get("hwm_reset", 1.0) for ph in phases.values() for p in ph.values()):
        result.notes.append("VmHWM could not be reset per phase; peaks are cumulative")
