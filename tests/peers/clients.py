"""Thin wrappers around the container clients tests drive: skopeo, podman, the docker CLI.

Contracts:

- Every call has a timeout (default 180 s); a call that overruns has its whole process
  group killed and raises :class:`CommandError`.
- A non-zero exit raises :class:`CommandError` carrying argv, exit code, stdout and stderr
  (pass ``check=False`` to get the :class:`CommandResult` instead).
- Each wrapper is isolated in its own work dir: its own auth file, registries.conf,
  signature policy (accept anything), HOME and temp dir; podman its own vfs storage;
  the docker CLI its own ``DOCKER_CONFIG``. Nothing reads or writes the machine's
  credentials, and environment proxies are removed (loopback only).
- TLS verification is always off: every test registry speaks plain HTTP on loopback.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .procs import peer_env, require_binary

DEFAULT_TIMEOUT = 180.0


@dataclass(frozen=True)
class CommandResult:
    """A finished command."""

    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def text(self) -> str:
        """stdout decoded as UTF-8."""
        return self.stdout.decode("utf-8", "replace")

    @property
    def error_text(self) -> str:
        """stderr decoded as UTF-8."""
        return self.stderr.decode("utf-8", "replace")


class CommandError(RuntimeError):
    """A client command failed (non-zero exit, or timeout when ``timed_out``)."""

    def __init__(self, result: CommandResult, *, timed_out: bool = False) -> None:
        what = "timed out" if timed_out else f"exited with {result.returncode}"
        super().__init__(
            f"{' '.join(result.argv)} {what}\n--- stdout ---\n{result.text[-6000:]}"
            f"\n--- stderr ---\n{result.error_text[-6000:]}"
        )
        self.result = result
        self.timed_out = timed_out

    @property
    def stderr(self) -> str:
        """The command's stderr."""
        return self.result.error_text

    @property
    def stdout(self) -> str:
        """The command's stdout."""
        return self.result.text


def run_command(
    argv: Sequence[str],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
    cwd: Path | None = None,
    check: bool = True,
) -> CommandResult:
    """Run ``argv`` in its own process group, capture output, enforce ``timeout``."""
    args = tuple(str(a) for a in argv)
    proc = subprocess.Popen(
        args,
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env) if env is not None else peer_env(),
        cwd=cwd,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(input=input, timeout=timeout)
    except subprocess.TimeoutExpired:
        _killpg(proc.pid)
        out, err = proc.communicate()
        raise CommandError(CommandResult(args, proc.returncode, out, err), timed_out=True) from None
    except BaseException:
        _killpg(proc.pid)
        proc.wait()
        raise
    # Sweep anything the command left behind in its group.
    _killpg(proc.pid)
    result = CommandResult(args, proc.returncode, out, err)
    if check and result.returncode != 0:
        raise CommandError(result)
    return result


def _killpg(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def docker_ref(host: str, repo: str, reference: str) -> str:
    """``docker://HOST/REPO:TAG`` or ``docker://HOST/REPO@DIGEST``."""
    sep = "@" if ":" in reference else ":"
    return f"docker://{host}/{repo}{sep}{reference}"


class _ContainersTool:
    """Common isolation for the containers/image based tools (skopeo, podman)."""

    def __init__(self, workdir: Path, binary: str, timeout: float) -> None:
        self.workdir = workdir
        self.binary = require_binary(binary)
        self.timeout = timeout
        self.home = workdir / "home"
        self.tmpdir = workdir / "tmp"
        self.auth_file = workdir / "auth.json"
        self.policy_file = workdir / "policy.json"
        self.registries_conf = workdir / "registries.conf"
        for d in (self.home, self.tmpdir):
            d.mkdir(parents=True, exist_ok=True)
        if not self.auth_file.exists():
            self.auth_file.write_text('{"auths":{}}')
        self.policy_file.write_text('{"default":[{"type":"insecureAcceptAnything"}]}')
        self.registries_conf.write_text(
            'unqualified-search-registries = []\nshort-name-mode = "disabled"\n'
        )

    def env(self) -> dict[str, str]:
        """The isolated environment the tool runs in."""
        return peer_env(
            {
                "HOME": str(self.home),
                "TMPDIR": str(self.tmpdir),
                "XDG_CONFIG_HOME": str(self.home / ".config"),
                "REGISTRY_AUTH_FILE": str(self.auth_file),
                "CONTAINERS_REGISTRIES_CONF": str(self.registries_conf),
                "DOCKER_CONFIG": str(self.workdir / "docker-config"),
            }
        )

    def _run(
        self,
        args: Sequence[str],
        *,
        check: bool = True,
        input: bytes | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        return run_command(
            [self.binary, *args],
            timeout=timeout or self.timeout,
            env=self.env(),
            input=input,
            cwd=self.workdir,
            check=check,
        )


class Skopeo(_ContainersTool):
    """skopeo, isolated in ``workdir``. References are skopeo's (``docker://…``,
    ``oci:DIR:TAG``)."""

    def __init__(self, workdir: Path, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__(workdir, "skopeo", timeout)

    def _global(self) -> list[str]:
        return ["--policy", str(self.policy_file), "--tmpdir", str(self.tmpdir)]

    def __call__(self, *args: str, check: bool = True) -> CommandResult:
        """Run any skopeo subcommand with the isolation options."""
        return self._run([*self._global(), *args], check=check)

    def copy(
        self,
        src: str,
        dest: str,
        *,
        all: bool = True,
        src_creds: str | None = None,
        dest_creds: str | None = None,
        preserve_digests: bool = False,
        format: str | None = None,
        extra: Sequence[str] = (),
        check: bool = True,
    ) -> CommandResult:
        """``skopeo copy [--all] SRC DEST`` with TLS verification off on both sides."""
        args = [
            *self._global(),
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--authfile",
            str(self.auth_file),
        ]
        if all:
            args.append("--all")
        if preserve_digests:
            args.append("--preserve-digests")
        if format:
            args += ["--format", format]
        args += (
            ["--src-creds", src_creds]
            if src_creds
            else ["--src-no-creds"]
            if src.startswith("docker://")
            else []
        )
        args += (
            ["--dest-creds", dest_creds]
            if dest_creds
            else ["--dest-no-creds"]
            if dest.startswith("docker://")
            else []
        )
        return self._run([*args, *extra, src, dest], check=check)

    def inspect_raw(self, ref: str, *, creds: str | None = None, config: bool = False) -> bytes:
        """``skopeo inspect --raw`` → the manifest (or with ``config``, the config) bytes
        exactly."""
        args = ["inspect", "--raw", *self._auth(ref, creds)]
        if config:
            args.append("--config")
        return self._run([*self._global(), *args, ref]).stdout

    def inspect(self, ref: str, *, creds: str | None = None) -> dict[str, Any]:
        """``skopeo inspect`` → its JSON summary."""
        out = self._run([*self._global(), "inspect", *self._auth(ref, creds), ref]).stdout
        result: dict[str, Any] = json.loads(out)
        return result

    def list_tags(self, ref: str, *, creds: str | None = None) -> list[str]:
        """``skopeo list-tags docker://HOST/REPO`` → tags."""
        out = self._run([*self._global(), "list-tags", *self._auth(ref, creds), ref]).stdout
        tags: list[str] = json.loads(out).get("Tags") or []
        return tags

    def delete(self, ref: str, *, creds: str | None = None) -> CommandResult:
        """``skopeo delete docker://HOST/REPO:TAG|@DIGEST``."""
        return self._run([*self._global(), "delete", *self._auth(ref, creds), ref])

    def login(
        self, host: str, username: str, password: str, *, check: bool = True
    ) -> CommandResult:
        """``skopeo login`` into this instance's auth file."""
        return self._run(
            [
                *self._global(),
                "login",
                "--tls-verify=false",
                "--authfile",
                str(self.auth_file),
                "-u",
                username,
                "--password-stdin",
                host,
            ],
            input=password.encode(),
            check=check,
        )

    def _auth(self, ref: str, creds: str | None) -> list[str]:
        args = ["--authfile", str(self.auth_file)]
        if ref.startswith("docker://"):
            args.append("--tls-verify=false")
            args += ["--creds", creds] if creds else ["--no-creds"]
        return args


class Podman(_ContainersTool):
    """podman as root with the vfs driver and its own ``--root`` under ``workdir``.

    podman refuses a ``--runroot`` longer than 50 characters, so the run root is a short
    directory made under /tmp and removed by :meth:`close` (the fixture calls it).
    References are plain image names (``127.0.0.1:PORT/repo:tag``) or transports.
    """

    def __init__(self, workdir: Path, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__(workdir, "podman", timeout)
        self.root = workdir / "root"
        self.runroot = Path(tempfile.mkdtemp(prefix="tsp-", dir="/tmp"))
        self.storage_conf = workdir / "storage.conf"
        self.containers_conf = workdir / "containers.conf"
        for d in (self.root, self.runroot):
            d.mkdir(parents=True, exist_ok=True)
        self.storage_conf.write_text(
            f'[storage]\ndriver = "vfs"\nrunroot = "{self.runroot}"\ngraphroot = "{self.root}"\n'
        )
        self.containers_conf.write_text('[engine]\nevents_logger = "none"\n')

    def close(self) -> None:
        """Remove the run root (the storage under ``workdir`` goes with the test's tmp dir)."""
        shutil.rmtree(self.runroot, ignore_errors=True)

    def __enter__(self) -> Podman:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def env(self) -> dict[str, str]:
        """Also points containers.conf and storage.conf at this instance's files."""
        env = super().env()
        env["CONTAINERS_STORAGE_CONF"] = str(self.storage_conf)
        env["CONTAINERS_CONF"] = str(self.containers_conf)
        return env

    def _global(self) -> list[str]:
        return [
            "--storage-driver",
            "vfs",
            "--root",
            str(self.root),
            "--runroot",
            str(self.runroot),
            "--tmpdir",
            str(self.tmpdir / "libpod"),
            "--events-backend",
            "none",
            "--cgroup-manager",
            "cgroupfs",
        ]

    def __call__(self, *args: str, check: bool = True, input: bytes | None = None) -> CommandResult:
        """Run any podman subcommand with the isolation options."""
        return self._run([*self._global(), *args], check=check, input=input)

    def pull(self, ref: str, *, platform: str | None = None, creds: str | None = None) -> str:
        """``podman pull`` → the image id."""
        args = ["pull", "--tls-verify=false", "--authfile", str(self.auth_file), "--quiet"]
        if platform:
            args += ["--platform", platform]
        if creds:
            args += ["--creds", creds]
        lines = self(*args, ref).text.strip().splitlines()
        return lines[-1] if lines else ""

    def push(
        self,
        src: str,
        dest: str | None = None,
        *,
        creds: str | None = None,
        format: str | None = None,
    ) -> CommandResult:
        """``podman push SRC [DEST]``."""
        args = ["push", "--tls-verify=false", "--authfile", str(self.auth_file)]
        if creds:
            args += ["--creds", creds]
        if format:
            args += ["--format", format]
        return self(*args, src, *([dest] if dest else []))

    def login(
        self, host: str, username: str, password: str, *, check: bool = True
    ) -> CommandResult:
        """``podman login`` (password on stdin) into this instance's auth file."""
        return self(
            "login",
            "--tls-verify=false",
            "--authfile",
            str(self.auth_file),
            "-u",
            username,
            "--password-stdin",
            host,
            input=password.encode(),
            check=check,
        )

    def logout(self, host: str) -> CommandResult:
        """``podman logout HOST``."""
        return self("logout", "--authfile", str(self.auth_file), host)

    def image_inspect(self, ref: str) -> dict[str, Any]:
        """``podman image inspect`` → the first (only) object."""
        data: list[dict[str, Any]] = json.loads(self("image", "inspect", ref).stdout)
        return data[0]

    def tag(self, src: str, dest: str) -> CommandResult:
        """``podman tag SRC DEST``."""
        return self("tag", src, dest)

    def rmi(self, *refs: str) -> CommandResult:
        """``podman rmi --force REFS…``."""
        return self("rmi", "--force", *refs)


class DockerCli:
    """The docker CLI without an engine: login/logout and ``manifest`` only (pull/push need
    a daemon).

    ``DOCKER_CONFIG`` is ``workdir/config`` (credentials land in its ``config.json``).
    """

    def __init__(self, workdir: Path, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.workdir = workdir
        self.binary = require_binary("docker")
        self.timeout = timeout
        self.config_dir = workdir / "config"
        self.config_dir.mkdir(parents=True, exist_ok=True)
        config = self.config_dir / "config.json"
        if not config.exists():
            config.write_text("{}")

    def env(self) -> dict[str, str]:
        """The isolated environment; ``DOCKER_HOST`` points at a socket that does not exist."""
        return peer_env(
            {
                "DOCKER_CONFIG": str(self.config_dir),
                "HOME": str(self.workdir),
                "DOCKER_HOST": f"unix://{self.workdir / 'no-engine.sock'}",
                "DOCKER_CLI_HINTS": "false",
            }
        )

    def __call__(
        self,
        *args: str,
        check: bool = True,
        input: bytes | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        """Run any docker subcommand in the isolated environment."""
        return run_command(
            [self.binary, *args],
            timeout=timeout or self.timeout,
            env=self.env(),
            input=input,
            cwd=self.workdir,
            check=check,
        )

    def login(
        self, host: str, username: str, password: str, *, check: bool = True
    ) -> CommandResult:
        """``docker login HOST -u USER --password-stdin``."""
        return self(
            "login", host, "-u", username, "--password-stdin", input=password.encode(), check=check
        )

    def logout(self, host: str) -> CommandResult:
        """``docker logout HOST``."""
        return self("logout", host)

    def manifest_inspect(self, ref: str, *, verbose: bool = False) -> Any:
        """``docker manifest inspect --insecure REF`` → parsed JSON."""
        args = ["manifest", "inspect", "--insecure"]
        if verbose:
            args.append("--verbose")
        return json.loads(self(*args, ref).stdout)

    def config(self) -> dict[str, Any]:
        """This instance's ``config.json`` (where ``login`` stores credentials)."""
        data: dict[str, Any] = json.loads((self.config_dir / "config.json").read_text())
        return data
