"""One colour scale for every view: probability 0 → red, 0.5 → amber, 1 → green (fixed on [0, 1])."""

from __future__ import annotations

import math
from itertools import pairwise

_STOPS = ((0.0, (215, 48, 39)), (0.5, (254, 224, 139)), (1.0, (26, 152, 80)))  # ColorBrewer RdYlGn ends


def confidence_rgb(p: float) -> tuple[int, int, int]:
    """RGB for a probability; NaN (unknown) is grey."""
    if math.isnan(p):
        return (190, 190, 190)
    p = min(1.0, max(0.0, p))
    for (x0, c0), (x1, c1) in pairwise(_STOPS):
        if p <= x1:
            f = (p - x0) / (x1 - x0)
            return tuple(round(a + f * (b - a)) for a, b in zip(c0, c1))  # type: ignore[return-value]
    return _STOPS[-1][1]


def confidence_color(p: float) -> str:
    """``#rrggbb`` for a probability."""
    return "#{:02x}{:02x}{:02x}".format(*confidence_rgb(p))


def text_color(p: float) -> str:
    """Black or white text, whichever reads better on :func:`confidence_color`."""
    r, g, b = confidence_rgb(p)
    return "#000000" if 0.299 * r + 0.587 * g + 0.114 * b > 140 else "#ffffff"
