"""Batch imports in tests: small images pushed to an upstream, and the batch API driven
through a `Management` (POST importImages, GET/follow/cancel importBatches)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from tests.peers.images import BuiltImage, OciLayout, build_image, push_layout_http
from tests.support.imports import Management
from transship.metadata import schema as s


@dataclass(frozen=True)
class Started:
    """The answer to POST importImages."""

    status: int
    body: Any
    headers: Mapping[str, str]

    @property
    def url(self) -> str:
        assert self.status == 202, self.body
        return self.headers["Azure-AsyncOperation"]


def push_small_images_now(
    tmp_path: Path,
    base_url: str,
    repositories: Sequence[str],
    tag: str = "v1",
    auth: tuple[str, str] | None = None,
    variant: str = "",
) -> dict[str, BuiltImage]:
    """`push_small_images` for code without a loop (a thread, a synchronous test)."""
    built = {}
    for repository in repositories:
        seed = f"{repository}-{tag}{variant}"
        image = build_image(
            OciLayout(tmp_path / "layouts" / seed.replace("/", "_")),
            layer_sizes=(3_000, 7_000),
            seed=seed,
        )
        push_layout_http(image, base_url, repository, tag, auth)
        built[repository] = image
    return built


async def push_small_images(
    tmp_path: Path,
    base_url: str,
    repositories: Sequence[str],
    tag: str = "v1",
    auth: tuple[str, str] | None = None,
    variant: str = "",
) -> dict[str, BuiltImage]:
    """One single-platform image (two small layers of its own) per repository, pushed as
    `<repository>:<tag>`; built and pushed off the loop. Another `variant` builds other
    content for the same names."""

    return await asyncio.to_thread(
        push_small_images_now, tmp_path, base_url, repositories, tag, auth, variant
    )


def item(host: str, source_image: str, target: str | None = None, **extra: Any) -> dict[str, Any]:
    """One importImages item from a remote host (target: the source's name and tag)."""
    return {
        "source": {"registryUri": host, "sourceImage": source_image},
        "targetTags": [target or source_image],
        **extra,
    }


async def start_batch(admin: Management, registry: str, images: list[dict[str, Any]]) -> Started:
    status, body, headers = await admin.call(
        "POST", f"{admin.base}/{registry}/importImages", {"images": images}
    )
    return Started(status, body, headers)


async def batch_status(admin: Management, url: str) -> dict[str, Any]:
    status, body, _ = await admin.call("GET", url.split("?")[0])
    assert status == 200, body
    return dict(body)


async def wait_batch(admin: Management, url: str, timeout: float = 60.0) -> dict[str, Any]:
    """Follow the batch (long poll) until it ends; returns its last status."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    status, body, headers = await admin.call("GET", url.split("?")[0])
    assert status == 200, body
    while body["status"] == "InProgress":
        if loop.time() > deadline:
            raise TimeoutError(f"the batch did not end in {timeout} s: {body}")
        answer, newer, headers = await admin.call(
            "GET",
            url.split("?")[0] + "?waitSeconds=5",
            headers={"If-None-Match": headers["ETag"]},
        )
        if answer == 200:
            body = newer
        else:
            assert answer == 304, newer
    return dict(body)


async def cancel_batch(admin: Management, url: str) -> tuple[int, Any]:
    status, body, _ = await admin.call("POST", url.split("?")[0] + "/cancel")
    return status, body


async def batches_rows(admin: Management) -> tuple[int, int]:
    """(batches, import jobs) in the database of an in-process server."""
    assert admin.reg is not None
    async with admin.reg.services.meta.reading() as q:
        batches = (
            await q.conn.execute(select(func.count()).select_from(s.import_batches))
        ).scalar_one()
        jobs = (await q.conn.execute(select(func.count()).select_from(s.import_jobs))).scalar_one()
    return int(batches), int(jobs)
