"""Per-registry network rules with ACR's semantics: public access, default action, IP rules.

Pure: no I/O. Decisions:

- public network access `Disabled`: no client is allowed (trusted services may be, see
  `trusted_service_allowed`);
- otherwise default action `Allow`: every client is allowed;
- otherwise (`Deny`): a client is allowed iff its address falls in one of the IP rules.

IP rules are IPv4 or IPv6 networks or single addresses, kept in canonical CIDR form (see
`parse_ip_rule`). A client's IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is judged as the
IPv4 address. Loopback and private addresses get no special treatment.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Final

PUBLIC_ACCESS_VALUES: Final = ("Enabled", "Disabled")
DEFAULT_ACTION_VALUES: Final = ("Allow", "Deny")
BYPASS_VALUES: Final = ("AzureServices", "None")
# ACR's limit on the number of IP rules of one registry.
MAX_IP_RULES: Final = 200

_IPV4_MAPPED: Final = ipaddress.IPv6Network("::ffff:0:0/96")

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class InvalidNetworkRule(ValueError):
    """A network rule setting or IP rule is not valid."""


def _network(text: str) -> _Network:
    invalid = InvalidNetworkRule(f"invalid IP rule {text!r}: an IPv4 or IPv6 address or CIDR range")
    # ipaddress also takes integers and tuples, and zone ids on IPv6; rules are plain text.
    if not isinstance(text, str) or not text or "%" in text or text != text.strip():
        raise invalid
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise invalid from None
    if (
        isinstance(network, ipaddress.IPv6Network)
        and network.prefixlen >= _IPV4_MAPPED.prefixlen
        and network.subnet_of(_IPV4_MAPPED)
    ):
        # An IPv4-mapped rule: the clients it names are judged as IPv4, so store it as IPv4.
        mapped = network.network_address.ipv4_mapped
        assert mapped is not None
        return ipaddress.IPv4Network((mapped, network.prefixlen - _IPV4_MAPPED.prefixlen))
    return network


def parse_ip_rule(text: str) -> str:
    """The canonical CIDR form of an IP rule: `10.0.0.1` -> `10.0.0.1/32`, `10.1.2.3/8` ->
    `10.0.0.0/8` (host bits cleared), IPv6 compressed and lowercase (`2001:DB8::/32` ->
    `2001:db8::/32`), IPv4-mapped IPv6 (`::ffff:10.0.0.0/104`) as IPv4 (`10.0.0.0/8`).

    Raises InvalidNetworkRule naming `text` for anything else, including surrounding
    whitespace and IPv6 zone ids (`%eth0`).
    """
    return str(_network(text))


def _choice(field: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InvalidNetworkRule(f"invalid {field} {value!r}: one of {', '.join(allowed)}")


@dataclass(frozen=True, slots=True)
class NetworkRules:
    """A registry's network settings, validated on construction (InvalidNetworkRule).

    Values are case-sensitive, as ACR returns them. `ip_rules` are stored in canonical
    form (`parse_ip_rule`), at most `MAX_IP_RULES` of them.
    """

    public_network_access: str = "Enabled"
    default_action: str = "Allow"
    ip_rules: tuple[str, ...] = ()
    bypass: str = "AzureServices"

    def __post_init__(self) -> None:
        _choice("publicNetworkAccess", self.public_network_access, PUBLIC_ACCESS_VALUES)
        _choice("defaultAction", self.default_action, DEFAULT_ACTION_VALUES)
        _choice("networkRuleBypassOptions", self.bypass, BYPASS_VALUES)
        if len(self.ip_rules) > MAX_IP_RULES:
            raise InvalidNetworkRule(
                f"{len(self.ip_rules)} IP rules: at most {MAX_IP_RULES} are allowed"
            )
        canonical = tuple(parse_ip_rule(rule) for rule in self.ip_rules)
        if canonical != self.ip_rules:
            object.__setattr__(self, "ip_rules", canonical)

    def to_json(self) -> dict[str, Any]:
        """The registry ARM properties these rules correspond to."""
        return {
            "publicNetworkAccess": self.public_network_access,
            "networkRuleBypassOptions": self.bypass,
            "networkRuleSet": {
                "defaultAction": self.default_action,
                "ipRules": [{"action": "Allow", "value": rule} for rule in self.ip_rules],
            },
        }


def _client_address(address: str) -> _Address | None:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return parsed.ipv4_mapped
    return parsed


def client_allowed(rules: NetworkRules, address: str) -> bool:
    """Whether a client connecting from `address` may use the registry (see module doc).

    Under `Deny`, an address that does not parse as an IP address is refused.
    """
    if rules.public_network_access != "Enabled":
        return False
    if rules.default_action == "Allow":
        return True
    client = _client_address(address)
    if client is None:
        return False
    return any(client in ipaddress.ip_network(rule, strict=False) for rule in rules.ip_rules)


def trusted_service_allowed(rules: NetworkRules) -> bool:
    """Whether a trusted Azure service may use the registry: when every public client may
    (access Enabled, default Allow), or when the rules let Azure services bypass them."""
    everyone = rules.public_network_access == "Enabled" and rules.default_action == "Allow"
    return everyone or rules.bypass == "AzureServices"


def denial_message(address: str, registry: str, rules: NetworkRules) -> str:
    """The message for a client that `registry`'s `rules` refuse: ACR's first sentence (which
    scripts may match), then how to let the client in with Transship's own commands (ACR's
    text points at an Azure help page, of no use to a self-hosted admin). A parseable
    address is shown in canonical form (IPv4-mapped as IPv4); anything else with
    non-printable characters and quotes escaped, and then no rule is suggested for it."""
    client = _client_address(address)
    if client is not None:
        shown = str(client)
    else:
        shown = "".join(
            char if char.isprintable() and char not in "'\\" else f"\\u{ord(char):04x}"
            for char in address
        )
    refused = f"client with IP '{shown}' is not allowed access."
    # Registry names are ASCII letters and digits; keep the message one safe line regardless.
    name = "".join(char for char in registry if char.isascii() and char.isalnum())
    if rules.public_network_access != "Enabled":
        return (
            f"{refused} Public network access to registry '{name}' is disabled: "
            f"`transship registry update -n {name} --public-network-enabled true` enables it."
        )
    if client is None:
        return (
            f"{refused} Registry '{name}' accepts only the clients its network rules allow "
            "(see `transship registry network-rule list`)."
        )
    return (
        f"{refused} To grant access, add a network rule: `transship registry network-rule add "
        f"-n {name} --ip-address {shown}` (or `az acr network-rule add`), or set the default "
        f"action to Allow: `transship registry update -n {name} --default-action Allow`."
    )
