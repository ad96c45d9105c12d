"""The base of the answer models and the field types they share.

An answer model serialises by alias (camelCase, as ACR and ARM spell their fields), is
frozen, and is built by field name or alias. Its fields keep today's wire shape exactly: a
field typed `X | None` is always present and may be `null`; a field defaulting to `MISSING`
is left out of the body when not given (and is then not `required` in the JSON Schema);
every other field is always present and `required`, even when it has a default (constants
such as an ARM resource `type`).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import MISSING, BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel

# A date-time as the server writes it (ISO 8601, UTC as `Z`): text on the wire and here, so
# that a body read back serialises to the same bytes.
DateTime = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]


def extensible(*values: str) -> Any:
    """A text field whose values are `values` today (the JSON Schema's `enum`), typed `str`:
    clients accept a value added later, as Azure's SDKs treat ARM's extensible enums."""
    return Field(json_schema_extra={"enum": list(values)})


def _omittable_not_required(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """Fields defaulting to MISSING may be absent: not `required` in the schema."""
    omittable = {
        field.serialization_alias or field.alias or name
        for name, field in model.model_fields.items()
        if field.default is MISSING
    }
    if "required" in schema:
        schema["required"] = [name for name in schema["required"] if name not in omittable]
        if not schema["required"]:
            del schema["required"]


class Answer(BaseModel):
    """A response body (camelCase on the wire)."""

    model_config = ConfigDict(
        frozen=True,
        populate_by_name=True,
        alias_generator=to_camel,
        serialize_by_alias=True,
        json_schema_serialization_defaults_required=True,
        json_schema_extra=_omittable_not_required,
    )

    def to_json(self) -> str:
        """The body's JSON text."""
        return self.model_dump_json()


class SnakeAnswer(Answer):
    """A response body whose wire names are the field names (OAuth 2.0, OIDC, JWKS)."""

    model_config = ConfigDict(alias_generator=None)
