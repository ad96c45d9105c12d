"""Listing a registry's import operations pages with $top and nextLink."""

from __future__ import annotations

from pathlib import Path

from tests.support.app import make_settings, running_registry
from tests.support.imports import Management


async def test_import_operations_page_through_next_link(tmp_path: Path) -> None:
    # Every upstream is denied, so the jobs fail at once without any network traffic.
    settings = make_settings(tmp_path / "data", None, egress={"default": "deny"})
    async with running_registry(settings) as reg:
        admin = Management(reg, tmp_path / "data")
        await admin.create_registry("myregistry")
        started = []
        for n in range(3):
            operation = await admin.start_import(
                "myregistry",
                {"source": {"registryUri": "registry.example.com", "sourceImage": f"app:{n}"}},
            )
            started.append(operation.body["name"])
        status, page, _ = await admin.call(
            "GET", f"{admin.base}/myregistry/importOperations?$top=2"
        )
        assert status == 200
        assert [op["name"] for op in page["value"]] == started[::-1][:2]
        status, rest, _ = await admin.call("GET", page["nextLink"])
        assert status == 200
        assert [op["name"] for op in rest["value"]] == started[:1]
        assert "nextLink" not in rest
        status, body, _ = await admin.call(
            "GET", f"{admin.base}/myregistry/importOperations?$top=0"
        )
        assert status == 400 and body["error"]["target"] == "$top"
        # Past what int() reads: refused as out of range, not a 500.
        status, body, _ = await admin.call(
            "GET", f"{admin.base}/myregistry/importOperations?$top={'9' * 5000}"
        )
        assert status == 400 and body["error"]["target"] == "$top"
