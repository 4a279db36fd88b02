"""Check an answer's claims against a reference text (ClaimVer-style), with grounded confidence (PACE-style).

Each claim (:mod:`tokentrust.stats.claims`) is compared with the reference's sentences: the ``top_k`` most
similar sentences by sentence-embedding cosine are retrieved (one batched encode of all sentences and
claims), then a *judge* decides whether the reference supports the claim, contradicts it or does not
mention it:

* ``nli:<path or hub id>`` — a 3-way NLI classifier, premise = a retrieved sentence, hypothesis = the claim;
  the most decisive sentence (highest entail or contradict probability) gives the verdict (the argmax of its
  three probabilities) and ``support`` = its entailment probability. Never chosen by ``auto`` (no NLI model
  ships with tokentrust).
* ``judge`` — the generating model, one batched greedy prompt per claim listing the retrieved sentences,
  replying supported / contradicted / not mentioned (the evidence shown is the most similar sentence;
  a 135M model's verdicts are little better than chance). ``support`` is 1 for supported, 0 for contradicted
  or not mentioned (the reference gives no support), 0.5 for a reply that says none of these
  (then the verdict is ``not_mentioned``).
* ``embedding`` — the best sentence's cosine alone (all-MiniLM-L6-v2, see :data:`SUPPORT_COSINE`).
  It **cannot tell a contradiction from support**: "The capital of Australia is Sydney" scores 0.84
  against "Canberra is the capital of Australia.", inside the range of true paraphrases (0.79–0.99), and
  a changed number scores up to 0.95. So it never says ``contradicted``; a claim
  is ``supported`` when a sentence restates it (cosine ≥ :data:`SUPPORT_COSINE`), else ``not_mentioned``.
  A contradiction that changes one name or number of a sentence can pass as supported; use ``judge`` or
  ``nli:`` to catch contradictions.
* ``auto`` — ``judge`` when a backend that can answer new prompts is given, else ``embedding``.

Grounded confidence (PACE-LM's two-score pattern, METHODS.md §10): ``grounded = support × model_confidence``
when the model's own claim probability is given. Reading both as probabilities of independent events
("the reference backs the claim" and "the model's claim is right"), the product is the probability that
both hold: a claim is trusted only when the evidence supports it *and* the model was sure of it. Without a
model confidence (or when it is NaN, e.g. a claim that matched no token) ``grounded = support``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
from collections import Counter, deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .config import Float, Record
from .errors import CapabilityError, UserInputError
from .stats.claims import Claim, extract_claims, make_extractor, sentence_spans
from .trace import Trace

Verdict = Literal["supported", "contradicted", "not_mentioned"]
VERDICTS: tuple[Verdict, ...] = ("supported", "contradicted", "not_mentioned")

#: Largest reference accepted (bytes of UTF-8): a reference is a document to check against, not a corpus.
MAX_REFERENCE_BYTES = 1_000_000

#: ``embedding`` route: a claim is supported when its best reference sentence has at least this cosine.
#: Measured with all-MiniLM-L6-v2 on 61 (reference sentence, claim, verdict) pairs of real facts (capitals,
#: rivers, populations, currencies, dates; claims written as paraphrases, as one-word/number changes, and as
#: other true facts on the same topic): supported 0.79–0.99 (median 0.95), contradicted 0.57–0.95 (median
#: 0.84), not mentioned 0.30–0.80 (all but one ≤ 0.63). A logistic fit of supported vs the rest has its
#: midpoint at 0.883; at 0.88, 77 % of supported pairs pass, no unmentioned one does, and 35 % of the
#: contradictions pass as supported (at 0.80: 95 %, 5 % and 60 %). The higher threshold errs toward "not
#: mentioned", the safe side for trust.
SUPPORT_COSINE = 0.88
#: Slope of the logistic that maps the cosine to ``support`` (fitted: 17.8): support = 0.5 at
#: :data:`SUPPORT_COSINE`, 0.19 at 0.80, 0.90 at 1.0 (even identical wording may hide a changed number).
SUPPORT_SLOPE = 18.0

JUDGE_FORMS = ("auto", "judge", "embedding", "nli:<path or hub id>")
JUDGE_MAX_NEW_TOKENS = 8
JUDGE_PROMPT = (
    "Reference:\n{evidence}\n\nClaim: {claim}\n\n"
    "Does the reference support the claim, contradict it, or not mention it? "
    "Reply with one of: supported, contradicted, not mentioned."
)
_REPLY = re.compile(
    r"(?P<denied>(?:\bnot|n't|\bnever)\s+(?:\w+\s+)?support|\bunsupported\b|\bno support)"
    r"|(?P<unclear>(?:\bnot|n't|\bnever)\s+(?:\w+\s+)?contradict)"
    r"|(?P<absent>(?:\bnot|n't|\bnever)\s+(?:\w+\s+)?(?:mention|state|say|address|discuss|cover|present)"
    r"|\bno mention"
    r"|\bunmentioned\b|\bneither\b|\bnot enough\b|\bcannot be determined\b|\bunknown\b)"
    r"|(?P<contradicted>\bcontradict|\brefute|\bfalse\b|\bincorrect\b|\bwrong\b)"
    r"|(?P<supported>\bsupport|\bconfirm|\btrue\b|\bcorrect\b|\byes\b)",
    re.IGNORECASE,
)


class ClaimCheck(Record):
    """One claim's verdict against the reference.

    ``evidence`` is the reference sentence the verdict rests on and ``evidence_span`` its ``(start, end)`` in
    the reference (``""`` and ``None`` when the reference does not mention the claim); ``support`` is the
    probability the reference supports the claim, ``model_confidence`` the model's own claim score (NaN
    when none was computed), ``grounded`` their combination (see the module docstring).
    """

    claim: Claim
    verdict: Verdict
    evidence: str = ""
    evidence_span: tuple[int, int] | None = None
    support: Float
    model_confidence: Float = math.nan
    grounded: Float


class Verification(Record):
    """The checks of one answer against one reference (identified by the SHA-256 of its text)."""

    reference_digest: str
    judge: str
    extractor: str = "sentences"
    estimator: str | None = None
    checks: list[ClaimCheck]

    @property
    def counts(self) -> dict[str, int]:
        """How many claims got each verdict (every verdict present, zero when unused)."""
        found = Counter(c.verdict for c in self.checks)
        return {v: found[v] for v in VERDICTS}


def reference_digest(text: str) -> str:
    """SHA-256 (hex) of the reference text as UTF-8."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def validate_reference(text: str, source: str = "the reference") -> str:
    """``text`` when it is usable as a reference, else a :class:`UserInputError` saying what is wrong."""
    if not isinstance(text, str):
        raise UserInputError(f"{source} must be text (str), got {type(text).__name__}")
    if "\x00" in text:
        raise UserInputError(f"{source} is binary (it contains NUL characters); give a UTF-8 text file")
    size = len(text.encode("utf-8", errors="replace"))
    if size > MAX_REFERENCE_BYTES:
        raise UserInputError(f"{source} is {size:,} bytes; the limit is {MAX_REFERENCE_BYTES:,} bytes "
                             "(give the passages that matter)")
    if not text.strip():
        raise UserInputError(f"{source} is empty; give a UTF-8 text file with the facts to check against")
    return text


def load_reference(path: str | Path) -> str:
    """The text of the reference file ``path`` (UTF-8, BOM dropped), validated by :func:`validate_reference`."""
    p = Path(path)
    where = f"reference file '{path}'"
    if not p.exists():
        raise UserInputError(f"{where} does not exist")
    if not p.is_file():
        raise UserInputError(f"{where} is not a regular file")
    size = p.stat().st_size
    if size > MAX_REFERENCE_BYTES:
        raise UserInputError(f"{where} is {size:,} bytes; the limit is {MAX_REFERENCE_BYTES:,} bytes "
                             "(give the passages that matter)")
    data = p.read_bytes()
    if b"\x00" in data:
        raise UserInputError(f"{where} is binary (it contains NUL bytes); give a UTF-8 text file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserInputError(f"{where} is not UTF-8 text (invalid byte at offset {exc.start}); "
                             "give a UTF-8 text file") from None
    return validate_reference(text, where)


def resolve_judge(judge: str, backend: Any = None) -> str:
    """The judge spec to use: ``auto`` → ``judge`` with a backend that answers new prompts, else ``embedding``."""
    from .capability import Capability

    spec = judge.strip() if isinstance(judge, str) else judge
    if spec == "auto":
        can_answer = backend is not None and Capability.GENERATION in set(getattr(backend, "capabilities", ()))
        return "judge" if can_answer else "embedding"
    if spec in ("judge", "embedding"):
        return spec
    if isinstance(spec, str) and spec.startswith("nli:"):
        if not spec[4:].strip():
            raise UserInputError("judge 'nli:' needs a model: nli:<local path or hub id>, "
                                 "e.g. nli:microsoft/deberta-large-mnli")
        return "nli:" + spec[4:].strip()
    raise UserInputError(f"unknown judge {judge!r}; valid: {', '.join(JUDGE_FORMS)}")


def grounded_confidence(support: float, model_confidence: float) -> float:
    """``support × model_confidence`` (both probabilities, read as independent); ``support`` when no confidence."""
    return support if math.isnan(model_confidence) else support * model_confidence


def support_from_cosine(cosine: float) -> float:
    """The ``embedding`` route's support: a logistic of the cosine, 0.5 at :data:`SUPPORT_COSINE`."""
    return 1.0 / (1.0 + math.exp(-SUPPORT_SLOPE * (cosine - SUPPORT_COSINE)))


def parse_verdict(reply: str) -> tuple[Verdict, float]:
    """A judge reply's verdict and support: the first verdict word it uses; unclear → (not_mentioned, 0.5)."""
    m = _REPLY.search(reply)
    kind = m.lastgroup if m else None
    if kind == "supported":
        return "supported", 1.0
    if kind == "contradicted":
        return "contradicted", 0.0
    if kind in ("absent", "denied"):
        return "not_mentioned", 0.0
    return "not_mentioned", 0.5


def _retrieve(claims: Sequence[str], sentences: Sequence[str], top_k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of each claim's ``top_k`` most similar sentences (best first) and their cosines."""
    from .stats.embedding import EmbeddingSimilarity

    unique = list(dict.fromkeys([*sentences, *claims]))
    emb = EmbeddingSimilarity().encoder().embed(unique)
    pos = {t: i for i, t in enumerate(unique)}
    cos = emb[[pos[c] for c in claims]] @ emb[[pos[s] for s in sentences]].T
    order = np.argsort(-cos, axis=1, kind="stable")[:, :top_k]
    return order, np.take_along_axis(cos, order, axis=1)


# A decision: (verdict, support, position among the claim's candidates of the evidence sentence, or None).
_Decision = tuple[Verdict, float, int | None]


def _by_embedding(cosines: np.ndarray) -> list[_Decision]:
    out: list[_Decision] = []
    for row in cosines:
        best = float(row[0])
        out.append(("supported", support_from_cosine(best), 0) if best >= SUPPORT_COSINE
                   else ("not_mentioned", support_from_cosine(best), None))
    return out


def _by_nli(model: str, claims: Sequence[str], candidates: Sequence[list[str]]) -> list[_Decision]:
    from .stats.nli import NliSimilarity

    pairs = list(dict.fromkeys((s, c) for c, sents in zip(claims, candidates, strict=True) for s in sents))
    probs = NliSimilarity(model=model).classifier().probs([p for p, _ in pairs], [h for _, h in pairs])
    by_pair = dict(zip(pairs, probs, strict=True))
    out: list[_Decision] = []
    for claim, sents in zip(claims, candidates, strict=True):
        rows = np.asarray([by_pair[(s, claim)] for s in sents])
        j = int(np.argmax(np.maximum(rows[:, 0], rows[:, 2])))
        label = int(np.argmax(rows[j]))
        verdict: Verdict = ("supported", "not_mentioned", "contradicted")[label]  # type: ignore[assignment]
        out.append((verdict, float(rows[j, 0]), None if verdict == "not_mentioned" else j))
    return out


def _by_judge(backend: Any, claims: Sequence[str], candidates: Sequence[list[str]]) -> list[_Decision]:
    from .capability import Capability

    if backend is None:
        raise CapabilityError("judge 'judge' asks the generating model; pass backend= or use judge='embedding'")
    if Capability.GENERATION not in set(backend.capabilities):
        raise CapabilityError(f"judge 'judge' asks the model new questions, which {backend.model_id} cannot "
                              "answer; use judge='embedding' or 'nli:<model>'")
    prompts = [JUDGE_PROMPT.format(evidence="\n".join(f"- {s}" for s in sents), claim=c)
               for c, sents in zip(claims, candidates, strict=True)]
    unique = list(dict.fromkeys(prompts))
    replies = backend.generate_many(unique, max_new_tokens=JUDGE_MAX_NEW_TOKENS, temperature=0.0)
    parsed = {p: parse_verdict(r.text) for p, r in zip(unique, replies, strict=True)}
    out: list[_Decision] = []
    for p in prompts:
        verdict, support = parsed[p]
        out.append((verdict, support, None if verdict == "not_mentioned" else 0))
    return out


def check_claims(
    claims: Sequence[Claim],
    reference: str,
    *,
    judge: str = "auto",
    backend: Any = None,
    top_k: int = 3,
    confidences: Sequence[float] | None = None,
) -> list[ClaimCheck]:
    """Verdict, evidence and grounded confidence of each claim against ``reference`` (see the module doc).

    ``confidences`` are the model's own probabilities for the claims (same order, NaN = none).
    """
    reference = validate_reference(reference)
    spec = resolve_judge(judge, backend)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise UserInputError(f"top_k (evidence sentences per claim) must be an integer ≥ 1, got {top_k!r}")
    conf = [math.nan] * len(claims) if confidences is None else [float(c) for c in confidences]
    if len(conf) != len(claims):
        raise UserInputError(f"got {len(conf)} confidences for {len(claims)} claims")
    bad = [c for c in conf if not (math.isnan(c) or 0.0 <= c <= 1.0)]
    if bad:
        raise UserInputError(f"model confidences must be probabilities in [0, 1] (or NaN), got {bad[:3]}")
    if not claims:
        return []
    spans = sentence_spans(reference)
    sentences = [reference[a:b] for a, b in spans]
    texts = [c.text for c in claims]
    order, cosines = _retrieve(texts, sentences, min(top_k, len(sentences)))
    candidates = [[sentences[i] for i in row] for row in order]
    if spec == "embedding":
        decisions = _by_embedding(cosines)
    elif spec == "judge":
        decisions = _by_judge(backend, texts, candidates)
    else:
        decisions = _by_nli(spec.removeprefix("nli:"), texts, candidates)
    checks = []
    for claim, row, (verdict, support, at), mc in zip(claims, order, decisions, conf, strict=True):
        span = None if at is None else spans[int(row[at])]
        checks.append(ClaimCheck(
            claim=claim, verdict=verdict, evidence=reference[slice(*span)] if span else "", evidence_span=span,
            support=support, model_confidence=mc, grounded=grounded_confidence(support, mc),
        ))
    return checks


def claim_estimator(spec: Any, extractor: str = "sentences") -> Any:
    """The claim-level estimator ``spec`` (a spec string or an instance), validated before any work; one
    whose ``claims`` parameter (its extractor) is left at the default cuts claims as ``extractor`` does, so
    its spans are the verified claims' tokens."""
    from .estimators.base import build_estimator
    from .scores import Level

    est = build_estimator(spec)
    if est.level is not Level.CLAIM:
        raise UserInputError(f"estimator {est.id!r} is {est.level.value}-level; verify needs a claim-level "
                             "estimator (one probability per claim), e.g. claim_probability")
    field = next((f for f in dataclasses.fields(est) if f.name == "claims"), None)
    if field is not None and est.claims == field.default and field.default != extractor:
        est = dataclasses.replace(est, claims=extractor)
    return est


def _model_confidences(trace: Trace, claims: Sequence[Claim], est: Any, backend: Any) -> list[float]:
    """Each claim's score by ``est``: the value whose span equals the claim's tokens (NaN when none does)."""
    from .annotated import annotate

    scores = annotate(trace, [est], backend=backend, with_token_forms=False)[est.id]
    if not scores.is_probability:
        raise UserInputError(f"estimator {est.id!r} does not give probabilities; the grounded confidence "
                             "multiplies probabilities (use e.g. claim_probability)")
    by_span: dict[tuple[int, ...], deque[float]] = {}
    for span, value in zip(scores.spans, scores.values, strict=True):
        by_span.setdefault(tuple(span), deque()).append(value)
    out = []
    for claim in claims:
        queue = by_span.get(tuple(claim.token_indices))
        out.append(queue.popleft() if queue and claim.token_indices else math.nan)
    return out


def verify(
    trace: Trace,
    reference: str,
    *,
    judge: str = "auto",
    backend: Any = None,
    extractor: str = "sentences",
    estimator: str | Any | None = None,
    top_k: int = 3,
) -> Verification:
    """Extract ``trace``'s claims and check each against ``reference``.

    ``estimator`` (a claim-level spec such as ``claim_probability``, or an instance) fills each check's ``model_confidence``
    and so its grounded confidence. ``backend`` answers the ``judge`` route, model-based extraction and
    estimators that call the model.
    """
    reference = validate_reference(reference)
    spec = resolve_judge(judge, backend)
    ext = make_extractor(extractor)
    est = claim_estimator(estimator, ext.spec) if estimator is not None else None
    claims = extract_claims(trace, ext.spec, backend=backend)
    if not claims:
        preview = trace.text if len(trace.text) <= 80 else trace.text[:77] + "..."
        raise UserInputError(f"the answer has no claims to verify: {preview!r}")
    confidences = _model_confidences(trace, claims, est, backend) if est is not None else None
    checks = check_claims(claims, reference, judge=spec, backend=backend, top_k=top_k, confidences=confidences)
    return Verification(reference_digest=reference_digest(reference), judge=spec, extractor=ext.spec,
                        estimator=est.id if est is not None else None, checks=checks)
