"""`transship.oci.manifest.parse_manifest`: manifests, indexes, artifacts, and refusals."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transship.oci import mediatypes as mt
from transship.oci.digest import Digest
from transship.oci.manifest import (
    Descriptor,
    ManifestError,
    ParsedManifest,
    Platform,
    UnsupportedSchema1,
    parse_descriptor,
    parse_manifest,
)

CONFIG_DIGEST = Digest.of(b"config")
LAYER_DIGESTS = [Digest.of(f"layer{i}".encode()) for i in range(3)]
CHILD_DIGESTS = [Digest.of(f"child{i}".encode()) for i in range(3)]
SUBJECT_DIGEST = Digest.of(b"subject")
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def descriptor(media_type: str, digest: Digest, size: int, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": str(digest), "size": size, **extra}


def oci_manifest(**overrides: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": descriptor(mt.OCI_CONFIG, CONFIG_DIGEST, 7),
        "layers": [descriptor(LAYER_TAR, d, 100 + i) for i, d in enumerate(LAYER_DIGESTS[:2])],
    }
    document.update(overrides)
    return {k: v for k, v in document.items() if v is not _ABSENT}


def oci_index(**overrides: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [
            descriptor(
                mt.OCI_MANIFEST,
                CHILD_DIGESTS[0],
                500,
                platform={"os": "linux", "architecture": "amd64"},
            ),
            descriptor(
                mt.OCI_MANIFEST,
                CHILD_DIGESTS[1],
                501,
                platform={"os": "linux", "architecture": "arm64", "variant": "v8"},
            ),
        ],
    }
    document.update(overrides)
    return {k: v for k, v in document.items() if v is not _ABSENT}


_ABSENT = object()


def encode(document: Any) -> bytes:
    return json.dumps(document).encode()


# -- image manifests -------------------------------------------------------------------------


def test_oci_manifest() -> None:
    parsed = parse_manifest(encode(oci_manifest()), mt.OCI_MANIFEST)
    assert parsed.media_type == mt.OCI_MANIFEST
    assert not parsed.is_index
    assert parsed.config == Descriptor(mt.OCI_CONFIG, CONFIG_DIGEST, 7)
    assert parsed.layers == (
        Descriptor(LAYER_TAR, LAYER_DIGESTS[0], 100),
        Descriptor(LAYER_TAR, LAYER_DIGESTS[1], 101),
    )
    assert parsed.manifests == ()
    assert parsed.subject is None
    assert parsed.artifact_type is None
    assert parsed.annotations == ()
    assert parsed.blobs == (parsed.config, *parsed.layers)
    assert parsed.referrer_artifact_type == mt.OCI_CONFIG


def test_docker_v2_manifest() -> None:
    document = {
        "schemaVersion": 2,
        "mediaType": mt.DOCKER_MANIFEST,
        "config": descriptor(DOCKER_CONFIG, CONFIG_DIGEST, 1469),
        "layers": [descriptor(DOCKER_LAYER, LAYER_DIGESTS[0], 2479)],
    }
    parsed = parse_manifest(encode(document), mt.DOCKER_MANIFEST)
    assert parsed.media_type == mt.DOCKER_MANIFEST
    assert not parsed.is_index
    assert parsed.config == Descriptor(DOCKER_CONFIG, CONFIG_DIGEST, 1469)
    assert parsed.layers == (Descriptor(DOCKER_LAYER, LAYER_DIGESTS[0], 2479),)


def test_manifest_with_no_layers() -> None:
    parsed = parse_manifest(encode(oci_manifest(layers=[])))
    assert parsed.layers == ()
    assert parsed.blobs == (parsed.config,)


def test_manifest_annotations_keep_order() -> None:
    annotations = {"org.opencontainers.image.created": "2024-01-01T00:00:00Z", "a": "1", "z": ""}
    parsed = parse_manifest(encode(oci_manifest(annotations=annotations)))
    assert parsed.annotations == tuple(annotations.items())


def test_descriptor_optional_fields() -> None:
    layer = descriptor(
        LAYER_TAR,
        LAYER_DIGESTS[0],
        10,
        annotations={"org.opencontainers.image.title": "a.tgz"},
        artifactType="application/x-thing",
        platform={
            "os": "windows",
            "architecture": "amd64",
            "os.version": "10.0.17763.1",
            "os.features": ["win32k"],
        },
    )
    parsed = parse_manifest(encode(oci_manifest(layers=[layer])))
    assert parsed.layers == (
        Descriptor(
            LAYER_TAR,
            LAYER_DIGESTS[0],
            10,
            urls=(),
            artifact_type="application/x-thing",
            platform=Platform("windows", "amd64", None, "10.0.17763.1"),
            annotations=(("org.opencontainers.image.title", "a.tgz"),),
        ),
    )


def test_foreign_layers() -> None:
    urls = ["https://mcr.microsoft.com/v2/windows/blobs/sha256:abc", "https://mirror.example/abc"]
    document = {
        "schemaVersion": 2,
        "mediaType": mt.DOCKER_MANIFEST,
        "config": descriptor(DOCKER_CONFIG, CONFIG_DIGEST, 1),
        "layers": [
            descriptor(mt.DOCKER_FOREIGN_LAYER, LAYER_DIGESTS[0], 1000, urls=urls),
            descriptor(DOCKER_LAYER, LAYER_DIGESTS[1], 2000),
        ],
    }
    parsed = parse_manifest(encode(document))
    foreign, local = parsed.layers
    assert foreign.urls == tuple(urls)
    assert foreign.is_foreign
    assert not local.is_foreign
    assert not parsed.config.is_foreign  # type: ignore[union-attr]
    assert parsed.blobs == (parsed.config, foreign, local)  # foreign ones included, flagged


def test_empty_urls_list_is_not_foreign() -> None:
    layer = descriptor(LAYER_TAR, LAYER_DIGESTS[0], 1, urls=[])
    assert not parse_manifest(encode(oci_manifest(layers=[layer]))).layers[0].is_foreign


def test_sha512_descriptors() -> None:
    digest = Digest.of(b"layer", "sha512")
    parsed = parse_manifest(encode(oci_manifest(layers=[descriptor(LAYER_TAR, digest, 5)])))
    assert parsed.layers[0].digest == digest


def test_schema_version_required() -> None:
    with pytest.raises(ManifestError, match="schemaVersion"):
        parse_manifest(encode(oci_manifest(schemaVersion=_ABSENT)))
    with pytest.raises(ManifestError, match="schemaVersion"):
        parse_manifest(encode(oci_manifest(schemaVersion=3)))
    with pytest.raises(ManifestError, match="schemaVersion"):
        parse_manifest(encode(oci_manifest(schemaVersion="2")))


# -- indexes -----------------------------------------------------------------------------------


def test_oci_index() -> None:
    parsed = parse_manifest(encode(oci_index()), mt.OCI_INDEX)
    assert parsed.media_type == mt.OCI_INDEX
    assert parsed.is_index
    assert parsed.config is None
    assert parsed.layers == ()
    assert parsed.blobs == ()
    assert parsed.manifests == (
        Descriptor(mt.OCI_MANIFEST, CHILD_DIGESTS[0], 500, platform=Platform("linux", "amd64")),
        Descriptor(
            mt.OCI_MANIFEST, CHILD_DIGESTS[1], 501, platform=Platform("linux", "arm64", "v8")
        ),
    )
    assert str(parsed.manifests[0].platform) == "linux/amd64"
    assert str(parsed.manifests[1].platform) == "linux/arm64/v8"
    assert parsed.referrer_artifact_type is None


def test_docker_manifest_list() -> None:
    document = {
        "schemaVersion": 2,
        "mediaType": mt.DOCKER_MANIFEST_LIST,
        "manifests": [
            descriptor(
                mt.DOCKER_MANIFEST,
                CHILD_DIGESTS[0],
                7,
                platform={"os": "linux", "architecture": "arm", "variant": "v7"},
            ),
            descriptor(
                mt.DOCKER_MANIFEST,
                CHILD_DIGESTS[1],
                8,
                platform={
                    "os": "windows",
                    "architecture": "amd64",
                    "os.version": "10.0.20348.2227",
                },
            ),
        ],
    }
    parsed = parse_manifest(encode(document), mt.DOCKER_MANIFEST_LIST)
    assert parsed.media_type == mt.DOCKER_MANIFEST_LIST
    assert parsed.is_index
    assert [m.platform for m in parsed.manifests] == [
        Platform("linux", "arm", "v7"),
        Platform("windows", "amd64", None, "10.0.20348.2227"),
    ]


def test_index_may_be_empty() -> None:
    assert parse_manifest(encode(oci_index(manifests=[]))).manifests == ()


def test_index_without_platforms() -> None:
    parsed = parse_manifest(
        encode(oci_index(manifests=[descriptor(mt.OCI_MANIFEST, CHILD_DIGESTS[0], 1)]))
    )
    assert parsed.manifests[0].platform is None


def test_index_needs_manifests() -> None:
    with pytest.raises(ManifestError, match="manifests"):
        parse_manifest(encode(oci_index(manifests=_ABSENT)))


def test_image_manifest_needs_config_and_layers() -> None:
    with pytest.raises(ManifestError, match="config"):
        parse_manifest(encode(oci_manifest(config=_ABSENT)))
    with pytest.raises(ManifestError, match="layers"):
        parse_manifest(encode(oci_manifest(layers=_ABSENT)))


def test_nested_index_children() -> None:
    child = descriptor(mt.OCI_INDEX, CHILD_DIGESTS[2], 300)
    parsed = parse_manifest(encode(oci_index(manifests=[child])))
    assert parsed.manifests[0].media_type == mt.OCI_INDEX


# -- artifacts and referrers ------------------------------------------------------------------


def test_artifact_manifest_with_subject() -> None:
    subject = descriptor(mt.OCI_MANIFEST, SUBJECT_DIGEST, 1234)
    document = oci_manifest(
        artifactType="application/vnd.example.sbom+json",
        config=descriptor(mt.OCI_EMPTY, Digest.of(b"{}"), 2),
        layers=[descriptor("application/spdx+json", LAYER_DIGESTS[0], 99)],
        subject=subject,
        annotations={"org.opencontainers.image.created": "2024-05-01T00:00:00Z"},
    )
    parsed = parse_manifest(encode(document))
    assert parsed.artifact_type == "application/vnd.example.sbom+json"
    assert parsed.referrer_artifact_type == "application/vnd.example.sbom+json"
    assert parsed.subject == Descriptor(mt.OCI_MANIFEST, SUBJECT_DIGEST, 1234)
    assert parsed.config == Descriptor(mt.OCI_EMPTY, Digest.of(b"{}"), 2)


def test_referrer_artifact_type_falls_back_to_config_media_type() -> None:
    document = oci_manifest(
        config=descriptor("application/vnd.cncf.notary.signature", CONFIG_DIGEST, 2),
        subject=descriptor(mt.OCI_MANIFEST, SUBJECT_DIGEST, 1),
    )
    parsed = parse_manifest(encode(document))
    assert parsed.artifact_type is None
    assert parsed.referrer_artifact_type == "application/vnd.cncf.notary.signature"


def test_empty_artifact_type_falls_back_to_config_media_type() -> None:
    parsed = parse_manifest(encode(oci_manifest(artifactType="")))
    assert parsed.referrer_artifact_type == mt.OCI_CONFIG


def test_index_artifact_with_subject() -> None:
    document = oci_index(
        artifactType="application/vnd.example.bundle",
        subject=descriptor(mt.OCI_INDEX, SUBJECT_DIGEST, 5),
    )
    parsed = parse_manifest(encode(document))
    assert parsed.is_index
    assert parsed.subject is not None and parsed.subject.digest == SUBJECT_DIGEST
    assert parsed.referrer_artifact_type == "application/vnd.example.bundle"


# -- media type inference ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "content_type", "expected"),
    [
        (oci_manifest(mediaType=_ABSENT), mt.OCI_MANIFEST, mt.OCI_MANIFEST),
        (oci_manifest(mediaType=_ABSENT), mt.DOCKER_MANIFEST, mt.DOCKER_MANIFEST),
        (oci_index(mediaType=_ABSENT), mt.OCI_INDEX, mt.OCI_INDEX),
        (oci_index(mediaType=_ABSENT), mt.DOCKER_MANIFEST_LIST, mt.DOCKER_MANIFEST_LIST),
        # Content-Type parameters and case don't matter.
        (oci_manifest(mediaType=_ABSENT), f"{mt.OCI_MANIFEST}; charset=utf-8", mt.OCI_MANIFEST),
        (oci_manifest(mediaType=_ABSENT), mt.OCI_MANIFEST.upper(), mt.OCI_MANIFEST),
        (
            oci_manifest(mediaType=_ABSENT),
            f"{mt.DOCKER_MANIFEST}; charset=utf-8",
            mt.DOCKER_MANIFEST,
        ),
        (oci_manifest(mediaType=_ABSENT), f" {mt.DOCKER_MANIFEST.upper()} ", mt.DOCKER_MANIFEST),
        (
            oci_index(mediaType=_ABSENT),
            f"{mt.DOCKER_MANIFEST_LIST.upper()};q=1",
            mt.DOCKER_MANIFEST_LIST,
        ),
        (
            oci_manifest(mediaType=mt.DOCKER_MANIFEST),
            mt.DOCKER_MANIFEST.upper(),
            mt.DOCKER_MANIFEST,
        ),
        # From the shape when the header says nothing useful.
        (oci_manifest(mediaType=_ABSENT), None, mt.OCI_MANIFEST),
        (oci_manifest(mediaType=_ABSENT), "", mt.OCI_MANIFEST),
        (oci_manifest(mediaType=_ABSENT), "application/json", mt.OCI_MANIFEST),
        (oci_manifest(mediaType=_ABSENT), "application/octet-stream", mt.OCI_MANIFEST),
        (oci_index(mediaType=_ABSENT), None, mt.OCI_INDEX),
        (oci_index(mediaType=_ABSENT), "application/json", mt.OCI_INDEX),
        # The declared type wins over a header that is not a manifest type.
        (oci_manifest(), "application/json", mt.OCI_MANIFEST),
        (oci_manifest(), None, mt.OCI_MANIFEST),
        (oci_manifest(), f"{mt.OCI_MANIFEST};charset=utf-8", mt.OCI_MANIFEST),
    ],
)
def test_media_type_inference(
    document: dict[str, Any], content_type: str | None, expected: str
) -> None:
    assert parse_manifest(encode(document), content_type).media_type == expected


def test_inferred_index_is_parsed_as_index() -> None:
    parsed = parse_manifest(encode(oci_index(mediaType=_ABSENT)))
    assert parsed.is_index
    assert len(parsed.manifests) == 2


def test_inference_impossible() -> None:
    with pytest.raises(ManifestError, match="media type"):
        parse_manifest(encode({"schemaVersion": 2, "layers": []}))


@pytest.mark.parametrize(
    ("declared", "header"),
    [
        (mt.OCI_MANIFEST, mt.OCI_INDEX),
        (mt.OCI_MANIFEST, mt.DOCKER_MANIFEST),
        (mt.DOCKER_MANIFEST, mt.OCI_MANIFEST),
        (mt.OCI_INDEX, mt.DOCKER_MANIFEST_LIST),
        (mt.OCI_MANIFEST, f"{mt.OCI_INDEX}; charset=utf-8"),
        (mt.OCI_MANIFEST, mt.DOCKER_MANIFEST.upper()),
    ],
)
def test_media_type_and_content_type_mismatch_refused(declared: str, header: str) -> None:
    document = (
        oci_manifest(mediaType=declared)
        if declared in mt.IMAGE_MANIFESTS
        else oci_index(mediaType=declared)
    )
    with pytest.raises(ManifestError, match="does not match") as info:
        parse_manifest(encode(document), header)
    assert not isinstance(info.value, UnsupportedSchema1)


@pytest.mark.parametrize(
    "media_type",
    [
        mt.OCI_CONFIG,
        "application/json",
        "application/vnd.oci.artifact.manifest.v1+json",
        "text/plain",
    ],
)
def test_unsupported_declared_media_type(media_type: str) -> None:
    with pytest.raises(ManifestError, match="unsupported manifest media type"):
        parse_manifest(encode(oci_manifest(mediaType=media_type)))


def test_media_type_must_be_a_string() -> None:
    with pytest.raises(ManifestError, match="mediaType"):
        parse_manifest(encode(oci_manifest(mediaType=5)))


# -- schema 1 ----------------------------------------------------------------------------------

SCHEMA1 = {
    "schemaVersion": 1,
    "name": "library/hello",
    "tag": "latest",
    "architecture": "amd64",
    "fsLayers": [{"blobSum": str(LAYER_DIGESTS[0])}],
    "history": [{"v1Compatibility": "{}"}],
}


@pytest.mark.parametrize(
    ("document", "content_type"),
    [
        pytest.param(SCHEMA1, None, id="schemaVersion-1"),
        pytest.param({**SCHEMA1, "mediaType": mt.DOCKER_SCHEMA1}, None, id="mediaType-v1"),
        pytest.param(
            {**SCHEMA1, "mediaType": mt.DOCKER_SCHEMA1_SIGNED}, None, id="mediaType-v1-signed"
        ),
        pytest.param(SCHEMA1, mt.DOCKER_SCHEMA1_SIGNED, id="content-type-signed"),
        pytest.param(
            oci_manifest(mediaType=_ABSENT),
            f"{mt.DOCKER_SCHEMA1_SIGNED}; charset=utf-8",
            id="content-type-with-parameter",
        ),
        pytest.param(
            oci_manifest(mediaType=_ABSENT), mt.DOCKER_SCHEMA1.upper(), id="content-type-uppercase"
        ),
        pytest.param({**SCHEMA1, "schemaVersion": 2}, mt.DOCKER_SCHEMA1, id="content-type-v1"),
        pytest.param(
            oci_manifest(mediaType=_ABSENT), mt.DOCKER_SCHEMA1_SIGNED, id="content-type-beats-shape"
        ),
        pytest.param(
            oci_manifest(mediaType=mt.DOCKER_SCHEMA1),
            mt.OCI_MANIFEST,
            id="declared-v1-with-oci-header",
        ),
    ],
)
def test_schema1_refused(document: dict[str, Any], content_type: str | None) -> None:
    with pytest.raises(UnsupportedSchema1, match="schema 1"):
        parse_manifest(encode(document), content_type)


def test_unsupported_schema1_is_a_manifest_error() -> None:
    assert issubclass(UnsupportedSchema1, ManifestError)
    assert issubclass(ManifestError, ValueError)


# -- malformed input, each naming the field ---------------------------------------------------


def _bad_layer(index: int, **changes: Any) -> dict[str, Any]:
    layers = [descriptor(LAYER_TAR, d, 10) for d in LAYER_DIGESTS]
    layers[index] = {**layers[index], **changes}
    return oci_manifest(layers=layers)


def _bad_child(index: int, **changes: Any) -> dict[str, Any]:
    children = [descriptor(mt.OCI_MANIFEST, d, 10) for d in CHILD_DIGESTS]
    children[index] = {**children[index], **changes}
    return oci_index(manifests=children)


def _without(document: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k != key}


_CONFIG = descriptor(mt.OCI_CONFIG, CONFIG_DIGEST, 7)


@pytest.mark.parametrize(
    ("document", "field"),
    [
        pytest.param(
            oci_manifest(config={**_CONFIG, "digest": "sha256:abc"}),
            "config.digest",
            id="config-digest-short",
        ),
        pytest.param(
            oci_manifest(config={**_CONFIG, "digest": str(CONFIG_DIGEST).upper()}),
            "config.digest",
            id="config-digest-upper",
        ),
        pytest.param(
            oci_manifest(config={**_CONFIG, "digest": "md5:d41d8cd98f00b204e9800998ecf8427e"}),
            "config.digest",
            id="config-digest-md5",
        ),
        pytest.param(
            oci_manifest(config={**_CONFIG, "digest": 5}), "config.digest", id="config-digest-int"
        ),
        pytest.param(
            oci_manifest(config=_without(_CONFIG, "digest")),
            "config.digest",
            id="config-digest-missing",
        ),
        pytest.param(
            oci_manifest(config=_without(_CONFIG, "mediaType")),
            "config.mediaType",
            id="config-mediatype-missing",
        ),
        pytest.param(
            oci_manifest(config={**_CONFIG, "mediaType": ""}),
            "config.mediaType",
            id="config-mediatype-empty",
        ),
        pytest.param(
            oci_manifest(config={**_CONFIG, "mediaType": 1}),
            "config.mediaType",
            id="config-mediatype-int",
        ),
        pytest.param(
            oci_manifest(config=_without(_CONFIG, "size")), "config.size", id="config-size-missing"
        ),
        pytest.param(oci_manifest(config=None), "config", id="config-null"),
        pytest.param(oci_manifest(config=[]), "config", id="config-list"),
        pytest.param(oci_manifest(config="sha256:x"), "config", id="config-string"),
        pytest.param(_bad_layer(1, size=-1), "layers[1].size", id="layer1-size-negative"),
        pytest.param(_bad_layer(1, size="10"), "layers[1].size", id="layer1-size-string"),
        pytest.param(_bad_layer(1, size=1.5), "layers[1].size", id="layer1-size-float"),
        pytest.param(_bad_layer(1, size=True), "layers[1].size", id="layer1-size-bool"),
        pytest.param(_bad_layer(1, size=None), "layers[1].size", id="layer1-size-null"),
        pytest.param(
            _bad_layer(2, digest="sha256:" + "0" * 63), "layers[2].digest", id="layer2-digest"
        ),
        pytest.param(_bad_layer(0, urls="https://x"), "layers[0].urls", id="layer0-urls-string"),
        pytest.param(
            _bad_layer(0, urls=["https://x", 3]), "layers[0].urls", id="layer0-urls-int-item"
        ),
        pytest.param(
            _bad_layer(0, annotations=[]), "layers[0].annotations", id="layer0-annotations-list"
        ),
        pytest.param(
            _bad_layer(0, annotations={"k": 1}),
            "layers[0].annotations.k",
            id="layer0-annotation-value",
        ),
        pytest.param(
            _bad_layer(1, artifactType=7), "layers[1].artifactType", id="layer1-artifacttype"
        ),
        pytest.param(
            _bad_layer(1, platform="linux/amd64"), "layers[1].platform", id="layer1-platform-string"
        ),
        pytest.param(
            oci_manifest(layers=[descriptor(LAYER_TAR, LAYER_DIGESTS[0], 1), "x"]),
            "layers[1]",
            id="layer1-not-object",
        ),
        pytest.param(oci_manifest(layers={"a": 1}), "layers", id="layers-object"),
        pytest.param(
            _bad_child(0, platform="linux"), "manifests[0].platform", id="child0-platform-string"
        ),
        pytest.param(
            _bad_child(0, platform={"os": "linux"}),
            "manifests[0].platform",
            id="child0-platform-no-arch",
        ),
        pytest.param(
            _bad_child(0, platform={"architecture": "amd64"}),
            "manifests[0].platform",
            id="child0-platform-no-os",
        ),
        pytest.param(
            _bad_child(2, platform={"os": "linux", "architecture": 1}),
            "manifests[2].platform",
            id="child2-platform-arch-int",
        ),
        pytest.param(_bad_child(1, digest="sha256:zz"), "manifests[1].digest", id="child1-digest"),
        pytest.param(_bad_child(1, size=-5), "manifests[1].size", id="child1-size"),
        pytest.param(oci_index(manifests={"x": 1}), "manifests", id="manifests-object"),
        pytest.param(oci_index(manifests=[1]), "manifests[0]", id="child0-not-object"),
        pytest.param(
            oci_manifest(subject={"mediaType": mt.OCI_MANIFEST, "size": 1}),
            "subject.digest",
            id="subject-digest",
        ),
        pytest.param(oci_manifest(subject="sha256:x"), "subject", id="subject-string"),
        pytest.param(oci_manifest(annotations={"a": 1}), "annotations.a", id="annotation-value"),
        pytest.param(oci_manifest(annotations="x"), "annotations", id="annotations-string"),
        pytest.param(oci_manifest(artifactType=["x"]), "artifactType", id="artifacttype-list"),
    ],
)
def test_malformed_field_is_named(document: dict[str, Any], field: str) -> None:
    with pytest.raises(ManifestError) as info:
        parse_manifest(encode(document))
    message = str(info.value)
    assert field in message, message
    assert not isinstance(info.value, UnsupportedSchema1)


def test_layer_index_is_exact() -> None:
    # layers[1] broken must not be reported as layers[0] or layers[2].
    with pytest.raises(ManifestError) as info:
        parse_manifest(encode(_bad_layer(1, size=-1)))
    assert "layers[0]" not in str(info.value)
    assert "layers[2]" not in str(info.value)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"not json", id="not-json"),
        pytest.param(b"{", id="truncated"),
        pytest.param(b"\xff\xfe\xfa", id="invalid-utf8"),
        pytest.param(b"[]", id="array"),
        pytest.param(b"null", id="null"),
        pytest.param(b'"manifest"', id="string"),
        pytest.param(b"2", id="number"),
        pytest.param(b"{}", id="empty-object"),
        pytest.param(b'{"schemaVersion": 2}', id="only-schema-version"),
    ],
)
def test_not_a_manifest(data: bytes) -> None:
    with pytest.raises(ManifestError):
        parse_manifest(data)


def test_deeply_nested_json_is_a_manifest_error() -> None:
    # A few hundred KiB is well under any manifest size limit; the JSON decoder's recursion
    # limit must surface as a ManifestError (400), not a RecursionError (500).
    with pytest.raises(ManifestError):
        parse_manifest(b"[" * 100_000)
    with pytest.raises(ManifestError):
        parse_manifest(
            b'{"schemaVersion": 2, "annotations": ' + b'{"a": ' * 100_000 + b"1" + b"}" * 100_001
        )


def test_huge_integer_is_a_manifest_error() -> None:
    # Python refuses to convert integers longer than 4300 digits with a plain ValueError.
    document = (
        b'{"schemaVersion": 2, "mediaType": "'
        + mt.OCI_MANIFEST.encode()
        + b'", "config": {"size": '
        + b"9" * 5000
        + b"}}"
    )
    with pytest.raises(ManifestError):
        parse_manifest(document)


def test_bytes_are_not_reserialised() -> None:
    # Unusual but valid JSON (whitespace, key order, unicode escapes) parses fine.
    data = (
        b'{\n  "layers" : [ ],\n  "config":{"size":7,"digest":"'
        + str(CONFIG_DIGEST).encode()
        + b'",'
        b'"mediaType":"application/vnd.oci.image.config.v1+json"},\n'
        b'  "schemaVersion":2, "annotations": {"k": "\\u00e9"}}'
    )
    parsed = parse_manifest(data)
    assert parsed.media_type == mt.OCI_MANIFEST
    assert parsed.annotations == (("k", "é"),)


def test_parse_descriptor_directly() -> None:
    value = descriptor(LAYER_TAR, LAYER_DIGESTS[0], 0)
    assert parse_descriptor(value, "x") == Descriptor(LAYER_TAR, LAYER_DIGESTS[0], 0)
    with pytest.raises(ManifestError, match=r"^where\.size"):
        parse_descriptor({**value, "size": -1}, "where")


# -- properties --------------------------------------------------------------------------------

_text = st.text(max_size=12)
_keys = st.text(min_size=1, max_size=12)
_annotations = st.dictionaries(_keys, _text, max_size=3)
_unknown_fields = st.dictionaries(
    st.text(min_size=1, max_size=10).map(lambda k: "x-" + k),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda inner: (
            st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=4), inner, max_size=2)
        ),
        max_leaves=4,
    ),
    max_size=2,
)
_digests = st.builds(Digest.of, st.binary(max_size=8), st.sampled_from(["sha256", "sha512"]))
_platforms = st.builds(
    Platform,
    os=st.sampled_from(["linux", "windows", "freebsd"]),
    architecture=st.sampled_from(["amd64", "arm64", "arm", "s390x"]),
    variant=st.none() | st.sampled_from(["v6", "v7", "v8"]),
    os_version=st.none() | st.sampled_from(["10.0.17763.1", "6.2"]),
)


@st.composite
def descriptors(
    draw: st.DrawFn, *, with_platform: bool = False
) -> tuple[dict[str, Any], Descriptor]:
    """A random descriptor as JSON-ready dict, with the Descriptor it must parse to."""
    media_type = draw(
        st.sampled_from(
            [
                LAYER_TAR,
                DOCKER_LAYER,
                mt.OCI_MANIFEST,
                "application/x-" + draw(st.text("abc", min_size=1, max_size=5)),
            ]
        )
    )
    digest = draw(_digests)
    size = draw(st.integers(min_value=0, max_value=2**53))
    value: dict[str, Any] = {"mediaType": media_type, "digest": str(digest), "size": size}
    urls = draw(st.lists(st.text(max_size=20), max_size=2))
    if urls:
        value["urls"] = urls
    artifact_type = draw(st.none() | _text)
    if artifact_type is not None:
        value["artifactType"] = artifact_type
    platform = draw(st.none() | _platforms) if with_platform else None
    if platform is not None:
        value["platform"] = {"os": platform.os, "architecture": platform.architecture}
        if platform.variant:
            value["platform"]["variant"] = platform.variant
        if platform.os_version:
            value["platform"]["os.version"] = platform.os_version
    annotations = draw(_annotations)
    if annotations:
        value["annotations"] = annotations
    value.update(draw(_unknown_fields))
    expected = Descriptor(
        media_type=media_type,
        digest=digest,
        size=size,
        urls=tuple(urls),
        artifact_type=artifact_type,
        platform=platform,
        annotations=tuple(annotations.items()),
    )
    return value, expected


@st.composite
def documents(draw: st.DrawFn) -> tuple[dict[str, Any], ParsedManifest, str | None]:
    """A random valid manifest or index, the ParsedManifest it must give, and a Content-Type."""
    media_type = draw(st.sampled_from(sorted(mt.MANIFEST_TYPES)))
    is_index = media_type in mt.INDEXES
    document: dict[str, Any] = draw(_unknown_fields)
    document["schemaVersion"] = 2
    declare = draw(st.booleans())
    content_type: str | None
    if declare:
        document["mediaType"] = media_type
        content_type = draw(st.sampled_from([None, media_type, "application/json"]))
    else:
        # Without the field, the header tells the type; OCI types can also come from the shape.
        choices: list[str | None] = [media_type]
        if media_type in (mt.OCI_MANIFEST, mt.OCI_INDEX):
            choices.append(None)
        content_type = draw(st.sampled_from(choices))
    artifact_type = draw(st.none() | st.text(min_size=1, max_size=12))
    if artifact_type is not None:
        document["artifactType"] = artifact_type
    subject = draw(st.none() | descriptors())
    if subject is not None:
        document["subject"] = subject[0]
    annotations = draw(_annotations)
    if annotations:
        document["annotations"] = annotations
    config: Descriptor | None = None
    layers: tuple[Descriptor, ...] = ()
    children: tuple[Descriptor, ...] = ()
    if is_index:
        pairs = draw(st.lists(descriptors(with_platform=True), max_size=4))
        document["manifests"] = [p[0] for p in pairs]
        children = tuple(p[1] for p in pairs)
    else:
        config_value, config = draw(descriptors())
        pairs = draw(st.lists(descriptors(), max_size=4))
        document["config"] = config_value
        document["layers"] = [p[0] for p in pairs]
        layers = tuple(p[1] for p in pairs)
    expected = ParsedManifest(
        media_type=media_type,
        config=config,
        layers=layers,
        manifests=children,
        subject=None if subject is None else subject[1],
        artifact_type=artifact_type,
        annotations=tuple(annotations.items()),
    )
    return document, expected, content_type


@settings(max_examples=150)
@given(case=documents(), indent=st.none() | st.integers(min_value=0, max_value=4))
def test_property_generated_documents_parse_to_what_was_generated(
    case: tuple[dict[str, Any], ParsedManifest, str | None], indent: int | None
) -> None:
    document, expected, content_type = case
    parsed = parse_manifest(json.dumps(document, indent=indent).encode(), content_type)
    assert parsed == expected
    assert parsed.blobs == ((expected.config,) if expected.config else ()) + expected.layers
    assert parsed.is_index == (expected.media_type in mt.INDEXES)
    for d in (*parsed.layers, *parsed.manifests):
        assert d.is_foreign == bool(d.urls)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
_manifest_keys = st.sampled_from(
    [
        "schemaVersion",
        "mediaType",
        "config",
        "layers",
        "manifests",
        "subject",
        "annotations",
        "artifactType",
        "urls",
        "digest",
        "size",
        "platform",
    ]
)


@st.composite
def _mangled(draw: st.DrawFn) -> bytes:
    """A valid document with one subtree replaced by an arbitrary JSON value."""
    document, _, _ = draw(documents())
    target: Any = document
    path = draw(st.lists(_manifest_keys | st.integers(min_value=0, max_value=3), max_size=3))
    for step in path[:-1]:
        in_dict = isinstance(target, dict) and step in target
        in_list = isinstance(target, list) and isinstance(step, int) and step < len(target)
        if in_dict or in_list:
            target = target[step]
    if path and isinstance(target, dict) and isinstance(path[-1], str):
        target[path[-1]] = draw(_json_values)
    return json.dumps(document).encode()


@settings(max_examples=300)
@given(
    data=st.one_of(
        st.binary(max_size=256),
        _json_values.map(lambda v: json.dumps(v).encode()),
        st.dictionaries(_manifest_keys, _json_values, max_size=6).map(
            lambda v: json.dumps(v).encode()
        ),
        _mangled(),
    ),
    content_type=st.none()
    | st.sampled_from(sorted(mt.MANIFEST_TYPES | mt.SCHEMA1_TYPES | {"application/json"})),
)
def test_property_arbitrary_bytes_parse_or_raise_manifest_error(
    data: bytes, content_type: str | None
) -> None:
    try:
        parsed = parse_manifest(data, content_type)
    except ManifestError:
        return
    assert parsed.media_type in mt.MANIFEST_TYPES
    assert (parsed.config is None) == parsed.is_index
