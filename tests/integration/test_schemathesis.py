"""Schemathesis against the management API, the identity and token endpoints and the ACR data
plane, as /openapi.json documents them: every operation, a bounded number of generated
requests each (positive and negative, plus schemathesis' coverage cases), sent with the owner
service principal's client id and secret (HTTP Basic: it authenticates on the management API
and, with data-plane authentication on, on the data plane too) to the real application
running in-process. No answer may be a 5xx, and every answer must conform to the document
(status code, content type, headers, body schema); invalid input must be refused with a 4xx,
and an operation that needs a credential must refuse requests without it.

Generated path parameters are mostly swapped for real ones (the service's tenant,
subscription, resource group and location, seeded registries, repositories, import
operations, scope maps, tokens, principals, roles and role assignments, or fresh GUIDs where
an operation creates something), and so are some fields of valid bodies (principal and role
ids, assignable scopes, client credentials and tokens of the token endpoints), so requests
get past the 404s into the handlers; a share keep their generated values. What the fuzzer
may delete or reset is seeded for it: it never aims at the owner's credential or role
assignment, at the default resource group, or at the network rules of the registry the
data plane routes to.

Two servers answer each generated request, one on SQLite and one on PostgreSQL (whose text
columns refuse NUL characters, which schemathesis generates), each aimed at its own seeded
values: generating the requests is most of the fuzzing's cost, so it is paid once for both.

Imports that fuzzing manages to start must not reach the network: the server's egress policy
denies every host, and the test checks that each remote import failed with EgressDenied.

A failure names the request (as curl) and, for a 5xx, carries the server's traceback.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import logging
import os
import threading
import time
import uuid
import zlib
from collections import Counter, defaultdict
from collections.abc import Coroutine, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
import requests
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.parameters import ParameterLocation
from schemathesis.core.transport import Response
from schemathesis.generation import GenerationMode
from schemathesis.generation.meta import TestPhase
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.peers.postgres import PostgresCluster
from tests.support.app import RunningRegistry, make_settings, running_registry
from tests.support.imports import Management, basic_auth
from transship.api.openapi import build_document
from transship.api.route_table import ROLE_SCOPES, ROUTES
from transship.config import EgressRuleSettings, EgressSettings
from transship.imports.model import ImportRequest
from transship.metadata.records import ImportJobRecord

T = TypeVar("T")

# Each operation is fuzzed independently, and the fuzzing is most of the suite's time: under
# xdist the operations spread over the workers, each fuzzing on a server of its own.
pytestmark = [pytest.mark.heavy, pytest.mark.spread]

# Generated requests per operation in the fuzzing phase (the examples and coverage phases
# add theirs): a few thousand requests per database over the 106 operations, under two
# minutes each; TRANSSHIP_FUZZ_EXAMPLES=500 TRANSSHIP_FUZZ_RANDOM=1 for a longer hunt.
MAX_EXAMPLES = int(os.environ.get("TRANSSHIP_FUZZ_EXAMPLES", "30"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
# ignored_auth re-sends a successful request without the credential and with a wrong one: a
# few per operation.
AUTH_PROBES = 3
TARGET = "fuzztarget"  # a registry the fuzzer imports into, and changes the access of
DISPOSABLE = "fuzzdisposable"  # a registry DELETE may remove
REPOSITORY = "fuzz/app"
DISPOSABLE_REPOSITORY = "fuzz/disposable"
UNREACHABLE = "upstream.invalid"  # never resolved: the egress policy denies every host
DISPOSABLE_GROUP = "fuzz-disposable-group"
SCOPE_MAP = "fuzz-scope-map"
DISPOSABLE_SCOPE_MAP = "fuzz-disposable-scope-map"
TOKEN = "fuzz-token"
DISPOSABLE_TOKEN = "fuzz-disposable-token"
USER_PASSWORD = "fuzz-user-password"
ATTRIBUTES_REPOSITORY = "fuzz/attributes"  # whose tag and manifest attributes PATCH may change
VAULT = "https://fuzzvault.vault.azure.net/secrets"
SECRETS = {f"{VAULT}/fuzz-user": "fuzz-user-name", f"{VAULT}/fuzz-password": "fuzz-Pa55word"}
DISPOSABLE_SECRET = f"{VAULT}/fuzz-disposable"
CREDENTIAL_SET = "fuzz-creds"
DISPOSABLE_CREDENTIAL_SET = "fuzz-disposable-creds"
CACHE_RULE = "fuzz-cache-rule"
DISPOSABLE_CACHE_RULE = "fuzz-disposable-cache-rule"
WEBHOOK = "fuzzwebhook"
DISPOSABLE_WEBHOOK = "fuzzdisposablewebhook"
SYNC_RULE = "fuzz-sync"
DISPOSABLE_SYNC_RULE = "fuzz-disposable-sync"
RUNNABLE_SYNC_RULE = "fuzz-runnable-sync"  # the one POST …/run starts: runs push old ones out
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"  # the built-in Reader role
# Built-in roles the fuzzer assigns: Reader, AcrPull, AcrPush, AcrDelete (by id, or name).
ROLES = [READER, "7f951dda-4ed3-4680-a7ca-43fe172d538d", "AcrPush", "AcrDelete"]
ACR_AUDIENCE = "https://containerregistry.azure.net"
AUTHZ = "/providers/Microsoft.Authorization"


# -- the server, in a thread of its own ------------------------------------------------------
class ServerLog(logging.Handler):
    """Error records of the server (with their tracebacks), in order."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        text = f"{record.name}: {self.format(record)}"
        with self._lock:
            self.records.append(text)

    def since(self, mark: int) -> list[str]:
        with self._lock:
            return self.records[mark:]


@dataclass
class Seeded:
    """What exists before fuzzing starts, to aim generated requests at."""

    url: str
    tenant: str
    client_id: str  # the owner service principal's
    client_secret: str
    subscription: str
    resource_group: str
    location: str
    registry_id: str  # TARGET's
    jobs: dict[str, str] = field(default_factory=dict)  # what the job shows → its id
    # Principals: "sp" and "user" are kept, "disposable-sp" and "disposable-user" may be
    # deleted, "assignee" is given roles by the fuzzer.
    principals: dict[str, dict[str, Any]] = field(default_factory=dict)
    role: str = ""  # a custom role
    disposable_role: str = ""  # a custom role DELETE may remove
    # Role assignments by scope (a key of ROLE_SCOPES): kept, and disposable.
    assignments: dict[str, str] = field(default_factory=dict)
    disposable_assignments: dict[str, str] = field(default_factory=dict)
    acr_access_token: str = ""  # an Entra access token for /oauth2/exchange
    refresh_token: str = ""  # an ACR refresh token of the data plane
    digests: dict[str, str] = field(default_factory=dict)  # repository → its v1's digest
    batch: str = ""  # an import batch's id
    local_source: dict[str, str] = field(default_factory=dict)  # an import's source in TARGET
    sync_run: str = ""  # a run of SYNC_RULE


class InProcessServer:
    """The real application (`running_registry`) on an event loop in a daemon thread, so
    schemathesis' synchronous requests can reach it from the test."""

    def __init__(self, data_dir: Path, database_url: str | None, log: ServerLog) -> None:
        self.data_dir = data_dir
        self.database = "sqlite" if database_url is None else "postgresql"
        # Imports started by fuzzing must not reach the network: deny every name and address.
        egress = EgressSettings(
            default="deny",
            rules=(
                EgressRuleSettings(action="deny", target="*"),
                EgressRuleSettings(action="deny", target="0.0.0.0/0"),
                EgressRuleSettings(action="deny", target="::/0"),
            ),
        )
        self.settings = make_settings(
            data_dir, database_url, egress=egress, upstream_retry_attempts=1, data_plane_auth=True
        )
        self.log = log
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._reg: RunningRegistry | None = None
        self._thread = threading.Thread(target=self._main, name="transship-in-process", daemon=True)

    @property
    def reg(self) -> RunningRegistry:
        assert self._reg is not None
        return self._reg

    @property
    def url(self) -> str:
        return self.reg.url

    def start(self) -> InProcessServer:
        self._thread.start()
        if not self._ready.wait(60):
            raise TimeoutError("the in-process server did not start in 60 s")
        if self._error is not None:
            raise RuntimeError("the in-process server failed to start") from self._error
        return self

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        try:
            async with running_registry(self.settings) as reg:
                self._reg = reg
                self._loop = asyncio.get_running_loop()
                self._stop = asyncio.Event()
                self._ready.set()
                await self._stop.wait()
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 120.0) -> T:
        """Run `coro` on the server's loop and wait for its result."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)


async def seed(reg: RunningRegistry, data_dir: Path) -> Seeded:
    """Registries, repositories and import operations in each final state; scope maps,
    tokens, principals, roles and role assignments; tokens for the token endpoints."""
    owner = Management(reg, data_dir)
    credential = json.loads((data_dir / "owner-credential.json").read_text())
    for name in (TARGET, DISPOSABLE):
        await owner.create_registry(name)
    # The data plane wants credentials: push as the owner service principal.
    authorization = {
        "Authorization": basic_auth(credential["clientId"], credential["clientSecret"])
    }
    async with aiohttp.ClientSession(headers=authorization) as http:
        pusher = RunningRegistry(reg.services, reg.server, http)
        pushed = {
            repository: (await pusher.push_image(repository, "v1", seed=seed))[0]
            for repository, seed in (
                (REPOSITORY, b"x"),
                (DISPOSABLE_REPOSITORY, b"d"),
                (ATTRIBUTES_REPOSITORY, b"a"),
            )
        }
    seeded = Seeded(
        reg.url,
        credential["tenantId"],
        credential["clientId"],
        credential["clientSecret"],
        owner.subscription_id,
        owner.resource_group,
        owner.location,
        owner.registry_id(TARGET),
        digests=pushed,
    )
    local = {"resourceId": owner.registry_id("default"), "sourceImage": f"{REPOSITORY}:v1"}
    seeded.local_source = local
    bodies: dict[str, dict[str, Any]] = {
        "succeeded": {"source": local, "targetTags": ["copied:v1"]},
        "tag conflict": {"source": local, "targetTags": ["copied:v1", "other:v1"]},
        "egress denied": {"source": {"registryUri": UNREACHABLE, "sourceImage": "team/app:v1"}},
    }
    for what, body in bodies.items():
        operation = await owner.start_import(TARGET, body)
        assert operation.status == 202, operation.body
        final = await owner.wait(operation)
        seeded.jobs[what] = operation.id
        if what == "succeeded":
            assert final["status"] == "Succeeded", final
        else:
            assert final["status"] == "Failed", final
    await _seed_access(owner, seeded)
    await _seed_registry_features(owner, seeded, local)
    await _seed_tokens(reg, seeded)
    return seeded


async def _put(owner: Management, path: str, body: Any, method: str = "PUT") -> Any:
    status, payload, _ = await owner.call(method, path, body)
    assert status in (200, 201), (method, path, status, payload)
    return payload


async def _seed_access(owner: Management, seeded: Seeded) -> None:
    group = f"/subscriptions/{seeded.subscription}/resourceGroups"
    await _put(owner, f"{group}/{DISPOSABLE_GROUP}", {"location": owner.location})
    # The admin user of "default" (which the fuzzer does not PUT or PATCH) stays enabled, so
    # listCredentials and regenerateCredential can answer.
    default = {"properties": {"adminUserEnabled": True}}
    await _put(owner, owner.registry_id("default"), default, "PATCH")
    registry = seeded.registry_id
    actions = {"actions": ["repositories/fuzz/app/content/read"]}
    for name in (SCOPE_MAP, DISPOSABLE_SCOPE_MAP):
        await _put(owner, f"{registry}/scopeMaps/{name}", {"properties": actions})
    for name in (TOKEN, DISPOSABLE_TOKEN):
        await _put(owner, f"{registry}/tokens/{name}", {"properties": {"scopeMapId": SCOPE_MAP}})
    for key in ("sp", "disposable-sp", "assignee"):
        seeded.principals[key] = await _put(
            owner, "/transship/v1/servicePrincipals", {"displayName": f"fuzz-{key}"}, "POST"
        )
    for key in ("user", "disposable-user"):
        user = {"userName": f"fuzz-{key}", "password": USER_PASSWORD}
        seeded.principals[key] = await _put(owner, "/transship/v1/users", user, "POST")
    for attr in ("role", "disposable_role"):
        role_id = str(uuid.uuid4())
        await _put(
            owner,
            f"{AUTHZ}/roleDefinitions/{role_id}",
            {
                "properties": {
                    "roleName": f"Fuzz {attr}",
                    "permissions": [{"actions": ["Microsoft.ContainerRegistry/registries/read"]}],
                    "assignableScopes": [f"/subscriptions/{seeded.subscription}"],
                }
            },
        )
        setattr(seeded, attr, role_id)
    for label in ROLE_SCOPES:
        scope = _scope_of(label, seeded)
        for kept, principal in ((True, "sp"), (False, "user")):
            assignment = str(uuid.uuid4())
            body: dict[str, Any] = {
                "properties": {
                    "roleDefinitionId": READER,
                    "principalId": seeded.principals[principal]["objectId"],
                }
            }
            await _put(owner, f"{scope}{AUTHZ}/roleAssignments/{assignment}", body)
            (seeded.assignments if kept else seeded.disposable_assignments)[label] = assignment


async def _seed_registry_features(owner: Management, seeded: Seeded, local: dict[str, str]) -> None:
    """Secrets, credential sets, cache rules, webhooks, sync rules (with a run) and an import
    batch of TARGET, kept and disposable, for their operations to reach."""
    for identifier, value in (*SECRETS.items(), (DISPOSABLE_SECRET, "disposable")):
        await _put(owner, "/transship/v1/secrets", {"identifier": identifier, "value": value})
    registry = seeded.registry_id
    for name in (CREDENTIAL_SET, DISPOSABLE_CREDENTIAL_SET):
        await _put(owner, f"{registry}/credentialSets/{name}", _credential_set_body())
    for name in (CACHE_RULE, DISPOSABLE_CACHE_RULE):
        rule = {"properties": _cache_rule_properties(seeded, name)}
        await _put(owner, f"{registry}/cacheRules/{name}", rule)
    for name in (WEBHOOK, DISPOSABLE_WEBHOOK):
        webhook = {"location": owner.location, "properties": _webhook_properties()}
        await _put(owner, f"{registry}/webhooks/{name}", webhook)
    for name in (SYNC_RULE, DISPOSABLE_SYNC_RULE, RUNNABLE_SYNC_RULE):
        await _put(owner, f"/transship/v1/registries/{TARGET}/syncRules/{name}", _sync_rule())
    rule = f"/transship/v1/registries/{TARGET}/syncRules/{SYNC_RULE}"
    status, run, _ = await owner.call("POST", f"{rule}/run")
    assert status == 202, run
    seeded.sync_run = run["id"].rsplit("/", 1)[-1]
    images = {"images": [{"source": local, "targetTags": ["batched:v1"]}]}
    status, batch, _ = await owner.call("POST", f"{registry}/importImages", images)
    assert status == 202, batch
    seeded.batch = batch["id"].rsplit("/", 1)[1]


def _credential_set_body() -> dict[str, Any]:
    user, password = SECRETS
    credential = {
        "name": "Credential1",
        "usernameSecretIdentifier": user,
        "passwordSecretIdentifier": password,
    }
    return {"properties": {"loginServer": UNREACHABLE, "authCredentials": [credential]}}


def _cache_rule_properties(seeded: Seeded, name: str) -> dict[str, str]:
    return {
        "sourceRepository": f"{UNREACHABLE}/{name}/app",
        "targetRepository": f"{name}/app",
        "credentialSetResourceId": f"{seeded.registry_id}/credentialSets/{CREDENTIAL_SET}",
    }


def _webhook_properties() -> dict[str, Any]:
    return {"serviceUri": f"http://{UNREACHABLE}/hook", "actions": ["push"]}


def _sync_rule() -> dict[str, Any]:
    return {
        "sourceRegistry": UNREACHABLE,
        "sourceRepositories": ["team/app"],
        "targetRepository": "mirror/app",
    }


def _scope_of(label: str, seeded: Seeded) -> str:
    """The scope of ROLE_SCOPES[label] that seeded assignments are made at."""
    template, _ = ROLE_SCOPES[label]
    return template.format(
        managementGroupId=seeded.tenant,
        subscriptionId=seeded.subscription,
        resourceGroupName=seeded.resource_group,
        registryName=TARGET,
    )


async def _seed_tokens(reg: RunningRegistry, seeded: Seeded) -> None:
    """An Entra access token for the registries' audience, and a refresh token from it."""
    form = {
        "grant_type": "client_credentials",
        "client_id": seeded.client_id,
        "client_secret": seeded.client_secret,
        "scope": f"{ACR_AUDIENCE}/.default",
    }
    async with reg.request("POST", f"/{seeded.tenant}/oauth2/v2.0/token", data=form) as r:
        assert r.status == 200, await r.text()
        seeded.acr_access_token = (await r.json())["access_token"]
    form = {"grant_type": "access_token", "access_token": seeded.acr_access_token}
    async with reg.request("POST", "/oauth2/exchange", data=form) as r:
        assert r.status == 200, await r.text()
        seeded.refresh_token = (await r.json())["refresh_token"]


def _fresh_guid(value: Any) -> str:
    """A GUID of the generated value: new to the server, the same for the same case."""
    return str(uuid.UUID(bytes=hashlib.md5(repr(value).encode()).digest()))


def _role_scope(path: str) -> str | None:
    """The key of ROLE_SCOPES whose scope the role route `path` is at."""
    prefix, found, _ = path.partition(AUTHZ + "/")
    if not found:
        return None
    return next(label for label, (template, _) in ROLE_SCOPES.items() if template == prefix)


@dataclass
class Fuzzing:
    server: InProcessServer
    seeded: Seeded
    credential: tuple[str, str]  # the owner service principal's client id and secret
    session: requests.Session
    answers: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    auth_probes: Counter[str] = field(default_factory=Counter)

    def real_values(self, name: str, method: str, path: str, generated: Any) -> list[str]:
        """Values of path parameter `name` of `method path` that reach existing things (or,
        where the operation creates something, a new GUID)."""
        seeded = self.seeded
        principals = seeded.principals
        deleting = method == "DELETE" and path.endswith("{" + name + "}")
        if name == "subscriptionId" and "/importOperations/" in path:
            return [seeded.subscription]
        if name == "subscriptionId" and path.startswith("/transship/v1/"):
            return [_fresh_guid(generated)]
        if name == "digest":  # of the repository the "repository" parameter is aimed at
            repository = {"DELETE": DISPOSABLE_REPOSITORY, "PATCH": ATTRIBUTES_REPOSITORY}
            return [seeded.digests[repository.get(method, REPOSITORY)]]
        if name == "roleAssignmentName":
            label = _role_scope(path)
            assert label is not None, path
            if method == "PUT":
                # An assignment's name is unique across scopes: one per scope, or the PUT
                # at a second scope is a 409 and never a 2xx.
                return [_fresh_guid((label, generated))]
            return [(seeded.disposable_assignments if deleting else seeded.assignments)[label]]
        if name == "principalId":
            users = "/users/" in path
            if deleting:
                return [principals["disposable-user" if users else "disposable-sp"]["objectId"]]
            if users:
                return [principals["user"]["objectId"], principals["user"]["userName"]]
            if method == "POST":  # a new secret: never the owner's
                return [principals["sp"]["appId"]]
            return [principals["sp"]["appId"], principals["sp"]["objectId"]]
        if name == "roleDefinitionId":
            if deleting:
                return [seeded.disposable_role]
            if method == "PUT":
                return [seeded.role, _fresh_guid(generated)]
            return [READER, seeded.role]
        if name == "registryName":
            if deleting:
                return ["default", DISPOSABLE]
            # Not the registry the data plane routes to: its network rules must stay open.
            # A registry's seeded items (role assignments, webhooks, sync rules, …) are
            # TARGET's: a path naming one is aimed at TARGET.
            if method in ("PUT", "PATCH") or "{" in path.partition("{registryName}")[2]:
                return [TARGET]
            return [TARGET, "default"]
        return {
            "tenant": [seeded.tenant],
            "tenantId": [_fresh_guid(generated)],
            "managementGroupId": [seeded.tenant],
            "subscriptionId": [seeded.subscription],
            "resourceGroupName": [DISPOSABLE_GROUP] if deleting else [seeded.resource_group],
            "location": [seeded.location],
            "operationId": list(seeded.jobs.values()),
            "repository": [DISPOSABLE_REPOSITORY]
            if method == "DELETE"
            else [ATTRIBUTES_REPOSITORY]
            if method == "PATCH" and ("/_tags/" in path or "/_manifests/" in path)
            else [REPOSITORY],
            "tag": ["v1"],
            "credentialSetName": [DISPOSABLE_CREDENTIAL_SET if deleting else CREDENTIAL_SET],
            "cacheRuleName": [DISPOSABLE_CACHE_RULE if deleting else CACHE_RULE],
            "webhookName": [DISPOSABLE_WEBHOOK if deleting else WEBHOOK],
            "ruleName": [
                DISPOSABLE_SYNC_RULE
                if deleting
                else RUNNABLE_SYNC_RULE
                if path.endswith("/run")
                else SYNC_RULE
            ],
            "runId": [seeded.sync_run],
            "batchId": [seeded.batch],
            "identifier": [DISPOSABLE_SECRET],  # DELETE /transship/v1/secrets?identifier=
            "scopeMapName": [DISPOSABLE_SCOPE_MAP]
            if deleting
            else [SCOPE_MAP]
            if method == "PUT"
            else [SCOPE_MAP, "_repositories_pull"],
            "tokenName": [DISPOSABLE_TOKEN] if deleting else [TOKEN],
        }.get(name, [])

    def real_fields(self, path: str, generated: Any) -> dict[str, list[Any]]:
        """Values of body fields (JSON or form) of `path` that reach existing things."""
        seeded = self.seeded
        assignee, user = seeded.principals["assignee"], seeded.principals["user"]
        if path.startswith("/{tenant}/"):  # the Entra token endpoints
            return {
                "client_id": [seeded.client_id],
                "client_secret": [seeded.client_secret],
                "scope": [f"{seeded.url}/.default", f"{ACR_AUDIENCE}/.default"],
                "resource": [seeded.url],
                "username": [user["userName"]],
                "password": [USER_PASSWORD],
            }
        if path.startswith("/oauth2/"):
            return {
                "username": [seeded.client_id],
                "password": [seeded.client_secret],
                "refresh_token": [seeded.refresh_token],
                "access_token": [seeded.acr_access_token],
                "tenant": [seeded.tenant],
            }
        fields: dict[str, list[Any]] = {
            "principalId": [assignee["objectId"], assignee["appId"], user["userName"]],
            "roleDefinitionId": [*ROLES, f"{AUTHZ}/roleDefinitions/{READER}", seeded.role],
            "assignableScopes": [[f"/subscriptions/{seeded.subscription}"], ["/"]],
            "scopeMapId": [f"{seeded.registry_id}/scopeMaps/_repositories_pull", SCOPE_MAP],
            "tokenId": [f"{seeded.registry_id}/tokens/{TOKEN}", TOKEN],
            "tenantId": [seeded.tenant],
            "subscriptionId": [_fresh_guid(generated)],
            "userName": ["fuzz-" + _fresh_guid(generated)[:8]],
            "password": ["a-password-long-enough"],
            "expiry": ["2099-01-31T00:00:00Z"],
        }
        if "/scopeMaps/" in path:
            fields["actions"] = [
                ["repositories/fuzz/app/content/read", "repositories/fuzz/*/metadata/read"]
            ]
        if path == "/transship/v1/secrets":
            fields["identifier"] = [DISPOSABLE_SECRET]
        if "/credentialSets/" in path:
            credential = _credential_set_body()["properties"]["authCredentials"][0]
            fields |= {key: [value] for key, value in credential.items()}
            fields["loginServer"] = [UNREACHABLE]
        if "/cacheRules/" in path:
            properties = _cache_rule_properties(seeded, CACHE_RULE).items()
            fields |= {key: [value] for key, value in properties}
        if "/webhooks/" in path:
            fields |= {key: [value] for key, value in _webhook_properties().items()}
        if "/syncRules/" in path:
            fields |= {key: [value] for key, value in _sync_rule().items()}
        if path.endswith("/importImages"):
            fields["images"] = [[{"source": seeded.local_source, "targetTags": ["batched:v2"]}]]
        return fields


@contextmanager
def _seeded_server(data_dir: Path, database_url: str | None, log: ServerLog) -> Iterator[Fuzzing]:
    """A server on `database_url` (None: SQLite in `data_dir`), seeded, serving DOCUMENT."""
    server = InProcessServer(data_dir, database_url, log).start()
    try:
        seeded = server.run(seed(server.reg, data_dir))
        with requests.Session() as session:
            served = session.get(f"{server.url}/openapi.json", timeout=30)
            assert served.status_code == 200
            differences = _differences(served.json(), DOCUMENT)
            assert differences == [], f"the served document is not the one fuzzed: {differences}"
            credential = (seeded.client_id, seeded.client_secret)
            fuzzing = Fuzzing(server, seeded, credential, session)
            yield fuzzing
        summary = {op: dict(sorted(statuses.items())) for op, statuses in fuzzing.answers.items()}
        print(
            f"\nschemathesis answers by operation ({server.database}):",
            json.dumps(summary, indent=1),
        )
    finally:
        server.stop()


@pytest.fixture(scope="module")
def targets(
    postgres: PostgresCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Fuzzing, ...]]:
    """Two servers seeded alike, on SQLite and on PostgreSQL, sharing one error log (the
    test sends them one request at a time)."""
    log = ServerLog()
    loggers = [logging.getLogger(name) for name in ("transship", "aiohttp")]
    for logger in loggers:
        logger.addHandler(log)
    database_url = postgres.new_database()
    try:
        with ExitStack() as stack:
            yield tuple(
                stack.enter_context(
                    _seeded_server(tmp_path_factory.mktemp("schemathesis") / "data", url, log)
                )
                for url in (None, database_url)
            )
    finally:
        postgres.drop_database(database_url.rsplit("/", 1)[1])
        for logger in loggers:
            logger.removeHandler(log)


def _differences(a: Any, b: Any, where: str = "") -> list[str]:
    """Where two JSON documents differ (the first few places)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{where}/{k}" for k in sorted(set(a) ^ set(b), key=str)]
        for key in sorted(set(a) & set(b), key=str):
            out += _differences(a[key], b[key], f"{where}/{key}")
        return out[:10]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in _differences(x, y, f"{where}[{i}]")
        ][:10]
    return [] if a == b else [f"{where}: {str(a)[:200]} != {str(b)[:200]}"]


# The document is the one the server serves (checked above, and in tests/unit/api/test_openapi.py);
# schemathesis needs it at collection time to make one test per operation.
DOCUMENT = build_document(ROUTES)
schema = schemathesis.openapi.from_dict(DOCUMENT)
schema.config.generation.update(
    max_examples=MAX_EXAMPLES,
    database="none",
    # Hypothesis derandomized, so CI sends much the same requests each run (schemathesis also
    # learns from the answers, so not byte for byte); TRANSSHIP_FUZZ_RANDOM=1 explores.
    deterministic=os.environ.get("TRANSSHIP_FUZZ_RANDOM") != "1",
    # The test sends the owner's credential itself (and ignored_auth probes without it).
    with_security_parameters=False,
    # Unknown query parameters and body fields are ignored, as ARM does: not invalid input.
    allow_extra_parameters=False,
)


def _negative(case: schemathesis.Case[Any], location: ParameterLocation) -> bool:
    meta = case.meta
    component = None if meta is None else meta.components.get(location)
    return component is not None and component.mode == GenerationMode.NEGATIVE


def _pick(value: Any) -> int:
    """0 to 7, by a hash of the generated value: 0 keeps it, the rest aim it."""
    return zlib.crc32(repr(value).encode()) % 8


def _aimed(value: Any, real: list[Any], always: bool) -> Any | None:
    """The one of `real` that `value` is swapped for, or None when it is kept (1 in 8, by
    its hash, unless `always`)."""
    pick = _pick(value)
    return None if not real or (pick == 0 and not always) else real[pick % len(real)]


def _aim(case: schemathesis.Case[Any], fuzzing: Fuzzing) -> None:
    """Swap most generated path parameters, and some fields of bodies, for real ones (chosen
    by a hash of the generated value, so a case always becomes the same request). Left alone
    when they are the negative part of the case: they must stay invalid. The document's own
    examples are aimed in full, so an operation with one reaches its handler with it."""
    method, path = case.method.upper(), case.operation.path
    example = case.meta is not None and case.meta.phase.name == TestPhase.EXAMPLES
    if not _negative(case, ParameterLocation.PATH):
        for name, value in list((case.path_parameters or {}).items()):
            aimed = _aimed(value, fuzzing.real_values(name, method, path, value), example)
            if aimed is not None:
                case.path_parameters[name] = aimed
    if case.query and not _negative(case, ParameterLocation.QUERY):
        for name, value in list(case.query.items()):
            real = fuzzing.real_values(name, method, path, value) if name == "identifier" else []
            aimed = _aimed(value, real, example)
            if aimed is not None:
                case.query[name] = aimed
    if isinstance(case.body, dict) and not _negative(case, ParameterLocation.BODY):
        # A copy: the examples phase hands out the document's own example values.
        case.body = copy.deepcopy(case.body)
        _aim_fields(case.body, fuzzing.real_fields(path, case.body), example)


def _aim_fields(body: dict[str, Any], fields: dict[str, list[Any]], always: bool) -> None:
    for key, value in list(body.items()):
        aimed = _aimed(value, fields.get(key, []), always)
        if aimed is not None:
            body[key] = aimed
        elif isinstance(value, dict):
            _aim_fields(value, fields, always)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    _aim_fields(item, fields, always)


@pytest.mark.slow
@schema.parametrize()
def test_the_server_conforms_to_its_openapi_document(
    case: schemathesis.Case[Any], targets: tuple[Fuzzing, ...]
) -> None:
    # Each server aims the case at its own seeded values, starting from what was generated.
    # Only what aiming changed is put back: schemathesis re-checks whether a component it
    # generated invalid is still invalid when it is set.
    generated = {
        "path_parameters": copy.copy(case.path_parameters),
        "query": copy.copy(case.query),
        "body": case.body,  # aiming replaces it with an aimed copy
    }
    for fuzzing in targets:
        for name, value in generated.items():
            if getattr(case, name) != value:
                setattr(case, name, copy.copy(value))
        try:
            _conforms(case, fuzzing)
        except (AssertionError, FailureGroup) as exc:
            exc.add_note(f"answered by the server on {fuzzing.server.database}")
            raise


def check_after_call(item: pytest.Item) -> None:
    """After an operation's fuzzing test passed (tests/integration/conftest.py calls it):
    the fuzzing got past authentication and the 404s, so the operation answered a 2xx at
    least once. Per operation, so it holds whichever tests run, and wherever: under xdist
    each worker fuzzes its share of the operations on servers of its own."""
    label = _fuzzed_label(item)
    if label is None or label in NEVER_SUCCEEDS:
        return
    targets: tuple[Fuzzing, ...] = item.funcargs["targets"]
    for fuzzing in targets:
        statuses = dict(fuzzing.answers.get(label, {}))
        database = fuzzing.server.database
        assert any(s.startswith("2") for s in statuses), (
            f"never answered a 2xx on {database}: {label}: {statuses}"
        )


# Operations whose every documented answer is an error (ACR features Transship refuses).
NEVER_SUCCEEDS = {
    f"{method.upper()} {path}"
    for path, item in DOCUMENT["paths"].items()
    for method, operation in item.items()
    if not any(status.startswith("2") for status in operation["responses"])
}


def _fuzzed_label(item: pytest.Item) -> str | None:
    """The operation an operation's fuzzing test fuzzes ("…[GET /path]" → "GET /path"), or
    None for any other test."""
    prefix = "test_the_server_conforms_to_its_openapi_document["
    if not isinstance(item, pytest.Function) or not item.name.startswith(prefix):
        return None
    return item.name.removeprefix(prefix).split("]", 1)[0]


def _conforms(case: schemathesis.Case[Any], fuzzing: Fuzzing) -> None:
    _aim(case, fuzzing)
    mark = len(fuzzing.server.log.records)
    transport: dict[str, Any] = {
        "base_url": fuzzing.server.url,
        "session": fuzzing.session,
        "auth": fuzzing.credential,
        "timeout": 30,
    }
    try:
        response = case.call(**transport)
    except requests.ConnectionError as exc:
        fuzzing.answers[case.operation.label]["no answer"] += 1
        raise AssertionError(
            f"the server closed the connection without answering ({exc}): a server error\n"
            f"{case.as_curl_command(base_url=fuzzing.server.url)}\n" + _server_log(fuzzing, mark)
        ) from None
    fuzzing.answers[case.operation.label][_answer(response)] += 1
    checks = list(CHECKS)
    if response.status_code < 300 and fuzzing.auth_probes[case.operation.label] < AUTH_PROBES:
        fuzzing.auth_probes[case.operation.label] += 1
        checks.append(ignored_auth)
    try:
        case.validate_response(response, checks=checks, transport_kwargs=transport)
    except FailureGroup as exc:
        exc.add_note(_server_log(fuzzing, mark))
        raise


def _answer(response: Response) -> str:
    """The status, with the error code of an ARM, OAuth or OCI error body."""
    status = str(response.status_code)
    if response.status_code < 400:
        return status
    try:
        body = response.json()
    except ValueError:
        return status
    code = None
    if isinstance(body, dict):
        error = body.get("error")
        errors = body.get("errors")
        if isinstance(error, dict):
            code = error.get("code")
        elif isinstance(error, str):
            code = error
        elif isinstance(errors, list) and errors and isinstance(errors[0], dict):
            code = errors[0].get("code")
    return f"{status} {code}" if isinstance(code, str) else status


def _server_log(fuzzing: Fuzzing, mark: int) -> str:
    logged = fuzzing.server.log.since(mark)
    return "server log during the request:\n" + ("\n".join(logged) if logged else "(nothing)")


@pytest.mark.slow
def test_no_import_reached_the_network(targets: tuple[Fuzzing, ...]) -> None:
    """Every import of a remote source that fuzzing started was stopped by the egress policy,
    on both servers."""
    for fuzzing in targets:
        _no_import_reached_the_network(fuzzing)


def _no_import_reached_the_network(fuzzing: Fuzzing) -> None:
    async def jobs() -> list[ImportJobRecord]:
        services = fuzzing.server.reg.services
        async with services.meta.reading() as q:
            registries = await q.registries()
        found: list[ImportJobRecord] = []
        for registry in registries:
            found += await services.imports.list(registry.id)
        return found

    deadline = time.monotonic() + 30
    while True:
        all_jobs = fuzzing.server.run(jobs())
        remote = [j for j in all_jobs if ImportRequest.from_json(j.request).source.host is not None]
        if all(j.state not in ("queued", "running") for j in remote) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert remote, f"the seeded remote import is missing on {fuzzing.server.database}"
    reached = [
        (j.id, j.state, j.error_code, j.error_message)
        for j in remote
        if j.error_code != "EgressDenied" and j.state != "canceled"
    ]
    assert reached == [], fuzzing.server.database


def test_every_operation_is_fuzzed(request: pytest.FixtureRequest) -> None:
    """Each operation of the document gets its own fuzzing test, which `check_after_call`
    recognises (and then checks it answered a 2xx at least once on each server)."""
    documented = {
        f"{method.upper()} {path}" for path, item in DOCUMENT["paths"].items() for method in item
    }
    fuzzed = {result.ok().label for result in schema.get_all_operations()}
    assert fuzzed == documented
    fuzzing_tests = [
        item
        for item in request.session.items
        if isinstance(item, pytest.Function)
        # schemathesis wraps the function: its name is what stays.
        and item.function.__name__ == test_the_server_conforms_to_its_openapi_document.__name__
    ]
    assert fuzzing_tests
    assert {_fuzzed_label(item) for item in fuzzing_tests} <= documented
