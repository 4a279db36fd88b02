"""Language-model cascades (METHODS.md §2.8, §11.5): the small model answers, a deferral rule scores its answer,
and below a threshold the question goes to the large model.

Deferral rules (a score per small answer, higher = keep it; ``ℓ_t`` = the answer's token log-probs, end of turn
included, as the sequence estimators count them):

=======================  ==================================================================================
``chow_sum``             ``Σ ℓ_t``, the sequence log-prob (penalises long answers)
``chow_average``         ``mean ℓ_t`` (lets a few doubtful tokens hide in a long answer)
``chow_quantile:alpha``  ``np.quantile(ℓ, α)`` (α = 0 is the least likely token), length-robust
``post_hoc_quantile``    learned P(small answer correct) from quantile features (:class:`PostHocQuantile`,
                         a :class:`~tokentrust.calibration.LearnedConfidence`), fitted on a calibration split
=======================  ==================================================================================

A NaN score (no log-probs, empty answer) always defers. The curve maths (:func:`deferral_curve`,
:func:`evaluate`) takes already-computed scores and qualities, so it needs no model; :func:`run_cascade` is the
driver that generates both models' answers (generation cache, resumable item log) for ``tokentrust cascade``.
Post-Hoc-Quantile's target here is "the small answer is correct" (METHODS also names "the large one is better";
:meth:`PostHocQuantile.fit` takes any keep/defer labels).
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..config import Float, GenerationConfig, Record
from ..errors import ServerError, TokentrustError, UnknownNameError, UserInputError
from ..registry import parse_spec
from ..trace import Trace

__all__ = [
    "RULES", "Cascade", "CascadeAnswer", "CascadePolicy", "CascadeReport", "CascadeRun",
    "DeferralCurve", "DeferralRule", "PostHocQuantile", "defer", "deferral_curve", "evaluate", "oracle_curve",
    "random_curve", "rule_scores", "run_cascade", "threshold_for",
]

RULES = ("chow_sum", "chow_average", "chow_quantile", "post_hoc_quantile")
SHARES = (0.0, 0.1, 0.25, 0.5, 1.0)  # deferral shares shown in the table
RULES_COMPARED = ("chow_sum", "chow_average", "chow_quantile:alpha=0.1")  # areas reported beside the chosen rule

# --------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class DeferralRule:
    """A deferral rule by name; ``alpha`` only for ``chow_quantile``. Parse specs with :meth:`parse`."""

    name: str
    alpha: float = 0.1

    def __post_init__(self) -> None:
        if self.name not in RULES:
            close = difflib.get_close_matches(self.name, RULES, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise UnknownNameError(f"unknown deferral rule {self.name!r}{hint} (rules: {', '.join(RULES)})")
        a = self.alpha
        if isinstance(a, bool) or not isinstance(a, int | float) or not 0.0 <= a <= 1.0:
            raise UserInputError(f"chow_quantile alpha must be a number in [0, 1] (0 = least likely token), "
                                 f"got {a!r}")

    @classmethod
    def parse(cls, spec: str | DeferralRule) -> DeferralRule:
        """``chow_sum``, ``chow_average``, ``chow_quantile:alpha=0.1`` or ``post_hoc_quantile``."""
        if isinstance(spec, DeferralRule):
            return spec
        name, kwargs = parse_spec(spec)
        allowed = {"alpha"} if name == "chow_quantile" else set()
        extra = set(kwargs) - allowed
        if extra and name in RULES:
            raise UserInputError(f"deferral rule {name!r} takes {'only alpha' if allowed else 'no parameters'}, "
                                 f"got {', '.join(sorted(extra))}")
        return cls(name, **kwargs)

    @property
    def spec(self) -> str:
        return f"chow_quantile:alpha={self.alpha:g}" if self.name == "chow_quantile" else self.name


def _logprobs(trace: Trace) -> np.ndarray:
    return np.asarray(trace.logprobs, dtype=float)


def chow_score(trace: Trace, rule: DeferralRule | str) -> float:
    """A Chow rule's score of one small answer (NaN when it has no tokens or no log-probs)."""
    rule = DeferralRule.parse(rule)
    lp = _logprobs(trace)
    if lp.size == 0 or np.isnan(lp).any():
        return math.nan
    if rule.name == "chow_sum":
        return float(lp.sum())
    if rule.name == "chow_average":
        return float(lp.mean())
    if rule.name == "chow_quantile":
        return float(np.quantile(lp, rule.alpha))
    raise UserInputError("post_hoc_quantile needs a fitted PostHocQuantile; use rule_scores(..., post_hoc=model)")


def _rows(traces: Sequence[Trace]) -> list[dict[str, Any]]:
    """The rows :class:`~tokentrust.calibration.LearnedConfidence` reads: the Chow values and the trace."""
    return [{"scores": {"chow_sum": chow_score(t, "chow_sum"), "chow_average": chow_score(t, "chow_average")},
             "trace": t} for t in traces]


class PostHocQuantile(Record):
    """Post-Hoc-Quantile: :class:`~tokentrust.calibration.LearnedConfidence` (logistic regression on the Chow-Sum
    and Chow-Average values, the quantiles of the token log-probs and, when every trace has them, of the
    entropies, and the length) fitted on keep/defer labels; ``predict`` gives P(keep the small answer).
    ``learned``: its JSON; ``constant``: the smoothed base rate when the labels hold one class only."""

    learned: dict[str, Any] | None = None
    constant: float | None = None

    @classmethod
    def fit(cls, traces: Sequence[Trace], keep: Sequence[bool], *, C: float = 1.0) -> PostHocQuantile:
        """Fit on small answers and labels (1 = the small answer is good enough, e.g. correct); answers with no
        finite log-prob are left out."""
        from ..calibration import LearnedConfidence

        if len(traces) != len(keep) or not traces:
            raise UserInputError(f"post_hoc_quantile needs one label per answer and ≥ 1 answer, "
                                 f"got {len(traces)} answers and {len(keep)} labels")
        rows = _rows(traces)
        ok = [i for i, r in enumerate(rows) if all(math.isfinite(v) for v in r["scores"].values())]
        y = np.asarray([bool(keep[i]) for i in ok], dtype=float)
        if len(np.unique(y)) < 2:
            return cls(constant=float((y.sum() + 1.0) / (len(y) + 2.0)))  # Beta(1,1)-smoothed base rate
        model = LearnedConfidence(scores=("chow_sum", "chow_average"), C=C).fit([rows[i] for i in ok], y)
        return cls(learned=json.loads(model.to_json()))

    def predict(self, traces: Sequence[Trace]) -> np.ndarray:
        """P(keep) per answer (NaN where a feature is undefined, e.g. an empty answer)."""
        from ..calibration import LearnedConfidence

        if self.learned is None:
            return np.full(len(traces), self.constant if self.constant is not None else math.nan)
        if not traces:
            return np.zeros(0)
        return LearnedConfidence.from_json(json.dumps(self.learned)).transform(_rows(traces))


def rule_scores(traces: Sequence[Trace], rule: DeferralRule | str, post_hoc: PostHocQuantile | None = None
                ) -> np.ndarray:
    """The rule's score of each small answer (higher = keep; below the threshold = defer)."""
    rule = DeferralRule.parse(rule)
    if rule.name == "post_hoc_quantile":
        if post_hoc is None:
            raise UserInputError("post_hoc_quantile needs a fitted PostHocQuantile (PostHocQuantile.fit)")
        return post_hoc.predict(traces)
    return np.array([chow_score(t, rule) for t in traces], dtype=float)


def threshold_for(scores: Sequence[float], share: float) -> float:
    """The threshold that defers (``score < threshold``) the ``⌊share·N + ½⌋`` lowest scores (fewer on ties;
    NaN scores always defer)."""
    if not 0.0 <= share <= 1.0:
        raise UserInputError(f"the deferral share must be in [0, 1], got {share}")
    s = np.sort(np.nan_to_num(np.asarray(scores, dtype=float), nan=-np.inf))
    k = math.floor(share * len(s) + 0.5)
    return math.inf if k >= len(s) else float(s[k])


# --------------------------------------------------------------------------- curves (no model needed)


@dataclass(frozen=True)
class DeferralCurve:
    """Cascade quality against the share deferred, at ``k/N`` for ``k = 0…N``;
    ``cost = c_small·N + c_large·k``."""

    deferred: np.ndarray
    quality: np.ndarray
    cost: np.ndarray

    @property
    def area(self) -> float:
        """Area under the curve over [0, 1] deferral (trapezoids)."""
        q, x = self.quality, self.deferred
        return float(((q[1:] + q[:-1]) / 2 * np.diff(x)).sum()) if len(x) > 1 else float(q[0])

    def at(self, share: float) -> float:
        """Quality at a deferral share (linear between the points)."""
        return float(np.interp(share, self.deferred, self.quality))

    def to_dict(self) -> dict[str, list[float]]:
        return {"deferred": self.deferred.tolist(), "quality": self.quality.tolist(), "cost": self.cost.tolist()}


def _pair(small_quality: Any, large_quality: Any) -> tuple[np.ndarray, np.ndarray]:
    sq, lq = np.asarray(small_quality, dtype=float), np.asarray(large_quality, dtype=float)
    if sq.ndim != 1 or sq.shape != lq.shape or sq.size == 0:
        raise UserInputError(f"need one small and one large quality per item, got shapes {sq.shape} and "
                             f"{lq.shape}")
    if not (np.isfinite(sq).all() and np.isfinite(lq).all()):
        raise UserInputError("qualities must be finite numbers")
    return sq, lq


def _curve(quality: np.ndarray, sq: np.ndarray, lq: np.ndarray, c_small: float, c_large: float) -> DeferralCurve:
    n = len(sq)
    quality[0], quality[-1] = sq.mean(), lq.mean()  # exact endpoints, free of rounding in the sums
    k = np.arange(n + 1, dtype=float)
    return DeferralCurve(k / n, quality, c_small * n + c_large * k)


def deferral_curve(scores: Any, small_quality: Any, large_quality: Any, *, c_small: float = 1.0,
                   c_large: float = 10.0) -> DeferralCurve:
    """The curve of deferring the lowest scores first. Tied scores cannot be split by a threshold, so within a tie
    the curve is the straight line between the thresholds (the mean over the orders of the tied items)."""
    sq, lq = _pair(small_quality, large_quality)
    s = np.nan_to_num(np.asarray(scores, dtype=float), nan=-np.inf)
    if s.shape != sq.shape:
        raise UserInputError(f"need one score per item: {s.size} scores for {sq.size} items")
    order = np.argsort(s, kind="stable")
    gain, ss = (lq - sq)[order], s[order]
    starts = np.flatnonzero(np.r_[True, ss[1:] != ss[:-1]])
    counts = np.diff(np.r_[starts, len(ss)])
    gain = np.repeat(np.add.reduceat(gain, starts) / counts, counts)
    return _curve(sq.mean() + np.r_[0.0, np.cumsum(gain)] / len(sq), sq, lq, c_small, c_large)


def random_curve(small_quality: Any, large_quality: Any, *, c_small: float = 1.0, c_large: float = 10.0
                 ) -> DeferralCurve:
    """Expected curve of deferring at random: the straight line from the small to the large model's quality."""
    sq, lq = _pair(small_quality, large_quality)
    k = np.arange(len(sq) + 1) / len(sq)
    return _curve(sq.mean() + k * (lq.mean() - sq.mean()), sq, lq, c_small, c_large)


def oracle_curve(small_quality: Any, large_quality: Any, *, c_small: float = 1.0, c_large: float = 10.0
                 ) -> DeferralCurve:
    """Defer where the large model gains most first: the best possible curve at every share."""
    sq, lq = _pair(small_quality, large_quality)
    return deferral_curve(sq - lq, sq, lq, c_small=c_small, c_large=c_large)


@dataclass(frozen=True)
class CascadeReport:
    """A rule's deferral curve with the random and oracle lines on the same items."""

    rule: str
    curve: DeferralCurve
    random: DeferralCurve
    oracle: DeferralCurve

    @property
    def relative_area(self) -> float:
        """``(area − random) / (oracle − random)``: 1 = oracle, 0 = random (NaN when oracle = random)."""
        span = self.oracle.area - self.random.area
        return (self.curve.area - self.random.area) / span if span > 1e-12 else math.nan

    def table(self, shares: Sequence[float] = SHARES) -> list[dict[str, float]]:
        """Per deferral share: the cost, and the quality of the cascade, random deferral and the oracle."""
        n = len(self.curve.deferred) - 1
        c_small, c_large = self.curve.cost[0] / n, (self.curve.cost[-1] - self.curve.cost[0]) / n
        return [{"deferred": s, "cost": float(c_small * n + c_large * s * n), "quality": self.curve.at(s),
                 "random": self.random.at(s), "oracle": self.oracle.at(s)} for s in shares]

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "n_items": len(self.curve.deferred) - 1,
                "areas": {"rule": self.curve.area, "random": self.random.area, "oracle": self.oracle.area,
                          "relative": _none_if_nan(self.relative_area)},
                "oracle_best": {"deferred": float(self.oracle.deferred[np.argmax(self.oracle.quality)]),
                                "quality": float(self.oracle.quality.max())},
                "table": self.table(), "curve": self.curve.to_dict(), "random": self.random.to_dict(),
                "oracle": self.oracle.to_dict()}


def evaluate(scores: Any, small_quality: Any, large_quality: Any, *, rule: str = "", c_small: float = 1.0,
             c_large: float = 10.0) -> CascadeReport:
    """The rule's curve and the random and oracle lines (METHODS §11.5)."""
    _check_costs(c_small, c_large)
    kw = {"c_small": c_small, "c_large": c_large}
    return CascadeReport(rule, deferral_curve(scores, small_quality, large_quality, **kw),
                         random_curve(small_quality, large_quality, **kw),
                         oracle_curve(small_quality, large_quality, **kw))


def _check_costs(c_small: float, c_large: float) -> None:
    for name, c in (("c_small", c_small), ("c_large", c_large)):
        if not (isinstance(c, int | float) and c >= 0 and math.isfinite(c)):
            raise UserInputError(f"{name} must be a finite cost ≥ 0, got {c!r}")


def _none_if_nan(v: float) -> float | None:
    return None if math.isnan(v) else v


# --------------------------------------------------------------------------- policy and cascade


class CascadePolicy(Record):
    """What ``serve --defer-to`` needs: defer when the rule's score of the small answer is below ``threshold``
    (``-inf``: never, ``inf``: always), to the backend ``large``. ``post_hoc``: the fitted model of
    ``post_hoc_quantile``. ``deferred_share``: the share it deferred on the evaluation items."""

    rule: str
    threshold: Float
    large: str
    small: str | None = None
    post_hoc: PostHocQuantile | None = None
    deferred_share: float | None = None

    def model_post_init(self, _: Any) -> None:
        rule = DeferralRule.parse(self.rule)
        if rule.name == "post_hoc_quantile" and self.post_hoc is None:
            raise UserInputError("a post_hoc_quantile policy needs its fitted model (post_hoc)")
        if math.isnan(self.threshold):
            raise UserInputError("the cascade threshold is NaN")

    def score(self, trace: Trace) -> float:
        """The rule's score of one small answer."""
        return float(rule_scores([trace], self.rule, self.post_hoc)[0])

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.model_dump_json(indent=2), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> CascadePolicy:
        """Read a policy written by :meth:`save` (``cascade --out`` writes ``policy.json``)."""
        try:
            return cls.model_validate_json(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise UserInputError(f"cannot read cascade policy {path}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise UserInputError(f"{path} is not a cascade policy: {str(exc).splitlines()[0]}") from None


def defer(annotated_small: Any, policy: CascadePolicy) -> bool:
    """Whether to send the question to ``policy.large``: the small answer's score (from an
    :class:`~tokentrust.Annotated` or a :class:`~tokentrust.Trace`) is below the threshold, or undefined."""
    trace = annotated_small if isinstance(annotated_small, Trace) else annotated_small.trace
    return not policy.score(trace) >= policy.threshold


@dataclass(frozen=True)
class CascadeAnswer:
    """One question through the cascade: the small answer, its score, whether it was deferred, the final answer."""

    small: Trace
    score: float
    deferred: bool
    trace: Trace


@dataclass
class Cascade:
    """``small`` answers; answers scoring below ``threshold`` under ``rule`` are answered again by ``large``.
    Backends are any (in process, ``openai:``, ``replay:``)."""

    small: Any
    large: Any
    rule: DeferralRule | str = "chow_sum"
    threshold: float = -math.inf
    post_hoc: PostHocQuantile | None = None
    policy: CascadePolicy = field(init=False)

    def __post_init__(self) -> None:
        self.policy = CascadePolicy(rule=DeferralRule.parse(self.rule).spec, threshold=self.threshold,
                                    large=str(getattr(self.large, "model_id", "large")), post_hoc=self.post_hoc)

    @classmethod
    def from_policy(cls, policy: CascadePolicy, small: Any = None) -> Cascade:
        """The cascade a saved policy describes (``small`` defaults to ``policy.small``, loaded)."""
        from ..loading import load

        return cls(small if small is not None else load(policy.small), load(policy.large), policy.rule,
                   policy.threshold, policy.post_hoc)

    def generate_many(self, prompts: Sequence[Any], config: GenerationConfig | None = None) -> list[CascadeAnswer]:
        small = list(self.small.generate_many(list(prompts), config))
        scores = rule_scores(small, self.rule, self.post_hoc)
        go = [i for i, s in enumerate(scores) if not s >= self.threshold]
        large = dict(zip(go, self.large.generate_many([prompts[i] for i in go], config), strict=True)) if go else {}
        return [CascadeAnswer(t, float(s), i in large, large.get(i, t))
                for i, (t, s) in enumerate(zip(small, scores, strict=True))]


# --------------------------------------------------------------------------- driver

ITEMS, FAILURES, SPEC = "items.jsonl", "failures.jsonl", "cascade_spec.json"
RESULT, POLICY = "cascade.json", "policy.json"


@dataclass(frozen=True)
class CascadeRun:
    """A finished ``run_cascade``: the folder, ``cascade.json``'s content, the policy, and what was reused."""

    out: Path
    result: dict[str, Any]
    policy: CascadePolicy
    n_items: int
    n_resumed: int
    n_cached: int
    n_generated: int


def _open(out: Path, identity: dict[str, Any]) -> None:
    from ..bench.lock import LOCK_FILE

    path = out / SPEC
    identity = json.loads(json.dumps(identity))  # as it reads back
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        if old != identity:
            diff = "; ".join(f"{k}: {old.get(k)!r} there, {v!r} now"
                             for k, v in identity.items() if old.get(k) != v)
            raise UserInputError(f"{out} holds a cascade run with other settings ({diff}); give another --out")
        return
    if out.exists() and any(p.name != LOCK_FILE for p in out.iterdir()):
        raise UserInputError(f"{out} exists, is not empty and holds no {SPEC}; give another --out")
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(identity, indent=2), encoding="utf-8")


def _cached(backend: Any) -> bool:
    """Replays are not cached: served instantly, and their model id is the recorded model's own."""
    from ..backends.replay import ReplayBackend

    return not isinstance(backend, ReplayBackend)


def _answers(role: str, backend: Any, items: list[Any], config: GenerationConfig, cache: Any, failed: Any,
             counts: dict[str, int]) -> list[Trace | None]:
    """Traces of one backend for a batch: cached, else generated (and cached). A refused item is a failure row
    (``None``); a backend that fails (server down) records the batch's items as failed and stops the run."""
    from ..bench.runner import _generate

    prompts = [it.prompt for it in items]
    traces = cache.get_many(backend.model_id, prompts, config) if _cached(backend) else [None] * len(items)
    missing = [i for i, t in enumerate(traces) if t is None]
    if missing:
        try:
            new = _generate(backend, [items[i] for i in missing], config, failed)
        except (TokentrustError, OSError) as exc:
            if isinstance(exc, UserInputError):
                raise
            for i in missing:
                failed.append({"id": items[i].id, "estimator": f"{role} model", "item": items[i].id,
                               "message": f"{type(exc).__name__}: {exc}"})
            raise ServerError(f"the {role} model failed on {items[missing[0]].id}: {exc}") from None
        made = [(i, t) for i, t in zip(missing, new, strict=True) if t is not None]
        if _cached(backend):
            cache.put_many(backend.model_id, [prompts[i] for i, _ in made], config, [t for _, t in made])
        for i, t in made:
            traces[i] = t
        counts["generated"] += len(made)
    counts["cached"] += len(items) - len(missing)
    return traces


def _row(ds: Any, item: Any, small: Trace, large: Trace) -> dict[str, Any]:
    """One finished item: both answers judged, both traces kept (``replay:items.jsonl`` replays the small one)."""
    from ..bench.quality import judge

    sj, lj = judge(ds, small.text, item.references), judge(ds, large.text, item.references)
    return {"id": item.id, "prompt": item.prompt, "references": list(item.references),
            "small": {"answer": small.text, "correct": bool(sj.correct), "quality": float(sj.quality)},
            "large": {"answer": large.text, "correct": bool(lj.correct), "quality": float(lj.quality)},
            "trace": json.loads(small.to_json()), "large_trace": json.loads(large.to_json())}


def run_cascade(
    dataset: str, large: str | Any, *, small: str | Any = "default", limit: int | None = None,
    rule: str = "chow_sum", out: str | Path | None = None, cache: str | Path | None = None,
    max_new_tokens: int = 24, seed: int = 0, c_small: float = 1.0, c_large: float = 10.0,
    target_deferral: float = 0.25, measure: Literal["accuracy", "quality"] = "accuracy",
    batch_size: int | None = None, progress: bool = False,
) -> CascadeRun:
    """Answer every question with both models (cache; resumable ``items.jsonl`` in ``out``), then draw the rule's
    deferral curve (:func:`finalize_cascade`). ``small``/``large``: backend specs or backend objects.

    A backend that fails mid-run records the batch's items in ``failures.jsonl`` and raises :class:`ServerError`;
    running again resumes (finished items kept, cached answers not generated again).
    """
    from ..bench.datasets import load_dataset
    from ..bench.lock import RunLock
    from ..bench.runner import _progress
    from ..bench.store import GenerationCache, ItemLog
    from ..capability import Capability
    from ..loading import load

    parsed = DeferralRule.parse(rule)
    threshold_for([0.0], target_deferral)
    _check_costs(c_small, c_large)
    if measure not in ("accuracy", "quality"):
        raise UserInputError(f"measure must be 'accuracy' or 'quality', got {measure!r}")
    config = GenerationConfig(max_new_tokens=max_new_tokens)
    ds = load_dataset(dataset, limit=limit, seed=seed)
    specs = {"small": small if isinstance(small, str) else small.model_id,
             "large": large if isinstance(large, str) else large.model_id}
    out = Path(out) if out else Path("runs") / f"cascade-{ds.name}-{datetime.now():%Y%m%d-%H%M%S}"
    with RunLock(out):  # a second writer is refused before either model loads
        sb = load(small) if isinstance(small, str) else small
        lb = load(large) if isinstance(large, str) else large
        if Capability.LOGPROBS not in sb.capabilities:
            raise UserInputError(f"the small model {specs['small']} gives no token log-probs; "
                                 "the deferral rules need them")
        _open(out, {**specs, "dataset": dataset, "limit": limit, "seed": seed, "generation": config.model_dump()})
        log, failed = ItemLog(out / ITEMS), ItemLog(out / FAILURES)
        done = log.done_ids()
        pending = [it for it in ds.items if it.id not in done]
        counts = {"cached": 0, "generated": 0}
        step = batch_size or getattr(sb, "batch_size", None) or getattr(lb, "concurrency", None) or 16
        n_done = len(done)
        try:
            with GenerationCache(cache) as gc, log, failed, _progress(progress) as bar:
                task = bar.add_task(f"cascade · {ds.name}", total=len(ds.items), completed=len(done))
                for start in range(0, len(pending), step):
                    batch = pending[start:start + step]
                    small_t = _answers("small", sb, batch, config, gc, failed, counts)
                    large_t = _answers("large", lb, batch, config, gc, failed, counts)
                    for item, st, lt in zip(batch, small_t, large_t, strict=True):
                        if st is not None and lt is not None:
                            log.append(_row(ds, item, st, lt))
                            n_done += 1
                        bar.advance(task)
        except ServerError as exc:
            raise ServerError(f"{exc}\n{n_done}/{len(ds.items)} items are saved in {out}; run the same command again "
                              f"to resume (cached answers are not generated again)") from None
        result, policy = finalize_cascade(out, parsed, c_small=c_small, c_large=c_large, measure=measure,
                                          target_deferral=target_deferral, n_total=len(ds.items), seed=seed)
        return CascadeRun(out, result, policy, len(ds.items), len(done), counts["cached"], counts["generated"])


def finalize_cascade(out: str | Path, rule: DeferralRule | str, *, c_small: float = 1.0, c_large: float = 10.0,
                     target_deferral: float = 0.25, measure: str = "accuracy", n_total: int | None = None,
                     seed: int = 0) -> tuple[dict[str, Any], CascadePolicy]:
    """Draw the curve from a cascade folder's items; write ``cascade.json`` and ``policy.json``.

    ``post_hoc_quantile`` is fitted on one half of the items (seeded split) and the curve drawn on the other;
    every other rule uses all items. ``rules`` compares every rule's area on the same items.
    """
    from ..bench.store import ItemLog

    out = Path(out)
    rule = DeferralRule.parse(rule)
    spec = json.loads((out / SPEC).read_text(encoding="utf-8"))
    rows = ItemLog(out / ITEMS).unique()  # an item finished twice counts once
    if not rows:
        raise UserInputError(f"{out} has no finished items yet")
    key = "correct" if measure == "accuracy" else "quality"
    sq = np.array([float(r["small"][key]) for r in rows])
    lq = np.array([float(r["large"][key]) for r in rows])
    traces = [Trace.model_validate(r["trace"]) for r in rows]
    idx, post_hoc, note = np.arange(len(rows)), None, f"all {len(rows)} items"
    if rule.name == "post_hoc_quantile":
        if len(rows) < 4:
            raise UserInputError(f"post_hoc_quantile needs ≥ 4 finished items (half to fit, half to evaluate), "
                                 f"got {len(rows)}")
        perm = np.random.default_rng(seed).permutation(len(rows))
        fit_i, idx = np.sort(perm[: len(rows) // 2]), np.sort(perm[len(rows) // 2:])
        post_hoc = PostHocQuantile.fit([traces[i] for i in fit_i],
                                       [bool(rows[i]["small"]["correct"]) for i in fit_i])
        note = f"held-out half ({len(idx)} items); post_hoc_quantile fitted on the other half ({len(fit_i)} items)"
    ev = [traces[i] for i in idx]
    scores = rule_scores(ev, rule, post_hoc)
    report = evaluate(scores, sq[idx], lq[idx], rule=rule.spec, c_small=c_small, c_large=c_large)
    compared = {r: evaluate(rule_scores(ev, r), sq[idx], lq[idx], rule=r) for r in RULES_COMPARED}
    compared[rule.spec] = report
    threshold = threshold_for(scores, target_deferral)
    policy = CascadePolicy(rule=rule.spec, threshold=threshold, large=spec["large"], small=spec["small"],
                           post_hoc=post_hoc, deferred_share=float(np.mean(~(scores >= threshold))))
    policy.save(out / POLICY)
    done = {r["id"] for r in rows}
    latest = {f["id"]: f for f in ItemLog(out / FAILURES).read() if f["id"] not in done}
    result = {
        "small": spec["small"], "large": spec["large"], "dataset": spec["dataset"], "n_items": len(rows),
        "complete": n_total is None or len(rows) >= n_total, "measure": measure, "evaluated_on": note,
        "small_accuracy": float(np.mean([r["small"]["correct"] for r in rows])),
        "large_accuracy": float(np.mean([r["large"]["correct"] for r in rows])),
        "small_quality": float(np.mean([r["small"]["quality"] for r in rows])),
        "large_quality": float(np.mean([r["large"]["quality"] for r in rows])),
        "costs": {"small": c_small, "large": c_large}, **report.to_dict(),
        "rules": {r: {"area": rep.curve.area, "relative": _none_if_nan(rep.relative_area)}
                  for r, rep in compared.items()},
        "policy": json.loads(policy.model_dump_json()), "policy_path": str(out / POLICY),
        "failures": [{k: f[k] for k in ("item", "estimator", "message")} for f in latest.values()],
    }
    tmp = out / (RESULT + ".tmp")
    tmp.write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    tmp.replace(out / RESULT)
    return result, policy
