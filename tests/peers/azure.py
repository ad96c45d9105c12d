"""The real Azure CLI (``az``) and Python SDK, run from their own venv against Transship.

azure-cli pins exact versions of about a hundred packages, so ``scripts/test`` installs it,
``azure-identity`` and ``azure-mgmt-containerregistry`` (pinned in
``tests/e2e/azure-requirements.txt``) into a separate venv: ``$AZ_VENV``, else
``<repo>/.venv-az``. Nothing of it is importable from the project's venv; SDK code runs
as a script under :func:`sdk_python` (see :meth:`AzureCli.run_python`).

Contracts:

- :func:`locate_az_venv` returns that venv, or raises :class:`PeerUnavailable` when it has
  no ``bin/az`` (fixtures turn that into a skip, or a failure under
  ``TRANSSHIP_REQUIRE_PEERS=1``); :func:`az_venv_or_skip` does that conversion itself.
- :class:`AzureCli` is isolated: its own ``AZURE_CONFIG_DIR`` (``<workdir>/az``), no
  telemetry, no colour, no prompts, no survey, no error-recommendation or extension
  look-ups (they would go to the internet), proxies removed (:func:`peer_env`), and the
  service's CA trusted through ``REQUESTS_CA_BUNDLE`` (requests, MSAL and azure-core all
  honour it). Warnings are silenced (``core.only_show_errors``), so stderr holds errors.
- :meth:`AzureCli.run` appends ``-o json`` unless told otherwise, returns an
  :class:`AzResult` (a ``CompletedProcess[str]`` with :meth:`AzResult.json`), and, like the
  other client wrappers, raises :class:`CommandError` on a non-zero exit (unless
  ``check=False``) and always on a timeout (the process group is killed).
- Commands run in one resident az process per :class:`AzureCli` (``tests/peers/az_resident.py``:
  a fresh ``az`` spends 1-2 s importing the CLI; that process imports it once and runs each
  command as ``python -m azure.cli`` would, in the same environment and working directory,
  with what one process keeps between commands reset as a fresh one has it, and the
  command's stdin/stdout/stderr file descriptors its own). ``run(..., fresh_process=True)``,
  a call made while another is running on the same instance, or ``TRANSSHIP_AZ_RESIDENT=0``
  in the environment run a real ``bin/az`` subprocess instead. :meth:`AzureCli.close` stops
  the resident process (it also ends when the tests' interpreter does: its stdin closes).
- :meth:`AzureCli.setup_cloud` registers and selects a cloud whose resource manager is the
  base URL: ``az cloud register`` reads ``GET <base>//metadata/endpoints?api-version=2022-09-01``
  (note the double slash: the CLI appends ``/metadata/endpoints`` to the URL as given, and
  the URL is given with its trailing slash as Azure's own is) and takes every other endpoint
  from it; it then sets ``core.instance_discovery=false`` so MSAL never asks
  login.microsoftonline.com about the authority.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from .clients import CommandError, CommandResult, run_command
from .procs import PeerUnavailable, peer_env

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_AZ_VENV = REPO_ROOT / ".venv-az"
REQUIREMENTS = REPO_ROOT / "tests" / "e2e" / "azure-requirements.txt"
DEFAULT_TIMEOUT = 120.0
DEFAULT_CLOUD = "Transship"
RESIDENT_HELPER = Path(__file__).with_name("az_resident.py")

__all__ = [
    "DEFAULT_CLOUD",
    "REQUIREMENTS",
    "AzResult",
    "AzureCli",
    "CommandError",
    "az_venv_or_skip",
    "locate_az_venv",
    "pinned_versions",
    "sdk_python",
]

# Settings that keep az quiet, non-interactive and off the internet ([section] option ->
# AZURE_SECTION_OPTION). The CA bundle and config dir are added per instance.
_QUIET_ENV = {
    "AZURE_CORE_COLLECT_TELEMETRY": "false",
    "AZURE_CORE_NO_COLOR": "1",
    "AZURE_CORE_ONLY_SHOW_ERRORS": "true",
    "AZURE_CORE_DISABLE_CONFIRM_PROMPT": "true",
    "AZURE_CORE_DISABLE_PROGRESS_BAR": "true",
    "AZURE_CORE_SURVEY_MESSAGE": "false",
    "AZURE_CORE_ERROR_RECOMMENDATION": "off",
    "AZURE_CORE_LOGIN_EXPERIENCE_V2": "off",
    "AZURE_EXTENSION_USE_DYNAMIC_INSTALL": "no",
    "AZURE_CORE_OUTPUT": "json",
}


def locate_az_venv() -> Path:
    """The venv holding the Azure CLI and SDK (``$AZ_VENV`` or ``<repo>/.venv-az``).

    Raises :class:`PeerUnavailable` when it has no ``bin/az``.
    """
    configured = os.environ.get("AZ_VENV")
    venv = Path(configured).resolve() if configured else DEFAULT_AZ_VENV
    if not (venv / "bin" / "az").is_file():
        raise PeerUnavailable(
            f"the Azure CLI venv {venv} has no bin/az (scripts/test installs "
            f"{REQUIREMENTS.relative_to(REPO_ROOT)} there; AZ_VENV may name another)"
        )
    return venv


def az_venv_or_skip() -> Path:
    """:func:`locate_az_venv`, skipping the test when it is missing, or failing it when
    ``TRANSSHIP_REQUIRE_PEERS=1`` (as ``tests/conftest.py`` does for every other peer)."""
    import pytest  # only tests call this; keep the module importable without pytest

    try:
        return locate_az_venv()
    except PeerUnavailable as exc:
        if os.environ.get("TRANSSHIP_REQUIRE_PEERS") == "1":
            pytest.fail(f"peer unavailable but TRANSSHIP_REQUIRE_PEERS=1: {exc}", pytrace=False)
        pytest.skip(str(exc))


def sdk_python(venv: Path | None = None) -> Path:
    """The az venv's interpreter, which can import ``azure.identity`` and
    ``azure.mgmt.containerregistry`` (the project's venv cannot)."""
    return (venv or locate_az_venv()) / "bin" / "python"


def pinned_versions(path: Path = REQUIREMENTS) -> dict[str, str]:
    """``{distribution: version}`` for each ``name==version`` line of the requirements file."""
    pins: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[name.strip().lower()] = version.strip()
    return pins


class AzResult(subprocess.CompletedProcess[str]):
    """A finished ``az`` (or SDK script) run; stdout and stderr are text."""

    def json(self) -> Any:
        """stdout parsed as JSON (``None`` when az printed nothing, as commands without a
        result do)."""
        text = self.stdout.strip()
        return json.loads(text) if text else None


class AzureCli:
    """The real ``az``, configured for one Transship service.

    ``base_url`` is the service's ``https://127.0.0.1:PORT`` (trailing slash optional);
    ``ca_bundle`` the PEM of the CA that signed its certificate; ``workdir`` a directory
    of the test's own (``az`` keeps its config, clouds and token cache in
    ``<workdir>/az``). ``env`` adds or overrides environment variables.
    """

    def __init__(
        self,
        base_url: str,
        ca_bundle: Path,
        workdir: Path,
        *,
        venv: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.ca_bundle = ca_bundle
        self.workdir = workdir
        self.venv = venv or locate_az_venv()
        self.config_dir = workdir / "az"
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self.cloud_name: str | None = None
        self.resident = os.environ.get("TRANSSHIP_AZ_RESIDENT", "1") != "0"
        self._resident: _ResidentAz | None = None
        self._resident_lock = threading.Lock()
        self.env: dict[str, str] = peer_env(
            {
                **_QUIET_ENV,
                "AZURE_CONFIG_DIR": str(self.config_dir),
                "REQUESTS_CA_BUNDLE": str(ca_bundle),
                # For SDK scripts on HTTP stacks that take Python's default trust store.
                "SSL_CERT_FILE": str(ca_bundle),
                # Anything az runs that looks in ~ (docker login's config) stays in workdir.
                "HOME": str(workdir),
                **(env or {}),
            }
        )

    # -- paths -----------------------------------------------------------------------------

    @property
    def az(self) -> Path:
        """The ``az`` entry point in the venv."""
        return self.venv / "bin" / "az"

    @property
    def python(self) -> Path:
        """The venv's interpreter (for SDK scripts)."""
        return sdk_python(self.venv)

    @property
    def resource_manager(self) -> str:
        """The ARM endpoint as registered: the base URL with a trailing slash."""
        return self.base_url + "/"

    # -- running ---------------------------------------------------------------------------

    def run(
        self,
        *args: str,
        check: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        output: str | None = "json",
        input: str | None = None,
        fresh_process: bool = False,
    ) -> AzResult:
        """Run ``az ARGS… [-o OUTPUT]``; ``output=None`` (or an ``-o``/``--output`` already in
        ``args``) adds none. Raises :class:`CommandError` on failure when ``check``.

        It runs in this instance's resident az process unless ``fresh_process`` (a real
        ``bin/az`` subprocess, for what depends on a process of its own), ``resident`` is
        off, or another call of this instance is running (so concurrent calls stay
        concurrent)."""
        argv = [str(self.az), *args]
        if output is not None and not ({"-o", "--output"} & set(args)):
            argv += ["-o", output]
        if fresh_process or not self.resident or not self._resident_lock.acquire(blocking=False):
            return self._run(argv, check=check, timeout=timeout, input=input)
        try:
            return self._run_resident(argv, check=check, timeout=timeout, input=input)
        finally:
            self._resident_lock.release()

    def close(self) -> None:
        """Stop the resident az process, if one runs (the next :meth:`run` starts another)."""
        with self._resident_lock:
            if self._resident is not None:
                self._resident.close()
                self._resident = None

    def __enter__(self) -> AzureCli:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _run_resident(
        self, argv: Sequence[str], *, check: bool, timeout: float, input: str | None
    ) -> AzResult:
        wanted = (dict(self.env), self.workdir)
        if self._resident is not None and not self._resident.serves(*wanted):
            self._resident.close()  # the environment changed: a fresh process has the new one
            self._resident = None
        if self._resident is None:
            self._resident = _ResidentAz(self.python, *wanted)
        resident = self._resident
        try:
            result = resident.run(
                argv, input=input.encode() if input is not None else None, timeout=timeout
            )
        except BaseException:
            resident.close()
            self._resident = None
            raise
        if not resident.alive:
            resident.close()
            self._resident = None
        if check and result.returncode != 0:
            raise CommandError(result)
        return AzResult(list(result.argv), result.returncode, result.text, result.error_text)

    def json(self, *args: str, timeout: float = DEFAULT_TIMEOUT) -> Any:
        """``run(*args).json()``: the command's JSON result (it must succeed)."""
        return self.run(*args, timeout=timeout).json()

    def run_python(
        self,
        source: str,
        *args: str,
        check: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        env: Mapping[str, str] | None = None,
    ) -> AzResult:
        """Run ``source`` as a script under the az venv's Python (where the SDK is), with
        this instance's environment plus ``env``; ``args`` become ``sys.argv[1:]``."""
        argv = [str(self.python), "-c", source, *args]
        return self._run(argv, check=check, timeout=timeout, env={**self.env, **(env or {})})

    def _run(
        self,
        argv: Sequence[str],
        *,
        check: bool,
        timeout: float,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> AzResult:
        result = run_command(
            argv,
            timeout=timeout,
            env=env if env is not None else self.env,
            input=input.encode() if input is not None else None,
            cwd=self.workdir,
            check=check,
        )
        return AzResult(list(result.argv), result.returncode, result.text, result.error_text)

    # -- set-up ----------------------------------------------------------------------------

    def setup_cloud(self, name: str = DEFAULT_CLOUD) -> dict[str, Any]:
        """Register cloud ``name`` from the service's ``/metadata/endpoints``, make it the
        active cloud, turn off MSAL's instance discovery; return ``az cloud show``."""
        self.run(
            "cloud", "register", "-n", name, "--endpoint-resource-manager", self.resource_manager
        )
        self.run("cloud", "set", "-n", name)
        self.run("config", "set", "core.instance_discovery=false", output=None)
        self.cloud_name = name
        shown: dict[str, Any] = self.json("cloud", "show", "-n", name)
        return shown

    def login_service_principal(
        self, client_id: str, secret: str, tenant: str
    ) -> list[dict[str, Any]]:
        """``az login --service-principal``; returns the subscriptions az found.

        The secret goes in ``--password=…`` (one argument) so a value starting with ``-``
        is not taken for an option.
        """
        subscriptions: list[dict[str, Any]] = self.json(
            "login",
            "--service-principal",
            "--username",
            client_id,
            f"--password={secret}",
            "--tenant",
            tenant,
        )
        return subscriptions


class _ResidentAz:
    """One ``tests/peers/az_resident.py`` process: see the module docstring and that file.

    Not thread-safe (:class:`AzureCli` serialises its calls). :meth:`run` returns the
    command's :class:`CommandResult`; on a timeout it kills the process group and raises
    :class:`CommandError` (``timed_out``), as :func:`run_command` does.
    """

    def __init__(self, python: Path, env: Mapping[str, str], cwd: Path) -> None:
        self.env = dict(env)
        self.cwd = cwd
        self.io_dir = Path(tempfile.mkdtemp(prefix="az-resident-"))
        self.log = self.io_dir / "resident.log"
        # What bin/az sets before it execs `python -m azure.cli`.
        bin_src = str(python.parent / "src")
        path = self.env.get("PYTHONPATH")
        child_env = {
            **self.env,
            "PYTHONPATH": bin_src if path is None else os.pathsep.join([bin_src, path]),
            "AZ_INSTALLER": self.env.get("AZ_INSTALLER", "PIP"),
        }
        with open(self.log, "wb") as log:
            # -P: the helper's directory (holding azure.py) must not shadow the azure package.
            self.proc = subprocess.Popen(
                [str(python), "-P", str(RESIDENT_HELPER)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=child_env,
                cwd=cwd,
                start_new_session=True,
            )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._requests: IO[bytes] = self.proc.stdin
        self._replies: IO[bytes] = self.proc.stdout
        self._pending = b""
        self.alive = True

    def serves(self, env: Mapping[str, str], cwd: Path) -> bool:
        """Whether this process was started with ``env`` and ``cwd`` (and still runs)."""
        return self.alive and self.env == dict(env) and self.cwd == cwd

    def run(self, argv: Sequence[str], *, input: bytes | None, timeout: float) -> CommandResult:
        args = tuple(str(a) for a in argv)
        stdin = self.io_dir / "stdin"
        stdout = self.io_dir / "stdout"
        stderr = self.io_dir / "stderr"
        for path in (stdout, stderr):
            path.write_bytes(b"")
        if input is not None:
            stdin.write_bytes(input)
        request = {
            "argv": list(args[1:]),
            "stdin": str(stdin) if input is not None else None,
            "stdout": str(stdout),
            "stderr": str(stderr),
        }
        try:
            self._requests.write(json.dumps(request).encode() + b"\n")
            self._requests.flush()
        except BrokenPipeError:
            pass  # it died: _reply sees the EOF
        reply = self._reply(timeout)
        if reply is None:  # timed out
            self._kill()
            result = CommandResult(args, -signal.SIGKILL, stdout.read_bytes(), stderr.read_bytes())
            self.close()
            raise CommandError(result, timed_out=True)
        if "rc" not in reply:  # the command ended the process: its status is the command's
            self.alive = False
            rc = self.proc.wait()
        else:
            rc = int(reply["rc"])
        return CommandResult(args, rc, stdout.read_bytes(), stderr.read_bytes())

    def _reply(self, timeout: float) -> dict[str, Any] | None:
        """The next reply line; ``{}`` at EOF; None after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        fd = self._replies.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._pending:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    return None
                chunk = os.read(fd, 65536)
                if not chunk:
                    return {}
                self._pending += chunk
        line, self._pending = self._pending.split(b"\n", 1)
        reply: dict[str, Any] = json.loads(line)
        return reply

    def close(self) -> None:
        """Stop the process (EOF, then SIGKILL to its group) and remove its files."""
        self.alive = False
        with contextlib.suppress(OSError):
            self._requests.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        self._kill()
        self._replies.close()
        shutil.rmtree(self.io_dir, ignore_errors=True)

    def _kill(self) -> None:
        """SIGKILL the process group (with what the command started) and reap the process."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
