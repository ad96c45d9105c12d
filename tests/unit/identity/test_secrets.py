"""Stored-credential hashing, generated secrets, sealing, and private files."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from transship.identity import secrets as s


def test_a_hash_verifies_its_secret_only() -> None:
    encoded = s.hash_secret("correct horse")
    assert encoded.startswith("scrypt$") and "correct horse" not in encoded
    assert s.verify_secret("correct horse", encoded)
    assert not s.verify_secret("correct horsf", encoded)
    assert s.hash_secret("correct horse") != encoded  # salted


@pytest.mark.parametrize("encoded", ["", "scrypt$1$2", "bcrypt$16384$8$1$AA$AA", "scrypt$x$8$1$AA$AA"])
def test_a_malformed_hash_verifies_nothing(encoded: str) -> None:
    assert not s.verify_secret("anything", encoded)


def test_generated_secrets_never_start_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    values: Iterator[str] = iter(["-looks-like-an-option", "-again", "fine-value"])
    monkeypatch.setattr(s.secrets, "token_urlsafe", lambda n: next(values))
    assert s.new_secret() == "fine-value"


def test_generated_secrets_are_long_and_distinct() -> None:
    made = {s.new_secret() for _ in range(200)}
    assert len(made) == 200 and all(len(v) >= 43 and not v.startswith("-") for v in made)


def test_sealed_secrets_open_with_their_key_only(tmp_path: Path) -> None:
    box = s.SecretBox.from_key_file(tmp_path / "service.key")
    assert stat.S_IMODE((tmp_path / "service.key").stat().st_mode) == 0o600
    sealed = box.seal(b"upstream password")
    assert b"upstream password" not in sealed
    assert box.open(sealed) == b"upstream password"
    assert s.SecretBox.from_key_file(tmp_path / "service.key").open(sealed) == b"upstream password"
    with pytest.raises(ValueError, match="cannot be opened"):
        s.SecretBox.from_key_file(tmp_path / "other.key").open(sealed)


def test_private_files_are_created_readable_by_the_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "deeper" / "owner-credential.json"
    s.write_private_file(path, "{}\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
