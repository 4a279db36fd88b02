"""Web view and OpenAI-compatible confidence proxy: ``create_app(backend)`` or ``create_app(upstream=URL, ...)``.

Needs the ``server`` extra (FastAPI, uvicorn). Run it with ``tokentrust serve``.
"""

from __future__ import annotations

from .app import Limits, create_app
from .policy import Decision, Policy, hedged

__all__ = ["Decision", "Limits", "Policy", "create_app", "hedged"]
