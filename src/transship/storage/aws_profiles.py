"""S3 credentials from the AWS shared files, as the AWS CLI finds them after the
environment: the static keys of the profile in the credentials file, else the profile's
`credential_process` (in the credentials file or the config file), a command that prints
temporary keys as JSON (aws-vault, SSO helpers, a vault's CLI…).

The profile is `AWS_PROFILE` (else `default`); the files are `AWS_SHARED_CREDENTIALS_FILE`
(else `~/.aws/credentials`) and `AWS_CONFIG_FILE` (else `~/.aws/config`, where a profile's
section is `[profile NAME]`, and `[default]` for the default). Profiles that assume a role
(`role_arn`) or use SSO directly are not followed: give them a `credential_process`.

No message names a key, nor what the command printed (its output is the secret).
"""

from __future__ import annotations

import asyncio
import configparser
import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from transship.storage.base import StorageError

if TYPE_CHECKING:
    from obstore.store import S3Credential

# A credential command that has not answered after this long is stuck (a prompt?).
PROCESS_TIMEOUT_SECONDS = 60.0


class ProfileError(StorageError):
    """The shared files or the credential command could not give credentials; the message
    names the file, profile or command, never a credential."""


def _profile(environ: Mapping[str, str]) -> str:
    return environ.get("AWS_PROFILE") or "default"


def _read(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path)
    except (configparser.Error, UnicodeDecodeError):
        raise ProfileError(f"cannot parse {path}") from None
    return parser


def _home(environ: Mapping[str, str]) -> Path:
    return Path(environ.get("HOME") or Path.home())


def credentials_file_section(environ: Mapping[str, str]) -> Mapping[str, str]:
    """The profile's section of the shared credentials file; empty when absent. Raises
    ProfileError when the file cannot be parsed."""
    default = _home(environ) / ".aws" / "credentials"
    parser = _read(Path(environ.get("AWS_SHARED_CREDENTIALS_FILE") or default))
    profile = _profile(environ)
    return parser[profile] if parser.has_section(profile) else {}


def config_file_section(environ: Mapping[str, str]) -> Mapping[str, str]:
    """The profile's section of the config file (`[profile NAME]`, or `[default]`); empty
    when absent. Raises ProfileError when the file cannot be parsed."""
    parser = _read(Path(environ.get("AWS_CONFIG_FILE") or _home(environ) / ".aws" / "config"))
    profile = _profile(environ)
    for name in (f"profile {profile}", profile) if profile != "default" else ("default",):
        if parser.has_section(name):
            return parser[name]
    return {}


def static_keys(environ: Mapping[str, str]) -> dict[str, str]:
    """The profile's static keys in the credentials file, as obstore config keys; empty
    when it has none. Raises ProfileError."""
    section = credentials_file_section(environ)
    return {
        key: section[name]
        for key, name in (
            ("access_key_id", "aws_access_key_id"),
            ("secret_access_key", "aws_secret_access_key"),
            ("session_token", "aws_session_token"),
        )
        if section.get(name)
    }


def credential_process(environ: Mapping[str, str]) -> CredentialProcess | None:
    """The profile's `credential_process` (the credentials file's first, as the AWS CLI
    reads them), or None. Raises ProfileError."""
    for section in (credentials_file_section(environ), config_file_section(environ)):
        command = section.get("credential_process", "").strip()
        if command:
            return CredentialProcess(_profile(environ), command)
    return None


@dataclass(frozen=True, slots=True)
class CredentialProcess:
    """An obstore `S3CredentialProvider` running the profile's command: called when the
    client needs keys and again before the ones it has expire (`Expiration`); keys without
    an expiry are kept for the life of the process."""

    profile: str
    command: str

    def _failed(self, why: str) -> ProfileError:
        return ProfileError(f"the credential_process of AWS profile {self.profile!r} {why}")

    async def __call__(self) -> S3Credential:
        """Raises ProfileError when the command cannot run, fails, times out or prints
        something other than version-1 credentials."""
        argv = shlex.split(self.command)
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
            )
        except OSError as exc:
            raise self._failed(f"cannot run {argv[0]!r}: {exc.strerror}") from None
        try:
            async with asyncio.timeout(PROCESS_TIMEOUT_SECONDS):
                output, _ = await process.communicate()
        except TimeoutError:
            process.kill()
            await process.wait()
            raise self._failed(f"did not answer within {PROCESS_TIMEOUT_SECONDS:g} s") from None
        if process.returncode != 0:
            raise self._failed(f"exited with status {process.returncode}")
        return self._parse(output)

    def _parse(self, output: bytes) -> S3Credential:
        try:
            answer = json.loads(output)
        except (ValueError, UnicodeDecodeError):
            raise self._failed("printed no JSON") from None
        if not isinstance(answer, dict) or answer.get("Version") != 1:
            raise self._failed('printed JSON without "Version": 1')
        key_id, secret = answer.get("AccessKeyId"), answer.get("SecretAccessKey")
        if not (isinstance(key_id, str) and key_id and isinstance(secret, str) and secret):
            raise self._failed("printed no AccessKeyId and SecretAccessKey")
        token = answer.get("SessionToken")
        expires_at = None
        if answer.get("Expiration") is not None:
            try:
                expires_at = datetime.fromisoformat(str(answer["Expiration"]))
            except ValueError:
                raise self._failed("printed an Expiration that is not an ISO 8601 time") from None
            if expires_at.tzinfo is None:
                raise self._failed("printed an Expiration without a time zone")
        return {
            "access_key_id": key_id,
            "secret_access_key": secret,
            "token": token if isinstance(token, str) and token else None,
            "expires_at": expires_at,
        }
