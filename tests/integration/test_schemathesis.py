"""Schemathesis against the management API and the ACR data plane, as /openapi.json documents
them: every operation, a bounded number of generated requests each (positive and negative,
plus schemathesis' coverage cases), sent with the admin credential to the real application
running in-process. No answer may be a 5xx, and every answer must conform to the document
(status code, content type, headers, body schema); invalid input must be refused with a 4xx,
and an operation that needs the credential must refuse requests without it.

Generated path parameters are mostly swapped for real ones (the service's subscription,
resource group and location, seeded registries, repositories and import operations), so
requests get past the 404s into the handlers; a share keep their generated values.

The server runs once on SQLite and once on PostgreSQL (whose text columns refuse NUL
characters, which schemathesis generates).

Imports that fuzzing manages to start must not reach the network: the server's egress policy
denies every host, and the test checks that each remote import failed with EgressDenied.

A failure names the request (as curl) and, for a 5xx, carries the server's traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation import GenerationMode
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
from tests.support.imports import Management
from transship.api.openapi import build_document
from transship.config import EgressRuleSettings, EgressSettings
from transship.imports.model import ImportRequest
from transship.metadata.records import ImportJobRecord

T = TypeVar("T")

# Generated requests per operation in the fuzzing phase (the examples and coverage phases
# add theirs); TRANSSHIP_FUZZ_EXAMPLES=500 TRANSSHIP_FUZZ_RANDOM=1 for a longer hunt.
MAX_EXAMPLES = int(os.environ.get("TRANSSHIP_FUZZ_EXAMPLES", "60"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
# ignored_auth re-sends a successful request without the credential and with a wrong one; a
# wrong one costs the server a scrypt verification (~0.1 s), so a few per operation.
AUTH_PROBES = 3
TARGET = "fuzztarget"  # a registry the fuzzer imports into
DISPOSABLE = "fuzzdisposable"  # a registry DELETE may remove
REPOSITORY = "fuzz/app"
DISPOSABLE_REPOSITORY = "fuzz/disposable"
UNREACHABLE = "upstream.invalid"  # never resolved: the egress policy denies every host


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

    subscription: str
    resource_group: str
    location: str
    jobs: dict[str, str] = field(default_factory=dict)  # what the job shows → its id


class InProcessServer:
    """The real application (`running_registry`) on an event loop in a daemon thread, so
    schemathesis' synchronous requests can reach it from the test."""

    def __init__(self, data_dir: Path, database_url: str | None) -> None:
        self.data_dir = data_dir
        # Imports started by fuzzing must not reach the network: deny every name and address.
        egress = EgressSettings(
            default="deny",
            rules=(
                EgressRuleSettings(action="deny", target="*"),
                EgressRuleSettings(action="deny", target="0.0.0.0/0"),
                EgressRuleSettings(action="deny", target="::/0"),
            ),
        )
        self.settings = make_settings(data_dir, database_url, egress=egress, upstream_retry_attempts=1)
        self.log = ServerLog()
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
        for name in ("transship", "aiohttp"):
            logging.getLogger(name).addHandler(self.log)
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
        for name in ("transship", "aiohttp"):
            logging.getLogger(name).removeHandler(self.log)


async def seed(reg: RunningRegistry, data_dir: Path) -> Seeded:
    """Registries, repositories and import operations in each final state."""
    admin = Management(reg, data_dir)
    for name in (TARGET, DISPOSABLE):
        await admin.create_registry(name)
    await reg.push_image(REPOSITORY, "v1")
    await reg.push_image(DISPOSABLE_REPOSITORY, "v1", seed=b"d")
    seeded = Seeded(admin.subscription_id, admin.resource_group, admin.location)
    local = {"resourceId": admin.registry_id("default"), "sourceImage": f"{REPOSITORY}:v1"}
    bodies: dict[str, dict[str, Any]] = {
        "succeeded": {"source": local, "targetTags": ["copied:v1"]},
        "tag conflict": {"source": local, "targetTags": ["copied:v1", "other:v1"]},
        "egress denied": {"source": {"registryUri": UNREACHABLE, "sourceImage": "team/app:v1"}},
    }
    for what, body in bodies.items():
        operation = await admin.start_import(TARGET, body)
        assert operation.status == 202, operation.body
        final = await admin.wait(operation)
        seeded.jobs[what] = operation.id
        if what == "succeeded":
            assert final["status"] == "Succeeded", final
        else:
            assert final["status"] == "Failed", final
    return seeded


@dataclass
class Fuzzing:
    server: InProcessServer
    seeded: Seeded
    admin: tuple[str, str]  # the admin credential (username, password)
    session: requests.Session
    answers: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    auth_probes: Counter[str] = field(default_factory=Counter)

    def real_values(self, name: str, method: str) -> list[str]:
        """Values of path parameter `name` that reach existing things."""
        seeded = self.seeded
        return {
            "subscriptionId": [seeded.subscription],
            "resourceGroupName": [seeded.resource_group],
            "location": [seeded.location],
            "registryName": ["default", DISPOSABLE] if method == "DELETE" else [TARGET, "default"],
            "operationId": list(seeded.jobs.values()),
            "repository": [DISPOSABLE_REPOSITORY] if method == "DELETE" else [REPOSITORY],
        }.get(name, [])


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.peers)])
def fuzzing(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzing]:
    """A server on SQLite or PostgreSQL (whose text refuses NUL characters), seeded."""
    database_url: str | None = None
    cluster: PostgresCluster | None = None
    if request.param == "postgresql":
        cluster = request.getfixturevalue("postgres")
        database_url = cluster.new_database()
    data_dir = tmp_path_factory.mktemp("schemathesis") / "data"
    server = InProcessServer(data_dir, database_url).start()
    try:
        seeded = server.run(seed(server.reg, data_dir))
        credential = json.loads((data_dir / "admin-credential.json").read_text())
        with requests.Session() as session:
            served = session.get(f"{server.url}/openapi.json", timeout=30)
            assert served.status_code == 200
            assert served.json() == DOCUMENT, "the served document is not the one fuzzed"
            fuzzing = Fuzzing(server, seeded, (credential["username"], credential["password"]), session)
            yield fuzzing
        summary = {op: dict(sorted(statuses.items())) for op, statuses in fuzzing.answers.items()}
        print("\nschemathesis answers by operation:", json.dumps(summary, indent=1))
    finally:
        server.stop()
        if cluster is not None and database_url is not None:
            cluster.drop_database(database_url.rsplit("/", 1)[1])


# The document is the one the server serves (checked above, and in tests/unit/api/test_openapi.py);
# schemathesis needs it at collection time to make one test per operation.
DOCUMENT = build_document()
schema = schemathesis.openapi.from_dict(DOCUMENT)
schema.config.generation.update(
    max_examples=MAX_EXAMPLES,
    database="none",
    # Hypothesis derandomized, so CI sends much the same requests each run (schemathesis also
    # learns from the answers, so not byte for byte); TRANSSHIP_FUZZ_RANDOM=1 explores.
    deterministic=os.environ.get("TRANSSHIP_FUZZ_RANDOM") != "1",
    # The test sends the admin credential itself (and ignored_auth probes without it).
    with_security_parameters=False,
    # Unknown query parameters and body fields are ignored, as ARM does: not invalid input.
    allow_extra_parameters=False,
)


def _aim(case: schemathesis.Case[Any], fuzzing: Fuzzing) -> None:
    """Swap most generated path parameters for real ones (chosen by a hash of the generated
    value, so a case always becomes the same request). Left alone when the path parameters
    are the negative part of the case: they must stay invalid."""
    meta = case.meta
    if meta is not None:
        component = meta.components.get(ParameterLocation.PATH)
        if component is not None and component.mode == GenerationMode.NEGATIVE:
            return
    for name, value in list((case.path_parameters or {}).items()):
        real = fuzzing.real_values(name, case.method.upper())
        pick = zlib.crc32(repr(value).encode()) % 8
        if real and pick > 0:  # 7 in 8
            case.path_parameters[name] = real[pick % len(real)]


@pytest.mark.slow
@schema.parametrize()
def test_the_server_conforms_to_its_openapi_document(case: schemathesis.Case[Any], fuzzing: Fuzzing) -> None:
    _aim(case, fuzzing)
    mark = len(fuzzing.server.log.records)
    transport: dict[str, Any] = {
        "base_url": fuzzing.server.url,
        "session": fuzzing.session,
        "auth": fuzzing.admin,
        "timeout": 30,
    }
    try:
        response = case.call(**transport)
    except requests.ConnectionError as exc:
        fuzzing.answers[case.operation.label]["no answer"] += 1
        raise AssertionError(
            f"the server closed the connection without answering ({exc}): a server error\n"
            f"{case.as_curl_command(base_url=fuzzing.server.url)}\n"
            + _server_log(fuzzing, mark)
        ) from None
    fuzzing.answers[case.operation.label][str(response.status_code)] += 1
    checks = list(CHECKS)
    if response.status_code < 300 and fuzzing.auth_probes[case.operation.label] < AUTH_PROBES:
        fuzzing.auth_probes[case.operation.label] += 1
        checks.append(ignored_auth)
    try:
        case.validate_response(response, checks=checks, transport_kwargs=transport)
    except FailureGroup as exc:
        exc.add_note(_server_log(fuzzing, mark))
        raise


def _server_log(fuzzing: Fuzzing, mark: int) -> str:
    logged = fuzzing.server.log.since(mark)
    return "server log during the request:\n" + ("\n".join(logged) if logged else "(nothing)")


@pytest.mark.slow
def test_no_import_reached_the_network(fuzzing: Fuzzing) -> None:
    """Every import of a remote source that fuzzing started was stopped by the egress policy."""

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
    assert remote, "the seeded remote import is missing"
    reached = [(j.id, j.state, j.error_code, j.error_message) for j in remote if j.error_code != "EgressDenied" and j.state != "canceled"]
    assert reached == []


@pytest.mark.slow
def test_every_operation_succeeded_at_least_once(fuzzing: Fuzzing) -> None:
    """The fuzzing got past authentication and the 404s: each operation answered a 2xx."""
    if not fuzzing.answers:
        pytest.skip("runs after the schemathesis tests of the same server")
    operations = {
        f"{method.upper()} {path}" for path, item in DOCUMENT["paths"].items() for method in item
    }
    succeeded = {
        label for label, statuses in fuzzing.answers.items() if any(s.startswith("2") for s in statuses)
    }
    assert sorted(operations - succeeded) == []
