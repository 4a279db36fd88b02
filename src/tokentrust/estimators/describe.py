"""How an estimator is described to users: what computing it costs, and its docstring as plain text.

One place for ``tokentrust estimators`` and the web page's score picker.
"""

from __future__ import annotations

import re
from typing import Any, Literal

__all__ = ["CostGroup", "cost_group", "cost_of", "plain_text"]

CostGroup = Literal["trace", "pass", "sampling"]

_ROLE = re.compile(r":[a-z]+:`~?(?:[\w.]+\.)?([^`]+)`")  # :class:`~tokentrust.x.Name` → Name
_LITERAL = re.compile(r"``([^`]+)``|`([^`]+)`")
_SECTION = re.compile(r"\s*\((?:METHODS\.md\s*|DESIGN\.md\s*)?§[\d.]+\)|(?:METHODS\.md|DESIGN\.md)\s*§[\d.]+(?:'s)?\s*")


def plain_text(doc: str) -> str:
    """The first paragraph of a docstring as one plain line: reStructuredText roles and literals unwrapped,
    references to numbered sections of the design documents dropped."""
    paragraph = doc.strip().split("\n\n")[0]
    text = " ".join(paragraph.split())
    text = _ROLE.sub(r"\1", text)
    text = _LITERAL.sub(lambda m: m.group(1) or m.group(2), text)
    text = _SECTION.sub("", text)
    return re.sub(r"\s+([.,;:)])", r"\1", re.sub(r"\(\s*", "(", text)).strip()


def cost_of(est: Any) -> str:
    """What computing ``est`` costs beyond the answer itself: ``trace only`` (read from the answer's own
    token log-probs), ``extra pass`` (one more forward pass of the model), ``sampling (n answers)``,
    ``extra generations``, and ``+ another model`` when it loads an NLI or embedding model."""
    from ..capability import Capability

    needs = set(est.requires)
    n = getattr(est, "n_samples", None)
    parts = []
    if Capability.SAMPLING in needs:
        parts.append(f"sampling ({n} answers)" if n else "sampling")
    elif Capability.GENERATION in needs:
        parts.append(f"extra generations ({n})" if n else "extra generations")
    if Capability.FORCED_SCORING in needs:
        parts.append("extra pass")
    if est.uses_models:
        parts.append("another model")
    return " + ".join(parts) or "trace only"


def cost_group(est: Any) -> CostGroup:
    """``trace`` (read from the answer itself), ``pass`` (extra forward passes or generations), ``sampling``."""
    from ..capability import Capability

    if Capability.SAMPLING in est.requires:
        return "sampling"
    if Capability.GENERATION in est.requires or Capability.FORCED_SCORING in est.requires:
        return "pass"
    return "trace"
