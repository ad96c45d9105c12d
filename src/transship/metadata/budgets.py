"""Queries over upstream rate-limit budgets: one row per (upstream host, credential user).

Every write is a single statement (an upsert or a conditional update), so imports of every
process share a budget without long transactions: the database serialises the statements.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, case, func, or_, select, update

from transship.metadata import schema as s
from transship.metadata.records import Budget, BudgetKey
from transship.metadata.scope import QueryScope, as_utc


def _opt_utc(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)


def _budget(row: Row[Any]) -> Budget:
    return Budget(
        key=BudgetKey(row.host, row.user),
        limit=row.limit_count,
        remaining=row.remaining,
        window_seconds=row.window_seconds,
        observed_at=_opt_utc(row.observed_at),
        resets_at=_opt_utc(row.resets_at),
        blocked_until=_opt_utc(row.blocked_until),
        pulls=row.pulls,
    )


class BudgetQueries(QueryScope):
    async def budget(self, key: BudgetKey) -> Budget | None:
        b = s.upstream_budgets
        rows = await self._exec(select(b).where(b.c.host == key.host, b.c.user == key.user))
        row = rows.first()
        return None if row is None else _budget(row)

    async def budgets(self) -> list[Budget]:
        """Every budget, by host then user (a handful of rows: one per upstream and user)."""
        b = s.upstream_budgets
        rows = await self._exec(select(b).order_by(b.c.host, b.c.user))
        return [_budget(row) for row in rows]

    async def reserve_pull(self, key: BudgetKey, now: datetime) -> Budget | None:
        """Take one pull from the budget, in one statement: allowed when no 429 blocks it
        and it has pulls left, or its window has ended (it starts again from the limit), or
        nothing is known of its window (a count spent since a window ended, before the
        upstream said more: the upstream decides, as `Budget.wait_until` has it; the pull is
        counted all the same). Returns the budget after the pull, or None when the pull is
        not allowed now or the budget has no row yet (`ensure` creates it)."""
        b = s.upstream_budgets
        window_over = and_(b.c.resets_at.is_not(None), b.c.resets_at <= now)
        rows = await self._exec(
            update(b)
            .where(
                b.c.host == key.host,
                b.c.user == key.user,
                or_(b.c.blocked_until.is_(None), b.c.blocked_until <= now),
                or_(
                    b.c.remaining.is_(None), b.c.remaining > 0, b.c.resets_at.is_(None), window_over
                ),
            )
            .values(
                remaining=case(
                    (and_(window_over, b.c.limit_count.is_not(None)), b.c.limit_count - 1),
                    (b.c.remaining > 0, b.c.remaining - 1),
                    else_=b.c.remaining,
                ),
                # A window that has ended is unknown until the upstream answers again.
                resets_at=case((window_over, None), else_=b.c.resets_at),
                blocked_until=None,
                pulls=b.c.pulls + 1,
                updated_at=now,
            )
            .returning(b)
        )
        row = rows.first()
        return None if row is None else _budget(row)

    async def ensure(self, key: BudgetKey, now: datetime) -> None:
        """Create the budget's row (nothing known yet) unless it exists."""
        await self._insert_ignore(
            s.upstream_budgets,
            {"host": key.host, "user": key.user, "pulls": 0, "updated_at": now},
            ("host", "user"),
        )

    async def observe(
        self,
        key: BudgetKey,
        now: datetime,
        *,
        limit: int | None,
        remaining: int | None,
        window_seconds: int | None,
        resets_at: datetime | None,
        blocked_until: datetime | None,
    ) -> None:
        """Record what an upstream answer announced, in one upsert: the counts it named
        replace the recorded ones (with `now` as their time), counts it did not name stay;
        a `blocked_until` extends the block (never shortens one another answer set).

        Within a window still running, a count above the recorded one does not raise it:
        answers arrive out of order, and pulls reserved since (still in flight) are in
        the recorded count but not yet in the upstream's."""
        b = s.upstream_budgets
        announced = remaining is not None
        values: dict[str, Any] = {
            "host": key.host,
            "user": key.user,
            "limit_count": limit,
            "remaining": remaining,
            "window_seconds": window_seconds,
            "observed_at": now if announced else None,
            "resets_at": resets_at,
            "blocked_until": blocked_until,
            "pulls": 0,
            "updated_at": now,
        }
        stmt = self._insert(b).values(**values)
        excluded = stmt.excluded
        changes: dict[str, Any] = {"updated_at": excluded.updated_at}
        if announced:
            changes.update(
                limit_count=func.coalesce(excluded.limit_count, b.c.limit_count),
                remaining=case(
                    (
                        and_(
                            b.c.remaining.is_not(None),
                            b.c.resets_at.is_not(None),
                            b.c.resets_at > now,
                            b.c.remaining < excluded.remaining,
                        ),
                        b.c.remaining,
                    ),
                    else_=excluded.remaining,
                ),
                window_seconds=excluded.window_seconds,
                observed_at=excluded.observed_at,
                resets_at=excluded.resets_at,
            )
        if blocked_until is not None:
            changes["blocked_until"] = case(
                (
                    and_(
                        b.c.blocked_until.is_not(None), b.c.blocked_until > excluded.blocked_until
                    ),
                    b.c.blocked_until,
                ),
                else_=excluded.blocked_until,
            )
        await self._exec(stmt.on_conflict_do_update(index_elements=["host", "user"], set_=changes))
