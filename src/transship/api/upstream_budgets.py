"""`GET /transship/v1/upstreamBudgets`: the rate-limit budget of each upstream and
credential user, as every process of the service shares it (a Transship extension).

Any authenticated caller may read it, like `/transship/v1/info`. The credential user names
are the service's tenants' upstream accounts: callers of the root tenant (the service's
operators) see every budget, other callers only the anonymous ones.
"""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from transship.api.arm import arm_json
from transship.api.auth import caller
from transship.api.v2 import SERVICES
from transship.metadata.records import ANONYMOUS, Budget
from transship.wire import arm as resources


def _at(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def budget_json(budget: Budget, now: datetime) -> resources.UpstreamBudget:
    """The answer for one budget at `now` (its window may have ended since it was read)."""
    return resources.UpstreamBudget(
        host=budget.key.host,
        user=budget.key.user or None,
        limit=budget.limit,
        remaining=budget.remaining_at(now),
        window_seconds=budget.window_seconds,
        observed_at=_at(budget.observed_at),
        resets_at=_at(budget.resets_at),
        blocked_until=_at(budget.wait_until(now)),
        pulls=budget.pulls,
    )


async def upstream_budgets(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    principal = await caller(request, services)
    ledger = services.budgets
    if ledger is None:
        return arm_json(resources.UpstreamBudgetList(value=[]))
    operator = principal.tenant_id == services.identity.tenant_id
    now = ledger.now()
    found = await ledger.list()
    return arm_json(
        resources.UpstreamBudgetList(
            value=[
                budget_json(budget, now)
                for budget in found
                if operator or budget.key.user == ANONYMOUS
            ]
        )
    )
