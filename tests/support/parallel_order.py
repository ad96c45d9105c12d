"""The order and grouping of the suite's tests under pytest-xdist (``scripts/test`` runs
``--dist loadgroup --no-loadscope-reorder``): the collection hook, which ``tests/conftest.py``
imports, in a module of its own that imports only pytest, so the runs of
``tests/test_parallel_*.py`` (each a pytest with its own xdist workers) load it without the
whole suite's imports (~1 s of CPU per process).
"""

from __future__ import annotations

import pytest

PEER_FIXTURES = frozenset(
    {
        "postgres",
        "seaweedfs",
        "azurite",
        "distribution_anon",
        "distribution_htpasswd",
        "distribution_token",
        "skopeo",
        "podman",
        "docker_cli",
        "browser",
        "browser_process",
    }
)


@pytest.hookimpl(tryfirst=True)  # before xdist's worker reads the xdist_group marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark tests that use a peer fixture with ``peers``, group those sharing a
    module-scoped fixture for xdist (see :func:`_shared_fixture_group`), and run the long
    ones first (:func:`_run_long_first`)."""
    _run_long_first(items)
    for item in items:
        _name_in_node_id(item)
        names = getattr(item, "fixturenames", ())
        if PEER_FIXTURES.intersection(names):
            item.add_marker(pytest.mark.peers)
        explicit = item.get_closest_marker("xdist_group")
        if explicit is not None:
            # A group named in the module (tests sharing a fixture across modules).
            group = explicit.args[0] if explicit.args else explicit.kwargs.get("name", "default")
            if getattr(config.option, "loadgroup", False):
                _suffix_node_id(item, group)
            continue
        group = None if item.get_closest_marker("spread") else _shared_fixture_group(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
            if getattr(config.option, "loadgroup", False):  # an xdist worker, --dist loadgroup
                _suffix_node_id(item, group)


def _run_long_first(items: list[pytest.Item]) -> None:
    """Order the tests marked ``slow(seconds=N)`` first, longest first, then ``heavy`` tests
    (the ``slow`` among them before the others), then ``slow`` ones, then the rest (a stable
    sort: a module's tests keep their order). ``N`` is how long the test, or the xdist group
    it belongs to, typically takes in a parallel run: only the few longest need it.

    xdist hands work out in collection order (``scripts/test`` passes
    ``--no-loadscope-reorder``: by default ``--dist loadgroup`` hands out the groups of
    several tests first, by size, whatever their length), so a minutes-long test collected
    late would run alone at the end while the other workers idle; started first, it
    overlaps the many short tests. Being heavy is not enough: the soak tests, the longest,
    came after 256 schemathesis tests of a few seconds each."""

    def weight(item: pytest.Item) -> tuple[float, int]:
        heavy = item.get_closest_marker("heavy") is not None
        slow = item.get_closest_marker("slow")
        seconds = float(slow.kwargs.get("seconds", 0)) if slow is not None else 0.0
        return -seconds, (0 if heavy else 2) + (0 if slow is not None else 1)

    items.sort(key=weight)


def _suffix_node_id(item: pytest.Item, group: str) -> None:
    """Append ``@group`` to the node id, which is how the xdist controller learns the group.

    pytest-xdist does it by setting ``item._nodeid``, which pytest >= 9.2 no longer reads
    (its ids are structured, in ``item._id``), so groups were silently ignored
    (pytest-dev/pytest-xdist#1386). Drop this once an xdist release has the fix."""
    if "@" in item.nodeid or not hasattr(item, "_id"):
        return  # an older pytest: xdist's own hook appends it
    from _pytest.nodeid import coerce_node_id

    item._id = coerce_node_id(f"{item.nodeid}@{group}")


def _name_in_node_id(item: pytest.Item) -> None:
    """Give an item its name's parameters in its node id where pytest left them out.

    schemathesis names each operation's test ``test_x[GET /path]``, but pytest >= 9.2 builds
    node ids from structured parts and sees no parameters on such an item, so without a
    parametrized fixture to tell them apart every operation's test had the id ``…::test_x``;
    xdist, which hands out tests by node id, then ran one or a few of them and reported
    success (tests/test_parallel_suite.py)."""
    if "[" not in item.name or "[" in item.nodeid or not hasattr(item, "_id"):
        return
    from _pytest.nodeid import coerce_node_id

    item._id = coerce_node_id(f"{item.nodeid.rsplit('::', 1)[0]}::{item.name}")


def _shared_fixture_group(item: pytest.Item) -> str | None:
    """``<module>:<fixture>=<param>,…`` when ``item`` uses a module-scoped fixture of its own
    module (a server the module's tests share, sometimes in order), else None. Under
    ``--dist loadgroup`` one worker runs the whole group, so the fixture starts once per
    parameter. (No ``]`` in it: xdist takes the group after an ``@`` past the last ``]``.)"""
    info = getattr(item, "_fixtureinfo", None)
    module = getattr(item, "module", None)
    if info is None or module is None:
        return None
    shared = sorted(
        name
        for name, defs in info.name2fixturedefs.items()
        if defs and defs[-1].scope == "module" and defs[-1].baseid == item.nodeid.split("::")[0]
    )
    if not shared:
        return None
    params = getattr(getattr(item, "callspec", None), "params", {})
    chosen = [f"{name}={params[name]}" for name in shared if name in params]
    return f"{module.__name__}:{','.join(chosen)}".replace("]", ")").replace("[", "(")
