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
    "Calibrator",
    "HistogramBinningCalibrator",
    "IsotonicCalibrator",
    "PlattCalibrator",
    "TemperatureCalibrator",
    "calibrators",
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


def load_calibrator(path: str | Path) -> Calibrator:
    """Load any calibrator saved with :meth:`Calibrator.save`; the class comes from its ``kind``."""
    return Calibrator.load(path)
