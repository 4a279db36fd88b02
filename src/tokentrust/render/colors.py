"""One colour scale for every view, fixed on [0, 1] (0 = least confident), in two palettes:

* ``blue-orange`` (the default): orange → light grey → blue (ColorBrewer PuOr's orange end, RdBu's blue end).
  Blue and orange differ along the blue–yellow axis that red–green colour blindness keeps, and in lightness,
  so the order reads under deuteranopia, protanopia and in greyscale.
* ``red-green``: ColorBrewer RdYlGn's ends (red → amber → green), for readers used to it; under
  deuteranopia its ends become one olive colour.

Terminals with 16 or 256 colours get discrete levels of the same palette (:func:`level`), finer near 1
where token probabilities crowd, each level a distinct colour, so the order of confidence survives the
downgrade that would otherwise map neighbouring shades to one colour. NaN (no value) is grey everywhere.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass
from itertools import pairwise

from ..errors import UnknownNameError

RGB = tuple[int, int, int]
NAN_RGB: RGB = (190, 190, 190)

#: Upper edges of the discrete levels for 16-colour terminals (6 levels) and 256-colour terminals (12 levels).
EDGES_16 = (0.3, 0.5, 0.7, 0.85, 0.93)
EDGES_256 = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)


@dataclass(frozen=True)
class Palette:
    """A colour scale: RGB stops on [0, 1], and the terminal colours of its discrete levels, lowest first
    (``ansi16``: rich's standard colour names, one per level of :data:`EDGES_16`; ``ansi256``: xterm
    indices, one per level of :data:`EDGES_256`)."""

    name: str
    stops: tuple[tuple[float, RGB], ...]
    ansi16: tuple[str, ...]
    ansi256: tuple[int, ...]
    low: str  # the colour's name at 0 and at 1, for legends
    high: str


PALETTES: dict[str, Palette] = {
    "blue-orange": Palette(
        "blue-orange", ((0.0, (179, 88, 6)), (0.5, (247, 247, 247)), (1.0, (33, 102, 172))),
        ansi16=("red", "yellow", "bright_white", "bright_cyan", "cyan", "blue"),
        ansi256=(130, 173, 180, 223, 187, 254, 153, 110, 74, 67, 32, 25),
        low="orange", high="blue"),
    "red-green": Palette(
        "red-green", ((0.0, (215, 48, 39)), (0.5, (254, 224, 139)), (1.0, (26, 152, 80))),
        ansi16=("red", "bright_red", "yellow", "bright_yellow", "bright_green", "green"),
        ansi256=(160, 166, 173, 215, 221, 229, 193, 150, 114, 71, 29, 22),
        low="red", high="green"),
}
DEFAULT_PALETTE = "blue-orange"
_chosen = {"palette": DEFAULT_PALETTE}


def palette(name: str | Palette | None = None) -> Palette:
    """The palette called ``name`` (``None``: the one :func:`set_palette` chose, else :data:`DEFAULT_PALETTE`);
    an unknown name is a clear error."""
    if isinstance(name, Palette):
        return name
    if name is None:
        return PALETTES[_chosen["palette"]]
    try:
        return PALETTES[name]
    except KeyError:
        raise UnknownNameError(f"unknown palette {name!r}; choose one of: {', '.join(PALETTES)}") from None


def set_palette(name: str) -> None:
    """Use palette ``name`` wherever none is given: notebook output, ``print(result)``, reports."""
    _chosen["palette"] = palette(name).name


def confidence_rgb(p: float, pal: str | Palette | None = None) -> RGB:
    """RGB for a value in [0, 1] (clipped); NaN (unknown) is grey."""
    stops = palette(pal).stops
    if math.isnan(p):
        return NAN_RGB
    p = min(1.0, max(0.0, p))
    for (x0, c0), (x1, c1) in pairwise(stops):
        if p <= x1:
            f = (p - x0) / (x1 - x0)
            return tuple(round(a + f * (b - a)) for a, b in zip(c0, c1))  # type: ignore[return-value]
    return stops[-1][1]


def hex_of(rgb: RGB) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def confidence_color(p: float, pal: str | Palette | None = None) -> str:
    """``#rrggbb`` for a value in [0, 1]."""
    return hex_of(confidence_rgb(p, pal))


def _luminance(rgb: RGB) -> float:
    """WCAG relative luminance of an sRGB colour."""
    def lin(v: int) -> float:
        c = v / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = map(lin, rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def readable_on(rgb: RGB) -> str:
    """``#000000`` or ``#ffffff``: whichever has the higher WCAG contrast on ``rgb``."""
    y = _luminance(rgb)
    return "#000000" if (y + 0.05) / 0.05 >= 1.05 / (y + 0.05) else "#ffffff"


def text_color(p: float, pal: str | Palette | None = None) -> str:
    """Black or white text, whichever reads better on :func:`confidence_color`."""
    return readable_on(confidence_rgb(p, pal))


def level(p: float, edges: tuple[float, ...]) -> int | None:
    """The discrete level of ``p`` (0 = lowest) for ``edges`` (:data:`EDGES_16`, :data:`EDGES_256`); NaN → None."""
    if math.isnan(p):
        return None
    return bisect_right(edges, min(1.0, max(0.0, p)))


def level_ranges(edges: tuple[float, ...]) -> list[tuple[float, float]]:
    """``[(low, high), …]`` of each level, for legends."""
    bounds = (0.0, *edges, 1.0)
    return list(pairwise(bounds))
