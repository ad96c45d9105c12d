"""Answer models keep the wire shape: camelCase names, `null` where a field is `X | None`,
nothing where an omittable field was not given, and a JSON Schema that says so."""

from __future__ import annotations

import json

import pytest
from pydantic import MISSING, ValidationError

from transship.wire.base import Answer, DateTime, SnakeAnswer, extensible


class Thing(Answer):
    login_server: str | None
    end_time: DateTime | MISSING = MISSING
    kind: str = extensible("One", "Two")
    constant: str = "always"


def test_an_answer_is_camel_case_keeps_nulls_and_omits_what_was_not_given() -> None:
    body = json.loads(Thing(login_server=None, kind="One").to_json())
    assert body == {"loginServer": None, "kind": "One", "constant": "always"}
    given = json.loads(
        Thing(login_server="a", end_time="2030-01-01T00:00:00Z", kind="Two").to_json()
    )
    assert given["endTime"] == "2030-01-01T00:00:00Z"


def test_an_answer_reads_its_own_json_back() -> None:
    thing = Thing(login_server="a", kind="One")
    assert Thing.model_validate_json(thing.to_json()) == thing
    assert Thing.model_validate({"loginServer": None, "kind": "Two"}).end_time is MISSING


def test_an_answer_is_frozen() -> None:
    thing = Thing(login_server="a", kind="One")
    with pytest.raises(ValidationError):
        thing.login_server = "b"  # type: ignore[misc]


def test_the_schema_requires_what_is_always_there_and_allows_null_only_where_sent() -> None:
    schema = Thing.model_json_schema(mode="serialization", by_alias=True)
    assert sorted(schema["required"]) == ["constant", "kind", "loginServer"]
    assert schema["properties"]["endTime"] == {
        "type": "string",
        "format": "date-time",
        "title": "Endtime",
    }
    assert {"type": "null"} in schema["properties"]["loginServer"]["anyOf"]
    assert schema["properties"]["kind"]["enum"] == ["One", "Two"]


def test_snake_answers_keep_their_field_names() -> None:
    class Token(SnakeAnswer):
        access_token: str

    assert json.loads(Token(access_token="t").to_json()) == {"access_token": "t"}
