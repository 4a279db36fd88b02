"""Show scored traces: in the terminal (rich) and as HTML (notebooks, web pages, reports), in a colour-blind-safe
palette by default (:mod:`tokentrust.render.colors`; ``palette="red-green"`` or :func:`set_palette` for the other)."""

from .colors import PALETTES, confidence_color, set_palette
from .html import render_html, render_trace_html
from .terminal import render_rich

__all__ = ["PALETTES", "confidence_color", "render_html", "render_rich", "render_trace_html", "set_palette"]
