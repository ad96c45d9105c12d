"""`transship.oci.reference`: repository names, tags, image references, Docker Hub aliases."""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from transship.oci.digest import Digest, DigestError
from transship.oci.reference import (
    DEFAULT_TAG,
    DOCKER_HUB,
    MAX_REPOSITORY_LENGTH,
    ImageReference,
    InvalidReference,
    normalize_docker_hub,
    parse_tag_or_digest,
    validate_repository,
    validate_tag,
)

# The grammar of the OCI distribution spec, verbatim.
SPEC_NAME_REGEX = r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*"
SPEC_TAG_REGEX = r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}"

DIGEST = Digest.of(b"payload")
DIGEST_TEXT = str(DIGEST)
SHA512 = Digest.of(b"payload", "sha512")


# -- repository names --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "a",
        "0",
        "ubuntu",
        "library/ubuntu",
        "a/b/c/d/e",
        "my.app",
        "my_app",
        "my__app",
        "my-app",
        "my--app",
        "my---------app",
        "a.b_c__d-e--f",
        "0a/1b/2c",
        "foo.bar/baz",
        "123",
        "a" * MAX_REPOSITORY_LENGTH,
        "/".join(["ab"] * 85),  # 254 characters
    ],
)
def test_valid_repository_names(name: str) -> None:
    assert validate_repository(name) == name


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("", id="empty"),
        pytest.param("Ubuntu", id="uppercase"),
        pytest.param("library/Ubuntu", id="uppercase-second-component"),
        pytest.param("-app", id="leading-dash"),
        pytest.param("app-", id="trailing-dash"),
        pytest.param(".app", id="leading-dot"),
        pytest.param("app.", id="trailing-dot"),
        pytest.param("_app", id="leading-underscore"),
        pytest.param("app_", id="trailing-underscore"),
        pytest.param("a..b", id="double-dot"),
        pytest.param("a.-b", id="dot-dash"),
        pytest.param("a-.b", id="dash-dot"),
        pytest.param("a___b", id="triple-underscore"),
        pytest.param("a_-b", id="underscore-dash"),
        pytest.param("/a", id="leading-slash"),
        pytest.param("a/", id="trailing-slash"),
        pytest.param("a//b", id="double-slash"),
        pytest.param("a/./b", id="dot-component"),
        pytest.param("a/../b", id="dotdot-component"),
        pytest.param("a b", id="space"),
        pytest.param("a:b", id="colon"),
        pytest.param("a@b", id="at"),
        pytest.param("a\\b", id="backslash"),
        pytest.param("a\n", id="trailing-newline"),
        pytest.param("é", id="non-ascii"),
        pytest.param("a" * (MAX_REPOSITORY_LENGTH + 1), id="too-long"),
        pytest.param("/".join(["ab"] * 86), id="too-long-multi-component"),
    ],
)
def test_invalid_repository_names(name: str) -> None:
    with pytest.raises(InvalidReference):
        validate_repository(name)


def test_invalid_reference_is_a_value_error() -> None:
    assert issubclass(InvalidReference, ValueError)


# -- tags --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tag",
    [
        "latest",
        "v1.0.0",
        "1",
        "_",
        "_private",
        "A",
        "UPPER-case_Mixed.1",
        "a" * 128,
        "x" + "-" * 127,
        "3.11-slim",
    ],
)
def test_valid_tags(tag: str) -> None:
    assert validate_tag(tag) == tag


@pytest.mark.parametrize(
    "tag",
    [
        pytest.param("", id="empty"),
        pytest.param(".hidden", id="leading-dot"),
        pytest.param("-dash", id="leading-dash"),
        pytest.param("a" * 129, id="too-long"),
        pytest.param("a/b", id="slash"),
        pytest.param("a:b", id="colon"),
        pytest.param("a@b", id="at"),
        pytest.param("a b", id="space"),
        pytest.param("a+b", id="plus"),
        pytest.param("latest\n", id="trailing-newline"),
        pytest.param("ünïcode", id="non-ascii"),
    ],
)
def test_invalid_tags(tag: str) -> None:
    with pytest.raises(InvalidReference):
        validate_tag(tag)


# -- ImageReference.parse ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "host", "repository", "tag", "digest"),
    [
        ("ubuntu", None, "ubuntu", None, None),
        ("ubuntu:22.04", None, "ubuntu", "22.04", None),
        ("library/ubuntu", None, "library/ubuntu", None, None),
        ("a/b/c:tag", None, "a/b/c", "tag", None),
        (f"ubuntu@{DIGEST_TEXT}", None, "ubuntu", None, DIGEST),
        (f"ubuntu:22.04@{DIGEST_TEXT}", None, "ubuntu", "22.04", DIGEST),
        (f"ubuntu@{SHA512}", None, "ubuntu", None, SHA512),
        ("docker.io/library/ubuntu", "docker.io", "library/ubuntu", None, None),
        (
            "mcr.microsoft.com/dotnet/runtime:8.0",
            "mcr.microsoft.com",
            "dotnet/runtime",
            "8.0",
            None,
        ),
        ("Registry.Example.COM/app", "Registry.Example.COM", "app", None, None),
        ("localhost/app", "localhost", "app", None, None),
        ("localhost:5000/app", "localhost:5000", "app", None, None),
        ("localhost:5000/team/app:v2", "localhost:5000", "team/app", "v2", None),
        ("myregistry:5000/app", "myregistry:5000", "app", None, None),
        ("127.0.0.1:5000/app:1", "127.0.0.1:5000", "app", "1", None),
        ("[::1]/app", "[::1]", "app", None, None),
        ("[::1]:5000/app:tag", "[::1]:5000", "app", "tag", None),
        ("[2001:db8::1]:443/ns/app", "[2001:db8::1]:443", "ns/app", None, None),
        (
            f"my.registry.localhost:5000/ns/app:v1@{DIGEST_TEXT}",
            "my.registry.localhost:5000",
            "ns/app",
            "v1",
            DIGEST,
        ),
        # A first component without '.', ':' or 'localhost' is part of the repository.
        ("myregistry/app", None, "myregistry/app", None, None),
        ("library/ubuntu:latest", None, "library/ubuntu", "latest", None),
    ],
)
def test_parse(
    text: str, host: str | None, repository: str, tag: str | None, digest: Digest | None
) -> None:
    ref = ImageReference.parse(text)
    assert ref == ImageReference(host, repository, tag, digest)
    assert str(ref) == text


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("Ubuntu", id="uppercase-repo"),
        pytest.param("ubuntu:", id="empty-tag"),
        pytest.param("ubuntu:.bad", id="tag-leading-dot"),
        pytest.param("ubuntu:" + "a" * 129, id="tag-too-long"),
        pytest.param("ubuntu@", id="empty-digest"),
        pytest.param("ubuntu@sha256:abc", id="short-digest"),
        pytest.param("ubuntu@md5:d41d8cd98f00b204e9800998ecf8427e", id="unknown-algorithm"),
        pytest.param(f"ubuntu@{DIGEST_TEXT.upper()}", id="uppercase-digest"),
        pytest.param(f"ubuntu@{DIGEST_TEXT}@{DIGEST_TEXT}", id="two-digests"),
        pytest.param(f"@{DIGEST_TEXT}", id="digest-only"),
        pytest.param("localhost:5000/", id="host-only"),
        pytest.param("example.com//app", id="empty-component"),
        pytest.param("/app", id="leading-slash"),
        pytest.param("localhost:123456/app", id="port-too-long"),
        pytest.param("Local_Host.com/app", id="uppercase-non-host-component"),
        pytest.param("[::1/app", id="unclosed-ipv6"),
        pytest.param("a:b/c", id="colon-in-non-host-component"),
        pytest.param("app:tag:tag", id="two-tags"),
        pytest.param("docker.io/" + "a" * 256, id="repo-too-long"),
    ],
)
def test_parse_refuses(text: str) -> None:
    with pytest.raises(InvalidReference):
        ImageReference.parse(text)


def test_parse_host_only_no_slash_is_a_repo_with_tag() -> None:
    # Docker's rule: without a '/', there is no host; "localhost:5000" is repo + tag.
    ref = ImageReference.parse("localhost:5000")
    assert ref == ImageReference(None, "localhost", "5000", None)


def test_parse_invalid_digest_names_the_reference() -> None:
    with pytest.raises(InvalidReference, match="ubuntu@sha256:abc"):
        ImageReference.parse("ubuntu@sha256:abc")


@pytest.mark.parametrize(
    ("text", "repository", "tag"),
    [
        ("docker.io/library/ubuntu", "docker.io/library/ubuntu", None),
        ("my.registry.io/app:v1", "my.registry.io/app", "v1"),
        ("localhost/app", "localhost/app", None),
        ("ubuntu:22.04", "ubuntu", "22.04"),
    ],
)
def test_parse_without_host(text: str, repository: str, tag: str | None) -> None:
    ref = ImageReference.parse(text, allow_host=False)
    assert ref.host is None
    assert ref.repository == repository
    assert ref.tag == tag
    assert str(ref) == text


@pytest.mark.parametrize("text", ["localhost:5000/app", "[::1]/app", "Registry.io/app"])
def test_parse_without_host_refuses_host_syntax(text: str) -> None:
    with pytest.raises(InvalidReference):
        ImageReference.parse(text, allow_host=False)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ubuntu", DEFAULT_TAG),
        ("ubuntu:22.04", "22.04"),
        (f"ubuntu@{DIGEST_TEXT}", Digest.parse(DIGEST_TEXT)),
        (f"ubuntu:22.04@{DIGEST_TEXT}", Digest.parse(DIGEST_TEXT)),  # the digest wins
        ("localhost:5000/ubuntu", DEFAULT_TAG),
    ],
)
def test_reference_property(text: str, expected: Digest | str) -> None:
    assert ImageReference.parse(text).reference == expected


def test_default_tag_is_latest() -> None:
    assert DEFAULT_TAG == "latest"


# -- Docker Hub ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "repository", "expected"),
    [
        ("docker.io", "ubuntu", (DOCKER_HUB, "library/ubuntu")),
        ("index.docker.io", "ubuntu", (DOCKER_HUB, "library/ubuntu")),
        ("registry-1.docker.io", "ubuntu", (DOCKER_HUB, "library/ubuntu")),
        ("Docker.IO", "ubuntu", (DOCKER_HUB, "library/ubuntu")),
        ("docker.io", "library/ubuntu", (DOCKER_HUB, "library/ubuntu")),
        ("index.docker.io", "bitnami/redis", (DOCKER_HUB, "bitnami/redis")),
        ("registry-1.docker.io", "a/b/c", (DOCKER_HUB, "a/b/c")),
        # Other hosts are left alone, one-part names included.
        ("ghcr.io", "ubuntu", ("ghcr.io", "ubuntu")),
        ("mcr.microsoft.com", "dotnet/runtime", ("mcr.microsoft.com", "dotnet/runtime")),
        ("localhost:5000", "app", ("localhost:5000", "app")),
        ("docker.io.evil.com", "ubuntu", ("docker.io.evil.com", "ubuntu")),
        ("notdocker.io", "ubuntu", ("notdocker.io", "ubuntu")),
    ],
)
def test_normalize_docker_hub(host: str, repository: str, expected: tuple[str, str]) -> None:
    assert normalize_docker_hub(host, repository) == expected
    assert DOCKER_HUB == "docker.io"


# -- properties --------------------------------------------------------------------------------

# The spec's grammar with its unbounded repetitions capped (`+` → {1,8}, `)*` → {0,4}): the
# same language up to ~200 characters, generated ~10x faster than the unbounded regex, whose
# average example is longer than the 255-character limit. Long names have table cases above.
BOUNDED_NAME_REGEX = SPEC_NAME_REGEX.replace("+", "{1,8}").replace(")*", "){0,4}")
names = st.from_regex(BOUNDED_NAME_REGEX, fullmatch=True).filter(
    lambda n: len(n) <= MAX_REPOSITORY_LENGTH
)
tags = st.from_regex(SPEC_TAG_REGEX, fullmatch=True)
digests = st.builds(Digest.of, st.binary(max_size=64), st.sampled_from(["sha256", "sha512"]))
hosts = st.sampled_from(
    [
        "localhost",
        "localhost:5000",
        "registry.example.com",
        "registry.example.com:443",
        "127.0.0.1:5000",
        "[::1]:5000",
        "[fe80::1]",
    ]
)


@settings(max_examples=60)  # from_regex is slow; every run draws new names
@given(name=names)
def test_property_grammar_names_are_valid(name: str) -> None:
    assert re.fullmatch(SPEC_NAME_REGEX, name)  # the bounded grammar is a subset of the spec's
    assert validate_repository(name) == name


@settings(max_examples=60)  # from_regex is slow; every run draws new names
@given(name=names, tag=st.none() | tags, digest=st.none() | digests)
def test_property_grammar_names_round_trip_without_host(
    name: str, tag: str | None, digest: Digest | None
) -> None:
    text = name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
    ref = ImageReference.parse(text, allow_host=False)
    assert ref == ImageReference(None, name, tag, digest)
    assert str(ref) == text
    assert ImageReference.parse(str(ref), allow_host=False) == ref


@settings(max_examples=60)  # from_regex is slow; every run draws new names
@given(host=hosts, name=names, tag=st.none() | tags, digest=st.none() | digests)
def test_property_grammar_names_round_trip_with_host(
    host: str, name: str, tag: str | None, digest: Digest | None
) -> None:
    text = f"{host}/{name}" + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
    ref = ImageReference.parse(text)
    assert ref == ImageReference(host, name, tag, digest)
    assert str(ref) == text
    assert ImageReference.parse(str(ref)) == ref


@settings(max_examples=60)  # from_regex is slow; every run draws new names
@given(name=names)
def test_property_hostless_names_round_trip_with_host_detection(name: str) -> None:
    # With host detection on, a first component that looks like a host becomes the host; the
    # text still round-trips exactly.
    ref = ImageReference.parse(name)
    assert str(ref) == name
    if "/" not in name:
        assert ref == ImageReference(None, name, None, None)


@settings(max_examples=60)  # from_regex is slow; every run draws new names
@given(
    name=names,
    bad=st.sampled_from(["A", "-", ".", "_", "/", "__-", " "]),
    position=st.integers(min_value=0),
)
def test_property_breaking_the_grammar_is_refused(name: str, bad: str, position: int) -> None:
    # Inserting an uppercase letter anywhere, or a separator at either end, breaks a valid name.
    if bad == "A":
        index = position % (len(name) + 1)
        broken = name[:index] + bad + name[index:]
    else:
        broken = bad + name if position % 2 else name + bad
    assume(broken != name)
    with pytest.raises(InvalidReference):
        validate_repository(broken)


_REFERENCE_ALPHABET = "abcXYZ019.:/@_-[]+ \n" + "sha256" + "é"


@given(
    text=st.one_of(
        st.text(),
        st.text(alphabet=_REFERENCE_ALPHABET),
        st.builds(
            lambda a, b: a + "@" + b,
            st.text(alphabet=_REFERENCE_ALPHABET),
            st.sampled_from([DIGEST_TEXT, str(SHA512), "sha256:", "x"]),
        ),
    ),
    allow_host=st.booleans(),
)
def test_property_arbitrary_text_parses_or_raises_invalid_reference(
    text: str, allow_host: bool
) -> None:
    try:
        ref = ImageReference.parse(text, allow_host=allow_host)
    except InvalidReference:
        return
    # Whatever parses is valid by construction and prints back to the same text.
    assert validate_repository(ref.repository) == ref.repository
    if ref.tag is not None:
        assert validate_tag(ref.tag) == ref.tag
    assert str(ref) == text
    assert ImageReference.parse(str(ref), allow_host=allow_host) == ref


# -- a manifest reference: a digest or a tag, parsed once ---------------------------------------
def test_parse_tag_or_digest() -> None:
    digest = Digest.of(b"x")
    assert parse_tag_or_digest(str(digest)) == digest
    assert isinstance(parse_tag_or_digest(str(digest)), Digest)
    assert parse_tag_or_digest("v1.0") == "v1.0"


@pytest.mark.parametrize("text", ["sha256:nothex", "md5:" + "0" * 32, "not-a-digest:but-has-colon"])
def test_parse_tag_or_digest_refuses_a_malformed_digest(text: str) -> None:
    with pytest.raises(DigestError):
        parse_tag_or_digest(text)


@pytest.mark.parametrize("text", ["", "-bad", "a" * 129])
def test_parse_tag_or_digest_refuses_a_malformed_tag(text: str) -> None:
    with pytest.raises(InvalidReference):
        parse_tag_or_digest(text)
