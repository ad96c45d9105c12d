"""An import by source resource id, without credentials, must not tell a caller outside the
source's tenant whether the registry exists: an existing registry of another tenant, a
registry that does not exist in that tenant's subscription, and a subscription that does not
exist all get the same answer, byte for byte apart from the id the caller sent."""

from __future__ import annotations

from typing import Any

from tests.integration import test_import_authorization as authorization
from tests.integration.test_import_authorization import World, by_id, run_import
from tests.support.identity import IdentityClient

UNKNOWN_SUBSCRIPTION = "99999999-8888-4777-8666-555555555555"
world = authorization.world  # the same service, tenants and registries


def _renamed(resource_id: str, name: str) -> str:
    return resource_id.rsplit("/", 1)[0] + "/" + name


def _masked(answer: Any, resource_id: str) -> Any:
    """The answer with the registry name the caller sent replaced by a placeholder."""
    name = resource_id.rsplit("/", 1)[1]
    error = answer["error"]
    return {**error, "message": error["message"].replace(f"'{name}'", "'<name>'")}


async def _answers(caller: IdentityClient, world: World, ids: list[str]) -> list[Any]:
    answers = []
    for resource_id in ids:
        status, body = await run_import(caller, world.target_id, by_id(resource_id))
        answers.append((status, _masked(body, resource_id)))
    return answers


async def test_another_tenants_registry_and_a_missing_one_look_the_same(world: World) -> None:
    caller = await world.principal("prober", target_id="Contributor")
    foreign_sub = world.foreign_id.split("/")[2]
    ids = [
        world.foreign_id,  # exists, another tenant
        _renamed(world.foreign_id, "nosuchregistry"),  # that tenant's subscription, missing
        world.foreign_id.replace("/resourceGroups/default/", "/resourceGroups/nosuchgroup/"),
        world.foreign_id.replace(foreign_sub, UNKNOWN_SUBSCRIPTION),  # no such subscription
    ]
    answers = await _answers(caller, world, ids)
    assert answers[0][0] == 403 and answers[0][1]["code"] == "CrossTenantImportNeedsCredentials"
    assert all(answer == answers[0] for answer in answers), answers
    assert "source.credentials" in answers[0][1]["message"]
    assert answers[0][1]["target"] == "source.credentials"


async def test_the_answer_does_not_depend_on_letter_case_of_an_existing_name(
    world: World,
) -> None:
    # Registry names match in any letter case: an answer that echoed the stored name would
    # reveal a match.
    caller = await world.principal("case-prober", target_id="Contributor")
    upper = _renamed(world.foreign_id, "FOREIGNREGISTRY")
    status, body = await run_import(caller, world.target_id, by_id(upper))
    assert status == 403, body
    assert "'FOREIGNREGISTRY'" in body["error"]["message"]
    assert "foreignregistry" not in body["error"]["message"]


async def test_a_missing_registry_of_the_callers_own_tenant_is_still_not_found(
    world: World,
) -> None:
    # Inside its own tenant the caller learns nothing new from a 404 (ARM answers it too),
    # and the error says what to fix.
    status, body = await run_import(
        world.owner, world.target_id, by_id(_renamed(world.source_id, "nosuchregistry"))
    )
    assert status == 404 and body["error"]["code"] == "ResourceNotFound", body


async def test_the_owner_of_another_tenant_still_imports_its_own_registry(world: World) -> None:
    # The refusal is about the caller's tenant, not the source's: the source tenant's own
    # principal imports by id into a registry of its tenant.
    other = world.other_owner
    target = await other.create_registry(other.credential.subscription_id, "default", "foreignsink")
    await world.reg.services.resolver.refresh()
    status, final = await run_import(other, target["id"], by_id(world.foreign_id))
    assert status == 202 and final["status"] == "Succeeded", final


async def test_made_up_credentials_do_not_tell_either(world: World) -> None:
    # A prober adds credentials: an existing registry of another tenant (even one whose
    # network rules would refuse the import) and a missing one both refuse the credentials.
    caller = await world.principal("credential-prober", target_id="Contributor")
    await world.other_owner.update_registry(
        world.foreign_id,
        publicNetworkAccess="Disabled",
        networkRuleBypassOptions="None",
    )
    foreign_sub = world.foreign_id.split("/")[2]
    made_up = {"credentials": {"username": "someone", "password": "guess"}}
    answers = []
    for resource_id in (
        world.foreign_id,
        _renamed(world.foreign_id, "nosuchregistry"),
        world.foreign_id.replace(foreign_sub, UNKNOWN_SUBSCRIPTION),
    ):
        status, body = await run_import(caller, world.target_id, by_id(resource_id, **made_up))
        answers.append((status, _masked(body, resource_id)))
    assert answers[0][0] == 401 and answers[0][1]["code"] == "InvalidSourceCredentials"
    assert all(answer == answers[0] for answer in answers), answers
