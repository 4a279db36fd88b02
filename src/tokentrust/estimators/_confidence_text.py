"""Reading stated confidences and answers out of model replies (verbalised confidence, METHODS.md §3.5).

:func:`parse_confidence` returns a probability in [0, 1] or NaN when the reply states none — a missing
confidence is recorded as missing, never as 0. Accepted forms (the last one in the reply wins):

* after a confidence keyword: ``Confidence: 85%``, ``confidence level: 0.85``, ``Confidence (0-100): 85``,
  ``Overall confidence: 90 / 100``, ``confidence of 7 out of 10``, ranges ``80-90%`` (midpoint), and words
  (``very high`` 0.95, ``high`` 0.8, ``medium``/``moderate`` 0.5, ``low`` 0.2, ``very low`` 0.05);
* ``I am 90% sure`` / ``95 percent confident`` / ``about 70% certain``.

Numbers without ``%`` are read as fractions when ≤ 1 and as percentages when in (1, 100]; anything above
100 % is rejected (NaN).
"""

from __future__ import annotations

import re
import string

_NUM = r"(\d+(?:\.\d+)?|\.\d+)"
_WORDS = {"very high": 0.95, "very low": 0.05, "high": 0.8, "medium": 0.5, "moderate": 0.5, "low": 0.2,
          "certain": 0.95, "uncertain": 0.3}
_KEY = r"(?:confidence|certainty|probability(?: of being correct)?|prob)"
_KEYED = re.compile(
    _KEY + r"(?:\s+(?:level|score))?\s*(?:\((?:0\s*[-–]\s*100%?|0\s*[-–]\s*1|%)\))?\s*(?:[:=]|is|of|at)?\s*"
    r"(?:about|around|approximately|roughly|~)?\s*\**\s*"
    + _NUM + r"(?:\s*[-–]\s*" + _NUM + r")?\s*(%|percent|/\s*100|out of 100|/\s*10\b|out of 10\b)?",
    re.IGNORECASE,
)
_KEYED_WORD = re.compile(
    _KEY + r"(?:\s+level)?\s*(?:[:=]|is)?\s*\**\s*(very high|very low|high|medium|moderate|low)\b", re.IGNORECASE
)
_SURE = re.compile(
    r"\b(?:about|around|approximately|roughly)?\s*" + _NUM
    + r"\s*(%|percent)\s+(?:sure|confident|certain|likely|chance|probability)",
    re.IGNORECASE,
)
_STEP = re.compile(r"step\s*\d+\s*[:.].*?confidence\s*[:=]?\s*" + _NUM + r"\s*(%)?", re.IGNORECASE)


def _to_prob(low: str, high: str | None, unit: str | None) -> float:
    x = float(low)
    if high is not None:
        x = (x + float(high)) / 2
    unit = (unit or "").replace(" ", "").lower()
    if unit in ("%", "percent", "/100", "outof100"):
        x /= 100
    elif unit in ("/10", "outof10"):
        x /= 10
    elif x > 1:
        x /= 100
    return x if 0.0 <= x <= 1.0 else float("nan")


def parse_confidence(text: str) -> float:
    """The stated confidence in ``text`` as a probability, or NaN if it states none (see module doc)."""
    found: list[tuple[int, float]] = []
    for m in _KEYED.finditer(text):
        found.append((m.start(), _to_prob(m.group(1), m.group(2), m.group(3))))
    for m in _KEYED_WORD.finditer(text):
        found.append((m.start(), _WORDS[m.group(1).lower()]))
    for m in _SURE.finditer(text):
        found.append((m.start(), _to_prob(m.group(1), None, m.group(2))))
    if not found:
        return float("nan")
    return max(found)[1]


def parse_step_confidences(text: str) -> list[float]:
    """Per-step confidences of a multi-step reply (``Step k: … Confidence: x%``), in order."""
    return [_to_prob(m.group(1), None, m.group(2)) for m in _STEP.finditer(text)]


_ANSWER = re.compile(r"(?:final\s+)?answer\s*(?:is)?\s*[:=]\s*(.+)", re.IGNORECASE)


def parse_answer(text: str) -> str:
    """The answer in a reply: the text after the last ``Answer:``, else the first non-empty line."""
    matches = _ANSWER.findall(text)
    if matches:
        ans = matches[-1]
    else:
        lines = [ln for ln in text.strip().splitlines() if ln.strip()]
        ans = lines[0] if lines else ""
    ans = re.split(r"(?i)\b(?:overall\s+)?confidence\b|\bprobability\b", ans)[0]
    return ans.strip().strip("*").strip(" ,;.")


def parse_top_k(text: str) -> list[tuple[str, float]]:
    """``G1: … P1: …`` pairs of a top-k reply, in rank order (probabilities NaN where unreadable)."""
    guesses = dict(re.findall(r"(?im)^\W*G(\d+)\s*[:.)]\s*(.+?)\s*$", text))
    probs = dict(re.findall(r"(?im)P(\d+)\s*[:.)]\s*([^\n]+)", text))
    out = []
    for k in sorted(guesses, key=int):
        g = re.split(r"(?i)\bP\d+\s*[:.)]", guesses[k])[0].strip(" ,;.*")
        p = probs.get(k)
        m = re.search(_NUM + r"\s*(%)?", p) if p else None
        out.append((g, _to_prob(m.group(1), None, m.group(2)) if m else float("nan")))
    return out


_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalise_answer(text: str) -> str:
    """Lower-case, no punctuation or articles, single spaces: the form answers are compared in."""
    text = text.lower().translate(str.maketrans("", "", string.punctuation))
    return " ".join(_ARTICLES.sub(" ", text).split())
