"""``sync_no_change``: a sync run over 200 tags where nothing changed, against ``skopeo sync``.

The source is a docker-registry holding one repository, ``bench/app``, with N tags, each its
own small single-platform image (one 2 KiB layer). Both sides first copy every tag
(unmeasured); then, per round, with nothing changed upstream:

- (T) Transship: ``POST …/syncRules/app/run`` of a rule mirroring ``bench/app`` (every
  tag), polled until the run ends; the report must say N unchanged;
- (S) ``skopeo sync --all --src docker --dest docker`` of the repository into a
  docker-registry (the regsync/skopeo way of mirroring a repository's tags).

Measured: wall seconds and the requests the source registry received (from its access log:
all, and manifest GETs, what registries that ration pulls count), median over rounds; the
T/S ratios in one run. Target: T <= 0.5 x S in time, and no manifest GET. N = 200, 3 rounds;
``--quick``: N = 50, 1 round.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from bench.batch import _counting
from bench.harness import Context, median
from bench.imports import Management, fresh_registry, fresh_transship
from bench.regclient import RegistryHttpError
from bench.report import BenchResult, Metric
from tests.peers.clients import Skopeo
from tests.peers.distribution import DistributionRegistry
from tests.peers.images import OciLayout, build_image, push_layout_http

NAME = "sync_no_change"
REPOSITORY = "bench/app"
LAYER_BYTES = 2048
RUN_TIMEOUT = 600.0
TARGET_RATIO = 0.5


def _push_tags(ctx: Context, registry: DistributionRegistry, count: int) -> None:
    for index in range(count):
        seed = f"{NAME}-{index}"
        image = build_image(
            OciLayout(ctx.workdir / "layouts" / seed), layer_sizes=(LAYER_BYTES,), seed=seed
        )
        push_layout_http(image, registry.url, REPOSITORY, f"t{index:03d}")


def _run_rule(mgmt: Management, path: str) -> dict[str, Any]:
    """POST the rule's run and poll it until it ends; the run."""
    started = mgmt.call("POST", f"{path}/run", expect=(202,))
    run_path = f"{path}/runs/{started['name']}"
    deadline = time.monotonic() + RUN_TIMEOUT
    run: dict[str, Any] = started
    while run["state"] in ("queued", "running"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"sync run not finished after {RUN_TIMEOUT:.0f} s")
        time.sleep(0.05)
        run = mgmt.call("GET", run_path)
    return run


def run(ctx: Context, result: BenchResult) -> None:
    count = 50 if ctx.quick else 200
    rounds = 1 if ctx.quick else 3
    skopeo = Skopeo(ctx.workdir / "skopeo", timeout=RUN_TIMEOUT)
    samples: dict[str, list[dict[str, float]]] = {"T": [], "S": []}
    with fresh_registry(ctx.workdir / "source") as source:
        ctx.log(f"pushing {count} tags of {REPOSITORY} to the source")
        _push_tags(ctx, source, count)
        with (
            fresh_transship(ctx.workdir / "transship", [source.host]) as server,
            fresh_registry(ctx.workdir / "sync-target") as sync_target,
        ):
            mgmt = Management(server)
            path = "/transship/v1/registries/default/syncRules/app"
            mgmt.call(
                "PUT",
                path,
                {"sourceRegistry": source.host, "sourceRepositories": [REPOSITORY]},
                expect=(200, 201),
            )

            def transship() -> dict[str, float]:
                figures: dict[str, float] = {}
                with _counting(source, figures):
                    final = _run_rule(mgmt, path)
                if final["state"] != "succeeded":
                    raise RegistryHttpError(f"sync run {final['state']}: {final.get('error')}")
                figures["unchanged"] = float(final["counts"]["unchanged"])
                figures["copied"] = float(final["counts"]["copied"])
                return figures

            def sync() -> dict[str, float]:
                figures: dict[str, float] = {}
                with _counting(source, figures):
                    skopeo(
                        "sync",
                        "--all",
                        "--src",
                        "docker",
                        "--dest",
                        "docker",
                        "--src-tls-verify=false",
                        "--dest-tls-verify=false",
                        "--src-no-creds",
                        "--dest-no-creds",
                        f"{source.host}/{REPOSITORY}",
                        f"{sync_target.host}/mirror",
                    )
                return figures

            runners: dict[str, Callable[[], dict[str, float]]] = {"T": transship, "S": sync}
            ctx.log("first copy of every tag into each target (unmeasured)")
            for runner in runners.values():
                runner()
            for index in range(rounds):
                ctx.log(f"round {index + 1}/{rounds}: nothing changed upstream")
                for name, runner in runners.items():
                    got = runner()
                    samples[name].append(got)
                    ctx.log(
                        f"  {name}: {got['seconds']:.2f} s, "
                        f"{got['upstream_requests']:.0f} upstream requests, "
                        f"{got['manifest_gets']:.0f} manifest GETs"
                    )
                if samples["T"][-1]["unchanged"] != count:
                    result.flags.append(
                        f"round {index + 1}: the run reported "
                        f"{samples['T'][-1]['unchanged']:.0f} unchanged, not {count}"
                    )
    _report(result, samples, count, rounds)


def _med(rows: Sequence[dict[str, float]], key: str) -> float:
    return median([row[key] for row in rows])


def _report(
    result: BenchResult, samples: dict[str, list[dict[str, float]]], count: int, rounds: int
) -> None:
    t, s = samples["T"], samples["S"]
    seconds = Metric(
        f"no-change sync of {count} tags vs skopeo sync, median of {rounds}",
        "s",
        _med(t, "seconds"),
        _med(s, "seconds"),
        "lower",
        target=f"<= {TARGET_RATIO}x",
        digits=2,
    )
    seconds.met = seconds.ratio is not None and seconds.ratio <= TARGET_RATIO
    result.add(seconds)
    result.add(
        Metric(
            "upstream requests, vs skopeo sync",
            "req",
            _med(t, "upstream_requests"),
            _med(s, "upstream_requests"),
            "lower",
            digits=0,
        )
    )
    gets = Metric(
        "upstream manifest GETs (pulls), vs skopeo sync",
        "req",
        _med(t, "manifest_gets"),
        _med(s, "manifest_gets"),
        "lower",
        target="0",
        digits=0,
    )
    gets.met = gets.transship == 0
    result.add(gets)
    result.details["runs"] = samples
    result.notes.append(
        "T: POST syncRules/{rule}/run, polled until it ends (one tag list, one HEAD per tag); "
        "S: `skopeo sync --all --src docker` of the repository into a docker-registry; both "
        "after a first full copy, nothing changed upstream; requests counted from the source "
        "docker-registry's access log"
    )
