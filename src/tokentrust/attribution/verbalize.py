"""One sentence that says which parts of the prompt an answer span relied on (a template; no model call).

    'Canberra' relied mostly on 'Australia' (0.61) and 'capital' (0.22); 'Sydney' lowered it (-0.12).
    'Yes' relied mostly on the field price (0.58) and the user text (0.30); the system prompt mattered little.

The numbers are **shares of the positive mass**: a source's score divided by the sum of the positive scores of
every source for that target, so the shares of the sources that raised the target's log-probability add up
to 1 whatever the method's units (log-prob drops, gradient × input, Shapley values). A source that lowered it
gets a negative share on the same scale. Whitespace-only sources are never named; components are named by
what they are (the system prompt, the chat template, the user text, a template field by its name).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .record import Attribution, Span

#: How a component's name reads in a sentence (others, such as template fields, read as "the field NAME").
COMPONENT_LABELS = {"system": "the system prompt", "template": "the chat template", "user": "the user text",
                    "assistant": "the earlier answer"}
ROLES = ("system", "user", "assistant")
LITTLE = 0.05  # a component with a share below this "mattered little"; a source below minus this "lowered it"
WHITESPACE = 0.2  # whitespace-only sources are never named, but a share this large of theirs is reported


def target_index(attribution: Attribution, target: int | str = -1) -> int:
    """The row of ``target``: an index (negative counts from the end) or the text of a target span."""
    n = len(attribution.targets)
    if isinstance(target, int) and -n <= target < 0:
        return target + n
    if isinstance(target, str):
        found = [i for i, t in enumerate(attribution.targets) if t.text.strip() == target.strip()]
        if found:
            return found[0]
    attribution.row(target)  # raises the record's one-line error (out of range, no such target)
    return int(target)


def shares(row: Sequence[float]) -> list[float]:
    """Each score divided by the positive mass of the row (NaN stays NaN). With no positive mass, each score
    divided by the largest absolute score (all shares ≤ 0); an all-zero row gives zeros."""
    finite = [v for v in row if not math.isnan(v)]
    mass = math.fsum(v for v in finite if v > 0)
    scale = mass if mass > 0 else max((abs(v) for v in finite), default=0.0)
    return [v if math.isnan(v) else (v / scale if scale > 0 else 0.0) for v in row]


def source_label(span: Span) -> str:
    """A source as a sentence names it: a component by what it is, anything else quoted."""
    if span.name:
        role, _, n = span.name.rpartition("_")
        if role in ROLES and n.isdigit():  # a later message: user_2, assistant_2 …
            return f"the {_ordinal(int(n))} {role} message"
        return COMPONENT_LABELS.get(span.name, f"the field {span.name}")
    return repr(span.text.strip())


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def source_labels(attribution: Attribution) -> list[str]:
    """:func:`source_label` of every source; a text that occurs more than once in the prompt is told apart by
    its occurrence (``the 2nd 'assistant'``)."""
    labels = [source_label(s) for s in attribution.sources]
    counts = {x: labels.count(x) for x in set(labels)}
    seen: dict[str, int] = {}
    out = []
    for x in labels:
        seen[x] = seen.get(x, 0) + 1
        out.append(f"the {_ordinal(seen[x])} {x}" if counts[x] > 1 else x)
    return out


def _listing(parts: Sequence[str]) -> str:
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"


def explain_sentence(attribution: Attribution, target: int | str = -1, k: int = 2) -> str:
    """What target ``target`` (default: the last) relied on: its ``k`` largest sources with their shares of
    the positive mass (see the module docstring; sources under 0.01 are not listed), the share whitespace
    carried when large, then the source that lowered it most or, for components, those that mattered
    little. Says so plainly when no part of the prompt raised its probability."""
    i = target_index(attribution, target)
    what = repr(attribution.targets[i].text.strip() or attribution.targets[i].text)
    row = list(attribution.scores[i])
    share, labels = shares(row), source_labels(attribution)
    finite = [j for j in range(len(row)) if not math.isnan(row[j])]
    named = [j for j in finite if attribution.sources[j].text.strip() or attribution.sources[j].name]
    if not any(row[j] > 0 for j in finite):
        lowest = min(named, key=lambda j: row[j], default=None)
        if lowest is None or row[lowest] >= 0:
            return f"No part of the prompt raised the probability of {what}: every score is 0."
        return (f"No part of the prompt raised the probability of {what}; "
                f"{labels[lowest]} lowered it most ({row[lowest]:.3g}).")
    ranked = sorted((j for j in named if row[j] > 0), key=lambda j: -row[j])
    top = [j for n, j in enumerate(ranked[: max(1, k)]) if n == 0 or share[j] >= 0.01]
    if top:
        text = f"{what} relied mostly on " + _listing([f"{labels[j]} ({share[j]:.2f})" for j in top])
    else:
        text = f"{what} relied on no word of the prompt"
    blank = math.fsum(share[j] for j in finite if j not in named and share[j] > 0)
    if blank >= WHITESPACE:
        text += f"; line breaks and spaces carried {blank:.2f}"
    rest = [j for j in named if j not in top]
    if attribution.granularity == "component":
        little = [labels[j] for j in rest if abs(share[j]) < LITTLE]
        if little:
            text += f"; {_listing(little)} mattered little"
    against = min(rest, key=lambda j: share[j], default=None)
    if against is not None and share[against] <= -LITTLE:
        text += f"; {labels[against]} lowered it ({share[against]:.2f})"
    return text + "."
