"""One Transship service set up for the real Azure CLI and SDK, shared by a test module.

:func:`start_azure_env` starts, in this order:

- the upstream registries an ``az acr import`` reaches by name, each a Debian
  ``docker-registry`` that Transship's ``[upstreams."<host>"] endpoint`` override stands in
  for the real one:

  - ``docker.io``: token auth as Docker Hub has it (anonymous pull, a user who may push),
    holding ``library/hello-world:latest`` (a 3-platform OCI index),
    ``library/hello-world:v2`` (another, 2 platforms) and ``tensorflow/tensorflow:latest-gpu``;
  - ``mcr.microsoft.com`` (only with ``mcr=True``): anonymous, holding
    ``windows/servercore:ltsc2019``, a Docker manifest list whose Windows image has a
    foreign base layer;
  - ``private.example.com`` (only with ``private=True``): HTTP Basic (htpasswd), holding
    ``sourcerepo/sourceimage:tag``;

- Transship over HTTPS (its local CA) with data-plane auth on, listening on 127.0.0.1:P with
  login servers ``<name>.transship.localhost:P`` (``*.localhost`` resolves to loopback
  through libnss-myhostname, which ``scripts/test`` enables; the CA's certificate covers
  ``*.transship.localhost``);
- an :class:`~tests.peers.azure.AzureCli` set up as a user would: ``az cloud register``
  from the service's ``/metadata/endpoints``, ``az cloud set``, ``core.instance_discovery=false``
  and ``az login --service-principal`` as the owner service principal the first start wrote.

:meth:`AzureEnv.close` stops everything. :meth:`AzureEnv.owner_api` runs a coroutine with an
:class:`~tests.support.identity.IdentityClient` of the owner (for what ``az`` cannot do
here: creating service principals, subscriptions and tenants through ``/transship/v1``).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import aiohttp
import pytest

from tests.peers.azure import AzureCli, az_venv_or_skip
from tests.peers.distribution import DistributionRegistry
from tests.peers.images import (
    BuiltIndex,
    OciLayout,
    build_docker_list_with_foreign_layer,
    build_index,
    push_layout_http,
)
from tests.peers.ports import free_port
from tests.peers.procs import PeerUnavailable
from tests.peers.transship import TransshipServer
from tests.support.identity import PROVIDER, Credential, IdentityClient, owner_credential

T = TypeVar("T")
SUFFIX_HOST = "transship.localhost"
HUB_IMAGES = (
    ("library/hello-world", "latest"),
    ("library/hello-world", "v2"),
    ("tensorflow/tensorflow", "latest-gpu"),
)


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("TRANSSHIP_REQUIRE_PEERS") == "1":
        pytest.fail(f"peer unavailable but TRANSSHIP_REQUIRE_PEERS=1: {reason}", pytrace=False)
    pytest.skip(reason)


def _require_localhost_names() -> None:
    try:
        socket.getaddrinfo(f"probe.{SUFFIX_HOST}", 443)
    except OSError:
        _unavailable(
            f"*.{SUFFIX_HOST} does not resolve (scripts/test enables libnss-myhostname for it)"
        )


@dataclass
class AzureEnv:
    """What :func:`start_azure_env` started (see the module docstring)."""

    workdir: Path
    server: TransshipServer
    az: AzureCli
    owner: Credential
    hub: DistributionRegistry
    images: dict[str, BuiltIndex]
    mcr: DistributionRegistry | None = None
    private: DistributionRegistry | None = None
    cloud: dict[str, Any] = field(default_factory=dict)  # `az cloud show` after the set-up
    subscriptions: list[dict[str, Any]] = field(default_factory=list)  # what `az login` found
    _stoppers: list[Callable[[], object]] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def subscription(self) -> str:
        return self.owner.subscription_id

    def login_server(self, name: str) -> str:
        """``<name>.transship.localhost:P``: what ACR's ``<name>.azurecr.io`` is here."""
        return f"{name}.{SUFFIX_HOST}:{self.port}"

    def registry_id(self, name: str, group: str = "default", subscription: str = "") -> str:
        return (
            f"/subscriptions/{subscription or self.subscription}/resourceGroups/{group}/"
            f"{PROVIDER}/registries/{name}"
        )

    def new_az(self, name: str) -> AzureCli:
        """Another ``az`` with its own config dir (for signing in as someone else); stopped
        by :meth:`close`."""
        az = AzureCli(
            self.server.url, self.server.ca_certificate, self.workdir / name, venv=self.az.venv
        )
        self._stoppers.append(az.close)
        return az

    def owner_api(self, work: Callable[[IdentityClient], Awaitable[T]]) -> T:
        """Run ``work(client)`` with the owner's management API client; return its result."""
        return self.api(self.owner, work)

    def api(self, credential: Credential, work: Callable[[IdentityClient], Awaitable[T]]) -> T:
        async def run() -> T:
            connector = aiohttp.TCPConnector(ssl=self.server.client_ssl_context())
            async with aiohttp.ClientSession(connector=connector) as http:
                return await work(IdentityClient(http, self.server.url, credential))

        return asyncio.run(run())

    def client_ssl_context(self) -> ssl.SSLContext:
        return self.server.client_ssl_context()

    def close(self) -> None:
        for stop in reversed(self._stoppers):
            stop()


def sdk_config(env: AzureEnv) -> dict[str, str | None]:
    """What an SDK script of the e2e tests reads from ``sys.argv[1]`` (as JSON): the service's
    URL (authority and ARM), the owner's tenant, client id, secret and subscription, and the
    Docker Hub stand-in's user."""
    return {
        "base": env.server.url,
        "tenant": env.owner.tenant_id,
        "client": env.owner.client_id,
        "secret": env.owner.secret,
        "subscription": env.subscription,
        "hub_user": env.hub.username,
    }


def run_sdk_steps(env: AzureEnv, script: str, *steps: str) -> dict[str, dict[str, Any]]:
    """Run ``script`` under the az venv's Python with :func:`sdk_config` and ``steps`` as its
    arguments; return the ``{step: outcome}`` JSON it prints. Raises
    :class:`~tests.peers.azure.CommandError` if it fails."""
    result = env.az.run_python(script, json.dumps(sdk_config(env)), *steps, timeout=180)
    outcomes: dict[str, dict[str, Any]] = result.json()
    return outcomes


async def wait_for_import(client: IdentityClient, operation: dict[str, Any]) -> dict[str, Any]:
    """Poll an importImage operation (the 202 body) until it ends; return its last status."""
    status_path = operation["id"]
    deadline = time.monotonic() + 60
    while True:
        code, body = await client.call("GET", status_path)
        assert code == 200, body
        if body["status"] != "InProgress" or time.monotonic() > deadline:
            return dict(body)
        await asyncio.sleep(0.2)


def start_azure_env(
    workdir: Path,
    *,
    mcr: bool = False,
    private: bool = False,
    login: bool = True,
    extra_config: str = "",
) -> AzureEnv:
    """Start the upstreams, Transship and (with ``login``) a logged-in ``az`` (see the
    module docstring). ``extra_config`` is appended to the server's TOML configuration.

    Skips (or fails under ``TRANSSHIP_REQUIRE_PEERS=1``) when the az venv, docker-registry
    or the ``*.localhost`` name resolution is missing.
    """
    venv = az_venv_or_skip()
    _require_localhost_names()
    stoppers: list[Callable[[], object]] = []
    try:
        env = _start(workdir, venv, stoppers, mcr=mcr, private=private, extra_config=extra_config)
        if login:
            env.cloud = env.az.setup_cloud()
            env.subscriptions = env.az.login_service_principal(
                env.owner.client_id, env.owner.secret, env.owner.tenant_id
            )
        return env
    except BaseException:
        for stop in reversed(stoppers):
            stop()
        raise


def _start(
    workdir: Path,
    venv: Path,
    stoppers: list[Callable[[], object]],
    *,
    mcr: bool,
    private: bool,
    extra_config: str = "",
) -> AzureEnv:
    def registry(name: str, mode: Any) -> DistributionRegistry:
        try:
            peer = DistributionRegistry(workdir / name, mode).start()
        except PeerUnavailable as exc:
            _unavailable(str(exc))
        stoppers.append(peer.stop)
        return peer

    layout = OciLayout(workdir / "layout")
    images = {
        "hello-world:latest": build_index(layout, seed="hello-world"),
        "hello-world:v2": build_index(
            layout, seed="hello-world-v2", platforms=("linux/amd64", "linux/arm64")
        ),
    }
    hub = registry("docker-hub", "token")
    assert hub.auth is not None
    for repo, tag in HUB_IMAGES:
        key = "hello-world:v2" if tag == "v2" else "hello-world:latest"
        push_layout_http(images[key], hub.url, repo, tag, auth=hub.auth)
    upstreams = {"docker.io": hub}
    mcr_peer = private_peer = None
    if mcr:
        mcr_peer = registry("mcr", "anonymous")
        images["servercore:ltsc2019"] = build_docker_list_with_foreign_layer(
            layout, seed="servercore"
        )
        push_layout_http(
            images["servercore:ltsc2019"], mcr_peer.url, "windows/servercore", "ltsc2019"
        )
        upstreams["mcr.microsoft.com"] = mcr_peer
    if private:
        private_peer = registry("private", "htpasswd")
        push_layout_http(
            images["hello-world:v2"],
            private_peer.url,
            "sourcerepo/sourceimage",
            "tag",
            auth=private_peer.auth,
        )
        upstreams["private.example.com"] = private_peer
    config = workdir / "transship.toml"
    config.write_text(
        "".join(
            f'[upstreams."{host}"]\nendpoint = "{peer.url}"\ninsecure = true\n\n'
            for host, peer in upstreams.items()
        )
        + extra_config
    )

    port = free_port()
    server = TransshipServer(
        workdir / "transship",
        tls=True,
        data_plane_auth=True,
        port=port,
        env={
            "TRANSSHIP_LOGIN_SERVER_SUFFIX": f"{SUFFIX_HOST}:{port}",
            "TRANSSHIP_CONFIG": str(config),
        },
    ).start()
    stoppers.append(server.stop)
    owner = owner_credential(server.data_dir)

    az = AzureCli(server.url, server.ca_certificate, workdir / "client", venv=venv)
    stoppers.append(az.close)
    return AzureEnv(
        workdir, server, az, owner, hub, images, mcr_peer, private_peer, _stoppers=stoppers
    )
