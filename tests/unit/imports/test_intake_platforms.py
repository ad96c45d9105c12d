"""The platform-subset fields of importImage (a Transship extension): the body accepts
them, intake validates them naming `platforms[i]`, and requests without them are as before."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pydantic
import pytest

from transship.errors import Invalid
from transship.imports.intake import ImportParameters, intake
from transship.imports.model import PlatformMode
from transship.metadata.db import Database
from transship.metadata.queries import MetadataStore
from transship.oci.platforms import PlatformSpec
from transship.registry.registries import RegistryService
from transship.wire.bodies import ImportImageParameters


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
        yield RegistryService(MetadataStore(database), "localhost:5000")
    finally:
        await database.close()


async def test_without_platforms_the_request_has_no_subset(registries: RegistryService) -> None:
    request, _ = await intake(params(), registries)
    assert request.platform_subset is None


async def test_platforms_default_to_sparse_without_attestations(
    registries: RegistryService,
) -> None:
    request, _ = await intake(params(platforms=("linux/amd64", "linux/arm64/v8")), registries)
    subset = request.platform_subset
    assert subset is not None
    assert subset.platforms == (
        PlatformSpec("linux", "amd64"),
        PlatformSpec("linux", "arm64", "v8"),
    )
    assert subset.mode is PlatformMode.SPARSE and not subset.include_attestations


async def test_rewritten_with_attestations(registries: RegistryService) -> None:
    request, _ = await intake(
        params(platforms=("linux/s390x",), platform_mode="rewritten", include_attestations=True),
        registries,
    )
    assert request.platform_subset is not None
    assert request.platform_subset.mode is PlatformMode.REWRITTEN
    assert request.platform_subset.include_attestations


@pytest.mark.parametrize(
    ("platforms", "field", "words"),
    [
        (("linux/amd64", "linux"), "platforms[1]", "os/arch"),
        (("Linux/AMD64",), "platforms[0]", "lower-case"),
        (("linux/arm64/v8/x",), "platforms[0]", "os/arch"),
        (("linux//v8",), "platforms[0]", "lower-case"),
        (("linux/amd64", "linux/amd64"), "platforms[1]", "twice"),
        ((), "platforms", "at least one"),
        (tuple(f"linux/a{i}" for i in range(65)), "platforms", "limit"),
    ],
)
async def test_bad_platforms_name_the_field(
    registries: RegistryService, platforms: tuple[str, ...], field: str, words: str
) -> None:
    with pytest.raises(Invalid) as caught:
        await intake(params(platforms=platforms), registries)
    assert caught.value.field == field
    assert words in caught.value.message and field in caught.value.message


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"platform_mode": "sparse"}, "platformMode"),
        ({"include_attestations": True}, "includeAttestations"),
    ],
)
async def test_subset_options_without_platforms_are_refused(
    registries: RegistryService, changes: dict[str, object], field: str
) -> None:
    with pytest.raises(Invalid) as caught:
        await intake(params(**changes), registries)
    assert caught.value.field == field


def test_body_carries_the_extension_fields_by_their_json_names() -> None:
    body = ImportImageParameters.model_validate(
        {
            "source": {"registryUri": "r.example", "sourceImage": "app:1"},
            "platforms": ["linux/amd64"],
            "platformMode": "rewritten",
            "includeAttestations": True,
        }
    )
    assert body.platforms == ["linux/amd64"]
    assert body.platform_mode == "rewritten" and body.include_attestations is True
    plain = ImportImageParameters.model_validate(
        {"source": {"registryUri": "r.example", "sourceImage": "app:1"}}
    )
    assert plain.platforms is None and plain.platform_mode is None


@pytest.mark.parametrize(
    "extra",
    [
        {"platformMode": "dense"},
        {"includeAttestations": "yes"},
        {"platforms": "linux/amd64"},
    ],
)
def test_body_refuses_wrong_types(extra: dict[str, object]) -> None:
    with pytest.raises(pydantic.ValidationError):
        ImportImageParameters.model_validate(
            {"source": {"registryUri": "r.example", "sourceImage": "app:1"}, **extra}
        )
