"""S3 credentials from the AWS shared files: a profile's static keys, else its
`credential_process` (a real command, run the way the AWS CLI runs it), with failures named
without any credential."""

from __future__ import annotations

import json
import shlex
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from transship.storage import aws_profiles
from transship.storage.aws_profiles import (
    CredentialProcess,
    ProfileError,
    credential_process,
    static_keys,
)

SECRET = "process-secret-key"


def test_static_keys_come_from_the_shared_credentials_file(tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text(
        "[default]\naws_access_key_id = DEFAULTID\naws_secret_access_key = defaultsecret\n"
        "[ci]\naws_access_key_id = CIID\naws_secret_access_key = cisecret\n"
        "aws_session_token = citoken\n"
    )
    environ = {"AWS_SHARED_CREDENTIALS_FILE": str(credentials)}
    assert static_keys(environ) == {
        "access_key_id": "DEFAULTID",
        "secret_access_key": "defaultsecret",
    }
    assert static_keys({**environ, "AWS_PROFILE": "ci"}) == {
        "access_key_id": "CIID",
        "secret_access_key": "cisecret",
        "session_token": "citoken",
    }
    assert static_keys({**environ, "AWS_PROFILE": "absent"}) == {}
    assert static_keys({"AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}) == {}
    credentials.write_text("not an ini file = [\n")
    with pytest.raises(ProfileError, match="cannot parse") as caught:
        static_keys(environ)
    assert "ini" not in str(caught.value).split("cannot parse")[1].replace(str(credentials), "")


def helper(tmp_path: Path, output: str, *, exit_status: int = 0, sleep: float = 0) -> str:
    """A credential command (a Python script) that prints `output`, counts its runs in
    `runs`, and exits with `exit_status`; returned as a profile would spell it."""
    script = tmp_path / "helper script.py"  # a space: the command is split like shell words
    script.write_text(
        "import sys, time\n"
        f"open({str(tmp_path / 'runs')!r}, 'a').write('run\\n')\n"
        f"time.sleep({sleep})\n"
        f"sys.stdout.write({output!r})\n"
        f"sys.exit({exit_status})\n"
    )
    return f"{shlex.quote(sys.executable)} {shlex.quote(str(script))} --profile x"


def runs(tmp_path: Path) -> int:
    path = tmp_path / "runs"
    return len(path.read_text().splitlines()) if path.exists() else 0


def answer(**overrides: object) -> str:
    body: dict[str, object] = {
        "Version": 1,
        "AccessKeyId": "ASIAPROCESS",
        "SecretAccessKey": SECRET,
        "SessionToken": "process-token",
        "Expiration": "2099-01-01T00:00:00Z",
    }
    body.update(overrides)
    return json.dumps({k: v for k, v in body.items() if v is not None})


def test_the_process_is_found_in_either_file_and_static_keys_win(tmp_path: Path) -> None:
    credentials, config = tmp_path / "credentials", tmp_path / "config"
    config.write_text(
        "[default]\ncredential_process = default-helper\n"
        "[profile ci]\ncredential_process = ci-helper --role deploy\n"
    )
    credentials.write_text("[static]\naws_access_key_id = ID\naws_secret_access_key = s\n")
    environ = {"AWS_SHARED_CREDENTIALS_FILE": str(credentials), "AWS_CONFIG_FILE": str(config)}
    assert credential_process(environ) == CredentialProcess("default", "default-helper")
    ci = credential_process({**environ, "AWS_PROFILE": "ci"})
    assert ci == CredentialProcess("ci", "ci-helper --role deploy")
    assert credential_process({**environ, "AWS_PROFILE": "static"}) is None
    assert static_keys({**environ, "AWS_PROFILE": "static"})["access_key_id"] == "ID"
    # The credentials file's own credential_process comes first, as the AWS CLI reads it.
    credentials.write_text("[ci]\ncredential_process = from-credentials\n")
    ci = credential_process({**environ, "AWS_PROFILE": "ci"})
    assert ci == CredentialProcess("ci", "from-credentials")


async def test_the_command_s_answer_becomes_expiring_credentials(tmp_path: Path) -> None:
    provider = CredentialProcess("ci", helper(tmp_path, answer()))
    got = await provider()
    assert got == {
        "access_key_id": "ASIAPROCESS",
        "secret_access_key": SECRET,
        "token": "process-token",
        "expires_at": datetime(2099, 1, 1, tzinfo=UTC),
    }
    assert runs(tmp_path) == 1
    plain = await CredentialProcess(
        "ci", helper(tmp_path, answer(SessionToken=None, Expiration=None))
    )()
    assert plain["token"] is None and plain["expires_at"] is None


@pytest.mark.parametrize(
    ("output", "exit_status", "complaint"),
    [
        (SECRET, 0, "printed no JSON"),
        (answer(Version=2), 0, '"Version": 1'),
        (answer(AccessKeyId=None), 0, "no AccessKeyId and SecretAccessKey"),
        (answer(Expiration="tomorrow"), 0, "not an ISO 8601 time"),
        (answer(Expiration="2099-01-01T00:00:00"), 0, "without a time zone"),
        (answer(), 3, "exited with status 3"),
    ],
)
async def test_a_bad_answer_is_named_without_what_it_printed(
    tmp_path: Path, output: str, exit_status: int, complaint: str
) -> None:
    provider = CredentialProcess("ci", helper(tmp_path, output, exit_status=exit_status))
    with pytest.raises(ProfileError, match=complaint) as caught:
        await provider()
    message = str(caught.value)
    assert "AWS profile 'ci'" in message and SECRET not in message


async def test_a_missing_or_stuck_command_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ProfileError, match="cannot run '/no/such/helper'"):
        await CredentialProcess("ci", "/no/such/helper --x")()
    monkeypatch.setattr(aws_profiles, "PROCESS_TIMEOUT_SECONDS", 0.5)
    stuck = CredentialProcess("ci", helper(tmp_path, answer(), sleep=30))
    began = datetime.now(UTC)
    with pytest.raises(ProfileError, match=r"did not answer within 0\.5 s"):
        await stuck()
    assert datetime.now(UTC) - began < timedelta(seconds=10)  # killed, not waited for
