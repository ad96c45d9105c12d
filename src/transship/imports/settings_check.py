"""Settings of imports that cannot work, found before `serve` binds a port.

Without this an `[upstreams]` entry with a plain `http://` endpoint and no `insecure`, an
endpoint without a scheme, or an unreadable `ca_file` would be accepted at start and fail
every import that names the host, much later and far from the configuration. The same
functions that imports use (`resolve_endpoint`, `policy_from_settings`) judge the settings
here, so start and import time cannot disagree; what they cannot see (contradictions
between options, entries that can never apply) is checked here as well.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from transship.config import EgressSettings, Settings, UpstreamHost
from transship.imports.egress import (
    EgressRule,
    built_in_denial,
    built_in_network_denial,
    policy_from_settings,
)
from transship.imports.endpoints import resolve_endpoint
from transship.oci.reference import DOCKER_HUB, DOCKER_HUB_ALIASES
from transship.registry.registries import canonical_host, valid_registry_name


@dataclass(frozen=True, slots=True)
class SettingProblem:
    """One setting that cannot work: where it is (`upstreams."docker.io"`,
    `egress.rules[2]`) and why, the message quoting the value."""

    setting: str
    reason: str

    def __str__(self) -> str:
        return f"{self.setting}: {self.reason}"


def import_settings_problems(settings: Settings) -> list[SettingProblem]:
    """Every problem of the `upstreams`, `egress` and `egress_registries` settings, in the
    order they are written; empty when imports can work as configured. Reads each
    `ca_file` (a blocking call: run it before the event loop starts, or on a thread)."""
    problems = _upstream_problems(settings.upstreams)
    problems += _egress_problems("egress", settings.egress)
    for name, egress in settings.egress_registries.items():
        where = f"egress_registries.{name}"
        if not valid_registry_name(name) and name.lower() != settings.default_registry.lower():
            problems.append(
                SettingProblem(
                    where,
                    f"{name!r} cannot name a registry (5-50 letters and digits), so this "
                    "policy would never apply",
                )
            )
        problems += _egress_problems(where, egress)
    return problems


def _upstream_problems(upstreams: Mapping[str, UpstreamHost]) -> list[SettingProblem]:
    problems: list[SettingProblem] = []
    seen: dict[str, str] = {}
    for key, upstream in upstreams.items():
        where = f'upstreams."{key}"'
        canonical = canonical_host(key)
        if canonical is None:
            problems.append(
                SettingProblem(
                    where,
                    f"{key!r} is not a host[:port] as image references name it (a URL or a "
                    'path goes into endpoint = "https://…")',
                )
            )
            continue
        same = DOCKER_HUB if canonical in DOCKER_HUB_ALIASES else canonical
        if same in seen:
            problems.append(
                SettingProblem(
                    where,
                    f'names the same host as upstreams."{seen[same]}"; keep one of the two',
                )
            )
            continue
        seen[same] = key
        try:
            endpoint = resolve_endpoint(key, upstreams)
        except ValueError as exc:
            problems.append(SettingProblem(where, str(exc)))
            continue
        if upstream.ca_file is not None and upstream.insecure:
            what = "plain http://" if endpoint.url.scheme == "http" else "no certificate check"
            problems.append(
                SettingProblem(
                    where,
                    f"ca_file {str(upstream.ca_file)!r} would never be used: insecure = true "
                    f"means {what}; drop one of the two",
                )
            )
        denial = built_in_denial(endpoint.url.host or "")
        if denial is not None:
            problems.append(
                SettingProblem(
                    where,
                    f"imports may never connect to {endpoint.base_url!r} ({denial}, whatever "
                    "the egress rules say)",
                )
            )
    return problems


def _egress_problems(where: str, egress: EgressSettings) -> list[SettingProblem]:
    try:
        policy_from_settings(egress.rules, egress.default, egress.deny_private, setting=where)
    except ValueError as exc:
        return [SettingProblem(f"{where}.rules", str(exc))]
    problems: list[SettingProblem] = []
    catch_all: int | None = None
    for index, settings_rule in enumerate(egress.rules):
        rule = EgressRule.parse(settings_rule.action, settings_rule.target)
        at = f"{where}.rules[{index}]"
        if catch_all is not None:
            problems.append(
                SettingProblem(
                    at,
                    f"{rule} never takes effect: {where}.rules[{catch_all}] "
                    f"({egress.rules[catch_all].action} *) matches every host before it",
                )
            )
            continue
        if rule.host == "*":
            catch_all = index
        if rule.action != "allow":
            continue
        if rule.network is not None:
            denial = built_in_network_denial(rule.network)
        else:
            denial = built_in_denial(rule.host or "")
        if denial is not None:
            problems.append(
                SettingProblem(
                    at, f"{rule} never takes effect: {denial} is denied whatever the rules say"
                )
            )
    return problems
