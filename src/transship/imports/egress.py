"""The egress policy of imports: which addresses the service may connect to on a user's
behalf. Server-side import makes the service open connections and store what comes back,
so without this an importer could reach cloud metadata endpoints or internal services.

Every connection passes one decision on the **resolved address** (`EgressPolicy.decide`):
the resolver below filters the addresses it hands to aiohttp, which then connects to exactly
those, so a DNS answer cannot change between the check and the connection.

Private, loopback and other non-public ranges are denied unless something says otherwise
(`deny_private`, on by default): a caller with import rights must not be able to make the
service probe its own network. What an administrator configured is trusted instead: an
explicit allow rule, or the endpoint host of an `[upstreams]` entry, for the imports that
read from that upstream (`EgressPolicy.trusting`).
"""

from __future__ import annotations

import fnmatch
import ipaddress
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
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
# Denied under `deny_private`: addresses that are not the public internet, so that an
# importer cannot reach the service's own host or network. (Documentation ranges such as
# 192.0.2.0/24 are left out: they are routed nowhere.)
_PRIVATE_NETWORKS: tuple[tuple[str, str], ...] = (
    ("127.0.0.0/8", "loopback"),
    ("::1/128", "loopback"),
    ("10.0.0.0/8", "private"),
    ("172.16.0.0/12", "private"),
    ("192.168.0.0/16", "private"),
    ("100.64.0.0/10", "shared address space (CGNAT)"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("198.18.0.0/15", "benchmarking"),
    ("240.0.0.0/4", "reserved"),
    ("fc00::/7", "unique local (ULA)"),
    ("fec0::/10", "site-local"),
    ("64:ff9b:1::/48", "local-use NAT64"),
)


class EgressDenied(OSError):
    """A connection the egress policy refuses; the message names host, address and rule,
    and, with `hint`, the setting that would allow it."""

    def __init__(self, host: str, address: str | None, rule: str, hint: str | None = None) -> None:
        where = f"{host} ({address})" if address and address != host else host
        message = f"egress to {where} is denied by rule: {rule}"
        super().__init__(f"{message}; {hint}" if hint else message)
        self.host = host
        self.address = address
        self.rule = rule
        self.hint = hint


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
    """`rule` names what decided; `hint` (not part of equality) says how a refusal could
    be lifted, naming the setting."""

    allowed: bool
    rule: str
    hint: str | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    """Built-in denials; then `rules` in order (first match wins); then `trusted_hosts`
    (allowed); then `deny_private`; then `default`.

    `setting` is where the policy comes from in the settings (`egress`, or
    `egress_registries.<name>`), so that a refusal names what to change. `trusted_hosts`
    are host names or address literals (any port) an administrator configured as an
    upstream endpoint; see `trusting`.
    """

    rules: tuple[EgressRule, ...] = ()
    default: Action = "allow"
    deny_private: bool = True
    trusted_hosts: frozenset[str] = frozenset()
    setting: str = "egress"

    def trusting(self, host: str) -> EgressPolicy:
        """This policy, with `host` (the endpoint of a configured `[upstreams]` entry)
        allowed where `deny_private` or the default would refuse it. Explicit rules and the
        built-in denials still come first: an administrator's deny rule stays final."""
        return replace(self, trusted_hosts=self.trusted_hosts | {normal_host(host)})

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
        the rules strictly in order (host and address rules alike), then the trusted hosts,
        then deny_private, then the default. A refusal's `hint` names the setting that would
        allow it."""
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
        if self.trusted_hosts and normal_host(host) in self.trusted_hosts:
            return Decision(True, f"configured upstream endpoint {normal_host(host)}")
        if self.deny_private:
            for network, label in _PRIVATE:
                if address.version == network.version and address in network:
                    return Decision(
                        False,
                        f"{self.setting}.deny_private: {label} {network}",
                        self._allow_hint(host, address),
                    )
        if self.default == "allow":
            return Decision(True, "default allow")
        return Decision(False, "default deny", self._allow_hint(host, address))

    def _allow_hint(self, host: str, address: IPAddress) -> str:
        """How an administrator allows `host`: an allow rule for its name (or its address
        when it is a literal)."""
        name = normal_host(host)
        target = name if _is_name(name) else str(address)
        return (
            f'to allow it, add {{ action = "allow", target = "{target}" }} to '
            f"{self.setting}.rules, or configure the registry under [upstreams]"
        )

    def check_literal(self, host: str) -> None:
        """Raise EgressDenied for a host that is an IP literal the policy refuses, or a name
        refused by name. Names are otherwise checked at resolution."""
        literal = host.strip("[]")
        try:
            address = ipaddress.ip_address(literal)
        except ValueError:
            decision = self.decide_host(host)
            if decision is not None and not decision.allowed:
                raise EgressDenied(host, None, decision.rule, decision.hint) from None
            return
        decision = self.decide(host, address)
        if not decision.allowed:
            raise EgressDenied(host, str(address), decision.rule, decision.hint)


_ALWAYS_DENIED = tuple(
    (ipaddress.ip_network(cidr), reason) for cidr, reason in _ALWAYS_DENIED_NETWORKS
)
_PRIVATE = tuple((ipaddress.ip_network(cidr), label) for cidr, label in _PRIVATE_NETWORKS)


def built_in_denial(host: str) -> str | None:
    """The built-in rule that refuses `host` (an address literal or a name) whatever the
    settings say, or None. For checking settings: an endpoint or an allow rule there can
    never work."""
    name = normal_host(host)
    if name in _ALWAYS_DENIED_NAMES:
        return f"built-in: cloud metadata name {name}"
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return None
    decision = EgressPolicy((), "allow", deny_private=False).decide(name, address)
    return None if decision.allowed else decision.rule


def built_in_network_denial(
    network: ipaddress.IPv4Network | ipaddress.IPv6Network,
) -> str | None:
    """The built-in rule that refuses every address of `network`, or None when some of it
    may be reached (an allow rule for it can take effect)."""
    for denied, reason in _ALWAYS_DENIED:
        if network.version == denied.version and network.subnet_of(denied):  # type: ignore[arg-type]
            return f"built-in: {reason} {denied}"
    return None


def normal_host(host: str) -> str:
    """`host` as policies compare it: lower case, no trailing dot, no IPv6 brackets or
    zone, an address literal in its canonical form."""
    name = host.strip().strip("[]").lower().rstrip(".")
    try:
        return str(ipaddress.ip_address(name.split("%", 1)[0]))
    except ValueError:
        return name


def _is_name(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return True
    return False


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (::ffff:a.b.c.d, NAT64 64:ff9b::a.b.c.d,
    6to4 2002:aabb:ccdd::), so it is judged as that address."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
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
                refused = EgressDenied(host, str(address), decision.rule, decision.hint)
        if not allowed:
            raise refused or EgressDenied(host, None, "no address")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def policy_from_settings(
    rules: Sequence[Any], default: str, deny_private: bool, *, setting: str = "egress"
) -> EgressPolicy:
    """Build a policy from settings values (`rules`: objects with `action` and `target`);
    `setting` names where they come from, for messages. Raises ValueError naming a bad
    rule."""
    parsed = tuple(EgressRule.parse(rule.action, rule.target) for rule in rules)
    return EgressPolicy(parsed, _action(default), deny_private, setting=setting)


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
