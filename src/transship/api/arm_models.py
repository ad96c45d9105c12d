"""Validation of the management API's request bodies (the models are `transship.wire.bodies`):
a pydantic error becomes the ARM envelope, naming the field."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from transship.api.envelopes import ArmError


def parse_body(model: type[BaseModel], data: Any) -> Any:
    """Validate a JSON body. Raises ArmError 400 InvalidParameter naming the first field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "body"
        raise ArmError(
            400,
            "InvalidParameter",
            f"The parameter '{field}' is invalid: {first['msg']}.",
            target=field,
        ) from None
