"""`import_settings_problems`: the upstream and egress settings `serve` refuses at start.

Each case is a settings value an administrator could write; the check must name the
setting and quote the value, and find every problem at once. Nothing here opens a socket;
`ca_file`s are files of the test's own directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.unit.imports.tls import write_self_signed
from transship.config import Settings
from transship.imports.settings_check import SettingProblem, import_settings_problems


def make_ca(tmp_path: Path) -> Path:
    return write_self_signed(tmp_path / "ca", "127.0.0.1")[0]


def problems(tmp_path: Path, **values: Any) -> list[str]:
    return [str(p) for p in import_settings_problems(Settings(data_dir=tmp_path, **values))]


def test_the_defaults_and_sound_settings_have_no_problem(tmp_path: Path) -> None:
    ca = make_ca(tmp_path)
    assert problems(tmp_path) == []
    assert (
        problems(
            tmp_path,
            upstreams={
                "docker.io": {"endpoint": "http://127.0.0.1:5001", "insecure": True},
                "registry.lab:5000": {"insecure": True},
                "mirror.example.com": {"endpoint": "https://mirror.example.com:8443/prefix/"},
                "private.example.com": {"ca_file": str(ca)},
                "selfsigned.example.com": {"endpoint": "https://10.0.0.5", "insecure": True},
                "[::1]:5002": {"insecure": True},
            },
            egress={
                "default": "deny",
                "rules": [
                    {"action": "allow", "target": "*.docker.io"},
                    {"action": "allow", "target": "10.20.0.0/16"},
                    {"action": "deny", "target": "169.254.0.0/16"},
                    {"action": "allow", "target": "0.0.0.0/0"},
                    {"action": "deny", "target": "*"},
                ],
            },
            egress_registries={"prodregistry": {"deny_private": True}, "Default": {}},
        )
        == []
    )


@pytest.mark.parametrize(
    ("upstream", "expected"),
    [
        (
            {"endpoint": "http://127.0.0.1:5001"},
            "upstreams.\"docker.io\": endpoint 'http://127.0.0.1:5001' for upstream host "
            "'docker.io' is plain http://; set insecure = true to allow it",
        ),
        (
            {"endpoint": "mirror.internal:5000", "insecure": True},
            "upstreams.\"docker.io\": invalid endpoint 'mirror.internal:5000' for upstream "
            "host 'docker.io': no scheme (write https://…, or http://… with insecure = true)",
        ),
        (
            {"endpoint": "127.0.0.1:5000"},
            "upstreams.\"docker.io\": invalid endpoint '127.0.0.1:5000' for upstream host "
            "'docker.io': no scheme (write https://…, or http://… with insecure = true)",
        ),
        (
            {"endpoint": "ftp://mirror.internal"},
            "upstreams.\"docker.io\": invalid endpoint 'ftp://mirror.internal' for upstream "
            "host 'docker.io': the scheme must be http or https",
        ),
        (
            {"endpoint": "https://"},
            "upstreams.\"docker.io\": invalid endpoint 'https://' for upstream host "
            "'docker.io': no host in the URL",
        ),
        (
            {"endpoint": "https://mirror.internal:99999"},
            "upstreams.\"docker.io\": invalid endpoint 'https://mirror.internal:99999' for "
            "upstream host 'docker.io': Port out of range 0-65535",
        ),
        (
            {"endpoint": "https://mirror.internal/?x=1"},
            "upstreams.\"docker.io\": invalid endpoint 'https://mirror.internal/?x=1' for "
            "upstream host 'docker.io': no query or fragment allowed",
        ),
    ],
    ids=[
        "http-without-insecure",
        "no-scheme",
        "address-no-scheme",
        "ftp",
        "no-host",
        "port",
        "query",
    ],
)
def test_an_endpoint_that_cannot_work_names_the_setting_and_value(
    tmp_path: Path, upstream: dict[str, Any], expected: str
) -> None:
    assert problems(tmp_path, upstreams={"docker.io": upstream}) == [expected]


def test_credentials_in_an_endpoint_are_not_repeated(tmp_path: Path) -> None:
    found = problems(
        tmp_path, upstreams={"docker.io": {"endpoint": "https://bob:hunter2@mirror.internal"}}
    )
    assert found == [
        "upstreams.\"docker.io\": invalid endpoint 'https://***@mirror.internal' for upstream "
        "host 'docker.io': credentials do not belong in the URL"
    ]
    assert "hunter2" not in found[0]


def test_an_unreadable_ca_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing-ca.pem"
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    found = problems(
        tmp_path,
        upstreams={
            "a.example.com": {"ca_file": str(missing)},
            "b.example.com": {"ca_file": str(garbage)},
        },
    )
    assert len(found) == 2
    assert found[0].startswith('upstreams."a.example.com": cannot load ca_file for upstream ')
    assert "No such file" in found[0]
    assert found[1].startswith('upstreams."b.example.com": cannot load ca_file for upstream ')


@pytest.mark.parametrize(
    ("upstream", "means"),
    [
        ({"insecure": True}, "plain http://"),
        ({"endpoint": "https://mirror.internal", "insecure": True}, "no certificate check"),
    ],
)
def test_ca_file_with_insecure_is_a_contradiction(
    tmp_path: Path, upstream: dict[str, Any], means: str
) -> None:
    ca = make_ca(tmp_path)
    found = problems(tmp_path, upstreams={"registry.lab:5000": {**upstream, "ca_file": str(ca)}})
    assert found == [
        f"upstreams.\"registry.lab:5000\": ca_file '{ca}' would never be used: insecure = true "
        f"means {means}; drop one of the two"
    ]


@pytest.mark.parametrize(
    "key", ["https://docker.io", "docker.io/library", "user@registry.lab", "registry lab", ""]
)
def test_an_upstreams_key_must_be_a_host(tmp_path: Path, key: str) -> None:
    found = problems(tmp_path, upstreams={key: {"endpoint": "https://mirror.internal"}})
    assert found == [
        f'upstreams."{key}": {key!r} is not a host[:port] as image references name it (a URL '
        'or a path goes into endpoint = "https://…")'
    ]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("docker.io", "registry-1.docker.io"),
        ("index.docker.io", "docker.io"),
        ("Lab.Example", "lab.example"),
    ],
)
def test_two_entries_for_one_host_are_a_contradiction(
    tmp_path: Path, first: str, second: str
) -> None:
    found = problems(
        tmp_path,
        upstreams={
            first: {"endpoint": "https://one.example"},
            second: {"endpoint": "https://two.example"},
        },
    )
    assert found == [
        f'upstreams."{second}": names the same host as upstreams."{first}"; keep one of the two'
    ]


@pytest.mark.parametrize(
    ("endpoint", "denial"),
    [
        ("http://169.254.169.254", "built-in: link-local 169.254.0.0/16"),
        ("http://[fe80::1]:5000", "built-in: link-local fe80::/10"),
        (
            "http://metadata.google.internal",
            "built-in: cloud metadata name metadata.google.internal",
        ),
        ("http://0.0.0.0:5000", "built-in: unspecified 0.0.0.0/8"),
    ],
)
def test_an_endpoint_the_built_in_denials_refuse_can_never_work(
    tmp_path: Path, endpoint: str, denial: str
) -> None:
    found = problems(tmp_path, upstreams={"docker.io": {"endpoint": endpoint, "insecure": True}})
    assert found == [
        f'upstreams."docker.io": imports may never connect to {endpoint!r} ({denial}, '
        "whatever the egress rules say)"
    ]


@pytest.mark.parametrize(
    ("target", "denial"),
    [
        ("169.254.169.254", "built-in: link-local 169.254.0.0/16"),
        ("169.254.0.0/16", "built-in: link-local 169.254.0.0/16"),
        ("fe80::/64", "built-in: link-local fe80::/10"),
        ("100.100.100.200", "built-in: cloud metadata (Alibaba) 100.100.100.200/32"),
        ("metadata.google.internal", "built-in: cloud metadata name metadata.google.internal"),
    ],
)
def test_an_allow_rule_the_built_in_denials_override_is_refused(
    tmp_path: Path, target: str, denial: str
) -> None:
    rules = [
        {"action": "allow", "target": "registry.example.com"},
        {"action": "allow", "target": target},
    ]
    found = problems(tmp_path, egress={"rules": rules})
    assert len(found) == 1 and found[0].startswith("egress.rules[1]: allow "), found
    assert found[0].endswith(f"never takes effect: {denial} is denied whatever the rules say")
    # A deny rule for the same target is redundant but harmless.
    assert problems(tmp_path, egress={"rules": [{"action": "deny", "target": target}]}) == []


def test_rules_after_a_catch_all_never_take_effect(tmp_path: Path) -> None:
    rules = [
        {"action": "allow", "target": "registry.example.com"},
        {"action": "deny", "target": "*"},
        {"action": "allow", "target": "mirror.example.com"},
        {"action": "allow", "target": "10.0.0.0/8"},
    ]
    assert problems(tmp_path, egress_registries={"teamregistry": {"rules": rules}}) == [
        "egress_registries.teamregistry.rules[2]: allow mirror.example.com never takes effect: "
        "egress_registries.teamregistry.rules[1] (deny *) matches every host before it",
        "egress_registries.teamregistry.rules[3]: allow 10.0.0.0/8 never takes effect: "
        "egress_registries.teamregistry.rules[1] (deny *) matches every host before it",
    ]


@pytest.mark.parametrize("name", ["team-a", "abc", "x" * 51, "my_registry"])
def test_a_per_registry_policy_for_a_name_no_registry_can_have(tmp_path: Path, name: str) -> None:
    assert problems(tmp_path, egress_registries={name: {"deny_private": False}}) == [
        f"egress_registries.{name}: {name!r} cannot name a registry (5-50 letters and digits), "
        "so this policy would never apply"
    ]


def test_the_default_registry_keeps_its_name_whatever_its_length(tmp_path: Path) -> None:
    assert problems(tmp_path, default_registry="reg", egress_registries={"REG": {}}) == []


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    found = import_settings_problems(
        Settings(
            data_dir=tmp_path,
            upstreams={
                "docker.io": {"endpoint": "http://127.0.0.1:5001"},
                "quay.io": {"endpoint": "quay-mirror:5000"},
            },
            egress={"rules": [{"action": "allow", "target": "169.254.169.254"}]},
        )
    )
    assert [p.setting for p in found] == [
        'upstreams."docker.io"',
        'upstreams."quay.io"',
        "egress.rules[0]",
    ]
    assert all(isinstance(p, SettingProblem) for p in found)
