"""Reconciliation's pure parts: windows of at most 15 days, and when a row needs fetching."""

from __future__ import annotations

import itertools

import pytest

from service.recover.api import MAX_WINDOW_SECONDS
from service.recover.reconcile import verdict, windows

DAY = 86400


def test_a_look_back_over_15_days_is_cut_into_consecutive_windows() -> None:
    start, end = 1_000_000, 1_000_000 + 40 * DAY
    cut = list(windows(start, end))
    assert cut == [
        (start, start + 15 * DAY),
        (start + 15 * DAY + 1, start + 30 * DAY + 1),
        (start + 30 * DAY + 2, end),
    ]
    assert all(b - a <= MAX_WINDOW_SECONDS for a, b in cut)
    assert all(later[0] == earlier[1] + 1 for earlier, later in itertools.pairwise(cut)), "bounds overlap"


def test_the_last_second_gets_a_window_of_its_own() -> None:
    assert list(windows(0, 11, size=10)) == [(0, 10), (11, 11)]


def test_no_window_when_there_is_nothing_to_reconcile() -> None:
    assert list(windows(100, 100)) == []
    assert list(windows(100, 50)) == []


@pytest.mark.parametrize(
    ("stored", "status", "expected"),
    [
        (None, "SHIPPED", "missing"),
        (("PROCESSED", 2000), "SHIPPED", "stale"),
        (("SHIPPED", 500), "SHIPPED", "stale"),  # changed at Shopee since the row was written
        (("SHIPPED", None), "SHIPPED", "stale"),
        (("SHIPPED", 2000), "SHIPPED", None),
        (("SHIPPED", 1000), None, None),
    ],
)
def test_verdict(stored: tuple[str, int | None] | None, status: str | None, expected: str | None) -> None:
    assert verdict(stored, status, window_from=1000) == expected
