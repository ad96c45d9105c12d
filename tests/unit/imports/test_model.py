"""ImportRequest's stored form: the blob order survives it, and jobs stored before it
existed read as largest first."""

from __future__ import annotations

import json

import pytest

from transship.imports.model import BlobOrder, ImportRequest, SourceSpec, TargetTag


def _request(order: BlobOrder) -> ImportRequest:
    return ImportRequest(
        SourceSpec("upstream.example", None, "library/app", "v1"),
        (TargetTag("app", "v1"),),
        (),
        True,
        blob_order=order,
    )


@pytest.mark.parametrize("order", list(BlobOrder))
def test_the_blob_order_survives_the_stored_form(order: BlobOrder) -> None:
    assert ImportRequest.from_json(_request(order).to_json()).blob_order is order


def test_the_default_order_is_not_stored_and_an_old_job_reads_as_largest_first() -> None:
    stored = json.loads(_request(BlobOrder.LARGEST_FIRST).to_json())
    assert "blobOrder" not in stored
    assert json.loads(_request(BlobOrder.IMAGE_BY_IMAGE).to_json())["blobOrder"] == "imageByImage"
    assert ImportRequest.from_json(json.dumps(stored)).blob_order is BlobOrder.LARGEST_FIRST


def test_an_unknown_order_is_refused() -> None:
    stored = json.loads(_request(BlobOrder.LARGEST_FIRST).to_json())
    stored["blobOrder"] = "randomly"
    with pytest.raises(ValueError, match="randomly"):
        ImportRequest.from_json(json.dumps(stored))
