"""A refusal inside a batch body names the item: `images[i].field`."""

from __future__ import annotations

import pytest

from transship.api.envelopes import ArmError
from transship.api.import_batch import _item_error, _parse
from transship.errors import Denied, Invalid
from transship.wire.batch import MAX_BATCH_IMAGES


def _image(**extra: object) -> dict[str, object]:
    return {"source": {"registryUri": "a.io", "sourceImage": "x:1"}, **extra}


@pytest.mark.parametrize(
    ("body", "target"),
    [
        ({"images": [_image(), {"source": {"registryUri": "a.io"}}]}, "images[1].source"),
        ({"images": [_image(mode="Sometimes")]}, "images[0].mode"),
        ({"images": []}, "images"),
        ({"images": "x"}, "images"),
        ({}, "images"),
        ({"images": [_image()] * (MAX_BATCH_IMAGES + 1)}, "images"),
    ],
)
def test_the_body_names_the_item_and_field(body: object, target: str) -> None:
    with pytest.raises(ArmError) as raised:
        _parse(body)
    error = raised.value
    assert error.status == 400 and error.code == "InvalidParameter"
    assert error.target is not None and error.target.startswith(target), error
    assert target in error.message


def test_an_item_refusal_is_prefixed_with_its_index() -> None:
    invalid = _item_error(2, Invalid("targetTags", "The tag 'X' is invalid."))
    assert invalid.status == 400 and invalid.target == "images[2].targetTags"
    assert invalid.message == "images[2]: The tag 'X' is invalid."
    denied = _item_error(0, Denied("The caller may not read the source."))
    assert denied.status == 403 and denied.target == "images[0]"
    arm = _item_error(1, ArmError(404, "ResourceNotFound", "No such registry.", target="source"))
    assert (arm.status, arm.code, arm.target) == (404, "ResourceNotFound", "images[1].source")
