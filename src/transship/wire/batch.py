"""Batch import bodies (a Transship extension: ACR imports one source per call).

The request is `{"images": [<ImportImageParameters>…]}`; the answer is a batch operation
whose items are the import operations it queued, each with its digest and whether it was
unchanged (see `transship.imports.batch`)."""

from __future__ import annotations

from pydantic import MISSING, BaseModel, ConfigDict, Field, NonNegativeInt

from transship.wire.arm import OperationError, OperationStatus
from transship.wire.base import Answer, DateTime, extensible
from transship.wire.bodies import ImportImageParameters

MAX_BATCH_IMAGES = 1000


class ImportImagesParameters(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    images: list[ImportImageParameters] = Field(
        min_length=1,
        max_length=MAX_BATCH_IMAGES,
        description="The images to import, each as the body of importImage (with its "
        "Transship extensions, but not `dryRun`).",
    )


class ImportBatchItem(Answer):
    """One item of a batch: its import operation, and what it did."""

    index: NonNegativeInt = Field(description="The item's position in the request's `images`.")
    digest: str | None = Field(
        description="The manifest digest the item's first target names now (its source "
        "digest when untagged); null until it succeeded."
    )
    unchanged: bool = Field(
        description="It succeeded without fetching any blob, and its target already named "
        "that digest when the batch was queued."
    )
    operation: OperationStatus


class ImportBatchCounts(Answer):
    total: NonNegativeInt
    queued: NonNegativeInt
    running: NonNegativeInt
    succeeded: NonNegativeInt
    failed: NonNegativeInt
    canceled: NonNegativeInt
    unchanged: NonNegativeInt
    bytes_fetched: NonNegativeInt


class ImportBatchInfo(Answer):
    registry: str
    state: str = extensible("running", "succeeded", "completedWithFailures", "canceled")
    cancel_requested: bool
    counts: ImportBatchCounts
    items: list[ImportBatchItem]


class ImportBatchStatus(Answer):
    """A batch import operation: `status` InProgress until every item ended, then
    Succeeded (all succeeded), Canceled (canceled, none failed) or Failed (some item did
    not succeed: `properties.state` is completedWithFailures, `error` counts them)."""

    id: str
    name: str
    status: str = extensible("InProgress", "Succeeded", "Failed", "Canceled")
    start_time: DateTime
    end_time: DateTime | MISSING = MISSING
    error: OperationError | MISSING = MISSING
    properties: ImportBatchInfo
