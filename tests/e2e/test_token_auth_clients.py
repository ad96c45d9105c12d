"""Data-plane credentials with the real clients: skopeo 1.9, podman 4.3 and the docker CLI.

Every test starts its own Transship with ``data_plane_auth`` on, whose default registry has
the login server ``127.0.0.1:PORT`` (``TRANSSHIP_LOGIN_SERVER_SUFFIX``), i.e. exactly the
host the clients are given: challenges name it as ``service``, tokens carry it as audience.
The registry is configured as its owner through the management API (admin user, registry
tokens and scope maps, role assignments, anonymous pull, network rules), then each kind of
credential is used the way ACR users use it:

- the admin user (registry name + a ``listCredentials`` password);
- a registry token (token name + a ``generateCredentials`` password; its scope map decides);
- a service principal (client id + secret; its roles on the registry decide);
- anonymous pull;
- network rules (403 ``DENIED`` naming the client's address);
- an ACR refresh token from ``/oauth2/exchange`` with the all-zero user name.

skopeo does the pushes (``--dest-creds``) and byte-exact round trips; podman logs in and
pulls; the docker CLI has no engine here, so it logs in and runs ``manifest inspect``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
import requests

from tests.peers.clients import CommandResult, DockerCli, Podman, Skopeo, docker_ref
from tests.peers.images import OCI_MANIFEST, BuiltImage, OciLayout, build_image
from tests.peers.ports import free_port
from tests.peers.transship import TransshipServer
from tests.support.identity import PROVIDER, Credential, IdentityClient, owner_credential

pytestmark = pytest.mark.timeout(90)

T = TypeVar("T")

REFRESH_TOKEN_USERNAME = "00000000-0000-0000-0000-000000000000"
ACR_SCOPE = "https://containerregistry.azure.net/.default"


# -- the registry under test ------------------------------------------------------------------


class Acr:
    """A started Transship (data-plane auth on) and its default registry, managed as the owner.

    The management API is async (:class:`IdentityClient` on aiohttp); :meth:`run` drives it
    on a private event loop so that the tests themselves stay synchronous around the
    blocking client commands.
    """

    def __init__(self, server: TransshipServer) -> None:
        self.server = server
        self.owner = owner_credential(server.data_dir)
        self._loop = asyncio.new_event_loop()
        self._http = self._loop.run_until_complete(_new_session())
        self.identity = IdentityClient(self._http, server.url, self.owner)
        self.raw = requests.Session()
        self.raw.trust_env = False  # loopback only: never an environment proxy
        registries = self.run(
            self.identity.ok(
                "GET", f"/subscriptions/{self.owner.subscription_id}/{PROVIDER}/registries"
            )
        )["value"]
        (default,) = registries
        assert default["properties"]["loginServer"] == server.host, default
        self.name: str = default["name"]
        self.registry_id: str = default["id"]

    def close(self) -> None:
        self.raw.close()
        self._loop.run_until_complete(self._http.close())
        self._loop.close()

    def run(self, awaitable: Awaitable[T]) -> T:
        return self._loop.run_until_complete(awaitable)

    # -- management ------------------------------------------------------------------------

    def patch(self, **properties: Any) -> dict[str, Any]:
        """``PATCH`` the registry's properties; the updated registry's properties."""
        updated = self.run(self.identity.update_registry(self.registry_id, **properties))
        props: dict[str, Any] = updated["properties"]
        return props

    def admin_credentials(self) -> tuple[int, Any]:
        """``POST …/listCredentials`` → (status, body)."""
        return self.run(self.identity.call("POST", f"{self.registry_id}/listCredentials"))

    def token(self, name: str, actions: list[str]) -> str:
        """A scope map with ``actions`` and a registry token ``name`` on it; its password."""
        return self.run(self.identity.create_token(self.registry_id, name, actions))

    def disable_token(self, name: str) -> None:
        """``PUT`` the token of :meth:`token` again with ``status: disabled``."""
        body = {
            "properties": {
                "scopeMapId": f"{self.registry_id}/scopeMaps/{name}-map",
                "status": "disabled",
            }
        }
        done = self.run(self.identity.ok("PUT", f"{self.registry_id}/tokens/{name}", body))
        assert done["properties"]["status"] == "disabled", done

    def service_principal(self, name: str) -> Credential:
        return self.run(self.identity.create_service_principal(name))

    def assign(self, principal: Credential, role: str) -> None:
        self.run(self.identity.assign(self.registry_id, principal.object_id, role))

    def reset_secret(self, principal: Credential) -> Credential:
        """Replace the principal's secrets by a new one (the old stops working)."""
        body = self.run(
            self.identity.ok(
                "POST",
                f"/transship/v1/servicePrincipals/{principal.object_id}/credentials/reset",
                {"append": False},
            )
        )
        return Credential(principal.tenant_id, principal.client_id, body["password"])

    def delete_principal(self, principal: Credential) -> None:
        status, body = self.run(
            self.identity.call("DELETE", f"/transship/v1/servicePrincipals/{principal.object_id}")
        )
        assert status in (200, 204), (status, body)

    def entra_token(self, principal: Credential, scope: str) -> tuple[int, Any]:
        """The client-credentials grant at ``/{tenant}/oauth2/v2.0/token`` → (status, body)."""
        client = IdentityClient(self._http, self.server.url, principal)
        return self.run(client.token(scope=scope))

    # -- data plane ------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def url(self) -> str:
        return self.server.url

    def ref(self, repo: str, reference: str) -> str:
        """``docker://127.0.0.1:PORT/REPO:TAG`` (or ``@DIGEST``)."""
        return docker_ref(self.host, repo, reference)

    def image(self, repo: str, tag: str) -> str:
        """``127.0.0.1:PORT/REPO:TAG`` (podman, docker)."""
        return f"{self.host}/{repo}:{tag}"

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.raw.get(f"{self.url}{path}", timeout=30, allow_redirects=False, **kwargs)


async def _new_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession()


@pytest.fixture
def acr(tmp_path: Path, transship_factory: Callable[..., TransshipServer]) -> Iterator[Acr]:
    """Transship with data-plane auth, its default registry's login server = its address."""
    port = free_port()
    server = transship_factory(
        port=port,
        data_plane_auth=True,
        env={"TRANSSHIP_LOGIN_SERVER_SUFFIX": f"127.0.0.1:{port}"},
    )
    registry = Acr(server)
    try:
        yield registry
    finally:
        registry.close()


@pytest.fixture
def image(oci_layout: OciLayout) -> BuiltImage:
    """A small single-platform OCI image (two layers), tagged ``img`` in ``oci_layout``."""
    return build_image(oci_layout, tag="img", layer_sizes=(64 << 10, 8 << 10), seed="auth")


# -- helpers ----------------------------------------------------------------------------------


def userpass(username: str, password: str) -> str:
    """``USER:PASSWORD``, as ``--creds``/``--src-creds``/``--dest-creds`` take it."""
    return f"{username}:{password}"


def pair(creds: str) -> tuple[str, str]:
    """``USER:PASSWORD`` → ``(USER, PASSWORD)`` (HTTP Basic for requests)."""
    username, _, password = creds.partition(":")
    return username, password


def owner_creds(acr: Acr) -> str:
    """The owner service principal (Owner on the service root: pull, push, everything)."""
    return userpass(acr.owner.client_id, acr.owner.secret)


def push(
    skopeo: Skopeo,
    built: BuiltImage,
    acr: Acr,
    repo: str,
    tag: str,
    creds: str | None,
    *,
    check: bool = True,
) -> CommandResult:
    """``skopeo copy oci:LAYOUT:img docker://HOST/REPO:TAG --dest-creds …`` (or no creds)."""
    return skopeo.copy(
        built.layout.skopeo_ref("img"), acr.ref(repo, tag), dest_creds=creds, check=check
    )


def inspect(skopeo: Skopeo, ref: str, creds: str | None) -> CommandResult:
    """``skopeo inspect --raw REF`` with ``--creds`` (or ``--no-creds``), not checked."""
    auth = ["--creds", creds] if creds else ["--no-creds"]
    return skopeo("inspect", "--raw", "--tls-verify=false", *auth, ref, check=False)


def manifest_bytes_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def manifest_digest(result: CommandResult) -> str:
    """The digest of what a successful ``skopeo inspect --raw`` printed."""
    assert result.returncode == 0, result.error_text
    return manifest_bytes_digest(result.stdout)


def assert_refused(result: CommandResult, *expected: str) -> None:
    """The command failed, with an authentication/authorization error containing ``expected``."""
    assert result.returncode != 0, f"{' '.join(result.argv)} unexpectedly succeeded"
    text = result.error_text
    lowered = text.lower()
    assert any(
        marker in lowered
        for marker in (
            "unauthorized",
            "denied",
            "invalid username/password",
            "authentication required",
        )
    ), text
    for needle in expected:
        assert needle in text, text


def assert_push_refused(result: CommandResult, repo: str) -> None:
    """A refused ``skopeo copy`` into ``repo``. Depending on what skopeo tries first (a HEAD
    of a blob it knows from another repository, whose 401 has no body, or an upload POST
    whose 401 says ``repository:REPO:pull,push is not granted``), only the repository name
    is sure to be in the message."""
    assert_refused(result, repo)


def copy_out(skopeo: Skopeo, acr: Acr, repo: str, tag: str, creds: str, dest: Path) -> str:
    """``skopeo copy docker://… oci:DEST:out --src-creds …``; the digest of what arrived."""
    out = OciLayout(dest)
    skopeo.copy(acr.ref(repo, tag), out.skopeo_ref("out"), src_creds=creds)
    return out.resolve("out").digest


def jwt_claims(token: str) -> dict[str, Any]:
    """The (unverified) payload of a JWT."""
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


# -- 1. the admin user ----------------------------------------------------------------------


def test_admin_user(
    acr: Acr,
    skopeo: Skopeo,
    podman: Podman,
    docker_cli: DockerCli,
    image: BuiltImage,
    tmp_path: Path,
) -> None:
    """Disabled: no password to list, and every login with the registry name fails.
    Enabled: all three clients log in with either password, skopeo pushes and pulls with it
    byte for byte, and the stored logins work. Disabled again: the same password fails."""
    status, body = acr.admin_credentials()
    assert status == 400 and body["error"]["code"] == "AdminUserDisabled", body
    assert_refused(docker_cli.login(acr.host, acr.name, "not-a-password", check=False))
    assert_refused(podman.login(acr.host, acr.name, "not-a-password", check=False))
    assert_refused(skopeo.login(acr.host, acr.name, "not-a-password", check=False))

    assert acr.patch(adminUserEnabled=True)["adminUserEnabled"] is True
    status, body = acr.admin_credentials()
    assert status == 200, body
    assert body["username"] == acr.name
    password, password2 = (p["value"] for p in body["passwords"])

    assert "Login Succeeded" in docker_cli.login(acr.host, acr.name, password).text
    stored = docker_cli.config()["auths"][acr.host]["auth"]
    assert base64.b64decode(stored).decode() == f"{acr.name}:{password}"
    assert "Login Succeeded" in podman.login(acr.host, acr.name, password).text
    assert "Login Succeeded" in skopeo.login(acr.host, acr.name, password2).text

    admin = userpass(acr.name, password)
    push(skopeo, image, acr, "admin/app", "v1", admin)
    assert copy_out(skopeo, acr, "admin/app", "v1", admin, tmp_path / "out") == image.digest
    assert manifest_digest(inspect(skopeo, acr.ref("admin/app", "v1"), admin)) == image.digest

    # The stored logins: skopeo's auth file (no --creds), podman's, docker's config.json.
    stored_login = skopeo(
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--authfile",
        str(skopeo.auth_file),
        acr.ref("admin/app", "v1"),
    )
    assert manifest_digest(stored_login) == image.digest
    assert podman.pull(acr.image("admin/app", "v1")) == image.config.digest.removeprefix("sha256:")
    shown = docker_cli.manifest_inspect(acr.image("admin/app", "v1"))
    assert shown["config"]["digest"] == image.config.digest

    assert acr.patch(adminUserEnabled=False)["adminUserEnabled"] is False
    assert_refused(
        docker_cli.login(acr.host, acr.name, password, check=False), "invalid user name or password"
    )
    assert_refused(skopeo.login(acr.host, acr.name, password2, check=False))
    assert_refused(inspect(skopeo, acr.ref("admin/app", "v1"), admin))


# -- 2. registry tokens and scope maps ------------------------------------------------------


def test_registry_token_scope_map(
    acr: Acr, skopeo: Skopeo, podman: Podman, image: BuiltImage, tmp_path: Path
) -> None:
    """A token on ``repositories/a/*/content/{read,write}`` pushes and pulls ``a/x`` (skopeo
    and podman) but may not read ``b/x``; a read-only token pulls ``a/x`` but cannot push;
    a disabled token gets nothing."""
    push(skopeo, image, acr, "b/x", "v1", owner_creds(acr))
    rw = userpass(
        "rw-token",
        acr.token("rw-token", ["repositories/a/*/content/read", "repositories/a/*/content/write"]),
    )
    ro = userpass("ro-token", acr.token("ro-token", ["repositories/a/*/content/read"]))

    push(skopeo, image, acr, "a/x", "v1", rw)
    assert copy_out(skopeo, acr, "a/x", "v1", rw, tmp_path / "out") == image.digest
    image_id = podman.pull(acr.image("a/x", "v1"), creds=rw)
    assert f"sha256:{image_id}" == image.config.digest
    # podman knows the compressed blobs it pulled: a re-push under a/ is byte-identical.
    podman.push(acr.image("a/x", "v1"), f"docker://{acr.image('a/z', 'v1')}", creds=rw)
    assert manifest_digest(inspect(skopeo, acr.ref("a/z", "v1"), rw)) == image.digest

    assert_refused(inspect(skopeo, acr.ref("b/x", "v1"), rw), "repository:b/x:pull is not granted")
    refused = podman(
        "pull", "--tls-verify=false", "--creds", rw, acr.image("b/x", "v1"), check=False
    )
    assert_refused(refused, "repository:b/x:pull is not granted")
    assert_push_refused(
        push(skopeo, image, acr, "b/y", "v1", rw, check=False),
        "b/y",
    )

    assert manifest_digest(inspect(skopeo, acr.ref("a/x", "v1"), ro)) == image.digest
    assert_push_refused(
        push(skopeo, image, acr, "a/y", "v1", ro, check=False),
        "a/y",
    )
    missing = inspect(skopeo, acr.ref("a/y", "v1"), rw)
    assert missing.returncode != 0 and "manifest unknown" in missing.error_text, missing.error_text

    # HTTP Basic straight on /v2: the scope map decides, and a refusal is 403 DENIED.
    allowed = acr.get("/v2/a/x/manifests/v1", auth=pair(ro), headers={"Accept": OCI_MANIFEST})
    assert allowed.status_code == 200 and manifest_bytes_digest(allowed.content) == image.digest
    denied = acr.get("/v2/b/x/manifests/v1", auth=pair(ro), headers={"Accept": OCI_MANIFEST})
    assert denied.status_code == 403, denied.text
    assert denied.json()["errors"][0]["code"] == "DENIED"

    # What the token endpoint hands out carries only the granted actions.
    response = acr.get(
        "/oauth2/token",
        params=[("service", acr.host), ("scope", "repository:a/x:pull,push")],
        auth=pair(ro),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["access_token"] == body["token"] and body["expires_in"] > 0
    assert jwt_claims(body["token"])["access"] == [
        {"type": "repository", "name": "a/x", "actions": ["pull"]}
    ]

    # A disabled token is refused altogether.
    acr.disable_token("ro-token")
    assert_refused(inspect(skopeo, acr.ref("a/x", "v1"), ro), "invalid user name or password")
    assert manifest_digest(inspect(skopeo, acr.ref("a/x", "v1"), rw)) == image.digest


# -- 3. service principals and their roles --------------------------------------------------


def test_service_principal_roles(
    acr: Acr,
    skopeo: Skopeo,
    podman: Podman,
    docker_cli: DockerCli,
    image: BuiltImage,
    tmp_path: Path,
) -> None:
    """No role: nothing. AcrPull: pull, no push. AcrPush: push. A wrong or replaced secret
    is refused."""
    push(skopeo, image, acr, "sp/app", "v1", owner_creds(acr))
    sp = acr.service_principal("e2e-ci")
    sp_creds = userpass(sp.client_id, sp.secret)

    assert_refused(
        inspect(skopeo, acr.ref("sp/app", "v1"), sp_creds), "repository:sp/app:pull is not granted"
    )
    assert_push_refused(push(skopeo, image, acr, "sp/app", "v2", sp_creds, check=False), "sp/app")

    acr.assign(sp, "AcrPull")
    assert manifest_digest(inspect(skopeo, acr.ref("sp/app", "v1"), sp_creds)) == image.digest
    image_id = podman.pull(acr.image("sp/app", "v1"), creds=sp_creds)
    assert f"sha256:{image_id}" == image.config.digest
    assert_push_refused(
        push(skopeo, image, acr, "sp/app", "v2", sp_creds, check=False),
        "sp/app",
    )

    acr.assign(sp, "AcrPush")
    push(skopeo, image, acr, "sp/app", "v2", sp_creds)
    assert copy_out(skopeo, acr, "sp/app", "v2", sp_creds, tmp_path / "out") == image.digest
    assert "Login Succeeded" in docker_cli.login(acr.host, sp.client_id, sp.secret).text

    wrong = userpass(sp.client_id, sp.secret + "x")
    assert_refused(inspect(skopeo, acr.ref("sp/app", "v1"), wrong))
    assert_refused(
        docker_cli.login(acr.host, sp.client_id, sp.secret + "x", check=False),
        "invalid user name or password",
    )
    assert_refused(podman.login(acr.host, sp.client_id, sp.secret + "x", check=False))

    renewed = acr.reset_secret(sp)
    assert_refused(inspect(skopeo, acr.ref("sp/app", "v1"), sp_creds))
    assert_refused(docker_cli.login(acr.host, sp.client_id, sp.secret, check=False))
    new_creds = userpass(renewed.client_id, renewed.secret)
    assert manifest_digest(inspect(skopeo, acr.ref("sp/app", "v1"), new_creds)) == image.digest


# -- 4. anonymous pull ----------------------------------------------------------------------


def test_anonymous_pull(acr: Acr, skopeo: Skopeo, podman: Podman, image: BuiltImage) -> None:
    """Off by default: 401 with the Docker token challenge. On: anonymous skopeo and podman
    pull, while an anonymous push is still refused and its token holds only ``pull``."""
    push(skopeo, image, acr, "public/app", "v1", owner_creds(acr))

    assert_refused(inspect(skopeo, acr.ref("public/app", "v1"), None), "repository:public/app:pull")
    response = acr.get("/v2/public/app/manifests/v1")
    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"
    assert response.headers["WWW-Authenticate"] == (
        f'Bearer realm="{acr.url}/oauth2/token",service="{acr.host}",'
        'scope="repository:public/app:pull"'
    )
    base = acr.get("/v2/")
    assert base.status_code == 401
    assert base.headers["WWW-Authenticate"] == (
        f'Bearer realm="{acr.url}/oauth2/token",service="{acr.host}"'
    )

    assert acr.patch(anonymousPullEnabled=True)["anonymousPullEnabled"] is True
    assert manifest_digest(inspect(skopeo, acr.ref("public/app", "v1"), None)) == image.digest
    image_id = podman.pull(acr.image("public/app", "v1"))
    assert f"sha256:{image_id}" == image.config.digest
    assert acr.get("/v2/public/app/manifests/v1").status_code == 200

    assert_push_refused(
        push(skopeo, image, acr, "public/other", "v1", None, check=False),
        "public/other",
    )
    token = acr.get(
        "/oauth2/token",
        params=[("service", acr.host), ("scope", "repository:public/app:pull,push")],
    )
    assert token.status_code == 200, token.text
    assert jwt_claims(token.json()["token"])["access"] == [
        {"type": "repository", "name": "public/app", "actions": ["pull"]}
    ]

    assert acr.patch(anonymousPullEnabled=False)["anonymousPullEnabled"] is False
    assert_refused(inspect(skopeo, acr.ref("public/app", "v1"), None))


# -- 5. network rules -----------------------------------------------------------------------


def _assert_denied(acr: Acr) -> None:
    for path in ("/v2/", "/v2/net/app/manifests/v1", "/oauth2/token"):
        response = acr.get(path, auth=pair(owner_creds(acr)))
        assert response.status_code == 403, (path, response.status_code, response.text)
        (error,) = response.json()["errors"]
        assert error["code"] == "DENIED", error
        assert "127.0.0.1" in error["message"], error


def test_network_rules(acr: Acr, skopeo: Skopeo, docker_cli: DockerCli, image: BuiltImage) -> None:
    """Default action Deny without our address: skopeo and docker fail, raw HTTP gets 403
    DENIED naming 127.0.0.1. An IP rule for 127.0.0.1 lets us in; public network access
    Disabled shuts us out again; Enabled lets us back."""
    owner = owner_creds(acr)
    push(skopeo, image, acr, "net/app", "v1", owner)

    props = acr.patch(
        networkRuleSet={
            "defaultAction": "Deny",
            "ipRules": [{"action": "Allow", "value": "10.0.0.0/8"}],
        }
    )
    assert props["networkRuleSet"]["defaultAction"] == "Deny"
    failed = inspect(skopeo, acr.ref("net/app", "v1"), owner)
    assert failed.returncode != 0 and "403" in failed.error_text, failed.error_text
    _assert_denied(acr)
    refused = docker_cli.login(acr.host, acr.owner.client_id, acr.owner.secret, check=False)
    assert refused.returncode != 0 and "403 Forbidden" in refused.error_text, refused.error_text

    props = acr.patch(
        networkRuleSet={
            "defaultAction": "Deny",
            "ipRules": [
                {"action": "Allow", "value": "10.0.0.0/8"},
                {"action": "Allow", "value": "127.0.0.1"},
            ],
        }
    )
    assert {r["value"] for r in props["networkRuleSet"]["ipRules"]} >= {"10.0.0.0/8"}
    assert manifest_digest(inspect(skopeo, acr.ref("net/app", "v1"), owner)) == image.digest
    assert (
        "Login Succeeded" in docker_cli.login(acr.host, acr.owner.client_id, acr.owner.secret).text
    )

    assert acr.patch(publicNetworkAccess="Disabled")["publicNetworkAccess"] == "Disabled"
    failed = inspect(skopeo, acr.ref("net/app", "v1"), owner)
    assert failed.returncode != 0 and "403" in failed.error_text, failed.error_text
    _assert_denied(acr)

    assert acr.patch(publicNetworkAccess="Enabled")["publicNetworkAccess"] == "Enabled"
    assert manifest_digest(inspect(skopeo, acr.ref("net/app", "v1"), owner)) == image.digest


# -- 6. docker login with an ACR refresh token ----------------------------------------------


def test_docker_login_with_refresh_token(
    acr: Acr,
    skopeo: Skopeo,
    podman: Podman,
    docker_cli: DockerCli,
    image: BuiltImage,
) -> None:
    """Entra client credentials → access token → ``/oauth2/exchange`` → refresh token, the
    ``az acr login --expose-token`` way; ``docker login`` with the all-zero user name, then
    ``docker manifest inspect`` with the stored login; the token carries the principal's
    roles (AcrPush: skopeo pushes with it)."""
    push(skopeo, image, acr, "rt/app", "v1", owner_creds(acr))
    sp = acr.service_principal("e2e-refresh")
    acr.assign(sp, "AcrPush")

    status, entra = acr.entra_token(sp, ACR_SCOPE)
    assert status == 200, entra
    response = acr.raw.post(
        f"{acr.url}/oauth2/exchange",
        data={
            "grant_type": "access_token",
            "service": acr.host,
            "tenant": sp.tenant_id,
            "access_token": entra["access_token"],
        },
        timeout=30,
    )
    assert response.status_code == 200, response.text
    refresh = response.json()["refresh_token"]
    assert isinstance(refresh, str) and refresh

    done = docker_cli.login(acr.host, REFRESH_TOKEN_USERNAME, refresh)
    assert "Login Succeeded" in done.text
    stored = docker_cli.config()["auths"][acr.host]["auth"]
    assert base64.b64decode(stored).decode() == f"{REFRESH_TOKEN_USERNAME}:{refresh}"
    shown = docker_cli.manifest_inspect(acr.image("rt/app", "v1"))
    assert shown["config"]["digest"] == image.config.digest
    assert [layer["digest"] for layer in shown["layers"]] == [
        layer.digest for layer in image.layers
    ]

    assert "Login Succeeded" in podman.login(acr.host, REFRESH_TOKEN_USERNAME, refresh).text
    assert podman.pull(acr.image("rt/app", "v1")) == image.config.digest.removeprefix("sha256:")
    refresh_creds = userpass(REFRESH_TOKEN_USERNAME, refresh)
    push(skopeo, image, acr, "rt/pushed", "v1", refresh_creds)
    assert manifest_digest(inspect(skopeo, acr.ref("rt/pushed", "v1"), refresh_creds)) == (
        image.digest
    )

    # A refresh token with a broken signature is refused ...
    i = len(refresh) - 10  # inside the signature, a character whose 6 bits all count
    tampered = refresh[:i] + ("A" if refresh[i] != "A" else "B") + refresh[i + 1 :]
    assert_refused(docker_cli.login(acr.host, REFRESH_TOKEN_USERNAME, tampered, check=False))
    assert_refused(
        inspect(skopeo, acr.ref("rt/app", "v1"), userpass(REFRESH_TOKEN_USERNAME, tampered))
    )
    # ... and so is a valid one once its principal is deleted.
    acr.delete_principal(sp)
    assert_refused(docker_cli.login(acr.host, REFRESH_TOKEN_USERNAME, refresh, check=False))
    assert_refused(inspect(skopeo, acr.ref("rt/app", "v1"), refresh_creds))
