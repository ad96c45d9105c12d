"""Run Transship's benchmarks against Debian's docker-registry and print the figures.

    python bench/run.py                 # everything (~5-10 min)
    python bench/run.py --quick         # smaller sizes, shorter runs (~2 min)
    python bench/run.py --only push     # one benchmark (repeat --only, or a,b, for more)

Use the Python that has Transship's dependencies (the project's venv). Prints the machine,
then one table with Transship / docker-registry ratios; writes the same as JSON to
bench/results/latest.json. Exit status 1 when a benchmark failed (targets missed do not
change it; they are marked MISSED in the table).
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import FrameType

REPO_ROOT = Path(__file__).resolve().parents[1]
# Import bench modules as the `bench` package, never as top-level modules from bench/.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(REPO_ROOT)
elif str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench import (  # noqa: E402
    batch,
    blob_get,
    cache_pull,
    import_latency,
    import_subset,
    imports,
    load,
    manifest_get,
    manifest_get_auth,
    manifest_get_workers,
    portal_pages,
    push,
    rss,
    sync,
)
from bench.harness import STORAGES, Context, machine_info, scratch_dir  # noqa: E402
from bench.profiling import summarize_dir  # noqa: E402
from bench.report import BenchResult, format_table, write_json  # noqa: E402

Runner = Callable[[Context, BenchResult], None]
BENCHMARKS: dict[str, Runner] = {
    blob_get.NAME: blob_get.run,
    push.NAME: push.run,
    manifest_get.NAME: manifest_get.run,
    manifest_get_auth.NAME: manifest_get_auth.run,
    manifest_get_workers.NAME: manifest_get_workers.run,
    rss.NAME: rss.run,
    **imports.BENCHMARKS,
    import_subset.NAME: imports._noting_load(import_subset.run),
    batch.NAME: batch.run,
    sync.NAME: sync.run,
    import_latency.NAME: import_latency.run,
    load.NAME: load.run,
    load.NAME_SPLIT: load.run_split,
    cache_pull.NAME: cache_pull.run,
    portal_pages.NAME: portal_pages.run,
}
DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "latest.json"
DEFAULT_PROFILE_DIR = Path(__file__).resolve().parent / "results" / "profile"
LOG_DIR = Path(__file__).resolve().parent / "results" / "failed-logs"


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="smaller blobs and image, 5 s wrk runs"
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help=f"run only this benchmark ({', '.join(BENCHMARKS)}); repeatable or comma-separated",
    )
    parser.add_argument(
        "--storage",
        choices=STORAGES,
        default="filesystem",
        help="where both servers keep blobs: their filesystem, or one SeaweedFS's S3 API "
        "(Transship streaming through storage_url, docker-registry's S3 driver); "
        "s3-redirect: the same, both answering blob GETs with a 307 to a presigned URL; "
        "push, blob_get, manifest_get, rss and import use it (import: s3 either way)",
    )
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write the JSON")
    parser.add_argument(
        "--keep", action="store_true", help="keep the temp dirs (server logs, data)"
    )
    parser.add_argument(
        "--profile",
        nargs="?",
        type=Path,
        const=DEFAULT_PROFILE_DIR,
        default=None,
        metavar="DIR",
        help="sample Transship with py-spy during measured phases, stacks to DIR "
        f"(default {DEFAULT_PROFILE_DIR}); slows it: such figures are not comparable",
    )
    return parser.parse_args(argv)


def _selected(only: list[str]) -> list[str]:
    names = [n.strip() for item in only for n in item.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise SystemExit(
            f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}"
        )
    return names or list(BENCHMARKS)


def _describe_failure(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = next(
        (f for f in reversed(frames) if "/bench/" in f.filename), frames[-1] if frames else None
    )
    at = f" (at {Path(where.filename).name}:{where.lineno})" if where else ""
    return f"{type(exc).__name__}: {exc}{at}"


def _write_profile_summary(profile_dir: Path, name: str) -> None:
    text = summarize_dir(profile_dir, name)
    (profile_dir / f"{name}.summary.txt").write_text(text + "\n")
    print(text, file=sys.stderr, flush=True)


def _save_logs(workdir: Path, name: str) -> Path:
    """Copy the servers' logs out of a benchmark's temp dir before it goes."""
    target = LOG_DIR / name
    shutil.rmtree(target, ignore_errors=True)
    for log in workdir.rglob("*.log"):
        destination = target / log.relative_to(workdir)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log, destination)
    return target


def _clear_profiles(profile_dir: Path, name: str) -> None:
    for stale in [*profile_dir.glob(f"{name}-*.txt"), *profile_dir.glob(f"{name}-*.log")]:
        stale.unlink()


def run_one(
    name: str,
    quick: bool,
    keep: bool,
    profile_dir: Path | None = None,
    storage: str = "filesystem",
) -> BenchResult:
    """Run one benchmark in its own temp dir; a failure is recorded (logs kept), not raised."""
    result = BenchResult(name)
    start = time.monotonic()
    print(f"== {name}", file=sys.stderr, flush=True)
    if profile_dir is not None:
        _clear_profiles(profile_dir, name)
    with scratch_dir(name, keep=keep) as workdir:
        try:
            BENCHMARKS[name](Context(name, quick, workdir, profile_dir, storage), result)
        except Exception as exc:  # one failed benchmark must not stop the others
            logs = _save_logs(workdir, name)
            result.error = f"{_describe_failure(exc)}\n(server logs copied to {logs})"
            print(f"  FAILED: {result.error}", file=sys.stderr, flush=True)
    if result.error is None:
        shutil.rmtree(LOG_DIR / name, ignore_errors=True)
        if profile_dir is not None:
            _write_profile_summary(profile_dir, name)
    result.seconds = time.monotonic() - start
    return result


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _print_machine(machine: dict[str, str], mode: str) -> None:
    print(f"Transship vs docker-registry benchmarks ({mode})")
    print(
        f"machine: nproc={machine['nproc']}  cpu={machine['cpu']}  memory={machine['memory']}  "
        f"kernel={machine['kernel']}  loadavg={machine['loadavg']}"
    )
    print(
        f"versions: python {machine['python']}, aiohttp {machine['aiohttp']}; "
        f"{machine['docker-registry']}; {machine['skopeo']}; "
        f"{machine['wrk'].split(' Copyright')[0]}"
    )
    print(f"transship under test: {machine['transship']} (the working tree, as it is now)")
    print(flush=True)


def main(argv: list[str]) -> int:
    args = _parse(argv)
    names = _selected(args.only)
    signal.signal(signal.SIGTERM, _on_sigterm)
    mode = ("quick" if args.quick else "full") + (" PROFILED" if args.profile else "")
    machine = machine_info()
    _print_machine(machine, mode)
    results: list[BenchResult] = []
    started = time.monotonic()
    interrupted = False
    try:
        for name in names:
            results.append(run_one(name, args.quick, args.keep, args.profile, args.storage))
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted: servers stopped; partial results follow", file=sys.stderr)
    print(format_table(results))
    print(f"total {time.monotonic() - started:.0f} s; JSON: {args.json}")
    write_json(args.json, machine, mode, results)
    if interrupted:
        return 130
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
