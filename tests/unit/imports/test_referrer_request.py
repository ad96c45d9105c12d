"""The referrer fields of an import request: validated at intake (naming the field),
stored with the job (old jobs read as "no referrers"), and the result kept on the job."""

from __future__ import annotations

import json

import pytest

from transship.errors import Invalid
from transship.imports.intake import referrer_selection
from transship.imports.model import ImportRequest, ImportResult, ReferrerSelection, SourceSpec
from transship.oci.digest import Digest

SOURCE = SourceSpec("up.example", None, "app", "v1")


def test_selection_from_the_fields() -> None:
    assert referrer_selection(None, None) is None
    assert referrer_selection(False, None) is None
    assert referrer_selection(True, None) == ReferrerSelection()
    assert referrer_selection(True, ("a/b", "c/d", "a/b")) == ReferrerSelection(("a/b", "c/d"))
    assert ReferrerSelection().wanted is None
    assert ReferrerSelection(("a/b",)).wanted == frozenset({"a/b"})


def test_bad_artifact_type_names_its_index() -> None:
    with pytest.raises(Invalid) as caught:
        referrer_selection(True, ("application/spdx+json", "spdx"))
    assert caught.value.field == "referrerArtifactTypes[1]"
    assert "'spdx'" in str(caught.value.message)


def test_artifact_types_need_include_referrers() -> None:
    with pytest.raises(Invalid) as caught:
        referrer_selection(None, ("application/spdx+json",))
    assert caught.value.field == "referrerArtifactTypes"
    assert "includeReferrers" in str(caught.value.message)


def test_request_json_round_trips_and_reads_old_jobs() -> None:
    request = ImportRequest(
        SOURCE, (), ("app",), False, None, ReferrerSelection(("application/spdx+json",))
    )
    stored = json.loads(request.to_json())
    assert stored["referrers"] == {"artifactTypes": ["application/spdx+json"]}
    assert ImportRequest.from_json(request.to_json()) == request
    everything = ImportRequest(SOURCE, (), ("app",), False, None, ReferrerSelection())
    assert ImportRequest.from_json(everything.to_json()) == everything
    del stored["referrers"]  # a job stored before referrers could be imported
    assert ImportRequest.from_json(json.dumps(stored)).referrers is None
    plain = ImportRequest(SOURCE, (), ("app",), False)
    assert "referrers" not in json.loads(plain.to_json())


def test_result_round_trips() -> None:
    digest = Digest("sha256", "c" * 64)
    result = ImportResult((digest,), ((f"sha256-{'d' * 64}.sig", digest),))
    assert ImportResult.from_json(result.to_json()) == result
    assert ImportResult.from_json("{}") == ImportResult()
