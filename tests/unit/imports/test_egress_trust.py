"""The defaults of the egress policy and the trust an `[upstreams]` entry gives its
endpoint host (`EgressPolicy.trusting`), on the decision function alone: no socket."""

from __future__ import annotations

import ipaddress

import pytest

from transship.imports.egress import (
    Decision,
    EgressDenied,
    EgressPolicy,
    EgressRule,
    built_in_network_denial,
    normal_host,
    policy_from_settings,
)

ip = ipaddress.ip_address
LOOPBACK = "egress.deny_private: loopback 127.0.0.0/8"


def test_a_trusted_name_is_allowed_on_any_private_address_it_resolves_to() -> None:
    policy = EgressPolicy().trusting("Mirror.Internal.")
    for address in ("10.1.2.3", "127.0.0.1", "fd00::5", "::ffff:192.168.1.1"):
        assert policy.decide("mirror.internal", ip(address)) == Decision(
            True, "configured upstream endpoint mirror.internal"
        )
    # Only that name: another name on the same address is not trusted.
    assert not policy.decide("other.internal", ip("10.1.2.3")).allowed
    assert not policy.decide("sub.mirror.internal", ip("10.1.2.3")).allowed


@pytest.mark.parametrize(
    ("trusted", "host"), [("::1", "[::1]"), ("[::1]", "::1"), ("[0:0::1]", "::1")]
)
def test_a_trusted_address_literal_matches_in_any_spelling(trusted: str, host: str) -> None:
    policy = EgressPolicy().trusting(trusted)
    assert policy.decide(host, ip("::1")).allowed
    policy.check_literal(host)
    assert normal_host(trusted) == "::1"


def test_trust_does_not_lift_the_built_in_denials() -> None:
    policy = EgressPolicy().trusting("169.254.169.254").trusting("metadata.google.internal")
    assert not policy.decide("169.254.169.254", ip("169.254.169.254")).allowed
    assert not policy.decide("metadata.google.internal", ip("10.0.0.1")).allowed


def test_an_explicit_rule_comes_before_the_trust() -> None:
    deny = EgressPolicy((EgressRule.parse("deny", "10.0.0.0/8"),)).trusting("mirror.internal")
    assert deny.decide("mirror.internal", ip("10.0.0.9")) == Decision(False, "deny 10.0.0.0/8")


def test_trust_lifts_an_allowlist_default_and_deny_private_alike() -> None:
    allowlist = EgressPolicy(default="deny").trusting("127.0.0.1")
    assert allowlist.decide("127.0.0.1", ip("127.0.0.1")).allowed
    assert not allowlist.decide("127.0.0.2", ip("127.0.0.2")).allowed
    assert not allowlist.decide("public.example", ip("203.0.113.5")).allowed


def test_trusting_returns_a_new_policy() -> None:
    base = EgressPolicy()
    trusted = base.trusting("mirror.internal")
    assert base.trusted_hosts == frozenset() and trusted.trusted_hosts == {"mirror.internal"}
    assert not base.decide("mirror.internal", ip("10.0.0.1")).allowed


def test_a_refusal_names_the_setting_and_a_rule_that_would_allow_it() -> None:
    with pytest.raises(EgressDenied) as caught:
        EgressPolicy().check_literal("127.0.0.1")
    assert str(caught.value) == (
        "egress to 127.0.0.1 is denied by rule: egress.deny_private: loopback 127.0.0.0/8; "
        'to allow it, add { action = "allow", target = "127.0.0.1" } to egress.rules, or '
        "configure the registry under [upstreams]"
    )
    per_registry = policy_from_settings((), "deny", False, setting="egress_registries.prod")
    decision = per_registry.decide("registry.example.com", ip("203.0.113.5"))
    assert decision == Decision(False, "default deny")
    assert decision.hint == (
        'to allow it, add { action = "allow", target = "registry.example.com" } to '
        "egress_registries.prod.rules, or configure the registry under [upstreams]"
    )


def test_an_allowed_decision_has_no_hint() -> None:
    assert EgressPolicy().decide("registry.example.com", ip("203.0.113.5")).hint is None


@pytest.mark.parametrize(
    ("network", "denial"),
    [
        ("169.254.169.254/32", "built-in: link-local 169.254.0.0/16"),
        ("169.254.0.0/16", "built-in: link-local 169.254.0.0/16"),
        ("fe80::/64", "built-in: link-local fe80::/10"),
        ("224.0.0.0/8", "built-in: multicast 224.0.0.0/4"),
        ("169.0.0.0/8", None),  # partly reachable: an allow rule for it does something
        ("0.0.0.0/0", None),
        ("::/0", None),
        ("10.0.0.0/8", None),
    ],
)
def test_built_in_network_denial(network: str, denial: str | None) -> None:
    assert built_in_network_denial(ipaddress.ip_network(network)) == denial
