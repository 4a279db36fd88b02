"""Show scored traces: in the terminal (rich) and as HTML (notebooks, web pages, reports)."""

from .colors import confidence_color
from .html import render_html, render_trace_html
from .terminal import render_rich

__all__ = ["confidence_color", "render_html", "render_rich", "render_trace_html"]
