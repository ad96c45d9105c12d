"""Real clients pull from platform-subset imports (sparse and rewritten): skopeo
(`--override-arch`), podman (`--platform`) and the docker CLI's `manifest inspect` get the
selected platforms, and fail clearly — not hang, not a corrupt image — for one left out."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.conftest import (  # noqa: F401  (fixtures used by name)
    ImportEnv,
    ImportEnvFactory,
    ProxyFactory,
    import_env,
    insecure,
    upstream_proxy,
)
from tests.peers.clients import CommandError, DockerCli, Podman, Skopeo
from tests.peers.distribution import DistributionRegistry
from tests.peers.images import BuiltIndex, OciLayout, build_index, push_layout_http
from tests.support.imports import assert_succeeded, docker_ref

pytestmark = pytest.mark.timeout(180)

PLATFORMS = ("linux/amd64", "linux/arm64/v8", "linux/arm/v7", "linux/s390x")
SELECTED = ["linux/amd64", "linux/arm64/v8"]
MODES = ("sparse", "rewritten")


@dataclass(frozen=True)
class Imported:
    env: ImportEnv
    index: BuiltIndex

    @property
    def host(self) -> str:
        return self.env.login_server

    def ref(self, mode: str, reference: str | None = None) -> str:
        return docker_ref(self.host, "app", reference or mode)


@pytest.fixture
async def imported(
    tmp_path: Path,
    import_env: ImportEnvFactory,  # noqa: F811
    distribution_anon: DistributionRegistry,
    upstream_proxy: ProxyFactory,  # noqa: F811
) -> Imported:
    """The 4-platform index imported twice with amd64 and arm64/v8: `app:sparse` and
    `app:rewritten`."""

    def build() -> BuiltIndex:
        index = build_index(
            OciLayout(tmp_path / "layout"), platforms=PLATFORMS, layer_sizes=(20_000,)
        )
        push_layout_http(index, distribution_anon.url, "team/app", "v1")
        return index

    index = await asyncio.to_thread(build)
    proxy = await upstream_proxy(distribution_anon.url)
    env = await import_env(None, upstreams=insecure(proxy.host))
    for mode in MODES:
        final = await env.run_import(
            {
                "source": {"registryUri": proxy.host, "sourceImage": "team/app:v1"},
                "targetTags": [f"app:{mode}"],
                "platforms": SELECTED,
                "platformMode": mode,
            }
        )
        assert_succeeded(final)
    return Imported(env, index)


@pytest.mark.parametrize("mode", MODES)
async def test_skopeo_copies_a_selected_platform_and_refuses_an_absent_one(
    imported: Imported, skopeo: Skopeo, tmp_path: Path, mode: str
) -> None:
    arm64 = imported.index.child("linux/arm64/v8")
    out = OciLayout(tmp_path / f"out-{mode}")
    await asyncio.to_thread(
        skopeo.copy,
        imported.ref(mode),
        out.skopeo_ref("arm64"),
        all=False,
        extra=["--override-arch", "arm64", "--override-variant", "v8"],
    )
    assert out.resolve("arm64").digest == arm64.digest

    with pytest.raises(CommandError) as caught:
        await asyncio.to_thread(
            skopeo.copy,
            imported.ref(mode),
            out.skopeo_ref("s390x"),
            all=False,
            extra=["--override-arch", "s390x"],
        )
    assert not caught.value.timed_out
    text = caught.value.stderr
    if mode == "sparse":
        # skopeo picks the child from the index, then asks for it: the registry's answer.
        assert "MANIFEST_UNKNOWN" in text or "manifest unknown" in text, text
        assert "linux/s390x" in text and "not imported" in text, text
    else:
        # The rewritten index does not list it: skopeo says so itself.
        assert "s390x" in text and "no image found" in text, text


@pytest.mark.parametrize("mode", MODES)
async def test_skopeo_copy_all_of_a_sparse_index_fails_on_the_absent_children(
    imported: Imported, skopeo: Skopeo, tmp_path: Path, mode: str
) -> None:
    out = OciLayout(tmp_path / f"all-{mode}")
    if mode == "rewritten":
        await asyncio.to_thread(skopeo.copy, imported.ref(mode), out.skopeo_ref("all"), all=True)
        root = out.resolve("all").digest
        raw = (out.root / "blobs" / "sha256" / root.split(":", 1)[1]).read_bytes()
        listed = [m["digest"] for m in json.loads(raw)["manifests"]]
        assert listed == [imported.index.child(p).digest for p in SELECTED]
        return
    with pytest.raises(CommandError) as caught:
        await asyncio.to_thread(skopeo.copy, imported.ref(mode), out.skopeo_ref("all"), all=True)
    assert "not imported" in caught.value.stderr, caught.value.stderr


@pytest.mark.parametrize("mode", MODES)
async def test_podman_pulls_a_selected_platform_and_refuses_an_absent_one(
    imported: Imported, podman: Podman, mode: str
) -> None:
    reference = f"{imported.host}/app:{mode}"
    amd64 = imported.index.child("linux/amd64")
    image_id = await asyncio.to_thread(podman.pull, reference, platform="linux/amd64")
    assert f"sha256:{image_id}" == amd64.config.digest
    with pytest.raises(CommandError) as caught:
        await asyncio.to_thread(podman.pull, reference, platform="linux/s390x")
    assert not caught.value.timed_out
    text = caught.value.stderr
    if mode == "sparse":
        assert "not imported" in text and "linux/s390x" in text, text
    else:
        assert "s390x" in text, text
    # Nothing half-pulled is left behind under the name.
    images = json.loads((await asyncio.to_thread(podman, "images", "--format", "json")).text)
    assert {i["Id"] for i in images} == {image_id}


@pytest.mark.parametrize("mode", MODES)
async def test_docker_manifest_inspect_reads_a_selected_child_and_the_rewritten_index(
    imported: Imported, docker_cli: DockerCli, mode: str
) -> None:
    arm64 = imported.index.child("linux/arm64/v8")
    child = await asyncio.to_thread(
        docker_cli.manifest_inspect, f"{imported.host}/app@{arm64.digest}"
    )
    assert child["config"]["digest"] == arm64.config.digest
    s390x = imported.index.child("linux/s390x")
    with pytest.raises(CommandError) as caught:
        await asyncio.to_thread(docker_cli.manifest_inspect, f"{imported.host}/app@{s390x.digest}")
    # The docker CLI reports any 404 as "no such manifest", dropping the registry's message.
    assert not caught.value.timed_out and "no such manifest" in caught.value.stderr

    tagged = f"{imported.host}/app:{mode}"
    if mode == "rewritten":
        index = await asyncio.to_thread(docker_cli.manifest_inspect, tagged)
        assert index["manifests"] == json.loads(imported.index.index_bytes)["manifests"][:2]
        entries = await asyncio.to_thread(docker_cli.manifest_inspect, tagged, verbose=True)
        assert [e["Descriptor"]["digest"] for e in entries] == [
            imported.index.child(p).digest for p in SELECTED
        ]
        return
    # `manifest inspect` of an index reads every child it lists (even without --verbose),
    # so a sparse index fails on the first absent one: an error, at once.
    for verbose in (False, True):
        with pytest.raises(CommandError) as caught:
            await asyncio.to_thread(docker_cli.manifest_inspect, tagged, verbose=verbose)
        assert not caught.value.timed_out and "no such manifest" in caught.value.stderr
