"""Claim-level benchmarks (METHODS.md §11.9): label each answer's claims, then pool claims over items.

An item's claims are labelled by the dataset's facts when it has them (``metadata["facts"]``, e.g.
``country_facts``, by :func:`tokentrust.bench.claim_labels.label_claim`), else by checking them against the
item's ``reference`` text (:func:`tokentrust.verify.check_claims`: supported = true, contradicted = false,
not mentioned = unverifiable). Unverifiable claims are kept in ``items.jsonl`` but left out of the metrics;
claims that matched no answer token have NaN scores and are counted as dropped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import UserInputError
from ..scores import Scores
from ..stats.claims import Claim
from .datasets import Dataset, Item

LABELS = ("true", "false", "unverifiable")
_VERDICT_LABEL = {"supported": "true", "contradicted": "false", "not_mentioned": "unverifiable"}


def check_labellable(dataset: Dataset) -> None:
    """Refuse, before any generation, a dataset whose items carry neither facts nor a reference text."""
    bad = [item.id for item in dataset.items if not _facts(item) and not _reference(item)]
    if bad:
        raise UserInputError(
            f"--level claim needs items with gold facts (e.g. --dataset country_facts) or a 'reference' text "
            f"to check claims against; {len(bad)} item(s) of {dataset.name!r} have neither (first: {bad[0]!r})"
        )


def _facts(item: Item) -> dict[str, Any] | None:
    facts = item.metadata.get("facts")
    return facts if isinstance(facts, dict) and facts else None


def _reference(item: Item) -> str | None:
    ref = item.metadata.get("reference")
    return ref if isinstance(ref, str) and ref.strip() else None


def label_claims(item: Item, claims: Sequence[Claim], *, backend: Any = None, judge: str = "auto"
                 ) -> list[dict[str, Any]]:
    """``{"label", "basis", "detail"}`` for each claim: true / false / unverifiable, what decided it, and why."""
    if not claims:
        return []
    facts = _facts(item)
    if facts is not None:
        from .claim_labels import label_claim

        labels = [label_claim(c.text, facts) for c in claims]
        return [{"label": lab.label, "basis": lab.fact or "", "detail": lab.detail} for lab in labels]
    reference = _reference(item)
    if reference is None:
        raise UserInputError(f"item {item.id!r} has neither facts nor a 'reference' text to label its claims")
    from ..verify import check_claims

    checks = check_claims(claims, reference, judge=judge, backend=backend)
    return [{"label": _VERDICT_LABEL[c.verdict], "basis": "reference", "detail": c.evidence} for c in checks]


def claim_records(claims: Sequence[Claim], labels: Sequence[dict[str, Any]], scores: Sequence[Scores]
                  ) -> list[dict[str, Any]]:
    """What ``items.jsonl`` keeps of each claim: text, spans, label and every claim score's value and raw."""
    return [
        {"text": c.text, "char_span": list(c.char_span), "token_indices": list(c.token_indices), **lab,
         "scores": {s.estimator: {"value": float(s.values[k]), "raw": float(s.raw[k])} for s in scores}}
        for k, (c, lab) in enumerate(zip(claims, labels, strict=True))
    ]


def claim_rows(items: Sequence[dict[str, Any]], is_probability: dict[str, bool]) -> list[dict[str, Any]]:
    """One row per labelled claim, shaped like an item row (``correct`` = the claim is true), so the same
    metrics, tables and report apply to claims pooled over every answer."""
    rows = []
    for r in items:
        for k, c in enumerate(r.get("claims", [])):
            if c["label"] == "unverifiable":
                continue
            rows.append({
                "id": f"{r['id']}#{k}", "prompt": r["prompt"], "answer": c["text"],
                "references": [c["detail"] or c["basis"]], "correct": c["label"] == "true",
                "quality": 1.0 if c["label"] == "true" else 0.0, "rule": "claim label",
                "n_tokens": len(c["token_indices"]), "finish_reason": r["finish_reason"],
                "scores": {eid: {**v, "is_probability": is_probability.get(eid, False)}
                           for eid, v in c["scores"].items()},
                "failures": [],
            })
    return rows


def measured_rows(out: Path, answers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows a run folder's metrics are computed on: its answers, or at claim level its labelled claims."""
    from .layout import META_FILE, SPEC_FILE
    from .spec import load_spec

    if load_spec(out / SPEC_FILE).level != "claim":
        return answers
    meta = json.loads((out / META_FILE).read_text(encoding="utf-8"))
    return claim_rows(answers, {e["id"]: e["is_probability"] for e in meta["estimators"]})


def claim_summary(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Counts for the report: claims, labelled share, true/false, dropped (matched no token)."""
    claims = [c for r in items for c in r.get("claims", [])]
    counts = {lab: sum(c["label"] == lab for c in claims) for lab in LABELS}
    labelled = counts["true"] + counts["false"]
    dropped = sum(not c["token_indices"] for c in claims)
    n = len(claims)
    return {
        "n_claims": n, "n_true": counts["true"], "n_false": counts["false"],
        "n_unverifiable": counts["unverifiable"], "labelled_share": labelled / n if n else math.nan,
        "n_dropped": dropped, "dropped_share": dropped / n if n else math.nan,
        "answers_without_claims": sum(not r.get("claims") for r in items),
    }
