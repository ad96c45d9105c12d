"""The egress policy of imports: which addresses the service may connect to on a user's
behalf. Server-side import makes the service open connections and store what comes back,
so without this an importer could reach cloud metadata endpoints or internal services.

Every connection passes one decision on the **resolved address** (`EgressPolicy.decide`):
the resolver below filters the addresses it hands to aiohttp, which then connects to exactly
those, so a DNS answer cannot change between the check and the connection.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from transship.imports.errors import ImportFailure, Step

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Action = Literal["allow", "deny"]

# Denied whatever the rules say: instance metadata services and addresses that are never a
# registry. (Link-local covers 169.254.169.254 — AWS, Azure, GCP, OpenStack — and fe80::/10.)
_ALWAYS_DENIED_NETWORKS: tuple[tuple[str, str], ...] = (
    ("169.254.0.0/16", "link-local"),
    ("fe80::/10", "link-local"),
    ("fd00:ec2::254/128", "cloud metadata (AWS IPv6)"),
    ("100.100.100.200/32", "cloud metadata (Alibaba)"),
    ("0.0.0.0/8", "unspecified"),
    ("::/128", "unspecified"),
    ("224.0.0.0/4", "multicast"),
    ("ff00::/8", "multicast"),
    ("255.255.255.255/32", "broadcast"),
)
_ALWAYS_DENIED_NAMES = (
    "metadata",
    "metadata.google.internal",
    "metadata.azure.internal",
    "instance-data",
    "instance-data.ec2.internal",
)
_PRIVATE_NETWORKS: tuple[str, ...] = (
    "127.0.0.0/8",
    "::1/128",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "fc00::/7",
)


class EgressDenied(OSError):
    """A connection the egress policy refuses; the message names host, address and rule."""

    def __init__(self, host: str, address: str | None, rule: str) -> None:
        where = f"{host} ({address})" if address and address != host else host
        super().__init__(f"egress to {where} is denied by rule: {rule}")
        self.host = host
        self.address = address
        self.rule = rule


@dataclass(frozen=True, slots=True)
class EgressRule:
    """Matches an address (`network`) or a host name (`host`, `*` wildcards allowed)."""

    action: Action
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    host: str | None = None

    @classmethod
    def parse(cls, action: str, target: str) -> EgressRule:
        """`target` is a CIDR, an address, or a host name pattern. Raises ValueError."""
        checked = _action(action)
        try:
            return cls(checked, network=ipaddress.ip_network(target, strict=False))
        except ValueError:
            pass
        pattern = target.strip().lower().rstrip(".")
        if not pattern or any(c in pattern for c in "/ @:"):
            raise ValueError(f"egress rule target {target!r} is neither a CIDR nor a host name")
        return cls(checked, host=pattern)

    def matches_host(self, host: str) -> bool:
        return self.host is not None and fnmatch.fnmatchcase(host.lower().rstrip("."), self.host)

    def matches_address(self, address: IPAddress) -> bool:
        return (
            self.network is not None
            and address.version == self.network.version
            and address in self.network
        )

    def __str__(self) -> str:
        return f"{self.action} {self.network if self.network is not None else self.host}"


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    rule: str


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    """Rules in order (first match wins) after the built-in denials; then `deny_private`;
    then `default`."""

    rules: tuple[EgressRule, ...] = ()
    default: Action = "allow"
    deny_private: bool = False

    def decide_host(self, host: str) -> Decision | None:
        """A decision from the name alone, before resolving: built-in names, then host rules
        that come before the first address rule (which needs the address). None: resolve."""
        name = host.lower().rstrip(".")
        if name in _ALWAYS_DENIED_NAMES:
            return Decision(False, f"built-in: cloud metadata name {name}")
        for rule in self.rules:
            if rule.network is not None:
                return None
            if rule.matches_host(name):
                return Decision(rule.action == "allow", str(rule))
        return None

    def decide(self, host: str, address: IPAddress) -> Decision:
        """May the service connect to `address`, reached as `host`? Built-in denials, then
        the rules strictly in order (host and address rules alike), then deny_private, then
        the default."""
        for network, reason in _ALWAYS_DENIED:
            if address.version == network.version and address in network:
                return Decision(False, f"built-in: {reason} {network}")
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return self.decide(host, embedded)
        name = host.lower().rstrip(".")
        if name in _ALWAYS_DENIED_NAMES:
            return Decision(False, f"built-in: cloud metadata name {name}")
        for rule in self.rules:
            if rule.matches_host(name) or rule.matches_address(address):
                return Decision(rule.action == "allow", str(rule))
        if self.deny_private and any(
            address.version == n.version and address in n for n in _PRIVATE
        ):
            return Decision(False, "deny_private: loopback and private ranges")
        return Decision(self.default == "allow", f"default {self.default}")

    def check_literal(self, host: str) -> None:
        """Raise EgressDenied for a host that is an IP literal the policy refuses, or a name
        refused by name. Names are otherwise checked at resolution."""
        literal = host.strip("[]")
        try:
            address = ipaddress.ip_address(literal)
        except ValueError:
            decision = self.decide_host(host)
            if decision is not None and not decision.allowed:
                raise EgressDenied(host, None, decision.rule) from None
            return
        decision = self.decide(host, address)
        if not decision.allowed:
            raise EgressDenied(host, str(address), decision.rule)


_ALWAYS_DENIED = tuple(
    (ipaddress.ip_network(cidr), reason) for cidr, reason in _ALWAYS_DENIED_NETWORKS
)
_PRIVATE = tuple(ipaddress.ip_network(cidr) for cidr in _PRIVATE_NETWORKS)


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (::ffff:a.b.c.d, NAT64 64:ff9b::a.b.c.d), so
    it is judged as that address."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


class PolicyResolver(AbstractResolver):
    """Resolves with `inner` and keeps only the addresses the policy allows; raises
    EgressDenied (naming the first refused address and its rule) when none is left."""

    def __init__(self, policy: EgressPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        by_name = self._policy.decide_host(host)
        if by_name is not None and not by_name.allowed:
            raise EgressDenied(host, None, by_name.rule)
        answers = await self._inner.resolve(host, port, family)
        allowed: list[ResolveResult] = []
        refused: EgressDenied | None = None
        for answer in answers:
            address = ipaddress.ip_address(answer["host"])
            decision = self._policy.decide(host, address)
            if decision.allowed:
                allowed.append(answer)
            elif refused is None:
                refused = EgressDenied(host, str(address), decision.rule)
        if not allowed:
            raise refused or EgressDenied(host, None, "no address")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def policy_from_settings(rules: Sequence[Any], default: str, deny_private: bool) -> EgressPolicy:
    """Build a policy from settings values (`rules`: objects with `action` and `target`).
    Raises ValueError naming a bad rule."""
    parsed = tuple(EgressRule.parse(rule.action, rule.target) for rule in rules)
    return EgressPolicy(parsed, _action(default), deny_private)


def _action(text: str) -> Action:
    """Raises ValueError unless `text` is allow or deny."""
    if text == "allow":
        return "allow"
    if text == "deny":
        return "deny"
    raise ValueError(f"egress action must be allow or deny, not {text!r}")


class EgressPolicies:
    """The service default and per-registry policies; `inner_resolver` makes the resolver
    addresses come from (the system's, or a test's)."""

    def __init__(
        self,
        default: EgressPolicy,
        by_registry: Mapping[str, EgressPolicy] | None = None,
        inner_resolver: Callable[[], AbstractResolver] = DefaultResolver,
    ) -> None:
        self._default = default
        self._by_registry = {name.lower(): policy for name, policy in (by_registry or {}).items()}
        self.inner_resolver = inner_resolver

    def for_registry(self, name: str | None) -> EgressPolicy:
        if name is not None and name.lower() in self._by_registry:
            return self._by_registry[name.lower()]
        return self._default


def egress_failure(exc: EgressDenied, step: Step) -> ImportFailure:
    return ImportFailure("EgressDenied", str(exc), step=step, obj=exc.host, retryable=False)
