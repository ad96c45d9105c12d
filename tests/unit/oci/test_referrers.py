"""The pure helpers of referrers: tag names, the referrers index, Link headers, the
artifact-type filter and media-type syntax."""

from __future__ import annotations

import json

import pytest

from transship.oci.digest import Digest
from transship.oci.manifest import ManifestError
from transship.oci.reference import validate_tag
from transship.oci.referrers import (
    cosign_tags,
    fallback_tag,
    is_media_type,
    matches_types,
    next_link,
    parse_referrers_index,
)

SHA256 = Digest("sha256", "a" * 64)
SHA512 = Digest("sha512", "b" * 128)


def test_fallback_and_cosign_tags() -> None:
    assert fallback_tag(SHA256) == "sha256-" + "a" * 64
    assert cosign_tags(SHA256) == tuple(f"sha256-{'a' * 64}.{s}" for s in ("sig", "att", "sbom"))
    # A sha512 digest is cut to 64 characters, so the tag stays within the grammar.
    long = fallback_tag(SHA512)
    assert long == "sha512-" + "b" * 64
    validate_tag(long)
    for tag in cosign_tags(SHA256):
        validate_tag(tag)


def test_referrers_index_lists_descriptors() -> None:
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": str(SHA256),
                "size": 10,
                "artifactType": "application/spdx+json",
            }
        ],
    }
    (one,) = parse_referrers_index(json.dumps(index).encode())
    assert one.digest == SHA256 and one.artifact_type == "application/spdx+json"
    with pytest.raises(ManifestError, match="must be an image index"):
        parse_referrers_index(
            json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "a/b", "digest": str(SHA256), "size": 1},
                    "layers": [],
                }
            ).encode()
        )
    with pytest.raises(ManifestError):
        parse_referrers_index(b"not json")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ('</v2/a/referrers/x?last=1>; rel="next"', "/v2/a/referrers/x?last=1"),
        ('<https://h/p?n=2>; rel="prev", <https://h/p?n=3>; rel=next', "https://h/p?n=3"),
        ('</v2/x>; rel="last"', None),
        ('garbage; rel="next"', None),
    ],
)
def test_next_link(header: str | None, expected: str | None) -> None:
    assert next_link(header) == expected


def test_artifact_type_filter() -> None:
    wanted = frozenset({"application/spdx+json"})
    assert matches_types("anything/else", (), None)
    assert matches_types("application/spdx+json", (), wanted)
    assert not matches_types("application/vnd.cyclonedx+json", (), wanted)
    assert not matches_types(None, (), wanted)
    # cosign's manifests have no artifact type: their layers' media types count.
    sig = frozenset({"application/vnd.dev.cosign.simplesigning.v1+json"})
    assert matches_types(
        "application/vnd.oci.image.config.v1+json",
        ("application/vnd.dev.cosign.simplesigning.v1+json",),
        sig,
    )


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("application/spdx+json", True),
        ("application/vnd.dev.cosign.simplesigning.v1+json", True),
        ("text/plain", True),
        ("application/json; charset=utf-8", False),
        ("not a media type", False),
        ("application/", False),
        ("/json", False),
        ("", False),
        ("a/" + "b" * 128, False),
    ],
)
def test_media_type_syntax(text: str, ok: bool) -> None:
    assert is_media_type(text) is ok
