"""Calibration maps: turn a confidence score into a probability of being correct (METHODS §12).

Four sklearn-style calibrators share one shape: a keyword-only dataclass whose fields are its
parameters (the constructor only stores them; ``get_params`` and the JSON ``params`` come from the
fields), ``fit(scores, correct) -> self``, ``transform(scores) -> ndarray``, fitted attributes ending
in ``_``, and a JSON form (``to_json``/``from_json``, ``save``/``load``; never pickle). Each registers
in :data:`tokentrust.registry.calibrators`. Fit on *confidence* (negate uncertainties first) on a
held-out split. scikit-learn and scipy are imported only by the functions that need them.

=================  =====================================================================
``temperature``    ``sigmoid(s / T)``, one ``T > 0`` by NLL (needs a logit-like score)
``platt``          ``sigmoid(a·s + b)``, logistic regression with Platt's targets
``isotonic``       non-decreasing step map (pool-adjacent-violators)
``histogram``      equal-mass bins, each mapped to its Beta(1,1)-smoothed accuracy
=================  =====================================================================

Single-score maps record the model and score they were fitted on (:meth:`Calibrator.bind`; files
written before that still load). :class:`LearnedConfidence` learns one probability from several scores
plus quantiles of the token log-probs and entropies (METHODS §2.8), by logistic regression or small
gradient-boosted trees, also saved as JSON. :func:`apply_calibrator` turns either into a sequence-level
``calibrated_confidence`` score of one answer; :func:`load_calibrator` loads either kind.

Temperature scaling, binary reading. METHODS §12 states temperature scaling for a softmax
over classes. For one scalar confidence per item this module reads it as the two-class case:
the score ``s`` is a log-odds (``s = 0`` means 50 %), and ``p = sigmoid(s / T)``. ``T`` is
fitted by L-BFGS on ``log T`` minimising the mean NLL, started from ``T = rms(s)`` instead of
METHODS' ``T = 1`` (the fit is scale-equivariant, and from ``T = 1`` the first step overshoots
onto the flat ``T → ∞`` plateau when logits are large). With ``score_type="prob"`` the input is a
probability and is converted with ``logit(clip(p, 1e-12, 1 - 1e-12))`` first. Having no bias
term, it cannot move the 50 % point: for scores such as log-probabilities (all ≤ 0) use Platt.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .errors import UserInputError
from .metrics._base import _as_1d, check_pair
from .registry import calibrators

__all__ = [
    "AUTO_C_GRID",
    "CALIBRATED_ID",
    "DEFAULT_QUANTILES",
    "GBT_SETTINGS",
    "Calibrator",
    "HistogramBinningCalibrator",
    "IsotonicCalibrator",
    "LearnedConfidence",
    "PlattCalibrator",
    "TemperatureCalibrator",
    "apply_calibrator",
    "calibrator_from_json",
    "calibrators",
    "feature_names",
    "load_calibrator",
    "make_calibrator",
]

_FORMAT_VERSION = 1


def expit(x: Any) -> Any:
    """The logistic function (scipy's, imported on first use so ``import tokentrust`` stays light)."""
    from scipy.special import expit as _expit

    return _expit(x)


def logit(p: Any) -> Any:
    """The log-odds of ``p`` (scipy's, imported on first use)."""
    from scipy.special import logit as _logit

    return _logit(p)


# --------------------------------------------------------------------------- validation


def _scores(values: Any) -> np.ndarray:
    """A fresh 1-D float copy of scores to transform; NaN rejected (``±inf`` allowed)."""
    arr = _as_1d(values, "scores")
    if np.isnan(arr).any():
        i = int(np.flatnonzero(np.isnan(arr))[0])
        raise UserInputError(f"scores[{i}] is NaN; every item needs a score")
    return arr


def _fit_inputs(scores: Any, correct: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validated copies of (finite scores, binary labels) for fitting."""
    y, s = check_pair(correct, scores, confidence_name="scores", allow_inf=False)
    return s, y


def _positive(name: str, value: Any, *, integer: bool = False) -> None:
    ok = isinstance(value, (int, np.integer)) if integer else isinstance(value, (int, float, np.number))
    if isinstance(value, bool) or not ok or not value > 0:
        kind = "a positive integer" if integer else "a positive number"
        raise UserInputError(f"{name}={value!r} must be {kind}")


# --------------------------------------------------------------------------- base


@dataclass(kw_only=True, eq=False)
class Calibrator:
    """Base class: parameters from the dataclass fields, the fitted check and the JSON form.

    A subclass is a ``@dataclass(kw_only=True, eq=False)`` whose fields are its parameters; it names
    its fitted attributes (ending in ``_``) in ``_fitted_names``.
    """

    kind: ClassVar[str] = ""
    _fitted_names: ClassVar[tuple[str, ...]] = ()
    # What the map was fitted on (set by :meth:`bind`; ``None`` in files written before they were recorded).
    model_id_ = None
    score_id_ = None

    def bind(self, *, model: str | None, score: str | None) -> Calibrator:
        """Record the model and the score id the map was fitted on, so :func:`apply_calibrator` can refuse
        another model's answers or look up the right score."""
        self.model_id_, self.score_id_ = model, score
        return self

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters, one per dataclass field, in field order."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def is_fitted(self) -> bool:
        return all(hasattr(self, name) for name in self._fitted_names)

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise UserInputError(f"{type(self).__name__} is not fitted; call fit(scores, correct) first")

    def fit(self, scores: Any, correct: Any) -> Calibrator:  # pragma: no cover - abstract
        raise NotImplementedError

    def transform(self, scores: Any) -> np.ndarray:
        """Map scores to probabilities in [0, 1] (NaN scores rejected, ``±inf`` allowed)."""
        self._check_fitted()
        return self._transform(_scores(scores))

    def _transform(self, s: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def fit_transform(self, scores: Any, correct: Any) -> np.ndarray:
        return self.fit(scores, correct).transform(scores)

    # -- JSON -----------------------------------------------------------------------------

    def _fitted_state(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self._fitted_names:
            value = getattr(self, name)
            out[name] = value.tolist() if isinstance(value, np.ndarray) else value
        return out

    def _set_fitted_state(self, state: dict[str, Any]) -> None:
        for name in self._fitted_names:
            value = state[name]
            setattr(self, name, np.asarray(value, dtype=np.float64) if isinstance(value, list) else value)

    def to_json(self) -> str:
        """JSON text with ``kind``, constructor ``params`` and (if fitted) the ``fitted`` state.

        Floats are written with ``repr`` precision, so a round trip reproduces ``transform``
        bit for bit.
        """
        payload = {
            "kind": self.kind,
            "version": _FORMAT_VERSION,
            "params": self.get_params(),
            "fitted": self._fitted_state() if self.is_fitted else None,
        }
        if self.model_id_ is not None or self.score_id_ is not None:
            payload.update(model=self.model_id_, score=self.score_id_)
        return json.dumps(payload)

    @classmethod
    def from_json(cls, text: str) -> Calibrator:
        """Rebuild a calibrator; on :class:`Calibrator` itself the class comes from ``kind``."""
        try:
            payload = json.loads(text)
            kind = payload["kind"]
            params = payload["params"]
            fitted = payload.get("fitted")
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise UserInputError(f"not a tokentrust calibrator JSON document: {exc}") from exc
        target = calibrators.get(kind)
        if cls is not Calibrator and target is not cls:
            raise UserInputError(f"JSON holds a {kind!r} calibrator, not {cls.kind!r}")
        try:
            obj = target(**params)
        except TypeError as exc:
            raise UserInputError(f"bad parameters for calibrator {kind!r}: {exc}") from exc
        if fitted is not None:
            try:
                obj._set_fitted_state(fitted)
            except KeyError as exc:
                raise UserInputError(f"calibrator JSON is missing fitted field {exc}") from exc
        if payload.get("model") is not None or payload.get("score") is not None:
            obj.bind(model=payload.get("model"), score=payload.get("score"))
        return obj

    def save(self, path: str | Path) -> None:
        """Write :meth:`to_json` to ``path`` (UTF-8 text)."""
        Path(path).write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Calibrator:
        """Read a file written by :meth:`save`; ``Calibrator.load`` returns the stored kind."""
        return cls.from_json(Path(path).read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- calibrators


@calibrators.register(name="temperature")
@dataclass(kw_only=True, eq=False)
class TemperatureCalibrator(Calibrator):
    """Temperature scaling for a logit-like score: ``p = sigmoid(s / T)``, one ``T > 0`` by NLL.

    ``score_type="logit"`` (default): ``s`` is a log-odds; ``"prob"``: ``s`` is a probability
    and is turned into its logit first. See the module docstring for this binary reading.
    """

    kind = "temperature"
    _fitted_names = ("temperature_",)
    score_type: str = "logit"

    def _logits(self, s: np.ndarray) -> np.ndarray:
        if self.score_type == "logit":
            return s
        if self.score_type == "prob":
            bad = (s < 0) | (s > 1)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise UserInputError(f"scores[{i}] = {float(s[i])!r} is outside [0, 1] but score_type='prob'")
            return logit(np.clip(s, 1e-12, 1 - 1e-12))
        raise UserInputError(f"score_type={self.score_type!r} is not valid; use 'logit' or 'prob'")

    def fit(self, scores: Any, correct: Any) -> TemperatureCalibrator:
        from scipy.optimize import minimize

        s, y = _fit_inputs(scores, correct)
        logits = self._logits(s)
        # The problem is scale-equivariant (T for c·z is c·T), so fit on logits of unit RMS, i.e.
        # start from T = rms(z) rather than 1: L-BFGS's first step otherwise overshoots onto the
        # flat T → ∞ plateau for large logits.
        scale = float(np.sqrt(np.mean(logits**2))) or 1.0
        z = logits / scale

        def nll(u: np.ndarray) -> tuple[float, np.ndarray]:
            # mean (not summed) NLL keeps L-BFGS's first step small; logits at T = exp(u)
            t = z * np.exp(-u[0])
            loss = float(np.mean(np.logaddexp(0.0, t) - y * t))
            grad = float(np.mean((expit(t) - y) * -t))
            return loss, np.array([grad])

        res = minimize(nll, x0=np.array([0.0]), jac=True, method="L-BFGS-B", bounds=[(-20.0, 20.0)])
        self.temperature_ = float(np.exp(res.x[0]) * scale)
        return self

    def _transform(self, s: np.ndarray) -> np.ndarray:
        return expit(self._logits(s) / self.temperature_)


@calibrators.register(name="platt")
@dataclass(kw_only=True, eq=False)
class PlattCalibrator(Calibrator):
    """Platt scaling ``p = sigmoid(a·s + b)`` (monotone, two parameters; default for unbounded scores).

    Fitted by ``LogisticRegression(C=C)`` on standardised scores with Platt's smoothed targets
    ``(N₊+1)/(N₊+2)`` and ``1/(N₋+2)`` (soft targets via two weighted copies of each item);
    ``a_`` and ``b_`` are reported on the original score scale.
    """

    kind = "platt"
    _fitted_names = ("a_", "b_")
    C: float = 1e4
    label_smoothing: bool = True

    def fit(self, scores: Any, correct: Any) -> PlattCalibrator:
        from sklearn.linear_model import LogisticRegression

        _positive("C", self.C)
        s, y = _fit_inputs(scores, correct)
        n_pos = float(y.sum())
        n_neg = float(y.size - n_pos)
        if self.label_smoothing:
            target = np.where(y == 1, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
        else:
            target = y
        mean = float(s.mean())
        scale = float(s.std()) or 1.0
        x = ((s - mean) / scale)[:, None]
        xx = np.vstack([x, x])
        yy = np.r_[np.ones(s.size), np.zeros(s.size)]
        ww = np.r_[target, 1.0 - target]
        keep = ww > 0
        if np.unique(yy[keep]).size < 2:  # only possible without smoothing and a single class
            p = float(y[0])
            self.a_, self.b_ = 0.0, float(logit(np.clip(p, 1e-12, 1 - 1e-12)))
            return self
        model = LogisticRegression(C=float(self.C), max_iter=10_000)
        model.fit(xx[keep], yy[keep], sample_weight=ww[keep])
        a = float(model.coef_[0, 0])
        b = float(model.intercept_[0])
        self.a_ = a / scale
        self.b_ = b - a * mean / scale
        return self

    def _transform(self, s: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            z = self.a_ * s + self.b_
        # a_ == 0 with an infinite score gives NaN; the map is then constant
        return expit(np.where(np.isnan(z), self.b_, z))


@calibrators.register(name="isotonic")
@dataclass(kw_only=True, eq=False)
class IsotonicCalibrator(Calibrator):
    """Non-decreasing step map by pool-adjacent-violators (flexible; wants ~1000+ points).

    Same map as ``IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1)``: linear
    interpolation between the fitted thresholds, constant beyond them. Produces ties.
    """

    kind = "isotonic"
    _fitted_names = ("x_thresholds_", "y_thresholds_")

    def fit(self, scores: Any, correct: Any) -> IsotonicCalibrator:
        from sklearn.isotonic import IsotonicRegression

        s, y = _fit_inputs(scores, correct)
        model = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0, increasing=True)
        model.fit(s, y)
        self.x_thresholds_ = np.asarray(model.X_thresholds_, dtype=np.float64)
        self.y_thresholds_ = np.asarray(model.y_thresholds_, dtype=np.float64)
        return self

    def _transform(self, s: np.ndarray) -> np.ndarray:
        return np.interp(s, self.x_thresholds_, self.y_thresholds_)


@calibrators.register(name="histogram")
@dataclass(kw_only=True, eq=False)
class HistogramBinningCalibrator(Calibrator):
    """Equal-mass histogram binning: each bin maps to ``(k + 1) / (n + 2)`` (Beta(1,1) posterior mean).

    ``n_bins`` bins at the quantiles of the calibration scores (bins ``(lo, hi]``, the first
    closed, scores beyond the range go to the end bins). Loses ranking within a bin.
    """

    kind = "histogram"
    _fitted_names = ("bin_edges_", "bin_values_")
    n_bins: int = 10

    def fit(self, scores: Any, correct: Any) -> HistogramBinningCalibrator:
        _positive("n_bins", self.n_bins, integer=True)
        s, y = _fit_inputs(scores, correct)
        edges = np.quantile(s, np.linspace(0.0, 1.0, self.n_bins + 1))
        idx = np.searchsorted(edges[1:-1], s, side="left")
        k = np.bincount(idx, weights=y, minlength=self.n_bins)
        n = np.bincount(idx, minlength=self.n_bins)
        self.bin_edges_ = edges
        self.bin_values_ = (k + 1.0) / (n + 2.0)
        return self

    def _transform(self, s: np.ndarray) -> np.ndarray:
        return self.bin_values_[np.searchsorted(self.bin_edges_[1:-1], s, side="left")]


# --------------------------------------------------------------------------- factory


def make_calibrator(kind: str, **kwargs: Any) -> Calibrator:
    """Build a calibrator by name: ``"temperature"``, ``"platt"``, ``"isotonic"``, ``"histogram"``.

    Unknown names raise :class:`~tokentrust.errors.UnknownNameError` with close matches.
    """
    factory: Callable[..., Calibrator] = calibrators.get(kind)
    try:
        return factory(**kwargs)
    except TypeError as exc:
        raise UserInputError(f"bad parameters for calibrator {kind!r}: {exc}") from exc


def calibrator_from_json(text: str) -> Calibrator | LearnedConfidence:
    """Any calibrator's JSON (a single-score map or a learned confidence); the class comes from ``kind``."""
    try:
        kind = json.loads(text).get("kind")
    except (json.JSONDecodeError, AttributeError) as exc:
        raise UserInputError(f"not a tokentrust calibrator JSON document: {exc}") from exc
    return LearnedConfidence.from_json(text) if kind == _LEARNED_KIND else Calibrator.from_json(text)


def load_calibrator(path: str | Path) -> Calibrator | LearnedConfidence:
    """Load any calibrator saved with ``save`` (a single-score map or a :class:`LearnedConfidence`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserInputError(f"cannot read calibrator {path}: {exc.strerror or exc}") from exc
    try:
        return calibrator_from_json(text)
    except UserInputError as exc:
        raise UserInputError(f"{path}: {exc}") from None


# --------------------------------------------------------------------------- learned confidence

#: Quantile levels α of the token log-probs (and entropies) fed to :class:`LearnedConfidence` (METHODS §2.8).
#: A short grid: answers are often 3–20 tokens, where finer levels (0.01, 0.02, …) repeat the minimum.
DEFAULT_QUANTILES: tuple[float, ...] = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)

#: The gradient-boosted trees' fixed settings (small: calibration sets have tens to thousands of answers).
GBT_SETTINGS: dict[str, Any] = {
    "n_estimators": 100, "learning_rate": 0.1, "max_depth": 2, "min_samples_leaf": 3, "subsample": 1.0,
    "random_state": 0,
}

#: The L2 strengths ``C`` that ``LearnedConfidence(C="auto")`` chooses among (strongest first): 10⁻³ … 10².
AUTO_C_GRID: tuple[float, ...] = tuple(float(c) for c in np.logspace(-3, 2, 11))

#: The folds of the cross-validation that chooses ``C`` inside the fit set (fewer when a class is smaller).
AUTO_C_FOLDS = 5

#: The estimator id of the probability :func:`apply_calibrator` returns.
CALIBRATED_ID = "calibrated_confidence"

_LEARNED_KIND = "learned_confidence"


@dataclass(frozen=True)
class _RowView:
    """What a learned confidence reads of one row: its answer-level score values and its trace columns."""

    scores: dict[str, float]
    logprobs: np.ndarray
    entropy: np.ndarray | None
    model_id: str | None
    correct: float | None


def _row_view(row: Any, i: int) -> _RowView:
    """Read a run item (``items.jsonl`` dict) or an :class:`~tokentrust.Annotated`."""
    if hasattr(row, "trace") and hasattr(row, "sequence_scores"):  # Annotated
        scores = {s.estimator: float(s.value) for s in row.sequence_scores}
        trace, correct = row.trace, None
    elif isinstance(row, dict):
        raw = {k: v["value"] if isinstance(v, dict) else v for k, v in (row.get("scores") or {}).items()}
        scores = {k: float("nan") if v is None else float(v) for k, v in raw.items()}
        trace, correct = row.get("trace"), row.get("correct")
    else:
        raise UserInputError(f"row {i} is a {type(row).__name__}; give run items (dicts) or Annotated results")
    if trace is None:
        raise UserInputError(f"row {i} has no trace; learned confidence needs each answer's token log-probs")
    get = trace.get if isinstance(trace, dict) else lambda k: getattr(trace, k, None)
    logprobs = np.asarray(get("logprobs") or [], dtype=np.float64)
    special = np.asarray(get("special") or [False] * logprobs.size, dtype=bool)
    keep = ~special if (~special).any() else np.ones(logprobs.size, dtype=bool)  # all special: keep them all
    entropy = get("entropy")
    return _RowView(scores=scores, logprobs=logprobs[keep],
                    entropy=None if entropy is None else np.asarray(entropy, dtype=np.float64)[keep],
                    model_id=get("model_id"), correct=None if correct is None else float(correct))


def _canonical(score: str) -> str:
    """The estimator id of ``score`` (an alias such as ``msp`` or a spec); other names are kept as given."""
    from .errors import TokentrustError
    from .estimators.base import build_estimator

    try:
        return build_estimator(score).id
    except TokentrustError:
        return score


def feature_names(score_ids: Any, quantiles: Any, entropies: bool) -> list[str]:
    """The learned confidence's features, in order: score values, log-prob quantiles, entropy quantiles, length."""
    names = [f"score:{s}" for s in score_ids] + [f"logprob_q{a:g}" for a in quantiles]
    if entropies:
        names += [f"entropy_q{a:g}" for a in quantiles]
    return [*names, "n_tokens"]


@dataclass(kw_only=True, eq=False)
class LearnedConfidence:
    """A probability of being correct learned from several answer-level scores and the token statistics.

    Features (:func:`feature_names`): the values of ``scores`` (estimator ids or aliases), the quantiles at
    ``quantiles`` (linear interpolation) of the answer's token log-probs and, when the traces have them, of
    its token entropies (METHODS §2.8, Post-Hoc-Quantile), over the non-special tokens, and the number of
    those tokens. ``entropies=None`` uses entropies when every fitting trace has them; ``True`` demands them.
    ``model="lr"``: logistic regression (L2, ``C``) on features standardised on the fit set; ``"gbt"``:
    sklearn's ``GradientBoostingClassifier`` with :data:`GBT_SETTINGS`.

    ``C="auto"`` (default) chooses the L2 strength inside the fit set only, by the one-standard-error rule:
    stratified :data:`AUTO_C_FOLDS`-fold cross-validation of the log loss over :data:`AUTO_C_GRID`, then the
    *strongest* regularisation whose mean loss is within one standard error (across folds) of the best mean.
    Why: the features are many and strongly correlated (a dozen token quantiles beside the scores) and a
    calibration set is often a few hundred answers, so the loss-minimising ``C`` follows the fit set's
    quirks; the simplest model that fits as well generalises better to question sets it was not fitted
    on (on the built-in sets: ``benchmarks/README.md``, "Decisions"). Such strong shrinkage also pulls every
    probability towards the base rate, so with ``"auto"`` the fitted logit is then Platt-scaled
    (:class:`PlattCalibrator`, two parameters, fitted on the same folds' out-of-fold logits at the chosen
    ``C``): the ranking is kept and the spread is the one held-out answers support. With fewer than two
    answers of a class, ``"auto"`` falls back to ``C = 1``. The chosen value is stored in the fitted state
    (``C``). A number for ``C`` fits plain L2 logistic regression, without the rescaling.

    A row is a run item (``items.jsonl`` dict with ``scores``, ``trace`` and ``correct``) or an
    :class:`~tokentrust.Annotated`. The fit records the model id and the feature list; rows from another
    model, or lacking a score or the entropies, are refused. Saved as JSON (coefficients, or each tree's
    arrays evaluated in numpy), never pickle.
    """

    kind: ClassVar[str] = _LEARNED_KIND
    scores: tuple[str, ...] = ()
    model: str = "lr"
    quantiles: tuple[float, ...] = DEFAULT_QUANTILES
    entropies: bool | None = None
    C: float | str = "auto"

    def get_params(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "state_")

    # -- features -------------------------------------------------------------------------

    def _check_params(self) -> None:
        if self.model not in ("lr", "gbt"):
            raise UserInputError(f"model={self.model!r} is not valid; use 'lr' (logistic regression) or 'gbt'")
        if not self.scores:
            raise UserInputError("give at least one answer-level score (e.g. scores=('msp',))")
        q = np.asarray(self.quantiles, dtype=np.float64)
        if q.ndim != 1 or np.isnan(q).any() or (q < 0).any() or (q > 1).any():
            raise UserInputError(f"quantiles={self.quantiles!r} must be levels in [0, 1]")
        if self.C != "auto":
            try:
                _positive("C", self.C)
            except UserInputError:
                raise UserInputError(f"C={self.C!r} must be a positive number or 'auto'") from None

    def _views(self, rows: Any) -> list[_RowView]:
        views = [_row_view(r, i) for i, r in enumerate(rows)]
        if not views:
            raise UserInputError("no rows given")
        return views

    def _check_rows(self, views: list[_RowView], model_id: str | None, score_ids: list[str], entropies: bool) -> None:
        """Refuse rows from another model, or lacking a score or the entropies, naming what differs."""
        for i, v in enumerate(views):
            if model_id is not None and v.model_id is not None and v.model_id != model_id:
                raise UserInputError(f"row {i} comes from model {v.model_id!r}, but this learned confidence was "
                                     f"fitted on {model_id!r}; fit one for that model")
            missing = [s for s in score_ids if s not in v.scores]
            if missing:
                raise UserInputError(f"row {i} lacks the score(s) {', '.join(missing)} that this learned confidence "
                                     f"uses; present: {', '.join(v.scores) or 'none'}")
            if entropies and v.entropy is None:
                raise UserInputError(f"row {i}'s trace has no token entropies (a black-box backend such as openai: "
                                     "cannot give them); fit with entropies=False or use a white-box model")

    def _matrix(self, views: list[_RowView], score_ids: list[str], entropies: bool) -> np.ndarray:
        q = np.asarray(self.quantiles, dtype=np.float64)
        nan_q = np.full(q.size, np.nan)
        out = []
        for v in views:
            lp = np.quantile(v.logprobs, q) if v.logprobs.size else nan_q
            parts = [[v.scores[s] for s in score_ids], lp]
            if entropies:
                parts.append(np.quantile(v.entropy, q) if v.entropy is not None and v.entropy.size else nan_q)
            parts.append([float(v.logprobs.size)])
            out.append(np.concatenate([np.asarray(p, dtype=np.float64) for p in parts]))
        return np.vstack(out)

    def features(self, rows: Any) -> np.ndarray:
        """The feature matrix of ``rows`` (one row each, columns as :attr:`features_`); needs a fitted model."""
        self._check_fitted()
        views = self._views(rows)
        self._check_rows(views, self.model_id_, self.score_ids_, self.entropies_)
        return self._matrix(views, self.score_ids_, self.entropies_)

    # -- fit / transform ------------------------------------------------------------------

    def fit(self, rows: Any, correct: Any = None) -> LearnedConfidence:
        """Fit on ``rows``; ``correct`` (0/1 per row) defaults to each run item's ``correct``."""
        self._check_params()
        rows = list(rows)
        views = self._views(rows)
        if correct is None:
            if any(v.correct is None for v in views):
                raise UserInputError("give correct= (one 0/1 label per row): the rows carry no 'correct' field")
            correct = [v.correct for v in views]
        y = _as_1d(correct, "correct")
        if y.size != len(views) or not np.isin(y, (0.0, 1.0)).all():
            raise UserInputError(f"correct must hold one 0/1 label per row ({len(views)} rows)")
        if y.min() == y.max():
            raise UserInputError(f"all {y.size} rows have correct={int(y[0])}; fitting needs correct and wrong answers")
        models = sorted({v.model_id for v in views if v.model_id is not None})
        if len(models) > 1:
            raise UserInputError(f"rows come from several models ({', '.join(models)}); fit one per model")
        score_ids = list(dict.fromkeys(_canonical(s) for s in self.scores))
        has_entropy = [v.entropy is not None for v in views]
        if self.entropies and not all(has_entropy):
            i = has_entropy.index(False)
            raise UserInputError(f"entropies=True, but row {i}'s trace has no token entropies (a black-box backend "
                                 "such as openai: cannot give them); use entropies=False")
        entropies = bool(self.entropies is not False and all(has_entropy))
        self._check_rows(views, None, score_ids, entropies)
        x = self._matrix(views, score_ids, entropies)
        names = feature_names(score_ids, self.quantiles, entropies)
        bad = ~np.isfinite(x)
        if bad.any():
            i, j = (int(k[0]) for k in np.nonzero(bad))
            raise UserInputError(f"row {i} has no finite {names[j]} ({x[i, j]!r}); leave such rows out before fitting")
        self.model_id_ = models[0] if models else None
        self.score_ids_, self.entropies_, self.features_ = score_ids, entropies, names
        self.n_fit_ = int(y.size)
        self.state_ = _fit_lr(x, y, self.C) if self.model == "lr" else _fit_gbt(x, y)
        return self

    def transform(self, rows: Any) -> np.ndarray:
        """The probability that each row's answer is correct (NaN where a feature is undefined)."""
        x = self.features(rows)
        out = np.full(x.shape[0], np.nan)
        ok = np.isfinite(x).all(axis=1)
        if ok.any():
            out[ok] = _predict(self.state_, x[ok])
        return out

    def fit_transform(self, rows: Any, correct: Any = None) -> np.ndarray:
        rows = list(rows)
        return self.fit(rows, correct).transform(rows)

    def coefficients(self) -> dict[str, float]:
        """For ``model="lr"``: the logit's coefficient of each feature on its own scale, and ``intercept``."""
        self._check_fitted()
        if "lr" not in self.state_:
            raise UserInputError("coefficients exist only for model='lr'")
        lr = self.state_["lr"]
        coef = np.asarray(lr["coef"]) / np.asarray(lr["scale"])
        intercept = lr["intercept"] - float(coef @ np.asarray(lr["mean"]))
        return {**dict(zip(self.features_, coef.tolist(), strict=True)), "intercept": intercept}

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise UserInputError("LearnedConfidence is not fitted; call fit(rows) first")

    # -- JSON -----------------------------------------------------------------------------

    def to_json(self) -> str:
        """JSON text: ``kind``, ``params``, and once fitted the ``model`` id, ``score_ids``, ``entropies``,
        ``features`` and ``fitted`` (``{"lr": …}`` or ``{"gbt": …}``, see :func:`_fit_lr`/:func:`_fit_gbt`)."""
        params = {**self.get_params(), "scores": list(self.scores), "quantiles": list(self.quantiles)}
        fitted = self.is_fitted
        return json.dumps({
            "kind": self.kind, "version": _FORMAT_VERSION, "params": params,
            "model": self.model_id_ if fitted else None, "score_ids": self.score_ids_ if fitted else None,
            "entropies": self.entropies_ if fitted else None, "features": self.features_ if fitted else None,
            "n_fit": self.n_fit_ if fitted else None, "fitted": self.state_ if fitted else None,
        })

    @classmethod
    def from_json(cls, text: str) -> LearnedConfidence:
        """Rebuild from :meth:`to_json`; a corrupt or inconsistent document raises :class:`UserInputError`."""
        try:
            payload = json.loads(text)
            if payload["kind"] != _LEARNED_KIND:
                raise UserInputError(f"JSON holds a {payload['kind']!r} calibrator, not {_LEARNED_KIND!r}")
            params = dict(payload["params"])
            params["scores"] = tuple(params.get("scores", ()))
            params["quantiles"] = tuple(float(a) for a in params.get("quantiles", DEFAULT_QUANTILES))
            obj = cls(**params)
            state = payload.get("fitted")
            if state is not None:
                obj.model_id_, obj.score_ids_ = payload["model"], list(payload["score_ids"])
                obj.entropies_, obj.features_ = bool(payload["entropies"]), list(payload["features"])
                obj.n_fit_, obj.state_ = int(payload.get("n_fit") or 0), state
                _check_state(obj)
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            if isinstance(exc, UserInputError):
                raise
            raise UserInputError(f"not a valid learned-confidence JSON document: {type(exc).__name__}: {exc}") from exc
        return obj

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> LearnedConfidence:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))


def _fit_lr(x: np.ndarray, y: np.ndarray, C: float | str) -> dict[str, Any]:
    """``{"lr": {mean, scale, coef, intercept, C}}``: p = sigmoid(((x - mean) / scale) · coef + intercept)."""
    from sklearn.linear_model import LogisticRegression

    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    z = (x - mean) / scale
    c, held_out = _auto_c(z, y) if C == "auto" else (float(C), None)
    model = LogisticRegression(C=c, max_iter=10_000).fit(z, y)
    coef, intercept = model.coef_[0], float(model.intercept_[0])
    if held_out is not None:  # strong L2 picks the direction but pulls probabilities to the base rate: rescale
        platt = PlattCalibrator().fit(held_out, y)
        coef, intercept = coef * platt.a_, intercept * platt.a_ + platt.b_
    return {"lr": {"mean": mean.tolist(), "scale": scale.tolist(), "coef": coef.tolist(), "intercept": intercept,
                   "C": c}}


def _auto_c(z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray | None]:
    """The L2 strength ``C`` of the one-standard-error rule (see :class:`LearnedConfidence`): the smallest ``C``
    of :data:`AUTO_C_GRID` whose cross-validated mean log loss is within one standard error of the best, and
    the out-of-fold logits at that ``C`` (what the Platt rescaling is fitted on); ``(1.0, None)`` when a class
    has fewer than two rows. ``z``: standardised features, ``y``: 0/1 labels."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss
    from sklearn.model_selection import StratifiedKFold

    smaller = int(min(y.sum(), y.size - y.sum()))
    if smaller < 2:
        return 1.0, None
    splits = list(StratifiedKFold(n_splits=min(AUTO_C_FOLDS, smaller), shuffle=True, random_state=0).split(z, y))
    logits = np.empty((len(AUTO_C_GRID), y.size))
    loss = np.empty((len(splits), len(AUTO_C_GRID)))
    for k, (tr, te) in enumerate(splits):
        for m, c in enumerate(AUTO_C_GRID):
            # Newton–Cholesky: the final fit's objective, and fast for a few features on a busy machine
            fold = LogisticRegression(C=c, solver="newton-cholesky", max_iter=1_000).fit(z[tr], y[tr])
            logits[m, te] = fold.decision_function(z[te])
            loss[k, m] = log_loss(y[te], expit(logits[m, te]), labels=[0.0, 1.0])
    mean = loss.mean(axis=0)
    se = loss.std(axis=0, ddof=1) / np.sqrt(len(splits))
    best = int(np.argmin(mean))
    m = int(np.flatnonzero(mean <= mean[best] + se[best])[0])
    return float(AUTO_C_GRID[m]), logits[m]


def _fit_gbt(x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """``{"gbt": {init, learning_rate, trees}}``, each tree its sklearn ``tree_`` arrays
    (``children_left/right``, ``feature``, ``threshold``, leaf ``value``)."""
    from sklearn.ensemble import GradientBoostingClassifier

    model = GradientBoostingClassifier(**GBT_SETTINGS).fit(x, y)
    trees = [{"children_left": t.tree_.children_left.tolist(), "children_right": t.tree_.children_right.tolist(),
              "feature": t.tree_.feature.tolist(), "threshold": t.tree_.threshold.tolist(),
              "value": t.tree_.value[:, 0, 0].tolist()} for t in model.estimators_[:, 0]]
    state = {"init": 0.0, "learning_rate": float(model.learning_rate), "trees": trees}
    # the constant the boosting starts from (the log-odds of the base rate), read back exactly
    state["init"] = float(model.decision_function(x[:1])[0] - _gbt_raw(state, x[:1])[0])
    return {"gbt": state}


def _gbt_raw(state: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """The boosted log-odds, walking each tree as sklearn does (features compared as float32)."""
    x = x.astype(np.float32).astype(np.float64)
    raw = np.full(x.shape[0], float(state["init"]))
    rows = np.arange(x.shape[0])
    for tree in state["trees"]:
        left, right = np.asarray(tree["children_left"]), np.asarray(tree["children_right"])
        feat, thr, value = np.asarray(tree["feature"]), np.asarray(tree["threshold"]), np.asarray(tree["value"])
        node = np.zeros(x.shape[0], dtype=np.int64)
        while True:
            inner = left[node] != -1
            if not inner.any():
                break
            go_left = x[rows, np.where(inner, feat[node], 0)] <= thr[node]
            node = np.where(inner, np.where(go_left, left[node], right[node]), node)
        raw += state["learning_rate"] * value[node]
    return raw


def _predict(state: dict[str, Any], x: np.ndarray) -> np.ndarray:
    if "lr" in state:
        lr = state["lr"]
        z = (x - np.asarray(lr["mean"])) / np.asarray(lr["scale"])
        return expit(z @ np.asarray(lr["coef"]) + lr["intercept"])
    return expit(_gbt_raw(state["gbt"], x))


def _check_state(obj: LearnedConfidence) -> None:
    """Refuse a loaded state whose feature list or arrays do not fit together."""
    expected = feature_names(obj.score_ids_, obj.quantiles, obj.entropies_)
    if obj.features_ != expected:
        raise UserInputError(f"learned-confidence JSON lists features {obj.features_}, but its score ids and "
                             f"quantiles give {expected}")
    n = len(expected)
    if "lr" in obj.state_:
        lr = obj.state_["lr"]
        if not all(len(lr[k]) == n for k in ("mean", "scale", "coef")):
            raise UserInputError(f"learned-confidence JSON: the lr arrays must have {n} entries, one per feature")
        float(lr["intercept"])
    elif "gbt" in obj.state_:
        for t in obj.state_["gbt"]["trees"]:
            sizes = {len(t[k]) for k in ("children_left", "children_right", "feature", "threshold", "value")}
            if len(sizes) != 1 or max(t["feature"]) >= n:
                raise UserInputError("learned-confidence JSON: a tree's arrays differ in length or name an unknown feature")
    else:
        raise UserInputError("learned-confidence JSON: 'fitted' holds neither 'lr' nor 'gbt'")


# --------------------------------------------------------------------------- applying a fitted map


def apply_calibrator(annotated: Any, calibrator: Calibrator | LearnedConfidence, *, score: str | None = None) -> Any:
    """The calibrated probability of one :class:`~tokentrust.Annotated` answer, as a sequence-level
    :class:`~tokentrust.scores.Scores` (``estimator="calibrated_confidence"``, ``is_probability=True``).

    A single-score map reads the score it was fitted on (``score=`` names it for files saved before the
    score id was recorded); a map fitted on another model's answers is refused. NaN when the score is NaN.
    """
    from .scores import Level, Scores

    trace = annotated.trace
    if isinstance(calibrator, LearnedConfidence):
        p = float(calibrator.transform([annotated])[0])
        used = ", ".join(calibrator.score_ids_)
    else:
        if calibrator.model_id_ is not None and calibrator.model_id_ != trace.model_id:
            raise UserInputError(f"this calibrator was fitted on model {calibrator.model_id_!r}, but the answer "
                                 f"comes from {trace.model_id!r}; fit one for that model")
        used = calibrator.score_id_ or score
        if used is None:
            raise UserInputError("this calibrator does not record which score it was fitted on (an older file); "
                                 "pass score=, or refit it with `tokentrust calibrate`")
        if score is not None and calibrator.score_id_ is not None and _canonical(score) != calibrator.score_id_:
            raise UserInputError(f"this calibrator was fitted on {calibrator.score_id_!r}, not {score!r}")
        value = float(annotated[used].value)
        p = float("nan") if np.isnan(value) else float(calibrator.transform([value])[0])
    return Scores(estimator=CALIBRATED_ID, level=Level.SEQUENCE, spans=[list(range(len(trace)))], values=[p],
                  raw=[p], is_probability=True, extras={"calibrator": [f"{calibrator.kind}({used})"]})
