"""oci.platforms: parsing and matching `os/arch[/variant]`, and rewriting an index to a
subset of its children."""

from __future__ import annotations

import json

import pytest

from transship.oci.digest import Digest
from transship.oci.manifest import ManifestError, Platform
from transship.oci.platforms import (
    PlatformSpec,
    PlatformSyntaxError,
    config_platform,
    rewrite_index,
)

DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("linux/amd64", PlatformSpec("linux", "amd64")),
        ("linux/arm64/v8", PlatformSpec("linux", "arm64", "v8")),
        ("windows/amd64", PlatformSpec("windows", "amd64")),
        ("linux/ppc64le", PlatformSpec("linux", "ppc64le")),
    ],
)
def test_parse(text: str, spec: PlatformSpec) -> None:
    assert PlatformSpec.parse(text) == spec and str(spec) == text


@pytest.mark.parametrize(
    "text", ["linux", "", "linux/", "/amd64", "a/b/c/d", "Linux/amd64", "linux/amd 64"]
)
def test_parse_refuses(text: str) -> None:
    with pytest.raises(PlatformSyntaxError):
        PlatformSpec.parse(text)


@pytest.mark.parametrize(
    ("spec", "platform", "expected"),
    [
        ("linux/amd64", Platform("linux", "amd64"), True),
        ("linux/amd64", Platform("windows", "amd64"), False),
        ("linux/arm", Platform("linux", "arm", "v6"), True),
        ("linux/arm/v7", Platform("linux", "arm", "v6"), False),
        ("linux/arm64/v8", Platform("linux", "arm64"), True),
        ("linux/arm/v7", Platform("linux", "arm"), False),
    ],
)
def test_matches(spec: str, platform: Platform, expected: bool) -> None:
    assert PlatformSpec.parse(spec).matches(platform) is expected


def _digest(n: int) -> str:
    return "sha256:" + f"{n:02x}" * 32


def test_rewrite_keeps_media_type_fields_and_descriptors_unchanged() -> None:
    children = [
        {
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "digest": _digest(i),
            "size": 100 + i,
            "platform": {"os": "linux", "architecture": arch, "features": ["x"]},
        }
        for i, arch in enumerate(["amd64", "arm64", "s390x"])
    ]
    source = json.dumps(
        {"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": children}
    ).encode()
    out = json.loads(
        rewrite_index(source, [Digest.parse(_digest(2)), Digest.parse(_digest(0))], {"k": "v"})
    )
    assert out["mediaType"] == DOCKER_LIST and out["schemaVersion"] == 2
    assert out["manifests"] == [children[0], children[2]]  # source order, bytes-equal JSON
    assert out["annotations"] == {"k": "v"}


def test_rewrite_merges_existing_annotations() -> None:
    source = json.dumps(
        {"schemaVersion": 2, "manifests": [], "annotations": {"org.opencontainers.a": "1"}}
    ).encode()
    out = json.loads(rewrite_index(source, [], {"b": "2"}))
    assert out["annotations"] == {"org.opencontainers.a": "1", "b": "2"}


def test_rewrite_refuses_what_is_not_an_index() -> None:
    with pytest.raises(ManifestError):
        rewrite_index(b'{"schemaVersion": 2}', [], {})
    with pytest.raises(ManifestError):
        rewrite_index(b"not json", [], {})


def test_config_platform() -> None:
    assert config_platform(b'{"os": "linux", "architecture": "arm", "variant": "v7"}') == (
        Platform("linux", "arm", "v7")
    )
    with pytest.raises(ManifestError):
        config_platform(b'{"architecture": "amd64"}')
    with pytest.raises(ManifestError):
        config_platform(b"[]")
