"""How to pull from a registry: the commands `registry create` and `import` print, the fix
they print when the login server does not resolve, and `serve`'s probe at start."""

from __future__ import annotations

import logging
import socket
import time
from typing import Any

import pytest

from tests.unit.cli.live_service import SUFFIX, LiveService, run
from transship.cli import pull_hint
from transship.cli.pull_hint import pull_commands, resolves, unresolved_fix
from transship.cli.server import check_login_server_names

CLIENT = "11111111-2222-3333-4444-555555555555"


def hint(login_server: str | None, images: list[str], *, resolvable: bool, **kw: Any) -> str:
    lines = pull_hint.pull_hint(
        login_server,
        images,
        server_url=kw.get("server_url", "http://localhost:5000"),
        username=kw.get("username", CLIENT),
        resolver=lambda host: resolvable,
    )
    return "\n".join(lines)


def test_plain_http_pull_commands_skip_tls_verification() -> None:
    assert pull_commands(
        "myregistry.localhost:5000",
        ["hello-world:latest", "team/app@sha256:" + "a" * 64],
        server_url="http://localhost:5000",
        username=CLIENT,
    ) == [
        f"podman login --tls-verify=false -u {CLIENT} myregistry.localhost:5000",
        "podman pull --tls-verify=false myregistry.localhost:5000/hello-world:latest",
        "podman pull --tls-verify=false myregistry.localhost:5000/team/app@sha256:" + "a" * 64,
        "skopeo copy --src-tls-verify=false "
        "docker://myregistry.localhost:5000/hello-world:latest oci:hello-world:latest",
        "skopeo copy --src-tls-verify=false "
        f"docker://myregistry.localhost:5000/team/app@sha256:{'a' * 64} oci:app",
    ]


def test_https_pull_commands_verify_tls_and_a_login_without_user_prompts() -> None:
    commands = pull_commands(
        "myregistry.example.com", ["app:1"], server_url="https://example.com", username=None
    )
    assert commands == [
        "podman login myregistry.example.com",
        "podman pull myregistry.example.com/app:1",
        "skopeo copy docker://myregistry.example.com/app:1 oci:app:1",
    ]


def test_a_resolvable_login_server_gets_the_commands_alone() -> None:
    text = hint("myregistry.localhost:5000", ["hello-world:latest"], resolvable=True)
    assert text.startswith("Pull it with podman or skopeo")
    assert "does not resolve" not in text and "/etc/hosts" not in text
    assert "  podman pull --tls-verify=false myregistry.localhost:5000/hello-world:latest" in text


def test_an_unresolvable_localhost_name_gets_both_fixes_before_the_commands() -> None:
    text = hint("myregistry.localhost:5000", ["hello-world:latest"], resolvable=False)
    fix, _, commands = text.partition("Pull it with")
    assert fix.startswith("NOTE: myregistry.localhost does not resolve on this machine")
    assert "apt-get install libnss-myhostname" in fix
    assert "hosts: files myhostname dns" in fix
    assert "echo '127.0.0.1 myregistry.localhost' >> /etc/hosts" in fix
    assert "podman pull --tls-verify=false myregistry.localhost:5000/hello-world:latest" in commands


def test_an_unresolvable_name_outside_localhost_points_at_dns_or_the_server_address() -> None:
    text = hint(
        "myregistry.registry.lan:5000",
        ["app:1"],
        resolvable=False,
        server_url="http://192.0.2.10:5000",
    )
    assert "wildcard DNS record" in text
    assert "echo '192.0.2.10 myregistry.registry.lan' >> /etc/hosts" in text
    assert "libnss-myhostname" not in text
    named = "\n".join(unresolved_fix("myregistry.registry.lan"))
    assert "echo '<server address> myregistry.registry.lan' >> /etc/hosts" in named


def test_a_new_registry_gets_the_login_and_a_pull_template() -> None:
    text = hint("myregistry.localhost:5000", [], resolvable=True)
    assert text.splitlines() == [
        "Log in to it with podman or skopeo (the login asks for the secret or password), "
        "then push and pull:",
        f"  podman login --tls-verify=false -u {CLIENT} myregistry.localhost:5000",
        "  podman pull --tls-verify=false myregistry.localhost:5000/<repository>:<tag>",
    ]
    assert hint(None, ["app:1"], resolvable=False) == ""


def test_resolves_answers_for_addresses_names_and_a_hung_resolver(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert resolves("127.0.0.1") and resolves("::1")
    assert not resolves("no-such-host.invalid")

    def hangs(*args: Any, **kwargs: Any) -> Any:
        time.sleep(2)
        raise socket.gaierror("too late")

    monkeypatch.setattr(pull_hint.socket, "getaddrinfo", hangs)
    started = time.monotonic()
    assert not resolves("slow.localhost", timeout=0.2)
    assert time.monotonic() - started < 1.5


def test_serve_logs_the_fix_when_the_probe_name_does_not_resolve(
    caplog: pytest.LogCaptureFixture,
) -> None:
    asked: list[str] = []

    def resolver(host: str) -> bool:
        asked.append(host)
        return False

    with caplog.at_level(logging.WARNING, logger="transship"):
        assert not check_login_server_names("localhost:5000", resolver)
    assert asked == ["transship-probe.localhost"]
    [record] = caplog.records
    text = record.getMessage()
    assert "<name>.localhost:5000 do not resolve on this machine" in text
    assert "apt-get install libnss-myhostname" in text
    assert "echo '127.0.0.1 <name>.localhost' >> /etc/hosts" in text

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="transship"):
        assert check_login_server_names("registry.lan", lambda host: True)
    assert not caplog.records


def test_registry_create_and_import_print_how_to_pull(
    logged_in: LiveService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pull_hint, "resolves", lambda host: False)
    created = run("registry", "create", "myregistry")
    assert created.exit_code == 0, created.output
    assert "Log in to it with podman or skopeo" in created.stderr
    assert f"podman login --tls-verify=false -u {logged_in.client_id} myregistry.{SUFFIX}" in (
        created.stderr
    )
    assert "echo '127.0.0.1 myregistry.localhost' >> /etc/hosts" in created.stderr
    assert "podman" not in created.stdout  # the result alone on stdout

    logged_in.push_images(f"myregistry.{SUFFIX}", [("app", "1")])
    run("registry", "create", "target1")
    imported = run("import", "-n", "target1", "--source", f"myregistry.{SUFFIX}/app:1")
    assert imported.exit_code == 0, imported.output
    assert f"podman pull --tls-verify=false target1.{SUFFIX}/app:1" in imported.stderr
    assert f"skopeo copy --src-tls-verify=false docker://target1.{SUFFIX}/app:1 oci:app:1" in (
        imported.stderr
    )
    assert "echo '127.0.0.1 target1.localhost' >> /etc/hosts" in imported.stderr

    as_json = run("registry", "create", "target2", "-o", "json")
    assert as_json.exit_code == 0 and "podman" not in as_json.output
