"""Terminal view (rich): coloured answer with its claims bracketed, a legend naming the colouring score and its
scale, least confident tokens with alternatives, the claims table (scores and the alternatives that would change
each claim) and sequence scores.

The colours follow the console: 24-bit consoles get the continuous scale, 256- and 16-colour consoles the
palette's discrete levels (:mod:`tokentrust.render.colors`), so neighbouring confidences never collapse into
one colour when rich downgrades them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

from rich._palettes import EIGHT_BIT_PALETTE, STANDARD_PALETTE
from rich.color import ANSI_COLOR_NAMES
from rich.console import Console, ConsoleOptions, Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..scores import Level, Scores
from ._view import (
    ClaimView,
    ColourKey,
    ScoredAnswer,
    claim_colour_score,
    claim_key,
    claim_scores,
    claim_views,
    least_confident,
    pieces,
    short_name,
    token_key,
    token_views,
    value_text,
)
from .colors import EDGES_16, EDGES_256, Palette, confidence_rgb, hex_of, level, level_ranges
from .colors import palette as _palette
from .colors import readable_on as _readable_on

OPEN, CLOSE = "⟦", "⟧"
_SUB = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
SYSTEMS = ("truecolor", "256", "standard")


def _fmt(x: float) -> str:
    return "missing" if math.isnan(x) else f"{x:.4g}"  # NaN: the method gave no value (e.g. no stated confidence)


class Colours:
    """Styles of one palette for one colour system (``truecolor``, ``256`` or ``standard``)."""

    def __init__(self, pal: str | Palette | None = None, system: str = "truecolor") -> None:
        if system not in SYSTEMS:
            raise ValueError(f"colour system {system!r}; expected one of {SYSTEMS}")
        self.palette, self.system = _palette(pal), system

    def colour(self, value: float) -> tuple[str, str]:
        """(background, foreground) colour names rich understands, for a value in [0, 1] (NaN: grey)."""
        if self.system == "truecolor":
            rgb = confidence_rgb(value, self.palette)
            return hex_of(rgb), _readable_on(rgb)
        if self.system == "256":
            k = level(value, EDGES_256)
            index = 250 if k is None else self.palette.ansi256[k]
            return f"color({index})", _readable_on(tuple(EIGHT_BIT_PALETTE[index]))  # type: ignore[arg-type]
        k = level(value, EDGES_16)
        name = "bright_black" if k is None else self.palette.ansi16[k]
        return name, _readable_on(tuple(STANDARD_PALETTE[ANSI_COLOR_NAMES[name]]))  # type: ignore[arg-type]

    def style(self, value: float, extra: str = "") -> str:
        """Text on the value's colour."""
        bg, fg = self.colour(value)
        return f"{extra} {fg} on {bg}".strip()

    def swatches(self) -> Text:
        """The scale as a strip of swatches labelled with their values (the levels in 256 and 16 colours)."""
        out = Text()
        if self.system == "truecolor":
            points = [0.0, 0.25, 0.5, 0.75, 1.0]
            for p in points:
                out.append(f" {p:g} ", style=self.style(p))
        else:
            edges = EDGES_256 if self.system == "256" else EDGES_16
            for lo, hi in level_ranges(edges):
                out.append(f" {lo:g} " if lo else " 0 ", style=self.style((lo + hi) / 2))
            out.append(" 1", style="dim")
        out.append(" ")
        out.append(" n/a ", style=self.style(math.nan))
        return out


def _legend(key: ColourKey, colours: Colours, what: str = "") -> Text:
    """The legend line: swatches, then the colouring score and whether its scale is fixed or relative."""
    line = colours.swatches()
    line.append(f"  {what}{key.describe(colours.palette.low, colours.palette.high)}", style="dim")
    return line


def claim_label(c: ClaimView) -> str:
    """The mark closing claim ``c`` in the answer: ``⟧`` and its number as a subscript (``⟧₁₂``)."""
    return CLOSE + str(c.number).translate(_SUB)


def _answer(result: ScoredAnswer, colour_by: Scores | None, claims: list[ClaimView], colours: Colours) -> Text:
    """The answer: claims (matched ones) bracketed, underlined and coloured by claim confidence; other
    characters coloured by their token."""
    values = {v.index: v.color_value for v in token_views(result.trace, colour_by)}
    out = Text()
    for p in pieces(result.trace, claims):
        if not p.text:
            continue
        for k in p.claims:
            if claims[k].char_span[0] == p.start:
                out.append(OPEN, style=colours.style(claims[k].color_value, "bold"))
        if p.claims:
            out.append(p.text, style=colours.style(claims[p.claims[0]].color_value, "underline"))
        else:
            out.append(p.text, style=colours.style(values[p.token]) if p.token is not None else "")
        for k in reversed(p.claims):
            if claims[k].char_span[1] == p.end:
                out.append(claim_label(claims[k]), style=colours.style(claims[k].color_value, "bold"))
    return out


def _claims_table(result: ScoredAnswer, colour_by: Scores | None, claims: list[ClaimView],
                  n_changers: int, colours: Colours) -> list[RenderableType]:
    colour = claim_colour_score(result, colour_by)
    ids = list(claims[0].scores)
    table = Table(box=None, pad_edge=False, show_header=True, header_style="bold",
                  title=f"claims, coloured by {colour.estimator}" if colour else "claims", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("claim", ratio=3)
    for i in ids:
        table.add_column(short_name(i), justify="right")
    has_changers = any(c.changers for c in claims)
    if has_changers:
        table.add_column("would change it", ratio=2)
    for c in claims:
        row: list[RenderableType] = [Text(str(c.number), style=colours.style(c.color_value, "bold")), c.text,
                                     *(_fmt(c.scores[i]) for i in ids)]
        if has_changers:
            row.append(", ".join(str(ch) for ch in c.changers[:n_changers]) or "–")
        table.add_row(*row)
    unmatched = [f"#{c.number}" for c in claims if not c.matched]
    note = Text("claims that matched no answer token: " + (", ".join(unmatched) or "none"), style="dim")
    return [table, note]


def _decision(result: ScoredAnswer) -> list[Text]:
    """The line under the answer when a policy decided (action, probability, phrase; rationale, guarantee)."""
    d = getattr(result, "decision", None)
    if d is None:
        return []
    line = Text("→ ", style="bold")
    line.append(d.action + (f" ({d.band})" if d.band not in (None, d.action) else ""), style="bold")
    from ..calibration import CALIBRATED_ID

    what = "probability that the answer is correct" if d.score == CALIBRATED_ID else "not calibrated"
    line.append(f" · {d.score} = {_fmt(d.probability)} ({what}) · ", style="dim")
    line.append(d.phrase)
    extra = [Text(f"  {d.rationale}", style="italic")] if d.rationale else []
    removed = [c for c in d.claims if not c.kept]
    if removed:
        extra.append(Text(f"  removed {len(removed)} of {len(d.claims)} claims: "
                          + " | ".join(f"{c.text} ({_fmt(c.value)})" for c in removed), style="dim"))
    return [line, *extra, *([Text(f"  guarantee: {d.guaranteed}", style="dim")] if d.guaranteed else [])]


def _parts(result: ScoredAnswer, colour_by: Scores | None, n_alternatives: int,
           colours: Colours) -> list[RenderableType]:
    views = token_views(result.trace, colour_by)
    claims = claim_views(result, colour_by)
    key = token_key(result.trace, colour_by)
    notes = Text("least confident: ", style="dim")
    for i, v in enumerate(least_confident(views)):
        if i:
            notes.append("  ·  ", style="dim")
        notes.append(repr(v.text.strip()), style=colours.style(v.color_value, "bold"))
        notes.append(f" {v.prob:.2f}", style="dim")
        if key.score != "token_probability":
            notes.append(f" ({value_text(key.score, v.value, v.raw)})", style="dim")
        alts = [a for a in v.alternatives if a[0] != v.text][:n_alternatives]
        if alts:
            notes.append(" (alt: " + ", ".join(f"{t.strip()!r} {p:.2f}" for t, p in alts) + ")", style="dim")
    table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
    table.add_column("score", overflow="fold")
    table.add_column("value (↑ = trust)", justify="right")  # every score the same way round
    table.add_column("raw (own units)", justify="right")  # the method's quantity; value = −raw where it grows with doubt
    for s in (s for s in result.scores if s.level is Level.SEQUENCE):
        table.add_row(s.estimator, _fmt(s.value), _fmt(s.raw[0]))
    ckey = claim_key(result, colour_by)
    legend = [_legend(key, colours)]
    if claims and ckey is not None:
        legend.append(_legend(ckey, colours, "claims: "))
    parts: list[RenderableType] = [_answer(result, colour_by, claims, colours), *legend, *_decision(result),
                                   Text(""), notes, Text("")]
    if claims:
        parts += [*_claims_table(result, colour_by, claims, n_alternatives, colours), Text("")]
    elif claim_scores(result):
        parts += [Text("no claims in this answer", style="dim"), Text("")]
    return [*parts, table]


class TrustView(Group):
    """The rendered answer; its ``renderables`` use 24-bit colour, and printing it on a 256- or 16-colour
    console renders it again with that console's discrete levels."""

    def __init__(self, build: Callable[[str], list[RenderableType]]) -> None:
        self._build = build
        super().__init__(*build("truecolor"))

    def for_system(self, system: str) -> Group:
        """The view for a colour system (``truecolor``, ``256`` or ``standard``)."""
        return Group(*self._build(system))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[RenderableType]:
        system = console.color_system
        if system in (None, "truecolor"):
            yield from self.renderables
        else:
            yield from self._build("256" if system == "256" else "standard")


def render_rich(result: ScoredAnswer, *, colour_by: Scores | None = None, n_alternatives: int = 3,
                palette: str | Palette | None = None) -> TrustView:
    """A rich renderable for an :class:`~tokentrust.annotated.Annotated` result. ``colour_by`` colours the
    tokens when token-level, the claims when claim-level (default: the first claim-level score);
    ``palette``: ``blue-orange`` (default) or ``red-green`` (:data:`~tokentrust.render.colors.PALETTES`)."""
    pal = _palette(palette)
    return TrustView(lambda system: _parts(result, colour_by, n_alternatives, Colours(pal, system)))

