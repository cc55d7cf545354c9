"""Bar geometry for the overview's small server-rendered SVG charts (pure)."""

from __future__ import annotations

from dataclasses import dataclass

WIDTH, HEIGHT = 480, 80


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    value: int
    hours_ago: int


def bars(values: list[int], width: int = WIDTH, height: int = HEIGHT) -> list[Bar]:
    """One bar per value (oldest first), scaled so the largest fills the height."""
    if not values:
        return []
    top = max(max(values), 1)
    step = width / len(values)
    out = []
    for i, value in enumerate(values):
        h = height * value / top
        out.append(Bar(i * step + 1, height - h, max(step - 2, 1), h, value, len(values) - 1 - i))
    return out
