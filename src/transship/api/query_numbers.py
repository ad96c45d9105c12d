"""Whole numbers in query strings (`n`, `$top`, `$skipToken` offsets), read without letting
the text reach `int` or the database unbounded: `int` refuses more than 4,300 digits, and
SQLite and PostgreSQL refuse integers past 64 bits, and either would be a 500."""

from __future__ import annotations


def nonnegative(text: str, *, ceiling: int) -> int | None:
    """`text` as a non-negative decimal integer, `ceiling` when it is larger, or None when it
    is not one (empty, a sign, spaces, non-ASCII digits). Never raises."""
    if not (text.isascii() and text.isdigit()):
        return None
    digits = text.lstrip("0") or "0"
    if len(digits) > len(str(ceiling)):
        return ceiling
    return min(int(digits), ceiling)
