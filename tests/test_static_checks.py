"""The project's own promises about its code: typed (mypy --strict), layered (import-linter
contracts from DESIGN.md), and lint-clean. Each runs the real tool over the tree."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_mypy_strict_is_clean() -> None:
    result = run(sys.executable, "-m", "mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_layers_only_point_downward() -> None:
    result = run(str(BIN / "lint-imports"))
    assert result.returncode == 0, result.stdout + result.stderr
    # The contracts DESIGN.md promises are all there (dropping one would pass silently).
    for contract in (
        "Layers point downward",
        "oci is pure",
        "SQLAlchemy only inside metadata",
        "The client commands never import server code",
    ):
        assert f"{contract} KEPT" in result.stdout, contract


def test_ruff_is_clean() -> None:
    result = run(sys.executable, "-m", "ruff", "check", "src", "tests", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_applied() -> None:
    result = run(sys.executable, "-m", "ruff", "format", "--check", "src", "tests", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


# Test helpers that do blocking work (building layers, pushing with `requests`): called from
# a coroutine they hold its loop (the stall guard, tests/support/loop_stall.py, fails such a
# test under load), so async tests run them with `asyncio.to_thread`.
_BLOCKING_HELPERS = frozenset(
    {"push_layout_http", "push_referrer", "build_index", "build_image", "small_index"}
)


def _own_calls(function: ast.AST) -> Iterator[ast.Call]:
    """The calls made by `function`'s own body, not by the functions nested in it."""
    stack = list(ast.iter_child_nodes(function))
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        if isinstance(node, ast.Call):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _called_names(function: ast.AST) -> set[str]:
    return {c.func.id for c in _own_calls(function) if isinstance(c.func, ast.Name)}


def blocking_calls_on_a_loop(source: str) -> list[tuple[int, str, str]]:
    """(line, coroutine, callee) of each call a coroutine of `source` makes, on its loop, to
    a blocking helper or to a sync function of the same module that calls one."""
    tree = ast.parse(source)
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
    blocking = set(_BLOCKING_HELPERS)
    blocking |= {f.name for f in functions if _called_names(f) & _BLOCKING_HELPERS}
    found = []
    for coroutine in ast.walk(tree):
        if isinstance(coroutine, ast.AsyncFunctionDef):
            for call in _own_calls(coroutine):
                if isinstance(call.func, ast.Name) and call.func.id in blocking:
                    found.append((call.lineno, coroutine.name, call.func.id))
    return found


def test_the_check_for_blocking_helpers_finds_one_called_on_a_loop() -> None:
    source = (
        "def pushed(x):\n    return push_layout_http(x)\n"
        "async def test_a(x):\n    pushed(x)\n"
        "async def test_b(x):\n    await asyncio.to_thread(pushed, x)\n"
        "async def test_c(x):\n    def build():\n        return build_image(x)\n"
        "    await asyncio.to_thread(build)\n"
    )
    assert blocking_calls_on_a_loop(source) == [(4, "test_a", "pushed")]


def test_no_coroutine_of_the_tests_runs_a_blocking_helper_on_its_loop() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}: {coroutine} calls {callee}"
        for path in sorted((ROOT / "tests").rglob("*.py"))
        for line, coroutine, callee in blocking_calls_on_a_loop(path.read_text())
    ]
    assert not found, "run these with asyncio.to_thread:\n" + "\n".join(found)
