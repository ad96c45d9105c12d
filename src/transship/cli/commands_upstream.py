"""`transship upstream budgets`: the rate-limit budget of each upstream registry and
credential user that imports share (a Transship extension)."""

from __future__ import annotations

from typing import Any

import click

from transship.cli.common import CONTEXT, api, service_command
from transship.cli.output import emit, output_option, short_time
from transship.wire.arm import UpstreamBudget, UpstreamBudgetList

BUDGETS_PATH = "/transship/v1/upstreamBudgets"
COLUMNS = ("HOST", "USER", "REMAINING", "LIMIT", "WINDOW", "PULLS", "RESETS", "BLOCKED UNTIL")


def _count(value: int | None) -> str:
    return "?" if value is None else str(value)


def budget_row(budget: UpstreamBudget) -> tuple[Any, ...]:
    window = "" if budget.window_seconds is None else f"{budget.window_seconds}s"
    return (
        budget.host,
        budget.user or "(anonymous)",
        _count(budget.remaining),
        _count(budget.limit),
        window,
        budget.pulls,
        "" if budget.resets_at is None else short_time(budget.resets_at),
        "" if budget.blocked_until is None else short_time(budget.blocked_until),
    )


@click.group(context_settings=CONTEXT)
def upstream() -> None:
    """What imports spend on upstream registries (a Transship extension)."""


@upstream.command(context_settings=CONTEXT)
@output_option
@service_command
def budgets(output: str) -> None:
    """Show the rate-limit budget of each upstream host and credential user.

    Budgets come from the upstreams' ratelimit-limit / ratelimit-remaining headers and
    429 answers, and are shared by every import and worker process. REMAINING and LIMIT
    are "?" until the upstream announces them; BLOCKED UNTIL is set while imports wait.
    Outside the service's root tenant only the anonymous budgets are shown.

    \b
    Examples:
      transship upstream budgets
      transship upstream budgets -o json
    """
    found = api().get(BUDGETS_PATH, UpstreamBudgetList).value
    emit(
        output,
        found,
        COLUMNS,
        lambda rows: [budget_row(b) for b in rows],
        empty="No upstream budgets yet (no import has talked to an upstream).",
    )
