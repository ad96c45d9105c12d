"""change_feed: how long after a commit another process's caches learn of it.

Two metadata stores over one database stand for two processes (each with its own change
hub, the second with its listener running, as `serve` runs it). Each round commits a
change of one topic through the first and times, on one clock, the commit's return to the
second hub's callback. Also the cost the feed adds to a write: the same one-statement
transaction with and without an announced topic. On SQLite (the default poll of 250 ms)
and on a throwaway PostgreSQL cluster (LISTEN/NOTIFY).

    .venv/bin/python bench/change_feed.py [--rounds 100]

Target (issue 13): every change reaches every process within 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from sqlalchemy import text  # noqa: E402

from tests.peers.postgres import PostgresCluster  # noqa: E402
from transship.metadata.changes import ChangeHub, ChangeListener, Topic  # noqa: E402
from transship.metadata.db import Database  # noqa: E402
from transship.metadata.queries import MetadataStore  # noqa: E402
from transship.worker.supervisor import Supervisor  # noqa: E402


def _summary(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[max(0, int(len(ordered) * 0.95) - 1)]
    return (
        f"median {statistics.median(ordered) * 1000:7.1f} ms  "
        f"p95 {p95 * 1000:7.1f} ms  max {ordered[-1] * 1000:7.1f} ms"
    )


async def _measure(url: str, rounds: int) -> tuple[list[float], list[float], list[float]]:
    db = Database(url, durable=False)
    await db.migrate()
    writer = MetadataStore(db, ChangeHub())
    reader_hub = ChangeHub()
    arrived: asyncio.Event = asyncio.Event()
    reader_hub.subscribe(Topic.ROLES, arrived.set)
    supervisor = Supervisor()
    supervisor.add("change-feed", ChangeListener(db, reader_hub).run_forever)
    supervisor.start()
    delays: list[float] = []
    plain: list[float] = []
    announced: list[float] = []
    try:
        await supervisor.wait_for(lambda s: s["change-feed"].heartbeat_age_seconds is not None)
        for _ in range(rounds):
            arrived.clear()
            began = time.perf_counter()
            async with writer.writing() as q:
                await q.conn.execute(text("SELECT 1"))
            plain.append(time.perf_counter() - began)
            began = time.perf_counter()
            async with writer.writing() as q:
                await q.conn.execute(text("SELECT 1"))
                await q.changed(Topic.ROLES)
            committed = time.perf_counter()
            announced.append(committed - began)
            await asyncio.wait_for(arrived.wait(), 5)
            delays.append(time.perf_counter() - committed)
    finally:
        await supervisor.stop()
        await db.close()
    return delays, plain, announced


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs = {"sqlite": f"sqlite:///{tmp}/bench.db"}
        cluster = PostgresCluster().start()
        try:
            runs["postgresql"] = cluster.new_database("bench_change_feed")
            for name, url in runs.items():
                delays, plain, announced = asyncio.run(_measure(url, args.rounds))
                print(f"{name:10} commit → other process: {_summary(delays)}")
                print(f"{'':10} write, no topic:        {_summary(plain)}")
                print(f"{'':10} write, one topic:       {_summary(announced)}")
                verdict = "met" if max(delays) <= 1.0 else "MISSED"
                print(f"{'':10} target ≤ 1 s: {verdict}")
        finally:
            cluster.stop()


if __name__ == "__main__":
    main()
