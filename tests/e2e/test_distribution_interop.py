"""Transship between two independent registries (Debian's docker-registry 2.8), moved by skopeo.

Every hop must keep every digest: index, children, blobs; foreign layers stay blob-less.
"""

from __future__ import annotations

import pytest

from tests.e2e.content import RegistryView, assert_identical, layout_ref
from tests.peers.clients import Skopeo
from tests.peers.distribution import DistributionRegistry
from tests.peers.images import BuiltIndex, push_layout_http
from tests.peers.transship import TransshipServer

pytestmark = pytest.mark.timeout(90)


def _hop(
    skopeo: Skopeo, source: RegistryView, dest: RegistryView, tag: str, built: BuiltIndex
) -> None:
    """``skopeo copy --all`` ``source:tag`` to ``dest:tag`` and check ``dest`` holds ``built``."""
    skopeo.copy(source.ref(tag), dest.ref(tag))
    assert_identical(dest, tag, built)


def test_multiarch_index_through_transship(
    skopeo: Skopeo,
    multiarch: BuiltIndex,
    distribution_anon: DistributionRegistry,
    transship: TransshipServer,
    second_distribution: DistributionRegistry,
) -> None:
    """OCI layout → docker-registry → Transship → a second docker-registry."""
    first = RegistryView(skopeo, distribution_anon, "interop/multi")
    skopeo.copy(layout_ref(multiarch), first.ref("v1"))
    assert_identical(first, "v1", multiarch)

    ours = RegistryView(skopeo, transship, "interop/multi")
    _hop(skopeo, first, ours, "v1", multiarch)
    _hop(skopeo, ours, RegistryView(skopeo, second_distribution, "interop/multi"), "v1", multiarch)


def test_docker_list_with_foreign_layer_through_transship(
    skopeo: Skopeo,
    windows_list: BuiltIndex,
    distribution_anon: DistributionRegistry,
    transship: TransshipServer,
) -> None:
    """docker-registry → Transship → back to docker-registry (another repository)."""
    push_layout_http(windows_list, distribution_anon.url, "interop/win", "ltsc2019")
    first = RegistryView(skopeo, distribution_anon, "interop/win")
    assert_identical(first, "ltsc2019", windows_list)

    ours = RegistryView(skopeo, transship, "interop/win")
    _hop(skopeo, first, ours, "ltsc2019", windows_list)
    _hop(
        skopeo,
        ours,
        RegistryView(skopeo, distribution_anon, "interop/win-back"),
        "ltsc2019",
        windows_list,
    )
