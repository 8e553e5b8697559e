"""Point labels that do not cover each other."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

OFFSET = (5.0, 4.0)  # a label's place: to the upper right of its point, in points


def label_points(ax: Any, xs: Sequence[float], ys: Sequence[float], names: Sequence[str]) -> None:
    """Name each point. A label that would overlap one already placed is moved down, then up,
    in steps of its own height until it is free, and joined to its point by a thin line. Call
    once the figure's layout, scales and limits are set (the overlaps are found on screen)."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    placed: list[Any] = []
    for x, y, name in sorted(zip(xs, ys, names, strict=True), key=lambda p: (-p[1], p[0])):
        text = ax.annotate(name, (x, y), textcoords="offset points", xytext=OFFSET, fontsize=8)
        box = text.get_window_extent(renderer)
        step = box.height * 72.0 / fig.dpi + 1
        dy = 0.0
        for k in range(1, 12):
            if not any(box.overlaps(other) for other in placed):
                break
            dy = -step * ((k + 1) // 2) if k % 2 else step * (k // 2)
            text.set_position((OFFSET[0], OFFSET[1] + dy))
            box = text.get_window_extent(renderer)
        if dy:
            text.remove()
            text = ax.annotate(
                name, (x, y), textcoords="offset points", xytext=(OFFSET[0], OFFSET[1] + dy),
                fontsize=8, arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.6},
            )  # fmt: skip
        placed.append(text.get_window_extent(renderer))
