"""What a cache rule may say (ACR's rules): static and wildcard mappings, names, login
servers, one rule per target and no overlapping wildcards; and how a rule maps a repository
upstream."""

from __future__ import annotations

import pytest

from transship.cache.rules import (
    Repositories,
    check_login_server,
    check_name,
    check_overlap,
    check_repositories,
)
from transship.errors import Invalid


def test_a_static_rule_maps_its_target_only() -> None:
    rule = check_repositories("docker.io/library/hello-world", "hello-world")
    assert (rule.host, rule.source_path, rule.target, rule.wildcard) == (
        "docker.io",
        "library/hello-world",
        "hello-world",
        False,
    )
    assert rule.upstream_of("hello-world") == "library/hello-world"
    assert rule.upstream_of("hello-world/x") is None
    assert rule.upstream_of("other") is None
    assert rule.source_repository == "docker.io/library/hello-world"
    assert rule.target_repository == "hello-world"


def test_a_repository_wildcard_maps_everything_below_its_prefix() -> None:
    rule = check_repositories("docker.io/library/*", "library/*")
    assert rule.wildcard and rule.target == "library" and rule.source_path == "library"
    assert rule.upstream_of("library/nginx") == "library/nginx"
    assert rule.upstream_of("library/team/app") == "library/team/app"
    assert rule.upstream_of("library") is None
    assert rule.upstream_of("librarything/nginx") is None
    assert rule.source_repository == "docker.io/library/*"
    assert rule.target_repository == "library/*"


def test_a_wildcard_may_map_to_another_prefix() -> None:
    rule = check_repositories("mcr.microsoft.com/dotnet/*", "ms/dotnet/*")
    assert rule.upstream_of("ms/dotnet/sdk") == "dotnet/sdk"
    assert rule.upstream_of("dotnet/sdk") is None


def test_a_registry_level_wildcard_maps_every_repository() -> None:
    rule = check_repositories("mcr.microsoft.com/*", "*")
    assert rule.source_path == "" and rule.target == ""
    assert rule.upstream_of("dotnet/sdk") == "dotnet/sdk"
    assert rule.source_repository == "mcr.microsoft.com/*"
    assert rule.target_repository == "*"


def test_hosts_are_lower_cased_and_may_have_a_port() -> None:
    rule = check_repositories("Registry.Example:5000/team/app", "app")
    assert rule.host == "registry.example:5000"
    assert check_login_server(" GHCR.io ") == "ghcr.io"
    assert check_login_server("localhost:5000") == "localhost:5000"


@pytest.mark.parametrize(
    ("source", "target", "field"),
    [
        ("docker.io", "nginx", "sourceRepository"),  # no repository
        ("docker.io/", "nginx", "sourceRepository"),
        ("nginx/app", "app", "sourceRepository"),  # no registry host
        ("https://docker.io/library/nginx", "nginx", "sourceRepository"),
        ("docker.io/Library/Nginx", "nginx", "sourceRepository"),  # not the OCI grammar
        ("docker.io/library/*/x", "x/*", "sourceRepository"),  # wildcard not last
        ("docker.io/library/ng*", "ng/*", "sourceRepository"),
        ("docker.io/library/*", "library", "targetRepository"),  # one side only
        ("docker.io/library/nginx", "library/*", "targetRepository"),
        ("docker.io/library/nginx", "Nginx", "targetRepository"),
        ("docker.io/library/nginx", "", "targetRepository"),
        ("docker.io/" + "a" * 600, "x", "sourceRepository"),
        ("docker.io/library/nginx", "a" * 300, "targetRepository"),
    ],
)
def test_bad_repositories_are_refused_naming_the_field(
    source: str, target: str, field: str
) -> None:
    with pytest.raises(Invalid) as caught:
        check_repositories(source, target)
    assert caught.value.field == field, caught.value.message


@pytest.mark.parametrize("name", ["abcd", "a" * 51, "has space", "under_score", "dot.ted"])
def test_names_are_5_to_50_letters_digits_and_dashes(name: str) -> None:
    with pytest.raises(Invalid) as caught:
        check_name(name, "cacheRuleName", "cache rule")
    assert caught.value.field == "cacheRuleName"
    assert check_name("Hello-World-1", "cacheRuleName", "cache rule") == "Hello-World-1"


@pytest.mark.parametrize("server", ["https://ghcr.io", "ghcr.io/path", "-bad.io", "", "a b.io"])
def test_bad_login_servers_are_refused(server: str) -> None:
    with pytest.raises(Invalid) as caught:
        check_login_server(server)
    assert caught.value.field == "loginServer"


def _rules(*pairs: tuple[str, str]) -> list[tuple[str, Repositories]]:
    return [(f"rule{i}", check_repositories(s, t)) for i, (s, t) in enumerate(pairs)]


def test_a_target_is_covered_by_one_rule() -> None:
    existing = _rules(("docker.io/library/nginx", "nginx"), ("docker.io/library/*", "library/*"))
    for source, target in (
        ("ghcr.io/other/nginx", "nginx"),
        ("ghcr.io/other/*", "library/*"),
    ):
        with pytest.raises(Invalid) as caught:
            check_overlap(check_repositories(source, target), existing)
        assert caught.value.field == "targetRepository"
        assert caught.value.reason == "overlap"


@pytest.mark.parametrize(
    ("existing", "new"),
    [
        (("mcr.microsoft.com/*", "*"), ("docker.io/library/*", "library/*")),
        (("docker.io/library/*", "library/*"), ("mcr.microsoft.com/*", "*")),
        (("docker.io/library/*", "library/*"), ("docker.io/library/py/*", "library/py/*")),
        (("docker.io/library/py/*", "library/py/*"), ("docker.io/library/*", "library/*")),
    ],
)
def test_wildcard_rules_may_not_overlap(existing: tuple[str, str], new: tuple[str, str]) -> None:
    with pytest.raises(Invalid) as caught:
        check_overlap(check_repositories(*new), _rules(existing))
    assert "overlaps the wildcard rule 'rule0'" in caught.value.message


def test_static_rules_may_sit_under_a_wildcard_and_siblings_do_not_overlap() -> None:
    existing = _rules(("docker.io/library/*", "library/*"), ("ghcr.io/team/*", "team/*"))
    check_overlap(check_repositories("quay.io/x/nginx", "library/nginx"), existing)
    check_overlap(check_repositories("quay.io/x/*", "libraryx/*"), existing)
    check_overlap(check_repositories("quay.io/x/*", "teams/*"), existing)
