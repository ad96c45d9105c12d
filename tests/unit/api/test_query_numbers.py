"""Whole numbers of query strings: never an error of `int` or of the database."""

from __future__ import annotations

import pytest

from transship.api.query_numbers import nonnegative


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("7", 7),
        ("007", 7),
        ("1000", 1000),
        ("1001", 1000),  # above the ceiling: the ceiling
        ("9" * 30, 1000),  # past 64 bits
        ("9" * 5000, 1000),  # past what int() reads (4,300 digits)
        ("0" * 5000 + "5", 5),  # leading zeros do not count
        ("", None),
        ("-1", None),
        ("+1", None),
        (" 1", None),
        ("1.0", None),
        ("1e3", None),
        ("\u0661", None),  # ARABIC-INDIC DIGIT ONE: a digit to str.isdigit, not ASCII
        ("\u00b2", None),  # SUPERSCRIPT TWO: isdigit() is true, int() refuses it
    ],
)
def test_nonnegative(text: str, expected: int | None) -> None:
    assert nonnegative(text, ceiling=1000) == expected
