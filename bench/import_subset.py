"""A platform-subset import: 1 of the 4 platforms of the bench image (1 GiB in all, 256 MiB
per platform; 64 MiB per platform with ``--quick``), in both modes, against skopeo copying
one platform.

T: importImage with ``platforms: ["linux/amd64"]`` into a fresh Transship, once in sparse
mode (the source index kept, only the amd64 child present) and once in rewritten mode (a new
index listing only it). R: ``skopeo copy --override-os linux --override-arch amd64`` (no
``--all``: skopeo's way of copying one platform, which stores the child manifest alone and
drops the index) into a fresh docker-registry. The measured figure is the bytes each one
moved — the import's ``bytesFetched`` and the stores' growth — against the whole image's: the
target is ≤ 30% (the platform's own share is 25% plus its manifest and config).

What lands is checked, not assumed: the sparse index reads back with the source digest, the
amd64 child and its blobs are present and every other child answers 404; the rewritten index
lists the amd64 child only and names the source index in its annotation.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from bench.harness import REGISTRY, Context, MiB
from bench.imports import (
    ACCEPT,
    TAG,
    Figures,
    Management,
    _blob_sizes,
    _build_full_image,
    _med,
    fresh_registry,
    fresh_transship,
    registry_endpoint,
    source_registry,
    timed_copy,
    timed_import,
    warm_registry,
    warm_transship,
)
from bench.regclient import Endpoint, RegistryHttpError
from bench.report import BenchResult, Metric
from tests.peers.images import BuiltImage, BuiltIndex

NAME = "import_subset"
PLATFORM = "linux/amd64"
SHARE_TARGET = 0.30
SOURCE_INDEX_ANNOTATION = "io.transship.import.source-index"


def _selected(image: BuiltIndex) -> BuiltImage:
    for child in image.children:
        if child.platform is not None and str(child.platform) == PLATFORM:
            return child
    raise RuntimeError(f"the bench image has no {PLATFORM} child")


def _platform_bytes(child: BuiltImage) -> int:
    """The bytes a copy of one platform must move: its manifest, config and layers."""
    return (
        len(child.manifest_bytes)
        + child.config.size
        + sum(layer.descriptor.size for layer in child.layers)
    )


def _subset_body(source_host: str, target: str, mode: str) -> dict[str, Any]:
    return {
        "source": {"registryUri": source_host, "sourceImage": f"bench/image:{TAG}"},
        "targetTags": [target],
        "platforms": [PLATFORM],
        "platformMode": mode,
    }


def _manifest(ep: Endpoint, repo: str, reference: str) -> tuple[int, bytes]:
    reply = ep.request("GET", f"/v2/{repo}/manifests/{reference}", headers={"Accept": ACCEPT})
    return reply.status, reply.body


def _verify_child(who: str, ep: Endpoint, repo: str, child: BuiltImage) -> None:
    status, _ = _manifest(ep, repo, child.digest)
    if status != 200:
        raise RegistryHttpError(f"{who}: the {PLATFORM} child answers {status}")
    for layer in child.layers:
        head = ep.request("HEAD", f"/v2/{repo}/blobs/{layer.descriptor.digest}")
        if head.status != 200:
            raise RegistryHttpError(f"{who}: layer {layer.descriptor.digest} answers {head.status}")


def verify_sparse(ep: Endpoint, repo: str, image: BuiltIndex, child: BuiltImage) -> None:
    status, body = _manifest(ep, repo, TAG)
    if status != 200 or body != image.index_bytes:
        raise RegistryHttpError(f"sparse: {repo}:{TAG} is not the source index ({status})")
    _verify_child("sparse", ep, repo, child)
    for other in image.children:
        if other.digest != child.digest and _manifest(ep, repo, other.digest)[0] != 404:
            raise RegistryHttpError(f"sparse: the absent child {other.platform} is served")


def verify_rewritten(ep: Endpoint, repo: str, image: BuiltIndex, child: BuiltImage) -> None:
    status, body = _manifest(ep, repo, TAG)
    index = json.loads(body) if status == 200 else {}
    listed = [m["digest"] for m in index.get("manifests", [])]
    source = index.get("annotations", {}).get(SOURCE_INDEX_ANNOTATION)
    if listed != [child.digest] or source != image.digest:
        raise RegistryHttpError(f"rewritten: {repo}:{TAG} lists {listed}, names {source}")
    _verify_child("rewritten", ep, repo, child)


def run(ctx: Context, result: BenchResult) -> None:
    image, layers = _build_full_image(ctx)
    child = _selected(image)
    whole = sum(_blob_sizes(image).values())
    share = _platform_bytes(child)
    rounds = 1 if ctx.quick else 3
    samples: dict[str, list[Figures]] = {"sparse": [], "rewritten": [], REGISTRY: []}
    with contextlib.ExitStack() as stack:
        source = stack.enter_context(source_registry(ctx, image))
        ctx.log(f"image {whole / MiB:.0f} MiB, {PLATFORM} {share / MiB:.1f} MiB; {rounds} rounds")
        for index in range(rounds):
            for mode, verify in (("sparse", verify_sparse), ("rewritten", verify_rewritten)):
                workdir = ctx.workdir / f"round{index}-{mode}"
                with fresh_transship(workdir, [source.host]) as server:
                    mgmt = Management(server)
                    warm_transship(source, server, mgmt)
                    repo = f"subset/{mode}"
                    body = _subset_body(source.host, f"{repo}:{TAG}", mode)
                    got = timed_import(ctx, server, mgmt, "default", body, mode)
                    verify(Endpoint.from_url(server.url), repo, image, child)
                samples[mode].append(got)
                ctx.log(
                    f"round {index + 1} {mode}: {got['seconds']:.2f}s, "
                    f"fetched {got['bytesFetched'] / MiB:.1f} MiB"
                )
            with fresh_registry(ctx.workdir / f"round{index}-registry") as dest:
                warm_registry(source, dest)
                got = timed_copy(
                    source,
                    dest,
                    "subset/skopeo",
                    all_platforms=False,
                    extra=("--override-os", "linux", "--override-arch", "amd64"),
                )
                _verify_child(REGISTRY, registry_endpoint(dest), "subset/skopeo", child)
            samples[REGISTRY].append(got)
            ctx.log(f"round {index + 1} skopeo one platform: {got['seconds']:.2f}s")
    result.details["runs"] = samples
    result.details["image"] = {"bytes": whole, "platform_bytes": share, "layers_mib": layers}
    r = samples[REGISTRY]
    for mode in ("sparse", "rewritten"):
        t = samples[mode]
        fetched = max(row["bytesFetched"] for row in t)
        metric = result.add(
            Metric(
                f"{mode}: bytes fetched for 1 of 4 platforms / whole image",
                "share",
                fetched / whole,
                None,
                "lower",
                target=f"≤ {SHARE_TARGET:.2f}",
                digits=3,
            )
        )
        metric.met = fetched / whole <= SHARE_TARGET
        result.add(
            Metric(
                f"{mode}: store growth (T) / skopeo one platform (R)",
                "MiB",
                max(row["store_bytes_added"] for row in t) / MiB,
                max(row["store_bytes_added"] for row in r) / MiB,
                "lower",
                digits=1,
            )
        )
        result.add(
            Metric(
                f"{mode}: wall, median of {rounds} (R: skopeo one platform)",
                "s",
                _med(t, "seconds"),
                _med(r, "seconds"),
                "lower",
                digits=2,
            )
        )
    result.notes += [
        f"T: importImage platforms=[{PLATFORM}] into a fresh Transship per mode and round; "
        "R: `skopeo copy --override-os linux --override-arch amd64` (one platform, no --all: "
        "skopeo stores the child manifest alone, the index is dropped) into a fresh "
        "docker-registry",
        f"the platform's own bytes (manifest, config, layers): {share / whole:.3f} of the image",
    ]
