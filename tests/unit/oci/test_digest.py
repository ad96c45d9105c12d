"""`transship.oci.digest`: parsing, computing and incremental hashing of content digests."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transship.oci.digest import (
    SUPPORTED_ALGORITHMS,
    Digest,
    DigestError,
    new_hasher,
)

SHA256_EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
SHA512_EMPTY = (
    "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
    "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"
)
ALGORITHMS = ("sha256", "sha512")


# -- parse: accepted ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "algorithm", "encoded"),
    [
        (f"sha256:{SHA256_EMPTY}", "sha256", SHA256_EMPTY),
        (f"sha512:{SHA512_EMPTY}", "sha512", SHA512_EMPTY),
        ("sha256:" + "0" * 64, "sha256", "0" * 64),
        ("sha512:" + "f" * 128, "sha512", "f" * 128),
    ],
)
def test_parse_valid(text: str, algorithm: str, encoded: str) -> None:
    digest = Digest.parse(text)
    assert digest == Digest(algorithm, encoded)
    assert digest.algorithm == algorithm
    assert digest.encoded == encoded
    assert str(digest) == text


def test_supported_algorithms_are_exactly_sha256_and_sha512() -> None:
    assert frozenset({"sha256", "sha512"}) == SUPPORTED_ALGORITHMS


# -- parse: refused ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param(":", id="colon-only"),
        pytest.param(SHA256_EMPTY, id="missing-colon-and-algorithm"),
        pytest.param("sha256" + SHA256_EMPTY, id="missing-colon"),
        pytest.param("sha256:", id="empty-encoded"),
        pytest.param(f":{SHA256_EMPTY}", id="empty-algorithm"),
        pytest.param("sha256:" + SHA256_EMPTY.upper(), id="uppercase-hex"),
        pytest.param("sha256:" + SHA256_EMPTY[:-1] + "A", id="one-uppercase-hex"),
        pytest.param("SHA256:" + SHA256_EMPTY, id="uppercase-algorithm"),
        pytest.param("sha256:" + SHA256_EMPTY[:-1], id="sha256-63-chars"),
        pytest.param("sha256:" + SHA256_EMPTY + "0", id="sha256-65-chars"),
        pytest.param("sha256:" + SHA512_EMPTY, id="sha256-with-sha512-length"),
        pytest.param("sha512:" + SHA256_EMPTY, id="sha512-with-sha256-length"),
        pytest.param("sha512:" + SHA512_EMPTY[:-1], id="sha512-127-chars"),
        pytest.param("sha256:" + "g" * 64, id="non-hex-letters"),
        pytest.param("sha256:" + "=" * 64, id="grammar-chars-not-hex"),
        pytest.param("md5:d41d8cd98f00b204e9800998ecf8427e", id="md5"),
        pytest.param("sha1:da39a3ee5e6b4b0d3255bfef95601890afd80709", id="sha1"),
        pytest.param("sha384:" + "0" * 96, id="sha384"),
        pytest.param("blake3:" + "0" * 64, id="blake3"),
        pytest.param("sha256+b64u:" + "0" * 64, id="registered-grammar-unknown-alg"),
        pytest.param(f" sha256:{SHA256_EMPTY}", id="leading-space"),
        pytest.param(f"sha256:{SHA256_EMPTY} ", id="trailing-space"),
        pytest.param(f"sha256:{SHA256_EMPTY}\n", id="trailing-newline"),
        pytest.param(f"sha256:{SHA256_EMPTY}:00", id="two-colons"),
        pytest.param(f"sha256::{SHA256_EMPTY}", id="double-colon"),
        pytest.param(f"sha256:{SHA256_EMPTY[:32]}/{SHA256_EMPTY[33:]}", id="slash"),
        pytest.param("sha256:../../../../etc/passwd", id="path-traversal"),
        pytest.param("sha256:" + "\u0660" * 64, id="unicode-digits"),
    ],
)
def test_parse_refuses(text: str) -> None:
    with pytest.raises(DigestError):
        Digest.parse(text)


def test_parse_error_names_the_unsupported_algorithm() -> None:
    with pytest.raises(DigestError, match="md5"):
        Digest.parse("md5:d41d8cd98f00b204e9800998ecf8427e")


def test_digest_error_is_a_value_error() -> None:
    # Callers that only know ValueError (pydantic validators…) still catch it.
    assert issubclass(DigestError, ValueError)


# -- of / new_hasher -------------------------------------------------------------------------


def test_of_defaults_to_sha256() -> None:
    assert Digest.of(b"") == Digest("sha256", SHA256_EMPTY)
    assert str(Digest.of(b"hello")) == "sha256:" + hashlib.sha256(b"hello").hexdigest()


def test_of_sha512() -> None:
    assert Digest.of(b"", "sha512") == Digest("sha512", SHA512_EMPTY)
    assert Digest.of(b"hello", "sha512").encoded == hashlib.sha512(b"hello").hexdigest()


@pytest.mark.parametrize("algorithm", ["md5", "sha1", "SHA256", "sha384", "", "sha3_256"])
def test_of_refuses_unsupported_algorithm(algorithm: str) -> None:
    with pytest.raises(DigestError):
        Digest.of(b"x", algorithm)


@pytest.mark.parametrize("algorithm", ["md5", "sha1", "SHA256", "sha384", "", "blake2b"])
def test_new_hasher_refuses_unsupported_algorithm(algorithm: str) -> None:
    with pytest.raises(DigestError):
        new_hasher(algorithm)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_new_hasher_is_incremental(algorithm: str) -> None:
    hasher = new_hasher(algorithm)
    for part in (b"he", b"", b"llo", b" world"):
        hasher.update(part)
    assert hasher.hexdigest() == Digest.of(b"hello world", algorithm).encoded


def test_new_hasher_defaults_to_sha256() -> None:
    hasher = new_hasher()
    hasher.update(b"abc")
    assert hasher.hexdigest() == hashlib.sha256(b"abc").hexdigest()


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_new_hasher_copy_is_independent(algorithm: str) -> None:
    original = new_hasher(algorithm)
    original.update(b"prefix-")
    clone = original.copy()
    # The copy carries the state so far…
    assert clone.hexdigest() == original.hexdigest() == Digest.of(b"prefix-", algorithm).encoded
    # …and from then on the two evolve independently, in both directions.
    clone.update(b"clone")
    assert original.hexdigest() == Digest.of(b"prefix-", algorithm).encoded
    original.update(b"original")
    assert clone.hexdigest() == Digest.of(b"prefix-clone", algorithm).encoded
    assert original.hexdigest() == Digest.of(b"prefix-original", algorithm).encoded


def test_hexdigest_does_not_finalise_the_hasher() -> None:
    hasher = new_hasher()
    hasher.update(b"a")
    hasher.hexdigest()
    hasher.update(b"b")
    assert hasher.hexdigest() == Digest.of(b"ab").encoded


# -- value semantics ----------------------------------------------------------------------------


def test_digest_is_frozen_and_hashable() -> None:
    digest = Digest.parse(f"sha256:{SHA256_EMPTY}")
    with pytest.raises(AttributeError):
        digest.encoded = "0" * 64  # type: ignore[misc]
    assert {digest, Digest.of(b"")} == {digest}


def test_digests_of_different_algorithms_differ() -> None:
    assert Digest.of(b"x", "sha256") != Digest.of(b"x", "sha512")


# -- properties --------------------------------------------------------------------------------


@given(data=st.binary(max_size=4096), algorithm=st.sampled_from(ALGORITHMS))
def test_property_of_round_trips_through_parse(data: bytes, algorithm: str) -> None:
    digest = Digest.of(data, algorithm)
    assert Digest.parse(str(digest)) == digest
    assert digest.encoded == hashlib.new(algorithm, data).hexdigest()


_DIGEST_ALPHABET = "abcdefABCDEF0123456789:=_-+.gz \n/"


@given(
    text=st.one_of(
        st.text(),
        st.text(alphabet=_DIGEST_ALPHABET),
        st.builds(
            lambda alg, rest: f"{alg}:{rest}",
            st.sampled_from([*ALGORITHMS, "md5", "SHA256", ""]),
            st.text(alphabet=_DIGEST_ALPHABET),
        ),
        st.builds(
            lambda alg, n: f"{alg}:{'a' * n}",
            st.sampled_from(ALGORITHMS),
            st.integers(min_value=0, max_value=200),
        ),
    )
)
def test_property_parse_round_trips_or_raises_digest_error(text: str) -> None:
    try:
        digest = Digest.parse(text)
    except DigestError:
        return
    assert str(digest) == text
    assert digest.algorithm in SUPPORTED_ALGORITHMS
    assert Digest.parse(str(digest)) == digest
