"""The egress policy of imports (`transship.imports.egress`), without any network.

The decision function (`EgressPolicy.decide` / `decide_host` / `check_literal`) is checked
for the built-in denials, `deny_private`, ordered rules and defaults; `PolicyResolver` is
driven by a scripted inner resolver (no DNS query is ever sent), including answers that
change between two lookups (DNS rebinding). Nothing here opens a socket: addresses such as
169.254.169.254 or 8.8.8.8 are only ever handed to the decision function.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from hypothesis import given
from hypothesis import strategies as st

from transship.config import EgressRuleSettings
from transship.imports.egress import (
    Action,
    Decision,
    EgressDenied,
    EgressPolicies,
    EgressPolicy,
    EgressRule,
    PolicyResolver,
    policy_from_settings,
)

ip = ipaddress.ip_address

# A policy that allows everything it is allowed to allow: only the built-ins can deny here.
PERMISSIVE = EgressPolicy(
    (
        EgressRule.parse("allow", "0.0.0.0/0"),
        EgressRule.parse("allow", "::/0"),
        EgressRule.parse("allow", "*"),
    ),
    default="allow",
)
DEFAULT = EgressPolicy()
# Most tests below are about rules and resolution, with loopback addresses standing in for
# public ones: they turn deny_private off and say so.
OPEN = EgressPolicy(deny_private=False)


def rules(*pairs: tuple[str, str]) -> tuple[EgressRule, ...]:
    return tuple(EgressRule.parse(action, target) for action, target in pairs)


def decide(policy: EgressPolicy, address: str, host: str = "registry.example.com") -> Decision:
    return policy.decide(host, ip(address))


# -- built-in denials ----------------------------------------------------------------------

BUILT_IN_DENIED = [
    ("169.254.169.254", "link-local 169.254.0.0/16"),
    ("169.254.0.1", "link-local 169.254.0.0/16"),
    ("169.254.255.255", "link-local 169.254.0.0/16"),
    ("169.254.170.2", "link-local 169.254.0.0/16"),  # ECS task metadata
    ("fe80::1", "link-local fe80::/10"),
    ("fe80::a9fe:a9fe", "link-local fe80::/10"),
    ("febf:ffff::1", "link-local fe80::/10"),
    ("fd00:ec2::254", "cloud metadata (AWS IPv6) fd00:ec2::254/128"),
    ("100.100.100.200", "cloud metadata (Alibaba) 100.100.100.200/32"),
    ("0.0.0.0", "unspecified 0.0.0.0/8"),
    ("0.1.2.3", "unspecified 0.0.0.0/8"),
    ("::", "unspecified ::/128"),
    ("224.0.0.1", "multicast 224.0.0.0/4"),
    ("239.255.255.250", "multicast 224.0.0.0/4"),
    ("ff02::1", "multicast ff00::/8"),
    ("ff05::1:3", "multicast ff00::/8"),
    ("255.255.255.255", "broadcast 255.255.255.255/32"),
    # IPv4-mapped IPv6 forms of denied IPv4 addresses.
    ("::ffff:169.254.169.254", "link-local 169.254.0.0/16"),
    ("::ffff:100.100.100.200", "cloud metadata (Alibaba) 100.100.100.200/32"),
    ("::ffff:0.0.0.0", "unspecified 0.0.0.0/8"),
    ("::ffff:224.0.0.1", "multicast 224.0.0.0/4"),
]


@pytest.mark.parametrize(("address", "rule"), BUILT_IN_DENIED)
@pytest.mark.parametrize(
    "policy",
    [DEFAULT, PERMISSIVE, EgressPolicy(deny_private=True)],
    ids=["default", "allow-everything", "deny-private"],
)
def test_built_in_denials_name_their_rule_whatever_the_policy(
    address: str, rule: str, policy: EgressPolicy
) -> None:
    assert decide(policy, address) == Decision(False, f"built-in: {rule}")


@pytest.mark.parametrize(("address", "rule"), BUILT_IN_DENIED)
def test_built_in_denials_apply_to_ip_literal_hosts(address: str, rule: str) -> None:
    for host in (address, f"[{address}]") if ":" in address else (address,):
        with pytest.raises(EgressDenied) as caught:
            PERMISSIVE.check_literal(host)
        assert caught.value.rule == f"built-in: {rule}"
        assert caught.value.address == str(ip(address))
        assert caught.value.host == host
        assert f"built-in: {rule}" in str(caught.value)


def test_a_scoped_link_local_literal_is_denied() -> None:
    with pytest.raises(EgressDenied, match="link-local"):
        PERMISSIVE.check_literal("fe80::1%eth0")
    with pytest.raises(EgressDenied, match="link-local"):
        PERMISSIVE.check_literal("[fe80::a9fe:a9fe%2]")


@pytest.mark.parametrize(
    "allow",
    [
        "169.254.169.254",
        "169.254.169.254/32",
        "169.254.0.0/16",
        "0.0.0.0/0",
        "::/0",
        "::ffff:0:0/96",
        "fd00:ec2::254",
        "100.100.100.200",
        "*",
        "metadata.google.internal",
        "*.internal",
        "metadata",
    ],
)
def test_an_allow_rule_cannot_override_the_metadata_denials(allow: str) -> None:
    policy = EgressPolicy(rules(("allow", allow)), default="allow")
    for address in (
        "169.254.169.254",
        "::ffff:169.254.169.254",
        "fd00:ec2::254",
        "100.100.100.200",
    ):
        assert not decide(policy, address).allowed, (allow, address)
        assert not decide(policy, address, host=address).allowed, (allow, address)
    for name in ("metadata.google.internal", "metadata.azure.internal", "metadata"):
        assert policy.decide_host(name) == Decision(False, f"built-in: cloud metadata name {name}")
        assert not decide(policy, "203.0.113.9", host=name).allowed, (allow, name)


# -- metadata host names -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "canonical"),
    [
        ("metadata.google.internal", "metadata.google.internal"),
        ("METADATA.GOOGLE.INTERNAL.", "metadata.google.internal"),
        ("Metadata.Google.Internal", "metadata.google.internal"),
        ("metadata.azure.internal", "metadata.azure.internal"),
        ("metadata", "metadata"),
        ("instance-data", "instance-data"),
        ("instance-data.ec2.internal", "instance-data.ec2.internal"),
    ],
)
def test_metadata_names_are_denied_by_name(host: str, canonical: str) -> None:
    expected = f"built-in: cloud metadata name {canonical}"
    for policy in (DEFAULT, PERMISSIVE):
        assert policy.decide_host(host) == Decision(False, expected)
        # Whatever the name resolves to (even a public address), the name decides.
        assert policy.decide(host, ip("203.0.113.9")) == Decision(False, expected)
        with pytest.raises(EgressDenied) as caught:
            policy.check_literal(host)
        assert caught.value.address is None and caught.value.rule == expected
        assert host in str(caught.value)


def test_other_names_need_resolving() -> None:
    for host in ("registry.example.com", "metadata.example.com", "google.internal", "metadata2"):
        assert DEFAULT.decide_host(host) is None
        DEFAULT.check_literal(host)  # no decision by name: nothing raised, nothing resolved


# -- defaults and deny_private -------------------------------------------------------------

PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "203.0.113.10",
    "151.101.0.1",
    "2606:4700:4700::1111",
    "2001:db8::1",
]
LOOPBACK_RULE = "egress.deny_private: loopback 127.0.0.0/8"
PRIVATE_10 = "egress.deny_private: private 10.0.0.0/8"
PRIVATE_RULES = {
    "127.0.0.1": LOOPBACK_RULE,
    "127.0.0.2": LOOPBACK_RULE,
    "127.255.255.254": LOOPBACK_RULE,
    "::1": "egress.deny_private: loopback ::1/128",
    "10.0.0.1": PRIVATE_10,
    "10.255.255.255": PRIVATE_10,
    "172.16.0.1": "egress.deny_private: private 172.16.0.0/12",
    "172.31.255.255": "egress.deny_private: private 172.16.0.0/12",
    "192.168.0.1": "egress.deny_private: private 192.168.0.0/16",
    "192.168.255.255": "egress.deny_private: private 192.168.0.0/16",
    "100.64.0.1": "egress.deny_private: shared address space (CGNAT) 100.64.0.0/10",
    "100.127.255.254": "egress.deny_private: shared address space (CGNAT) 100.64.0.0/10",
    "fc00::1": "egress.deny_private: unique local (ULA) fc00::/7",
    "fd12:3456::1": "egress.deny_private: unique local (ULA) fc00::/7",
    "fdff:ffff::1": "egress.deny_private: unique local (ULA) fc00::/7",
    "::ffff:127.0.0.1": LOOPBACK_RULE,
    "::ffff:10.1.2.3": PRIVATE_10,
    "192.0.0.8": "egress.deny_private: IETF protocol assignments 192.0.0.0/24",
    "198.18.0.1": "egress.deny_private: benchmarking 198.18.0.0/15",
    "198.19.255.254": "egress.deny_private: benchmarking 198.18.0.0/15",
    "240.0.0.1": "egress.deny_private: reserved 240.0.0.0/4",
    "fec0::1": "egress.deny_private: site-local fec0::/10",
    "64:ff9b:1::a00:1": "egress.deny_private: local-use NAT64 64:ff9b:1::/48",
    # IPv6 forms that stand for an IPv4 address are judged as that address.
    "64:ff9b::7f00:1": LOOPBACK_RULE,  # NAT64
    "2002:7f00:1::1": LOOPBACK_RULE,  # 6to4
    "2002:a01:203::": PRIVATE_10,
}
PRIVATE = list(PRIVATE_RULES)
NEAR_PRIVATE = [
    "11.0.0.1",
    "9.255.255.255",
    "172.15.255.255",
    "172.32.0.1",
    "192.169.0.1",
    "100.63.255.255",
    "100.128.0.1",
    "fe00::1",
    "fbff::1",
    "128.0.0.1",
]


@pytest.mark.parametrize("address", PUBLIC + PRIVATE + NEAR_PRIVATE)
def test_without_deny_private_everything_not_built_in_is_allowed(address: str) -> None:
    assert decide(OPEN, address) == Decision(True, "default allow")


@pytest.mark.parametrize("address", PRIVATE)
def test_deny_private_is_the_default_and_denies_non_public_ranges(address: str) -> None:
    assert DEFAULT.deny_private is True
    assert decide(DEFAULT, address) == Decision(False, PRIVATE_RULES[address])
    with pytest.raises(EgressDenied) as caught:
        DEFAULT.check_literal(address)
    assert caught.value.rule == PRIVATE_RULES[address]


@pytest.mark.parametrize("address", PUBLIC + NEAR_PRIVATE)
def test_deny_private_leaves_public_addresses_alone(address: str) -> None:
    assert decide(DEFAULT, address) == Decision(True, "default allow")


# -- rules ---------------------------------------------------------------------------------


def test_an_allow_rule_before_deny_private_wins() -> None:
    policy = EgressPolicy(rules(("allow", "10.1.0.0/16")), deny_private=True)
    assert decide(policy, "10.1.2.3") == Decision(True, "allow 10.1.0.0/16")
    assert decide(policy, "10.1.255.255") == Decision(True, "allow 10.1.0.0/16")
    assert decide(policy, "10.2.0.1") == Decision(False, PRIVATE_10)
    assert decide(policy, "192.168.1.1") == Decision(False, PRIVATE_RULES["192.168.0.1"])
    assert decide(policy, "8.8.8.8") == Decision(True, "default allow")


def test_address_rules_first_match_wins() -> None:
    narrow_first = EgressPolicy(rules(("allow", "10.1.0.0/16"), ("deny", "10.0.0.0/8")))
    wide_first = EgressPolicy(rules(("deny", "10.0.0.0/8"), ("allow", "10.1.0.0/16")))
    assert decide(narrow_first, "10.1.0.5") == Decision(True, "allow 10.1.0.0/16")
    assert decide(narrow_first, "10.2.0.5") == Decision(False, "deny 10.0.0.0/8")
    assert decide(wide_first, "10.1.0.5") == Decision(False, "deny 10.0.0.0/8")
    assert decide(wide_first, "11.0.0.1") == Decision(True, "default allow")


def test_address_rules_do_not_cross_ip_versions() -> None:
    policy = EgressPolicy(rules(("deny", "0.0.0.0/0")))
    assert decide(policy, "2606:4700:4700::1111") == Decision(True, "default allow")
    assert decide(policy, "8.8.8.8") == Decision(False, "deny 0.0.0.0/0")
    # ... but an IPv4-mapped IPv6 address is judged as the IPv4 address it is.
    assert decide(policy, "::ffff:8.8.8.8") == Decision(False, "deny 0.0.0.0/0")


def test_a_host_wildcard_rule() -> None:
    policy = EgressPolicy(rules(("deny", "*.internal.example")))
    for host in ("a.internal.example", "A.B.Internal.Example.", "x-1.internal.example"):
        assert policy.decide_host(host) == Decision(False, "deny *.internal.example")
        assert decide(policy, "203.0.113.7", host=host) == Decision(
            False, "deny *.internal.example"
        )
        with pytest.raises(EgressDenied) as caught:
            policy.check_literal(host)
        assert caught.value.rule == "deny *.internal.example"
    for host in ("internal.example", "evilinternal.example", "a.internal.example.org"):
        assert policy.decide_host(host) is None
        assert decide(policy, "203.0.113.7", host=host) == Decision(True, "default allow")


def test_an_exact_host_rule() -> None:
    policy = EgressPolicy(rules(("deny", "Registry.Example.com.")), default="allow")
    for host in ("registry.example.com", "REGISTRY.EXAMPLE.COM", "registry.example.com."):
        assert decide(policy, "203.0.113.7", host=host) == Decision(
            False, "deny registry.example.com"
        )
    for host in ("sub.registry.example.com", "registry.example.com.evil", "xregistry.example.com"):
        assert decide(policy, "203.0.113.7", host=host) == Decision(True, "default allow")


def test_host_rules_first_match_wins() -> None:
    policy = EgressPolicy(rules(("allow", "good.internal.example"), ("deny", "*.internal.example")))
    assert decide(policy, "203.0.113.7", host="good.internal.example") == Decision(
        True, "allow good.internal.example"
    )
    assert decide(policy, "203.0.113.7", host="bad.internal.example") == Decision(
        False, "deny *.internal.example"
    )


def test_a_host_rule_wins_over_deny_private_for_that_host_only() -> None:
    """A rule allowing the host comes before deny_private..."""
    policy = EgressPolicy(rules(("allow", "mirror.corp.example")), deny_private=True)
    assert decide(policy, "10.0.0.7", host="mirror.corp.example") == Decision(
        True, "allow mirror.corp.example"
    )
    # ... and only for that host.
    assert decide(policy, "10.0.0.7", host="other.corp.example") == Decision(False, PRIVATE_10)


def test_first_match_wins_across_address_and_host_rules() -> None:
    """Rules are one ordered list (first match wins): an address rule listed before a host
    rule decides first, so `deny 10.0.0.0/8` still holds for an allowed name whose DNS
    answer is in 10/8."""
    deny_first = EgressPolicy(rules(("deny", "10.0.0.0/8"), ("allow", "registry.example.com")))
    assert decide(deny_first, "10.0.0.5") == Decision(False, "deny 10.0.0.0/8")
    assert decide(deny_first, "203.0.113.5") == Decision(True, "allow registry.example.com")
    allow_first = EgressPolicy(rules(("allow", "registry.example.com"), ("deny", "10.0.0.0/8")))
    assert decide(allow_first, "10.0.0.5") == Decision(True, "allow registry.example.com")


def test_default_deny_with_an_allowlist() -> None:
    policy = EgressPolicy(
        rules(
            ("allow", "203.0.113.0/24"),
            ("allow", "2001:db8::/32"),
            ("allow", "*.registry.example"),
            ("allow", "docker.example"),
        ),
        default="deny",
    )
    assert decide(policy, "203.0.113.7", host="anything.example") == Decision(
        True, "allow 203.0.113.0/24"
    )
    assert decide(policy, "2001:db8::1", host="anything.example") == Decision(
        True, "allow 2001:db8::/32"
    )
    assert decide(policy, "198.51.100.1", host="eu.registry.example") == Decision(
        True, "allow *.registry.example"
    )
    assert decide(policy, "198.51.100.1", host="docker.example") == Decision(
        True, "allow docker.example"
    )
    for host, address in (
        ("anything.example", "198.51.100.1"),
        ("anything.example", "2001:db9::1"),
        ("registry.example", "198.51.100.1"),
    ):
        assert decide(policy, address, host=host) == Decision(False, "default deny"), (
            host,
            address,
        )
    # deny_private (on by default) decides before the default does.
    assert decide(policy, "127.0.0.1", host="anything.example") == Decision(False, LOOPBACK_RULE)
    with pytest.raises(EgressDenied, match="default deny"):
        policy.check_literal("198.51.100.1")
    policy.check_literal("203.0.113.7")
    # A name is decided once resolved: nothing to refuse before that.
    policy.check_literal("anything.example")


# -- parsing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "network", "host"),
    [
        ("10.0.0.0/8", "10.0.0.0/8", None),
        ("10.1.2.3", "10.1.2.3/32", None),
        ("10.1.2.3/8", "10.0.0.0/8", None),
        ("::1", "::1/128", None),
        ("fc00::/7", "fc00::/7", None),
        ("Registry.Example.COM.", None, "registry.example.com"),
        ("*.internal.example", None, "*.internal.example"),
        ("*", None, "*"),
    ],
)
def test_rule_parse(target: str, network: str | None, host: str | None) -> None:
    rule = EgressRule.parse("deny", target)
    assert rule.action == "deny"
    assert rule.network == (ipaddress.ip_network(network) if network else None)
    assert rule.host == host


@pytest.mark.parametrize(
    ("action", "target"),
    [
        ("permit", "10.0.0.0/8"),
        ("Allow", "10.0.0.0/8"),
        ("", "10.0.0.0/8"),
        ("deny", ""),
        ("deny", "   "),
        ("deny", "."),
        ("deny", "10.0.0.0/33"),
        ("deny", "300.1.2.3/8"),
        ("deny", "fe80::/129"),
        ("deny", "http://metadata.google.internal"),
        ("deny", "host/path"),
        ("deny", "user@host"),
        ("deny", "two words"),
    ],
)
def test_rule_parse_refuses_junk(action: str, target: str) -> None:
    with pytest.raises(ValueError):
        EgressRule.parse(action, target)


def test_policy_from_settings() -> None:
    policy = policy_from_settings(
        [
            EgressRuleSettings(action="deny", target="127.0.0.3/32"),
            EgressRuleSettings(action="allow", target="*.example"),
        ],
        "deny",
        True,
    )
    assert policy == EgressPolicy(
        rules(("deny", "127.0.0.3/32"), ("allow", "*.example")), "deny", True
    )
    with pytest.raises(ValueError):
        policy_from_settings([], "maybe", False)


# -- per-registry policies -----------------------------------------------------------------


def test_per_registry_policies_override_the_default_case_insensitively() -> None:
    default = OPEN
    strict = EgressPolicy(rules(("deny", "127.0.0.3/32")), deny_private=True)
    policies = EgressPolicies(default, {"TeamA": strict})
    for name in ("TeamA", "teama", "TEAMA"):
        assert policies.for_registry(name) is strict
    for other in ("teamb", "", None):
        assert policies.for_registry(other) is default
    assert not policies.for_registry("teama").decide("x", ip("127.0.0.3")).allowed
    assert policies.for_registry("teamb").decide("x", ip("127.0.0.3")).allowed


# -- property: link-local is always denied -------------------------------------------------

link_local_v4 = st.integers(0, 0xFFFF).map(
    lambda n: ipaddress.IPv4Address((169 << 24) | (254 << 16) | n)
)


@st.composite
def allow_rule_covering(draw: st.DrawFn, address: ipaddress.IPv4Address) -> EgressRule:
    kind = draw(st.sampled_from(["network", "exact", "host", "mapped"]))
    if kind == "network":
        prefix = draw(st.integers(0, 32))
        return EgressRule.parse("allow", f"{address}/{prefix}")
    if kind == "exact":
        return EgressRule.parse("allow", str(address))
    if kind == "mapped":
        prefix = draw(st.integers(96, 128))
        return EgressRule.parse("allow", f"::ffff:{address}/{prefix}")
    return EgressRule.parse(
        "allow", draw(st.sampled_from(["*", "registry.example.com", "*.example.com", "*.com"]))
    )


DEFAULTS: list[Action] = ["allow", "deny"]


@given(
    data=st.data(),
    address=link_local_v4,
    deny_private=st.booleans(),
    default=st.sampled_from(DEFAULTS),
)
def test_link_local_ipv4_is_always_denied_whatever_allow_rules_come_first(
    data: st.DataObject, address: ipaddress.IPv4Address, deny_private: bool, default: Action
) -> None:
    allows = data.draw(st.lists(allow_rule_covering(address), min_size=1, max_size=5))
    policy = EgressPolicy(tuple(allows), default, deny_private)
    for host in ("registry.example.com", str(address)):
        for candidate in (address, ipaddress.IPv6Address(f"::ffff:{address}")):
            decision = policy.decide(host, candidate)
            assert decision == Decision(False, "built-in: link-local 169.254.0.0/16"), (
                policy,
                candidate,
            )
    with pytest.raises(EgressDenied):
        policy.check_literal(str(address))


# -- PolicyResolver ------------------------------------------------------------------------


def answer(host: str, address: str, port: int = 443) -> ResolveResult:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return ResolveResult(hostname=host, host=address, port=port, family=family, proto=0, flags=0)


class ScriptedResolver(AbstractResolver):
    """Answers each lookup of a name with the next scripted list of addresses (the last one
    repeats); an unknown name fails as DNS would. Records every question."""

    def __init__(self, script: dict[str, Sequence[Sequence[str]]]) -> None:
        self.script = script
        self.asked: list[tuple[str, int, socket.AddressFamily]] = []
        self.closed = False

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        lookups = sum(1 for name, _, _ in self.asked if name == host)
        self.asked.append((host, port, family))
        if host not in self.script:
            raise OSError(f"scripted resolver: no such host {host}")
        answers = self.script[host]
        return [answer(host, address, port) for address in answers[min(lookups, len(answers) - 1)]]

    async def close(self) -> None:
        self.closed = True


DENY_3 = EgressPolicy(rules(("deny", "127.0.0.3/32")), deny_private=False)


async def test_a_name_resolving_to_a_denied_address_is_refused_naming_host_address_and_rule() -> (
    None
):
    inner = ScriptedResolver({"evil.example": [["169.254.169.254"]]})
    with pytest.raises(EgressDenied) as caught:
        await PolicyResolver(DEFAULT, inner).resolve("evil.example", 443)
    assert inner.asked == [("evil.example", 443, socket.AF_INET)]
    denied = caught.value
    assert (denied.host, denied.address, denied.rule) == (
        "evil.example",
        "169.254.169.254",
        "built-in: link-local 169.254.0.0/16",
    )
    message = str(denied)
    for part in ("evil.example", "169.254.169.254", "built-in: link-local 169.254.0.0/16"):
        assert part in message
    assert isinstance(denied, OSError)  # aiohttp reports resolver failures as OSErrors


async def test_a_name_resolving_to_a_loopback_address_denied_by_rule_is_refused() -> None:
    inner = ScriptedResolver({"registry.test": [["127.0.0.3"]]})
    with pytest.raises(EgressDenied) as caught:
        await PolicyResolver(DENY_3, inner).resolve("registry.test", 5000)
    assert (caught.value.address, caught.value.rule) == ("127.0.0.3", "deny 127.0.0.3/32")
    assert "registry.test (127.0.0.3)" in str(caught.value)


async def test_mixed_answers_keep_only_the_allowed_addresses_in_order() -> None:
    inner = ScriptedResolver(
        {
            "mixed.example": [
                [
                    "169.254.169.254",
                    "127.0.0.2",
                    "127.0.0.3",
                    "::ffff:169.254.169.254",
                    "::1",
                    "fe80::1",
                    "fe80::1%eth0",
                    "127.0.0.4",
                ]
            ]
        }
    )
    got = await PolicyResolver(DENY_3, inner).resolve("mixed.example", 80, socket.AF_UNSPEC)
    assert [a["host"] for a in got] == ["127.0.0.2", "::1", "127.0.0.4"]
    assert all(a["hostname"] == "mixed.example" and a["port"] == 80 for a in got)
    assert inner.asked == [("mixed.example", 80, socket.AF_UNSPEC)]


async def test_when_every_answer_is_denied_the_first_refusal_is_reported() -> None:
    inner = ScriptedResolver({"all-bad.example": [["127.0.0.3", "169.254.169.254"]]})
    with pytest.raises(EgressDenied) as caught:
        await PolicyResolver(DENY_3, inner).resolve("all-bad.example", 80)
    assert (caught.value.address, caught.value.rule) == ("127.0.0.3", "deny 127.0.0.3/32")


async def test_no_answer_at_all_is_refused() -> None:
    inner = ScriptedResolver({"empty.example": [[]]})
    with pytest.raises(EgressDenied):
        await PolicyResolver(DEFAULT, inner).resolve("empty.example", 80)


@pytest.mark.parametrize(
    ("policy", "second", "rule"),
    [
        (OPEN, "169.254.169.254", "built-in: link-local 169.254.0.0/16"),
        (DENY_3, "127.0.0.3", "deny 127.0.0.3/32"),
        (
            EgressPolicy(deny_private=True, rules=rules(("allow", "127.0.0.2/32"))),
            "127.0.0.1",
            LOOPBACK_RULE,
        ),
    ],
    ids=["metadata", "denied-loopback", "deny-private"],
)
async def test_dns_rebinding_between_two_lookups_is_refused(
    policy: EgressPolicy, second: str, rule: str
) -> None:
    """The first lookup is harmless (127.0.0.2, allowed); the second, for the same name,
    answers a denied address. Each resolution is judged on its own answers."""
    inner = ScriptedResolver({"rebind.example": [["127.0.0.2"], [second]]})
    resolver = PolicyResolver(policy, inner)
    first = await resolver.resolve("rebind.example", 5000)
    assert [a["host"] for a in first] == ["127.0.0.2"]
    with pytest.raises(EgressDenied) as caught:
        await resolver.resolve("rebind.example", 5000)
    assert (caught.value.host, caught.value.address, caught.value.rule) == (
        "rebind.example",
        second,
        rule,
    )
    assert len(inner.asked) == 2


async def test_rebinding_to_a_mixed_answer_keeps_only_allowed_addresses() -> None:
    inner = ScriptedResolver({"rebind.example": [["127.0.0.2"], ["127.0.0.3", "127.0.0.2"]]})
    resolver = PolicyResolver(DENY_3, inner)
    await resolver.resolve("rebind.example", 5000)
    assert [a["host"] for a in await resolver.resolve("rebind.example", 5000)] == ["127.0.0.2"]


@pytest.mark.parametrize(
    ("policy", "host", "rule"),
    [
        (
            DEFAULT,
            "metadata.google.internal",
            "built-in: cloud metadata name metadata.google.internal",
        ),
        (
            PERMISSIVE,
            "METADATA.GOOGLE.INTERNAL.",
            "built-in: cloud metadata name metadata.google.internal",
        ),
        (
            PERMISSIVE,
            "metadata.azure.internal",
            "built-in: cloud metadata name metadata.azure.internal",
        ),
        (
            EgressPolicy(rules(("deny", "*.internal.example"))),
            "svc.internal.example",
            "deny *.internal.example",
        ),
        (EgressPolicy(rules(("deny", "registry.test"))), "Registry.Test", "deny registry.test"),
    ],
)
async def test_a_denied_name_is_refused_before_the_inner_resolver_is_asked(
    policy: EgressPolicy, host: str, rule: str
) -> None:
    inner = ScriptedResolver({host: [["127.0.0.2"]]})
    with pytest.raises(EgressDenied) as caught:
        await PolicyResolver(policy, inner).resolve(host, 80)
    assert inner.asked == []
    assert (caught.value.host, caught.value.address, caught.value.rule) == (host, None, rule)
    assert host in str(caught.value) and rule in str(caught.value)


async def test_an_allowed_name_passes_through_and_close_reaches_the_inner_resolver() -> None:
    inner = ScriptedResolver({"ok.example": [["127.0.0.2", "::1"]]})
    resolver = PolicyResolver(OPEN, inner)
    got = await resolver.resolve("ok.example", 5000, socket.AF_UNSPEC)
    assert got == [answer("ok.example", "127.0.0.2", 5000), answer("ok.example", "::1", 5000)]
    await resolver.close()
    assert inner.closed


async def test_inner_resolver_failures_pass_through_unchanged() -> None:
    inner = ScriptedResolver({})
    with pytest.raises(OSError, match="no such host") as caught:
        await PolicyResolver(DEFAULT, inner).resolve("nowhere.example", 80)
    assert not isinstance(caught.value, EgressDenied)
