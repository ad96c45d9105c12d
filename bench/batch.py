"""``batch_import``: a batch of small images, most of them already present, three ways.

The source is a docker-registry holding N small single-platform images (``bench/imgNN:v1``,
one 256 KiB layer each). Each target first receives all N (unmeasured). Then, per round,
the last N/10 images change upstream (new content under the same tags, unmeasured), and:

- (T) Transship: one ``POST …/importImages`` batch of all N images (``Force``), followed
  until it ends (long poll, as the CLI follows it); the report must say N - N/10 unchanged;
- (L) a loop of ``skopeo copy --all --preserve-digests``, one per image, into a
  docker-registry (what a loop of ``az acr import`` does: one source per call);
- (S) one ``skopeo sync --all --src yaml`` of the N images into another docker-registry
  (the regsync-style mirror; regsync itself is not installed here).

Measured: wall seconds and the requests the source registry received (counted from its
access log), median over rounds; T/L and T/S ratios in one run. N = 50 (45 present), 3
rounds; ``--quick``: N = 10 (9 present), 1 round.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.harness import Context, median
from bench.imports import (
    Management,
    fresh_registry,
    fresh_transship,
)
from bench.regclient import RegistryHttpError
from bench.report import BenchResult, Metric
from tests.peers.clients import Skopeo
from tests.peers.distribution import DistributionRegistry
from tests.peers.images import BuiltImage, OciLayout, build_image, push_layout_http

NAME = "batch_import"
TAG = "v1"
LAYER_BYTES = 256 * 1024
BATCH_TIMEOUT = 600.0
FOLLOW_WAIT_SECONDS = 25.0
# An access-log line of docker-registry (gorilla's combined format): one per request.
_REQUEST = re.compile(r'"(?:GET|HEAD|POST|PUT|PATCH|DELETE) /v2/')
# A manifest GET: what registries that ration pulls (Docker Hub) count.
_PULL = re.compile(r'"GET /v2/\S+/manifests/')


def _repo(index: int) -> str:
    return f"bench/img{index:02d}"


def _push_images(
    ctx: Context, registry: DistributionRegistry, indexes: Sequence[int], variant: str
) -> dict[int, BuiltImage]:
    built = {}
    for index in indexes:
        seed = f"{NAME}-{index}-{variant}"
        image = build_image(
            OciLayout(ctx.workdir / "layouts" / seed), layer_sizes=(LAYER_BYTES,), seed=seed
        )
        push_layout_http(image, registry.url, _repo(index), TAG)
        built[index] = image
    return built


def _requests_seen(registry: DistributionRegistry) -> tuple[int, int]:
    """(requests, manifest GETs) in the registry's whole access log."""
    text = (registry.workdir / "registry.log").read_text(errors="replace")
    return len(_REQUEST.findall(text)), len(_PULL.findall(text))


@contextmanager
def _counting(registry: DistributionRegistry, figures: dict[str, float]) -> Iterator[None]:
    """Wall seconds and the source's requests over the block."""
    before = _requests_seen(registry)
    start = time.perf_counter()
    yield
    figures["seconds"] = time.perf_counter() - start
    # docker-registry writes its access line after the answer: give the last one a moment.
    time.sleep(0.2)
    after = _requests_seen(registry)
    figures["upstream_requests"] = float(after[0] - before[0])
    figures["manifest_gets"] = float(after[1] - before[1])


def _batch_body(host: str, count: int) -> dict[str, Any]:
    return {
        "images": [
            {
                "source": {"registryUri": host, "sourceImage": f"{_repo(i)}:{TAG}"},
                "targetTags": [f"{_repo(i)}:{TAG}"],
                "mode": "Force",
            }
            for i in range(count)
        ]
    }


def _run_batch(mgmt: Management, body: dict[str, Any]) -> dict[str, Any]:
    """POST importImages and poll the batch until it ends; its final status."""
    reply = mgmt.endpoint.request(
        "POST",
        f"{mgmt.registry_id('default')}/importImages?api-version=2025-04-01",
        body=json.dumps(body).encode(),
        headers={"Authorization": mgmt.authorization, "Content-Type": "application/json"},
    )
    if reply.status != 202:
        raise RegistryHttpError(f"importImages: HTTP {reply.status} {reply.body[:500]!r}")
    path = urllib.parse.urlsplit(reply.headers["azure-asyncoperation"]).path
    status: dict[str, Any] = json.loads(reply.body)
    etag = ""
    deadline = time.monotonic() + BATCH_TIMEOUT
    # The long poll, as `transship import --from-file` follows a batch: an answer each time
    # the batch changes, not a request every few milliseconds (each one costs the server a
    # credential check).
    while status["status"] == "InProgress":
        if time.monotonic() > deadline:
            raise TimeoutError(f"batch not finished after {BATCH_TIMEOUT:.0f} s")
        headers = {"Authorization": mgmt.authorization}
        if etag:
            headers["If-None-Match"] = etag
        answer = mgmt.endpoint.request(
            "GET",
            f"{path}?api-version=2025-04-01&waitSeconds={FOLLOW_WAIT_SECONDS:g}",
            headers=headers,
        )
        if answer.status == 200:
            status = json.loads(answer.body)
            etag = answer.headers.get("etag", "")
        elif answer.status != 304:
            raise RegistryHttpError(f"batch status: HTTP {answer.status} {answer.body[:500]!r}")
    return status


def _sync_file(path: Path, host: str, count: int) -> Path:
    lines = [f"{host}:", "  tls-verify: false", "  images:"]
    lines += [f"    {_repo(i)}: [{TAG}]" for i in range(count)]
    path.write_text("\n".join(lines) + "\n")
    return path


def run(ctx: Context, result: BenchResult) -> None:
    count = 10 if ctx.quick else 50
    changed = max(1, count // 10)
    rounds = 1 if ctx.quick else 3
    skopeo = Skopeo(ctx.workdir / "skopeo", timeout=BATCH_TIMEOUT)
    samples: dict[str, list[dict[str, float]]] = {"T": [], "L": [], "S": []}
    with fresh_registry(ctx.workdir / "source") as source:
        ctx.log(f"pushing {count} small images to the source")
        _push_images(ctx, source, range(count), "0")
        with (
            fresh_transship(ctx.workdir / "transship", [source.host]) as server,
            fresh_registry(ctx.workdir / "loop-target") as loop_target,
            fresh_registry(ctx.workdir / "sync-target") as sync_target,
        ):
            mgmt = Management(server)
            body = _batch_body(source.host, count)
            listing = _sync_file(ctx.workdir / "sync.yaml", source.host, count)

            def transship() -> dict[str, float]:
                figures: dict[str, float] = {}
                with _counting(source, figures):
                    final = _run_batch(mgmt, body)
                if final["status"] != "Succeeded":
                    raise RuntimeError(f"batch {final['status']}: {final.get('error')}")
                counts = final["properties"]["counts"]
                figures["unchanged"] = float(counts["unchanged"])
                figures["bytes_fetched"] = float(counts["bytesFetched"])
                return figures

            def loop() -> dict[str, float]:
                figures: dict[str, float] = {}
                with _counting(source, figures):
                    for i in range(count):
                        skopeo.copy(
                            f"docker://{source.host}/{_repo(i)}:{TAG}",
                            f"docker://{loop_target.host}/{_repo(i)}:{TAG}",
                            all=True,
                            preserve_digests=True,
                        )
                return figures

            def sync() -> dict[str, float]:
                figures: dict[str, float] = {}
                with _counting(source, figures):
                    skopeo(
                        "sync",
                        "--all",
                        "--src",
                        "yaml",
                        "--dest",
                        "docker",
                        "--dest-tls-verify=false",
                        "--dest-no-creds",
                        str(listing),
                        f"{sync_target.host}",
                    )
                return figures

            runners: dict[str, Callable[[], dict[str, float]]] = {
                "T": transship,
                "L": loop,
                "S": sync,
            }
            ctx.log("first copy of every image into each target (unmeasured)")
            for runner in runners.values():
                runner()
            for index in range(rounds):
                ctx.log(f"round {index + 1}/{rounds}: {changed} images change upstream")
                _push_images(ctx, source, range(count - changed, count), f"r{index + 1}")
                for name, runner in runners.items():
                    got = runner()
                    samples[name].append(got)
                    ctx.log(
                        f"  {name}: {got['seconds']:.2f} s, "
                        f"{got['upstream_requests']:.0f} upstream requests, "
                        f"{got['manifest_gets']:.0f} manifest GETs"
                    )
                if samples["T"][-1]["unchanged"] != count - changed:
                    result.flags.append(
                        f"round {index + 1}: the batch reported "
                        f"{samples['T'][-1]['unchanged']:.0f} unchanged, not {count - changed}"
                    )
    _report(result, samples, count, changed, rounds)


def _med(rows: list[dict[str, float]], key: str) -> float:
    return median([row[key] for row in rows])


def _report(
    result: BenchResult,
    samples: dict[str, list[dict[str, float]]],
    count: int,
    changed: int,
    rounds: int,
) -> None:
    t, loop, sync = samples["T"], samples["L"], samples["S"]
    what = f"{count} images, {count - changed} present, median of {rounds}"
    for label, other in (("vs skopeo copy loop", loop), ("vs skopeo sync", sync)):
        result.add(
            Metric(
                f"batch {what}, {label}",
                "s",
                _med(t, "seconds"),
                _med(other, "seconds"),
                "lower",
                digits=2,
            )
        )
        result.add(
            Metric(
                f"upstream requests, {label}",
                "req",
                _med(t, "upstream_requests"),
                _med(other, "upstream_requests"),
                "lower",
                digits=0,
            )
        )
        result.add(
            Metric(
                f"upstream manifest GETs (pulls), {label}",
                "req",
                _med(t, "manifest_gets"),
                _med(other, "manifest_gets"),
                "lower",
                digits=0,
            )
        )
    result.details["runs"] = samples
    result.notes.append(
        "T: one importImages batch (Force); R: a loop of `skopeo copy --all` (one per image), "
        "then one `skopeo sync --all --src yaml` (regsync-style; regsync is not installed), "
        "each into its own docker-registry; upstream requests counted from the source "
        "docker-registry's access log"
    )
