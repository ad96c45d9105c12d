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
- :meth:`AzureCli.setup_cloud` registers and selects a cloud whose resource manager is the
  base URL: ``az cloud register`` reads ``GET <base>//metadata/endpoints?api-version=2022-09-01``
  (note the double slash: the CLI appends ``/metadata/endpoints`` to the URL as given, and
  the URL is given with its trailing slash as Azure's own is) and takes every other endpoint
  from it; it then sets ``core.instance_discovery=false`` so MSAL never asks
  login.microsoftonline.com about the authority.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .clients import CommandError, run_command
from .procs import PeerUnavailable, peer_env

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_AZ_VENV = REPO_ROOT / ".venv-az"
REQUIREMENTS = REPO_ROOT / "tests" / "e2e" / "azure-requirements.txt"
DEFAULT_TIMEOUT = 120.0
DEFAULT_CLOUD = "Transship"

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
    ) -> AzResult:
        """Run ``az ARGS… [-o OUTPUT]``; ``output=None`` (or an ``-o``/``--output`` already in
        ``args``) adds none. Raises :class:`CommandError` on failure when ``check``."""
        argv = [str(self.az), *args]
        if output is not None and not ({"-o", "--output"} & set(args)):
            argv += ["-o", output]
        return self._run(argv, check=check, timeout=timeout, input=input)

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
