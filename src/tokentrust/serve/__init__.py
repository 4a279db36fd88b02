"""Web view and OpenAI-compatible confidence proxy over any backend: ``create_app(tokentrust.load(...))``.

Needs the ``server`` extra (FastAPI, uvicorn). Run it with ``tokentrust serve``.
"""

from __future__ import annotations

from ..decide.policy import Decision, Policy, hedged
from .app import create_app
from .state import Limits

__all__ = ["Decision", "Limits", "Policy", "create_app", "hedged"]
