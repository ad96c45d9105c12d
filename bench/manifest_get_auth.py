"""manifest_get_auth: manifest GET by tag at 64 connections with a bearer token, both
registries requiring authentication.

Transship runs with `data_plane_auth` on (its default in production); docker-registry runs
with token auth against the test token server. The same multi-arch index is pushed to both
with credentials, a pull token is fetched from each one's token endpoint (Transship's
`/oauth2/token` with the owner service principal; the token server for docker-registry),
and ``wrk -t2 -c64`` sends `Authorization: Bearer …` on every request, alternately against
each. This measures what authentication costs on the hottest read path: every request's
token is verified (Transship caches verified tokens until they expire).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import requests

from bench.harness import REGISTRY, TRANSSHIP, Context, Target, median
from bench.manifest_get import ACCEPT, REPO, TAG, flag, measure, wrk
from bench.regclient import RegistryHttpError
from bench.report import BenchResult, Metric
from tests.peers.clients import Skopeo
from tests.peers.distribution import DistributionRegistry
from tests.peers.images import OciLayout, build_index
from tests.peers.transship import TransshipServer
from tests.support.identity import owner_credential

NAME = "manifest_get_auth"


@contextlib.contextmanager
def _servers(ctx: Context) -> Iterator[tuple[TransshipServer, DistributionRegistry]]:
    with (
        DistributionRegistry(ctx.workdir / "docker-registry", mode="token") as registry,
        TransshipServer(
            ctx.workdir / "transship", data_plane_auth=True, ready_timeout=60.0
        ) as transship,
    ):
        yield transship, registry


def _check(target: Target, bearer: str, expected: bytes) -> None:
    reply = requests.get(
        f"{target.url}/v2/{REPO}/manifests/{TAG}",
        headers={"Accept": ACCEPT, "Authorization": bearer},
        timeout=30,
    )
    if reply.status_code != 200 or reply.content != expected:
        raise RegistryHttpError(
            f"{target.name}: authenticated GET by tag answered {reply.status_code}"
        )
    anonymous = requests.get(
        f"{target.url}/v2/{REPO}/manifests/{TAG}", headers={"Accept": ACCEPT}, timeout=30
    )
    if anonymous.status_code != 401:
        raise RegistryHttpError(
            f"{target.name}: an anonymous GET answered {anonymous.status_code}, not 401"
        )


def run(ctx: Context, result: BenchResult) -> None:
    seconds, rounds, warmup = (5, 2, 1) if ctx.quick else (10, 3, 2)
    layout = OciLayout(ctx.workdir / "layout")
    index = build_index(layout, tag=TAG, seed="bench-manifest-auth")
    with _servers(ctx) as (transship, registry):
        owner = owner_credential(transship.data_dir)
        assert registry.token_server is not None and registry.creds is not None
        creds = {TRANSSHIP: f"{owner.client_id}:{owner.secret}", REGISTRY: registry.creds}
        reply = requests.get(
            f"{transship.url}/oauth2/token",
            params={"service": transship.host, "scope": f"repository:{REPO}:pull"},
            auth=(owner.client_id, owner.secret),
            timeout=30,
        )
        reply.raise_for_status()
        bearers = {
            TRANSSHIP: "Bearer " + reply.json()["access_token"],
            REGISTRY: "Bearer "
            + registry.token_server.issue(
                "bench", [{"type": "repository", "name": REPO, "actions": ["pull"]}], 3600
            ),
        }
        targets = (
            Target(TRANSSHIP, transship.url, transship.host, transship.pid),
            Target(REGISTRY, registry.url, registry.host, registry.pid),
        )
        for target in targets:
            skopeo = Skopeo(ctx.workdir / "skopeo" / target.name)
            skopeo.copy(
                layout.skopeo_ref(TAG),
                f"docker://{target.host}/{REPO}:{TAG}",
                all=True,
                dest_creds=creds[target.name],
            )
            _check(target, bearers[target.name], index.index_bytes)
            wrk(
                f"{target.url}/v2/{REPO}/manifests/{TAG}",
                warmup,
                headers=[f"Authorization: {bearers[target.name]}"],
            )
        ctx.log("index pushed with credentials and checked on both; warm-up done")
        samples: dict[str, list[dict[str, float]]] = {TRANSSHIP: [], REGISTRY: []}
        for number in range(rounds):
            for target in targets:
                got = measure(
                    ctx, target, seconds, headers=[f"Authorization: {bearers[target.name]}"]
                )
                samples[target.name].append(got)
                ctx.log(
                    f"wrk {number + 1}/{rounds} {target.name}: {got['req_per_s']:.0f} req/s, "
                    f"non-2xx {got['non_2xx']:.0f}"
                )
    result.details["runs"] = samples
    for name, rows in samples.items():
        flag(result, name, rows)
    med = {n: {k: median([r[k] for r in rows]) for k in rows[0]} for n, rows in samples.items()}
    t, r = med[TRANSSHIP], med[REGISTRY]
    rate = result.add(
        Metric(
            f"GET by tag with a bearer, 64 conns, {seconds}s x{rounds}",
            "req/s",
            t["req_per_s"],
            r["req_per_s"],
            "higher",
            target=">= 3.0x",
            digits=0,
        )
    )
    rate.met = rate.ratio is not None and rate.ratio >= 3.0
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
    result.notes.append(
        "both registries require a bearer token; wrk shares the 2 cores with the server under test"
    )
