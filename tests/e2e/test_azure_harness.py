"""The Azure CLI harness itself (tests/peers/azure.py), against a small fake ARM.

No Transship here: the test serves, over HTTPS with a CA it makes, just what ``az`` needs
to register a cloud and log a service principal in, and records every request, so these
tests also pin down what the CLI sends:

- ``az cloud register --endpoint-resource-manager https://127.0.0.1:PORT/`` sends
  ``GET //metadata/endpoints?api-version=2022-09-01`` (the path starts with two slashes:
  the CLI appends ``/metadata/endpoints`` to the URL as given). The body must have
  ``name``, ``authentication.loginEndpoint``, ``authentication.audiences`` (a non-empty
  list) and a ``suffixes`` object; ``suffixes.acrLoginServer`` is optional for the
  register but every ``az acr … -n`` command fails without it.
- ``az login --service-principal`` reads ``GET /{tenant}/v2.0/.well-known/openid-configuration``,
  posts client credentials to its ``token_endpoint`` with the scope
  ``<first audience>/.default`` and lists ``GET /subscriptions``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.peers.azure import (
    AzureCli,
    CommandError,
    az_venv_or_skip,
    pinned_versions,
)

pytestmark = pytest.mark.peers

TENANT = "8e0bd4f1-5a4c-4b7e-9d2e-6f3a2c1b0a99"
SUBSCRIPTION = "1b2c3d4e-0000-4000-8000-00000000abcd"
CLIENT_ID = "3f1e2d3c-1111-4222-8333-444455556666"
CLIENT_SECRET = "-s3cret-starting-with-a-dash"
METADATA_API_VERSION = "2022-09-01"


# -- a CA and a server certificate for 127.0.0.1 ------------------------------------------


@dataclass(frozen=True)
class LocalTls:
    """A throwaway CA (``ca_pem``, what clients trust) and the server's cert and key."""

    ca_pem: Path
    cert_pem: Path
    key_pem: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_pem, self.key_pem)
        return context


def make_tls(directory: Path) -> LocalTls:
    """A CA and a certificate for ``127.0.0.1`` / ``localhost`` signed by it, as PEM files."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "transship test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    tls = LocalTls(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    tls.ca_pem.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    tls.cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    tls.key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return tls


# -- the fake ARM + identity endpoint ----------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    """One request the fake received."""

    method: str
    path: str  # as sent, leading double slash included
    query: dict[str, str]
    form: dict[str, str]


@dataclass
class FakeArm:
    """What the CLI needs from ARM's host to register a cloud and log in.

    ``metadata`` is served at ``/metadata/endpoints`` (however many leading slashes);
    tests may edit it before registering. Every request is appended to ``requests``.
    """

    url: str
    ca_pem: Path
    metadata: dict[str, Any] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)

    def paths(self, method: str | None = None) -> list[str]:
        """The paths requested so far (of ``method`` only, if given)."""
        return [r.path for r in self.requests if method is None or r.method == method]


def default_metadata(url: str) -> dict[str, Any]:
    """A /metadata/endpoints body in the shape Azure's own has (only what az reads)."""
    return {
        "name": "Transship",
        "resourceManager": f"{url}/",
        "portal": f"{url}/",
        "authentication": {
            "loginEndpoint": url,
            "audiences": [f"{url}/"],
            "tenant": "common",
            "identityProvider": "AAD",
        },
        "suffixes": {"acrLoginServer": "localhost"},
    }


def _token(url: str) -> str:
    now = int(time.time())
    claims = {
        "aud": f"{url}/",
        "iss": f"{url}/{TENANT}/v2.0",
        "tid": TENANT,
        "oid": str(uuid.uuid5(uuid.NAMESPACE_URL, CLIENT_ID)),
        "appid": CLIENT_ID,
        "sub": CLIENT_ID,
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
    }
    return jwt.encode(claims, "not-a-real-key-not-a-real-key-32b", algorithm="HS256")


def _build_app(fake: FakeArm) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        form = (
            {k: str(v) for k, v in (await request.post()).items()} if request.can_read_body else {}
        )
        fake.requests.append(Recorded(request.method, request.path, dict(request.query), form))
        path = "/" + request.path.lstrip("/")
        tenant_prefix = f"/{TENANT}/"
        if request.method == "GET" and path == "/metadata/endpoints":
            return web.json_response(fake.metadata)
        if path == f"{tenant_prefix}v2.0/.well-known/openid-configuration":
            base = f"{fake.url}/{TENANT}"
            return web.json_response(
                {
                    "issuer": f"{base}/v2.0",
                    "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                    "token_endpoint": f"{base}/oauth2/v2.0/token",
                    "jwks_uri": f"{base}/discovery/v2.0/keys",
                    "response_types_supported": ["code", "id_token", "token"],
                    "subject_types_supported": ["pairwise"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                }
            )
        if request.method == "POST" and path == f"{tenant_prefix}oauth2/v2.0/token":
            if form.get("client_secret") != CLIENT_SECRET or form.get("client_id") != CLIENT_ID:
                return web.json_response(
                    {"error": "invalid_client", "error_description": "AADSTS7000215: bad secret"},
                    status=401,
                )
            return web.json_response(
                {"token_type": "Bearer", "expires_in": 3599, "access_token": _token(fake.url)}
            )
        if request.method == "GET" and path == "/subscriptions":
            return web.json_response(
                {
                    "value": [
                        {
                            "id": f"/subscriptions/{SUBSCRIPTION}",
                            "subscriptionId": SUBSCRIPTION,
                            "tenantId": TENANT,
                            "displayName": "transship",
                            "state": "Enabled",
                        }
                    ]
                }
            )
        return web.json_response(
            {"error": {"code": "NotFound", "message": f"no {request.method} {request.path} here"}},
            status=404,
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


@pytest.fixture
async def fake_arm(tmp_path: Path) -> AsyncIterator[FakeArm]:
    """A recording fake of ARM's metadata, identity and subscription endpoints, on HTTPS."""
    tls = make_tls(tmp_path / "tls")
    fake = FakeArm(url="", ca_pem=tls.ca_pem)
    runner = web.AppRunner(_build_app(fake), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls.server_context())
    await site.start()
    port = runner.addresses[0][1]
    fake.url = f"https://127.0.0.1:{port}"
    fake.metadata = default_metadata(fake.url)
    try:
        yield fake
    finally:
        await runner.cleanup()


@pytest.fixture
def az_factory(tmp_path: Path) -> Iterator[Callable[[str, Path], AzureCli]]:
    """``make(base_url, ca_pem)`` → an :class:`AzureCli` in its own dir under ``tmp_path``
    (closed at teardown)."""
    venv = az_venv_or_skip()
    made: list[AzureCli] = []

    def make(base_url: str, ca_pem: Path) -> AzureCli:
        az = AzureCli(base_url, ca_pem, tmp_path / f"az-{len(made) + 1}", venv=venv)
        made.append(az)
        return az

    try:
        yield make
    finally:
        for az in made:
            az.close()


async def in_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a blocking az call while the fake keeps serving on this loop."""
    return await asyncio.to_thread(fn, *args, **kwargs)


# -- tests ------------------------------------------------------------------------------------


def test_az_version_is_the_pinned_one(tmp_path: Path) -> None:
    venv = az_venv_or_skip()
    pins = pinned_versions()
    with AzureCli("https://127.0.0.1:9", tmp_path / "unused-ca.pem", tmp_path, venv=venv) as az:
        version = az.json("version")
    assert version["azure-cli"] == pins["azure-cli"]
    assert version["azure-cli-core"] == pins["azure-cli"]


def test_sdk_python_has_the_pinned_sdk(tmp_path: Path) -> None:
    venv = az_venv_or_skip()
    pins = pinned_versions()
    az = AzureCli("https://127.0.0.1:9", tmp_path / "unused-ca.pem", tmp_path, venv=venv)
    script = (
        "import json, sys\n"
        "from importlib.metadata import version\n"
        "import azure.identity, azure.mgmt.containerregistry\n"
        "print(json.dumps({n: version(n) for n in sys.argv[1:]}))\n"
    )
    found = az.run_python(script, *sorted(pins)).json()
    assert found == pins


async def test_setup_cloud_reads_metadata_endpoints(
    fake_arm: FakeArm, az_factory: Callable[[str, Path], AzureCli]
) -> None:
    az = az_factory(fake_arm.url, fake_arm.ca_pem)
    shown = await in_thread(az.setup_cloud)

    metadata_requests = [r for r in fake_arm.requests if r.path.endswith("/metadata/endpoints")]
    assert len(metadata_requests) == 1, fake_arm.requests
    assert metadata_requests[0].method == "GET"
    assert metadata_requests[0].path == "//metadata/endpoints"
    assert metadata_requests[0].query == {"api-version": METADATA_API_VERSION}
    # register, set and config set need nothing else from the service.
    assert len(fake_arm.requests) == 1, fake_arm.requests

    url = fake_arm.url
    assert shown["name"] == "Transship"
    assert shown["isActive"] is True
    endpoints = shown["endpoints"]
    assert endpoints["resourceManager"] == f"{url}/"  # the command line's, not the body's
    assert endpoints["activeDirectory"] == url  # authentication.loginEndpoint
    assert endpoints["activeDirectoryResourceId"] == f"{url}/"  # authentication.audiences[0]
    assert endpoints["management"] == f"{url}/"  # authentication.audiences[0] too
    assert endpoints["portal"] == f"{url}/"
    assert shown["suffixes"]["acrLoginServerEndpoint"] == ".localhost"  # a dot is prepended

    config = await in_thread(az.json, "config", "get", "core.instance_discovery")
    assert config["value"] == "false"


async def test_login_service_principal(
    fake_arm: FakeArm, az_factory: Callable[[str, Path], AzureCli]
) -> None:
    az = az_factory(fake_arm.url, fake_arm.ca_pem)
    await in_thread(az.setup_cloud)
    subscriptions = await in_thread(az.login_service_principal, CLIENT_ID, CLIENT_SECRET, TENANT)

    assert [s["id"] for s in subscriptions] == [SUBSCRIPTION]
    assert subscriptions[0]["tenantId"] == TENANT
    assert subscriptions[0]["user"] == {"name": CLIENT_ID, "type": "servicePrincipal"}
    assert subscriptions[0]["cloudName"] == "Transship"

    tokens = [r for r in fake_arm.requests if r.path.endswith("/oauth2/v2.0/token")]
    assert tokens, fake_arm.requests
    form = tokens[0].form
    assert form["grant_type"] == "client_credentials"
    assert form["client_id"] == CLIENT_ID
    assert form["client_secret"] == CLIENT_SECRET
    # The ARM audience ends in "/", so the scope has a double slash.
    assert form["scope"] == f"{fake_arm.url}//.default"
    assert f"/{TENANT}/v2.0/.well-known/openid-configuration" in fake_arm.paths("GET")
    assert "/subscriptions" in fake_arm.paths("GET")

    account = await in_thread(az.json, "account", "show")
    assert account["id"] == SUBSCRIPTION


async def test_login_with_a_wrong_secret_fails(
    fake_arm: FakeArm, az_factory: Callable[[str, Path], AzureCli]
) -> None:
    az = az_factory(fake_arm.url, fake_arm.ca_pem)
    await in_thread(az.setup_cloud)
    with pytest.raises(CommandError) as failed:
        await in_thread(az.login_service_principal, CLIENT_ID, "wrong", TENANT)
    assert "AADSTS7000215" in failed.value.stderr


@pytest.mark.parametrize(
    ("drop", "present"),
    [
        ("name", ()),
        ("loginEndpoint", ("authentication",)),
        ("audiences", ("authentication",)),
        ("suffixes", ()),
    ],
)
async def test_register_needs_these_metadata_fields(
    fake_arm: FakeArm,
    az_factory: Callable[[str, Path], AzureCli],
    drop: str,
    present: tuple[str, ...],
) -> None:
    container = fake_arm.metadata
    for key in present:
        container = container[key]
    del container[drop]
    az = az_factory(fake_arm.url, fake_arm.ca_pem)
    with pytest.raises(CommandError) as failed:
        await in_thread(
            az.run,
            "cloud",
            "register",
            "-n",
            "Broken",
            "--endpoint-resource-manager",
            az.resource_manager,
        )
    # A KeyError inside the CLI: "ERROR: 'name'" and a traceback.
    assert f"'{drop}'" in failed.value.stderr


async def test_minimal_metadata_registers_but_acr_needs_its_suffix(
    fake_arm: FakeArm, az_factory: Callable[[str, Path], AzureCli]
) -> None:
    url = fake_arm.url
    fake_arm.metadata = {
        "name": "Minimal",
        "authentication": {"loginEndpoint": url, "audiences": [f"{url}/"]},
        "suffixes": {},
    }
    az = az_factory(url, fake_arm.ca_pem)
    shown = await in_thread(az.setup_cloud, "Minimal")
    assert shown["endpoints"]["resourceManager"] == f"{url}/"
    assert shown["suffixes"]["acrLoginServerEndpoint"] is None

    # The registry-name validator reads the suffix before anything else happens.
    failed = await in_thread(az.run, "acr", "show", "-n", "myregistry", check=False)
    assert failed.returncode != 0
    assert "acr_login_server_endpoint" in failed.stderr, failed.stderr


def test_results_parse_as_json(tmp_path: Path) -> None:
    venv = az_venv_or_skip()
    with AzureCli("https://127.0.0.1:9/", tmp_path / "unused-ca.pem", tmp_path, venv=venv) as az:
        assert az.base_url == "https://127.0.0.1:9"
        assert az.resource_manager == "https://127.0.0.1:9/"
        assert az.env["AZURE_CONFIG_DIR"] == str(tmp_path / "az")
        result = az.run("cloud", "list")
        assert result.args[-2:] == ["-o", "json"]
        assert "AzureCloud" in {c["name"] for c in result.json()}
        table = az.run("cloud", "list", "-o", "tsv")
        assert table.args.count("-o") == 1
        assert table.args[-2:] == ["-o", "tsv"]
        assert az.run("cloud", "list", output=None).args[-1] == "list"
