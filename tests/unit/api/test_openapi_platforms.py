"""The OpenAPI document describes importImage's platform-subset extension fields."""

from __future__ import annotations

from transship.api.openapi import build_document
from transship.api.route_table import ROUTES


def test_import_body_schema_has_the_extension_fields() -> None:
    schema = build_document(ROUTES)["components"]["schemas"]["ImportImageParameters"]
    properties = schema["properties"]
    assert {"platforms", "platformMode", "includeAttestations"} <= set(properties)
    assert "Transship extension" in properties["platforms"]["description"]
    modes = [s for s in properties["platformMode"]["anyOf"] if s.get("type") == "string"]
    assert modes[0]["enum"] == ["sparse", "rewritten"]
    assert set(schema.get("required", [])) == {"source"}
