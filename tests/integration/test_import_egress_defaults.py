"""The egress defaults, with whole imports through the in-process server: private ranges
are denied unless allowed (`deny_private` on by default), and an upstream an administrator
configured under `[upstreams]` is trusted, for the imports that read from it, at its
endpoint's host only.

Upstreams are the fakes of tests/unit/imports/fake_registry.py on 127.0.0.x (loopback is
the "private" range here); the loopback-only guard of test_import_egress.py is active, and
names resolve through a scripted resolver, never DNS.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import TARGET, ImportEnvFactory, insecure
from tests.integration.test_import_egress import (
    PASSWORD,
    REPO,
    USERNAME,
    Connections,
    Serve,
    Upstream,
    assert_denied,
    assert_landed,
    assert_untouched,
    import_body,
    inject_resolver,
    loopback_only,
    port_of,
    serve,
    storage_on,
)
from tests.support.imports import assert_failed, assert_succeeded
from tests.unit.imports.fake_registry import FakeStorage, FakeTokenService
from tests.unit.imports.test_egress import ScriptedResolver

__all__ = ["loopback_only", "serve"]  # fixtures: the guard (autouse) and fake servers


def hint(target: str, setting: str = "egress") -> str:
    return (
        f'to allow it, add {{ action = "allow", target = "{target}" }} to {setting}.rules, '
        "or configure the registry under [upstreams]"
    )


async def test_an_unconfigured_loopback_upstream_is_refused_naming_the_setting(
    import_env: ImportEnvFactory, serve: Serve, loopback_only: Connections
) -> None:
    upstream: Upstream = await serve(Upstream("127.0.0.1"))
    env = await import_env()  # no egress settings at all: the defaults
    final = await env.run_import(import_body(upstream.authority))
    error = await assert_denied(env, final)
    assert error["message"] == (
        "egress to 127.0.0.1 is denied by rule: egress.deny_private: loopback 127.0.0.0/8; "
        + hint("127.0.0.1")
    )
    assert final["properties"]["failure"]["step"] == "resolve"
    assert_untouched(loopback_only, upstream)


async def test_a_name_resolving_to_a_private_address_is_refused_and_the_hint_names_it(
    import_env: ImportEnvFactory,
    serve: Serve,
    monkeypatch: pytest.MonkeyPatch,
    loopback_only: Connections,
) -> None:
    upstream: Upstream = await serve(Upstream("127.0.0.2"))
    host = f"internal.egress.test:{port_of(upstream)}"
    resolver = ScriptedResolver({"internal.egress.test": [["127.0.0.2"]]})
    inject_resolver(monkeypatch, resolver)
    env = await import_env()
    error = await assert_denied(env, await env.run_import(import_body(host)))
    assert error["message"] == (
        "egress to internal.egress.test (127.0.0.2) is denied by rule: "
        "egress.deny_private: loopback 127.0.0.0/8; " + hint("internal.egress.test")
    )
    assert [name for name, _, _ in resolver.asked] == ["internal.egress.test"]
    assert_untouched(loopback_only, upstream)


async def test_a_configured_loopback_upstream_is_trusted(
    import_env: ImportEnvFactory, serve: Serve, loopback_only: Connections
) -> None:
    upstream: Upstream = await serve(Upstream("127.0.0.2"))
    env = await import_env(upstreams=insecure(upstream.authority))
    assert_succeeded(await env.run_import(import_body(upstream.authority)))
    await assert_landed(env)
    assert ("127.0.0.2", port_of(upstream)) in loopback_only.made


async def test_a_docker_io_stand_in_works_out_of_the_box(
    import_env: ImportEnvFactory, serve: Serve
) -> None:
    """The first-run path of the README (`--source docker.io/library/…`) with the hub
    replaced by a configured loopback endpoint, as the test suites and air-gapped mirrors
    do: no egress setting needed."""
    upstream: Upstream = await serve(Upstream("127.0.0.2"))
    env = await import_env(upstreams={"docker.io": {"endpoint": upstream.url, "insecure": True}})
    body: dict[str, Any] = {
        "source": {"registryUri": "docker.io", "sourceImage": f"{REPO}:v1"},
        "targetTags": ["app:v1"],
    }
    assert_succeeded(await env.run_import(body))
    await assert_landed(env)


async def test_the_trust_covers_the_endpoint_host_on_any_port(
    import_env: ImportEnvFactory, serve: Serve, loopback_only: Connections
) -> None:
    """A token service on another port of the same host (distribution with docker_auth,
    the test suite's docker-registry peers) needs no rule."""
    upstream = Upstream("127.0.0.2", auth="bearer")
    tokens: FakeTokenService = await serve(FakeTokenService(upstream, host="127.0.0.2"))
    await serve(upstream)
    assert port_of(tokens) != port_of(upstream)
    env = await import_env(upstreams=insecure(upstream.authority))
    final = await env.run_import(
        import_body(upstream.authority, {"username": USERNAME, "password": PASSWORD})
    )
    assert_succeeded(final)
    await assert_landed(env)
    assert len(tokens.token_requests) == 1


async def test_a_redirect_from_a_trusted_upstream_to_another_private_host_is_refused(
    import_env: ImportEnvFactory, serve: Serve, loopback_only: Connections
) -> None:
    storage: FakeStorage = await serve(storage_on("127.0.0.4"))
    upstream: Upstream = await serve(Upstream("127.0.0.2", redirect_blobs_to=storage.url))
    env = await import_env(upstreams=insecure(upstream.authority))
    final = await env.run_import(import_body(upstream.authority))
    error = await assert_denied(env, final, "egress.deny_private: loopback 127.0.0.0/8")
    assert error["message"].startswith("egress to 127.0.0.4 is denied"), error
    assert final["properties"]["failure"]["step"] == "copy"
    assert upstream.seen("manifest") and upstream.seen("blob")
    assert_untouched(loopback_only, storage)


async def test_the_suggested_rule_lets_that_redirect_through(
    import_env: ImportEnvFactory, serve: Serve, loopback_only: Connections
) -> None:
    """The hint of the refusal above is right: with the rule it names, the import lands."""
    storage: FakeStorage = await serve(storage_on("127.0.0.4"))
    upstream: Upstream = await serve(Upstream("127.0.0.2", redirect_blobs_to=storage.url))
    env = await import_env(
        upstreams=insecure(upstream.authority),
        egress={"rules": [{"action": "allow", "target": "127.0.0.4"}]},
    )
    assert_succeeded(await env.run_import(import_body(upstream.authority)))
    await assert_landed(env)
    assert len(storage.requests) == 2


async def test_the_trust_belongs_to_imports_from_that_upstream_only(
    import_env: ImportEnvFactory,
    serve: Serve,
    monkeypatch: pytest.MonkeyPatch,
    loopback_only: Connections,
) -> None:
    """Another upstream (allowed by a rule) that redirects its blobs to the trusted host
    does not inherit the trust: an importer cannot bounce the service into it."""
    trusted: FakeStorage = await serve(storage_on("127.0.0.2"))
    other: Upstream = await serve(Upstream("127.0.0.3", redirect_blobs_to=trusted.url))
    host = f"other.egress.test:{port_of(other)}"
    inject_resolver(monkeypatch, ScriptedResolver({"other.egress.test": [["127.0.0.3"]]}))
    env = await import_env(
        upstreams={trusted.authority: {"insecure": True}, host: {"insecure": True}},
        egress={"rules": [{"action": "allow", "target": "other.egress.test"}]},
    )
    final = await env.run_import(import_body(host))
    error = await assert_denied(env, final, "egress.deny_private: loopback 127.0.0.0/8")
    assert error["message"].startswith("egress to 127.0.0.2 is denied"), error
    assert other.seen("blob")
    assert_untouched(loopback_only, trusted)


async def test_a_per_registry_policy_names_its_own_setting(
    import_env: ImportEnvFactory, serve: Serve, loopback_only: Connections
) -> None:
    upstream: Upstream = await serve(Upstream("127.0.0.1"))
    env = await import_env(egress_registries={"strictreg": {"default": "allow"}})
    await env.admin.create_registry("StrictReg")
    final = await env.admin.run_import("StrictReg", import_body(upstream.authority))
    error = assert_failed(final, "EgressDenied")
    assert error["message"] == (
        "egress to 127.0.0.1 is denied by rule: egress_registries.strictreg.deny_private: "
        "loopback 127.0.0.0/8; " + hint("127.0.0.1", "egress_registries.strictreg")
    )
    assert_untouched(loopback_only, upstream)
    # The other registries keep the [egress] policy (the same defaults here).
    error = await assert_denied(env, await env.run_import(import_body(upstream.authority)))
    assert "egress.deny_private" in error["message"] and TARGET != "StrictReg"


async def test_an_upstream_entry_with_trusted_false_gets_no_trust(
    import_env: ImportEnvFactory, serve: Serve, loopback_only: Connections
) -> None:
    """`trusted = false` (a partner's registry, configured only for `insecure` or a
    `ca_file`, whose DNS someone else controls): its host is judged like any other."""
    upstream: Upstream = await serve(Upstream("127.0.0.2"))
    env = await import_env(upstreams={upstream.authority: {"insecure": True, "trusted": False}})
    error = await assert_denied(env, await env.run_import(import_body(upstream.authority)))
    assert "egress.deny_private: loopback 127.0.0.0/8" in error["message"], error
    assert_untouched(loopback_only, upstream)
