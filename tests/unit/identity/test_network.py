"""`transship.identity.network`: IP rules, per-registry network rules, client decisions."""

from __future__ import annotations

import ipaddress
from dataclasses import FrozenInstanceError

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transship.identity.network import (
    MAX_IP_RULES,
    InvalidNetworkRule,
    NetworkRules,
    client_allowed,
    denial_message,
    parse_ip_rule,
    trusted_service_allowed,
)

ENABLED_ALLOW = NetworkRules()
ENABLED_DENY = NetworkRules(default_action="Deny", ip_rules=("203.0.113.0/24", "2001:db8::/32"))
DISABLED_ALLOW = NetworkRules(public_network_access="Disabled")
DISABLED_DENY = NetworkRules(
    public_network_access="Disabled", default_action="Deny", ip_rules=("0.0.0.0/0", "::/0")
)


# -- parse_ip_rule -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("10.0.0.1", "10.0.0.1/32"),
        ("10.0.0.1/32", "10.0.0.1/32"),
        ("10.0.0.0/8", "10.0.0.0/8"),
        ("10.1.2.3/8", "10.0.0.0/8"),
        ("0.0.0.0/0", "0.0.0.0/0"),
        ("1.2.3.4/255.255.0.0", "1.2.0.0/16"),
        ("2001:db8::1", "2001:db8::1/128"),
        ("2001:DB8::/32", "2001:db8::/32"),
        ("2001:0db8:0000:0000:0000:0000:0000:0000/32", "2001:db8::/32"),
        ("2001:db8::1/64", "2001:db8::/64"),
        ("::/0", "::/0"),
        ("::1", "::1/128"),
        ("::ffff:1.2.3.4", "1.2.3.4/32"),
        ("::ffff:10.0.0.0/104", "10.0.0.0/8"),
        ("::ffff:0:0/96", "0.0.0.0/0"),
        ("::fffe:0:0/95", "::fffe:0:0/95"),
        ("127.0.0.1", "127.0.0.1/32"),
    ],
)
def test_parse_ip_rule(text: str, canonical: str) -> None:
    assert parse_ip_rule(text) == canonical
    assert parse_ip_rule(canonical) == canonical


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        " 10.0.0.1",
        "10.0.0.1 ",
        "10.0.0.1\n",
        "10.0.0",
        "10.0.0.256",
        "010.0.0.1",
        "10.0.0.1/33",
        "10.0.0.1/-1",
        "10.0.0.1/",
        "/8",
        "10.0.0.1/8/8",
        "10.0.0.0-10.0.0.255",
        "2001:db8::/129",
        "2001:db8:::1",
        "fe80::1%eth0",
        "fe80::1%eth0/64",
        "[::1]",
        "localhost",
        "*",
        "any",
    ],
)
def test_parse_ip_rule_rejects(text: str) -> None:
    with pytest.raises(InvalidNetworkRule) as caught:
        parse_ip_rule(text)
    assert repr(text) in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("value", [None, 167772161, ("10.0.0.0", 8), b"10.0.0.1"])
def test_parse_ip_rule_rejects_non_strings(value: object) -> None:
    with pytest.raises(InvalidNetworkRule):
        parse_ip_rule(value)  # type: ignore[arg-type]


MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


@given(st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)), st.data())
def test_parse_ip_rule_canonical_networks(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, data: st.DataObject
) -> None:
    prefix = data.draw(st.integers(0, address.max_prefixlen))
    network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    canonical = parse_ip_rule(f"{address}/{prefix}")
    assert parse_ip_rule(canonical) == canonical
    parsed = ipaddress.ip_network(canonical)
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(MAPPED):
        # Stored as the IPv4 network it maps.
        assert isinstance(parsed, ipaddress.IPv4Network)
        assert parsed.prefixlen == prefix - 96
        assert ipaddress.IPv6Address(f"::ffff:{parsed.network_address}") == network.network_address
    else:
        assert canonical == str(network)
    # A bare address is a single-address network.
    assert ipaddress.ip_network(parse_ip_rule(str(address))).num_addresses == 1


@given(st.text(max_size=50))
def test_parse_ip_rule_only_raises_invalid_network_rule(text: str) -> None:
    try:
        canonical = parse_ip_rule(text)
    except InvalidNetworkRule as error:
        assert repr(text) in str(error)
    else:
        assert parse_ip_rule(canonical) == canonical


@given(st.text(st.sampled_from("0123456789abcdefABCDEF:./%"), max_size=45))
def test_parse_ip_rule_near_misses(text: str) -> None:
    try:
        canonical = parse_ip_rule(text)
    except InvalidNetworkRule:
        return
    assert "/" in canonical
    assert parse_ip_rule(canonical) == canonical


# -- NetworkRules ------------------------------------------------------------------------------


def test_defaults() -> None:
    rules = NetworkRules()
    assert rules.public_network_access == "Enabled"
    assert rules.default_action == "Allow"
    assert rules.ip_rules == ()
    assert rules.bypass == "AzureServices"


def test_ip_rules_are_stored_canonically() -> None:
    rules = NetworkRules(
        default_action="Deny", ip_rules=("10.1.2.3/8", "2001:DB8::1", "::ffff:1.2.3.4")
    )
    assert rules.ip_rules == ("10.0.0.0/8", "2001:db8::1/128", "1.2.3.4/32")
    assert rules == NetworkRules(
        default_action="Deny", ip_rules=("10.0.0.0/8", "2001:db8::1/128", "1.2.3.4/32")
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"public_network_access": "enabled"}, "invalid publicNetworkAccess 'enabled'"),
        ({"public_network_access": ""}, "invalid publicNetworkAccess ''"),
        ({"default_action": "deny"}, "invalid defaultAction 'deny'"),
        ({"default_action": "Block"}, "invalid defaultAction 'Block'"),
        ({"bypass": "none"}, "invalid networkRuleBypassOptions 'none'"),
        ({"bypass": "AzureServices,None"}, "invalid networkRuleBypassOptions"),
        ({"ip_rules": ("10.0.0.1", "nope")}, "invalid IP rule 'nope'"),
    ],
)
def test_network_rules_validate(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidNetworkRule, match=message):
        NetworkRules(**kwargs)  # type: ignore[arg-type]


def test_ip_rule_limit() -> None:
    rules = tuple(f"10.0.{i // 256}.{i % 256}" for i in range(MAX_IP_RULES + 1))
    assert len(NetworkRules(ip_rules=rules[:MAX_IP_RULES]).ip_rules) == MAX_IP_RULES
    with pytest.raises(InvalidNetworkRule, match=f"at most {MAX_IP_RULES}"):
        NetworkRules(ip_rules=rules)


def test_network_rules_are_frozen() -> None:
    with pytest.raises(FrozenInstanceError):
        ENABLED_DENY.default_action = "Allow"  # type: ignore[misc]
    assert len({NetworkRules(), NetworkRules(), ENABLED_DENY}) == 2


def test_to_json() -> None:
    assert ENABLED_DENY.to_json() == {
        "publicNetworkAccess": "Enabled",
        "networkRuleBypassOptions": "AzureServices",
        "networkRuleSet": {
            "defaultAction": "Deny",
            "ipRules": [
                {"action": "Allow", "value": "203.0.113.0/24"},
                {"action": "Allow", "value": "2001:db8::/32"},
            ],
        },
    }
    assert NetworkRules().to_json()["networkRuleSet"] == {"defaultAction": "Allow", "ipRules": []}


# -- client_allowed ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "::1", "10.0.0.1", "203.0.113.7", "2001:db8::5", "::ffff:127.0.0.1", "junk", ""],
)
def test_public_allow_admits_everyone_and_disabled_admits_no_one(address: str) -> None:
    assert client_allowed(ENABLED_ALLOW, address)
    assert not client_allowed(DISABLED_ALLOW, address)
    assert not client_allowed(DISABLED_DENY, address)


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("203.0.113.0", True),
        ("203.0.113.7", True),
        ("203.0.113.255", True),
        ("203.0.112.255", False),
        ("203.0.114.0", False),
        ("::ffff:203.0.113.7", True),
        ("::ffff:203.0.114.7", False),
        ("2001:db8::5", True),
        ("2001:DB8:ffff::5", True),
        ("2001:db9::5", False),
        ("fe80::1%eth0", False),
        # Loopback gets no special treatment.
        ("127.0.0.1", False),
        ("::1", False),
        ("::ffff:127.0.0.1", False),
        # Unparseable addresses are refused.
        ("", False),
        ("junk", False),
        ("203.0.113.7:5000", False),
        ("[2001:db8::5]", False),
    ],
)
def test_deny_admits_only_listed_networks(address: str, allowed: bool) -> None:
    assert client_allowed(ENABLED_DENY, address) is allowed


def test_deny_without_rules_admits_no_one() -> None:
    rules = NetworkRules(default_action="Deny")
    for address in ("127.0.0.1", "::1", "10.0.0.1"):
        assert not client_allowed(rules, address)


def test_mapped_rules_and_mapped_clients_meet_as_ipv4() -> None:
    rules = NetworkRules(default_action="Deny", ip_rules=("::ffff:10.0.0.0/104",))
    assert client_allowed(rules, "10.1.2.3")
    assert client_allowed(rules, "::ffff:10.1.2.3")
    assert not client_allowed(rules, "11.0.0.1")
    # An IPv6 "everything" rule does not cover IPv4 clients, mapped or not.
    v6_only = NetworkRules(default_action="Deny", ip_rules=("::/0",))
    assert client_allowed(v6_only, "2001:db8::1")
    assert not client_allowed(v6_only, "10.0.0.1")
    assert not client_allowed(v6_only, "::ffff:10.0.0.1")


def test_zone_id_on_a_client_address_is_ignored() -> None:
    rules = NetworkRules(default_action="Deny", ip_rules=("fe80::/10",))
    assert client_allowed(rules, "fe80::1%eth0")


@given(st.ip_addresses(v=4), st.integers(0, 32), st.ip_addresses(v=4))
def test_client_allowed_agrees_with_ipaddress(
    rule_address: ipaddress.IPv4Address, prefix: int, client: ipaddress.IPv4Address
) -> None:
    network = ipaddress.IPv4Network((rule_address, prefix), strict=False)
    rules = NetworkRules(default_action="Deny", ip_rules=(f"{rule_address}/{prefix}",))
    assert client_allowed(rules, str(client)) is (client in network)
    assert client_allowed(rules, f"::ffff:{client}") is (client in network)


@given(st.ip_addresses(v=6), st.integers(0, 128), st.ip_addresses(v=6))
def test_client_allowed_agrees_with_ipaddress_v6(
    rule_address: ipaddress.IPv6Address, prefix: int, client: ipaddress.IPv6Address
) -> None:
    network = ipaddress.IPv6Network((rule_address, prefix), strict=False)
    mapped = MAPPED
    rules = NetworkRules(default_action="Deny", ip_rules=(str(network),))
    if client.ipv4_mapped is not None:
        # Judged as IPv4 against a rule that, if mapped too, was stored as IPv4.
        expected = prefix >= 96 and network.subnet_of(mapped) and client in network
    else:
        expected = client in network and not (prefix >= 96 and network.subnet_of(mapped))
    assert client_allowed(rules, str(client)) is expected


# -- trusted services --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("public", "default", "bypass", "expected"),
    [
        ("Enabled", "Allow", "AzureServices", True),
        ("Enabled", "Allow", "None", True),
        ("Enabled", "Deny", "AzureServices", True),
        ("Enabled", "Deny", "None", False),
        ("Disabled", "Allow", "AzureServices", True),
        ("Disabled", "Allow", "None", False),
        ("Disabled", "Deny", "AzureServices", True),
        ("Disabled", "Deny", "None", False),
    ],
)
def test_trusted_service_allowed(public: str, default: str, bypass: str, expected: bool) -> None:
    rules = NetworkRules(public_network_access=public, default_action=default, bypass=bypass)
    assert trusted_service_allowed(rules) is expected


# -- denial_message ----------------------------------------------------------------------------


DENY = NetworkRules(default_action="Deny")


@pytest.mark.parametrize(
    ("address", "shown"),
    [
        ("1.2.3.4", "1.2.3.4"),
        ("::ffff:1.2.3.4", "1.2.3.4"),
        ("2001:DB8::1", "2001:db8::1"),
    ],
)
def test_denial_message_names_the_rule_to_add(address: str, shown: str) -> None:
    assert denial_message(address, "myregistry", DENY) == (
        f"client with IP '{shown}' is not allowed access. To grant access, add a network "
        f"rule: `transship registry network-rule add -n myregistry --ip-address {shown}` (or "
        "`az acr network-rule add`), or set the default action to Allow: `transship registry "
        "update -n myregistry --default-action Allow`."
    )


@pytest.mark.parametrize(
    ("address", "shown"),
    [("junk", "junk"), ("", ""), ("a'b", "a\\u0027b"), ("a\nb\\", "a\\u000ab\\u005c")],
)
def test_denial_message_for_an_address_that_is_not_one(address: str, shown: str) -> None:
    assert denial_message(address, "myregistry", DENY) == (
        f"client with IP '{shown}' is not allowed access. Registry 'myregistry' accepts only "
        "the clients its network rules allow (see `transship registry network-rule list`)."
    )


def test_denial_message_when_public_access_is_disabled() -> None:
    rules = NetworkRules(public_network_access="Disabled")
    assert denial_message("1.2.3.4", "myregistry", rules) == (
        "client with IP '1.2.3.4' is not allowed access. Public network access to registry "
        "'myregistry' is disabled: `transship registry update -n myregistry "
        "--public-network-enabled true` enables it."
    )


def test_denial_message_points_at_no_azure_page() -> None:
    for rules in (DENY, NetworkRules(public_network_access="Disabled")):
        for address in ("10.1.2.3", "junk"):
            message = denial_message(address, "myregistry", rules)
            assert "aka.ms" not in message and "microsoft" not in message.lower()


@given(st.text(max_size=30), st.text(max_size=10))
def test_denial_message_is_one_printable_line(address: str, registry: str) -> None:
    message = denial_message(address, registry, DENY)
    assert message.isprintable()
    assert message.startswith("client with IP '")
    # The address cannot close its quotes early, nor the registry name add a backtick.
    assert message.count("'") in (2, 4)
