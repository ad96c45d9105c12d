"""intake: an ImportImageParameters request becomes a validated ImportRequest, or an ARM
error naming the offending field (`target`) before any job exists."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from transship.errors import DomainError, Invalid, NotFound
from transship.imports.intake import ImportParameters, intake
from transship.imports.model import SourceSpec, TargetTag
from transship.imports.ports import Credentials
from transship.metadata.db import Database
from transship.metadata.queries import MetadataStore
from transship.metadata.records import RegistryRecord
from transship.oci.reference import parse_tag_or_digest
from transship.registry.registries import RegistryService

SUFFIX = "localhost:5000"
DIGEST = "sha256:" + "ab" * 32
SOURCE_ID = (
    "/subscriptions/sub/resourceGroups/rg"
    "/providers/Microsoft.ContainerRegistry/registries/sourcereg"
)


def params(**changes: object) -> ImportParameters:
    base = ImportParameters(
        resource_id=None,
        registry_uri="registry.example",
        credentials_given=False,
        username=None,
        password=None,
        source_image="app:1.0",
        target_tags=None,
        untagged_repositories=None,
        force=False,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture
async def registries(tmp_path: Path) -> AsyncIterator[RegistryService]:
    database = Database(f"sqlite:///{tmp_path}/m.db", durable=False)
    await database.migrate()
    try:
        yield RegistryService(MetadataStore(database), SUFFIX)
    finally:
        await database.close()


@pytest.fixture
async def source_registry(registries: RegistryService) -> RegistryRecord:
    record, _ = await registries.create("sub", "rg", "sourcereg", "local")
    return record


async def refused(registries: RegistryService, **changes: object) -> DomainError:
    with pytest.raises(DomainError) as caught:
        await intake(params(**changes), registries)
    return caught.value


# --- validation errors, each naming its field ------------------------------------------


@pytest.mark.parametrize(
    ("resource_id", "registry_uri"),
    [(SOURCE_ID, "registry.example"), (None, None)],
    ids=["both", "neither"],
)
async def test_exactly_one_of_resource_id_and_registry_uri(
    registries: RegistryService, resource_id: str | None, registry_uri: str | None
) -> None:
    error = await refused(registries, resource_id=resource_id, registry_uri=registry_uri)
    assert isinstance(error, Invalid) and error.field == "source"


@pytest.mark.parametrize(
    "resource_id",
    [
        "sourcereg",
        SOURCE_ID.replace(
            "Microsoft.ContainerRegistry/registries", "Microsoft.Storage/storageAccounts"
        ),
        SOURCE_ID + "/b",
    ],
)
async def test_bad_resource_id(registries: RegistryService, resource_id: str) -> None:
    error = await refused(registries, resource_id=resource_id, registry_uri=None)
    assert isinstance(error, Invalid) and error.field == "source.resourceId"
    assert resource_id in error.message


@pytest.mark.parametrize(
    "resource_id",
    [
        SOURCE_ID.replace("sourcereg", "nosuchreg"),
        SOURCE_ID.replace("/rg/", "/otherrg/"),
        SOURCE_ID.replace("/sub/", "/othersub/"),
    ],
    ids=["unknown-name", "other-resource-group", "other-subscription"],
)
async def test_unknown_source_registry_is_404(
    registries: RegistryService, source_registry: RegistryRecord, resource_id: str
) -> None:
    error = await refused(registries, resource_id=resource_id, registry_uri=None)
    assert isinstance(error, NotFound) and error.subject == "registry"


@pytest.mark.parametrize(
    "registry_uri",
    [
        "registry.example/path",
        "user@registry.example",
        "bad host",
        "registry.example:port",
        "-bad.example",
        "",
    ],
)
async def test_bad_registry_uri(registries: RegistryService, registry_uri: str) -> None:
    error = await refused(registries, registry_uri=registry_uri)
    assert isinstance(error, Invalid) and error.field == "source.registryUri"


@pytest.mark.parametrize("password", [None, ""])
async def test_credentials_without_password(
    registries: RegistryService, password: str | None
) -> None:
    error = await refused(registries, credentials_given=True, username="me", password=password)
    assert isinstance(error, Invalid) and error.field == "source.credentials.password"


@pytest.mark.parametrize(
    "source_image",
    ["", "UPPER/case:1", "app:bad tag", "app@sha256:short", "app:", "/app"],
)
async def test_bad_source_image(registries: RegistryService, source_image: str) -> None:
    error = await refused(registries, source_image=source_image)
    assert isinstance(error, Invalid) and error.field == "source.sourceImage"


async def test_target_tag_with_a_digest_names_its_index(registries: RegistryService) -> None:
    error = await refused(registries, target_tags=("ok:1", f"app@{DIGEST}"))
    assert isinstance(error, Invalid) and error.field == "targetTags[1]"
    assert "digest" in error.message


async def test_invalid_target_tag_names_its_index(registries: RegistryService) -> None:
    error = await refused(registries, target_tags=("Bad Name:1",))
    assert isinstance(error, Invalid) and error.field == "targetTags[0]"


@pytest.mark.parametrize("repository", ["app:1", f"app@{DIGEST}"])
async def test_untagged_repository_with_a_tag_or_digest(
    registries: RegistryService, repository: str
) -> None:
    error = await refused(registries, untagged_repositories=("fine", repository))
    assert isinstance(error, Invalid) and error.field == "untaggedTargetRepositories[1]"


async def test_invalid_untagged_repository(registries: RegistryService) -> None:
    error = await refused(registries, untagged_repositories=("NOT valid",))
    assert isinstance(error, Invalid) and error.field == "untaggedTargetRepositories[0]"


# --- what a valid request becomes ---------------------------------------------------------


async def test_remote_source_with_credentials(registries: RegistryService) -> None:
    request, credentials = await intake(
        params(
            registry_uri="https://Registry.Example:8443/",
            credentials_given=True,
            username="",
            password="s3cret",
            force=True,
        ),
        registries,
    )
    assert request.source == SourceSpec("registry.example:8443", None, "app", "1.0")
    assert credentials == Credentials(None, "s3cret")  # an empty username is none
    assert request.target_tags == (TargetTag("app", "1.0"),) and request.untagged_repositories == ()
    assert request.force is True


@pytest.mark.parametrize(
    ("source_image", "source_repository", "reference", "tags", "untagged"),
    [
        ("nginx", "library/nginx", "latest", (TargetTag("nginx", "latest"),), ()),
        ("nginx:1.25", "library/nginx", "1.25", (TargetTag("nginx", "1.25"),), ()),
        ("bitnami/redis:7", "bitnami/redis", "7", (TargetTag("bitnami/redis", "7"),), ()),
        (f"nginx@{DIGEST}", "library/nginx", DIGEST, (), ("nginx",)),
        (f"nginx:1.25@{DIGEST}", "library/nginx", DIGEST, (TargetTag("nginx", "1.25"),), ()),
    ],
)
async def test_default_target_is_the_source_name_without_library(
    registries: RegistryService,
    source_image: str,
    source_repository: str,
    reference: str,
    tags: tuple[TargetTag, ...],
    untagged: tuple[str, ...],
) -> None:
    request, _ = await intake(
        params(registry_uri="docker.io", source_image=source_image), registries
    )
    expected = SourceSpec("docker.io", None, source_repository, parse_tag_or_digest(reference))
    assert request.source == expected
    assert request.source.is_digest == (reference == DIGEST)
    assert (request.target_tags, request.untagged_repositories) == (tags, untagged)


@pytest.mark.parametrize(
    "alias",
    [
        "docker.io",
        "index.docker.io",
        "registry-1.docker.io",
        "Index.Docker.IO",
        "https://registry-1.docker.io/",
    ],
)
async def test_docker_hub_aliases_are_normalised(registries: RegistryService, alias: str) -> None:
    request, _ = await intake(params(registry_uri=alias, source_image="busybox:1"), registries)
    assert request.source == SourceSpec("docker.io", None, "library/busybox", "1")


async def test_other_hosts_keep_one_part_names(registries: RegistryService) -> None:
    request, _ = await intake(
        params(registry_uri="mcr.microsoft.com", source_image="dotnet:8"), registries
    )
    assert request.source == SourceSpec("mcr.microsoft.com", None, "dotnet", "8")


async def test_target_without_a_tag_takes_the_source_tag(registries: RegistryService) -> None:
    request, _ = await intake(
        params(target_tags=("mirror/app", "app:stable", "mirror/app:1.0")), registries
    )
    # "mirror/app" and "mirror/app:1.0" are one target: repeats are dropped, order kept.
    assert request.target_tags == (TargetTag("mirror/app", "1.0"), TargetTag("app", "stable"))


async def test_untagged_only_sets_no_default_tag(registries: RegistryService) -> None:
    request, _ = await intake(params(untagged_repositories=("copy", "copy")), registries)
    assert request.target_tags == () and request.untagged_repositories == ("copy",)


async def test_by_digest_target_without_a_tag_is_copied_untagged(
    registries: RegistryService,
) -> None:
    request, _ = await intake(
        params(source_image=f"app@{DIGEST}", target_tags=("dest", "dest2:v1")), registries
    )
    assert request.target_tags == (TargetTag("dest2", "v1"),)
    assert request.untagged_repositories == ("dest",)


async def test_resource_id_resolves_to_the_local_registry_and_drops_credentials(
    registries: RegistryService, source_registry: RegistryRecord
) -> None:
    request, credentials = await intake(
        params(
            resource_id=SOURCE_ID.replace("/rg/", "/RG/"),
            registry_uri=None,
            credentials_given=True,
            password="pw",
        ),
        registries,
    )
    assert request.source == SourceSpec(None, source_registry.id, "app", "1.0")
    assert request.source.is_local and credentials is None


@pytest.mark.parametrize(
    "registry_uri",
    ["sourcereg.localhost:5000", "https://SourceReg.LocalHost:5000/", " sourcereg.localhost:5000"],
)
async def test_local_login_server_resolves_to_a_local_source_and_drops_credentials(
    registries: RegistryService, source_registry: RegistryRecord, registry_uri: str
) -> None:
    request, credentials = await intake(
        params(
            registry_uri=registry_uri,
            source_image="nginx",
            credentials_given=True,
            username="u",
            password="pw",
        ),
        registries,
    )
    # A local source: no Docker Hub normalisation, no credentials sent anywhere.
    assert request.source == SourceSpec(None, source_registry.id, "nginx", "latest")
    assert credentials is None
    assert request.target_tags == (TargetTag("nginx", "latest"),)
