"""Settings: defaults, TOML file, environment, explicit values, and clear validation errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from transship.config import Settings, default_data_dir


def test_defaults_need_no_external_service(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    settings = Settings()
    assert settings.hosts == ("127.0.0.1", "::1")
    assert settings.port == 5000
    assert settings.data_dir == tmp_path / "transship" == default_data_dir()
    assert settings.effective_database_url == f"sqlite:///{tmp_path / 'transship' / 'metadata.db'}"


def test_environment_overrides_the_file_and_arguments_override_both(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "transship.toml"
    config.write_text('port = 6000\nhosts = ["0.0.0.0"]\ngc_interval_seconds = 5\n')
    monkeypatch.setenv("TRANSSHIP_CONFIG", str(config))
    assert Settings().port == 6000
    assert Settings().hosts == ("0.0.0.0",)
    monkeypatch.setenv("TRANSSHIP_PORT", "7000")
    monkeypatch.setenv("TRANSSHIP_HOSTS", "127.0.0.1, ::1")
    assert Settings().port == 7000
    assert Settings().hosts == ("127.0.0.1", "::1")
    assert Settings(port=8000).port == 8000
    assert Settings().gc_interval_seconds == 5


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("port", 70000),
        ("max_manifest_bytes", 0),
        ("gc_interval_seconds", -1),
        ("credential_hash_cost", 1000),
        ("credential_hash_cost", 2**21),
    ],
)
def test_invalid_values_name_the_setting(field: str, value: int) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(**{field: value})
    assert field in str(caught.value)


def test_unknown_settings_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("prot = 5000\n")
    monkeypatch.setenv("TRANSSHIP_CONFIG", str(config))
    with pytest.raises(ValidationError, match="prot"):
        Settings()


def test_the_hash_cost_defaults_to_scrypts_recommended_n_and_may_be_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The test run lowers it for every server it starts (tests/conftest.py).
    monkeypatch.delenv("TRANSSHIP_CREDENTIAL_HASH_COST", raising=False)
    assert Settings().credential_hash_cost == 16384
    monkeypatch.setenv("TRANSSHIP_CREDENTIAL_HASH_COST", "131072")
    assert Settings().credential_hash_cost == 131072
