"""Calibration maps (METHODS §12): agreement with scikit-learn, effect on ECE, JSON round trips."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.special import expit
from sklearn.isotonic import IsotonicRegression

from tokentrust.calibration import (
    Calibrator,
    HistogramBinningCalibrator,
    IsotonicCalibrator,
    PlattCalibrator,
    TemperatureCalibrator,
    load_calibrator,
    make_calibrator,
)
from tokentrust.errors import UnknownNameError, UserInputError
from tokentrust.metrics.calibration import ece

KINDS = {
    "temperature": TemperatureCalibrator,
    "platt": PlattCalibrator,
    "isotonic": IsotonicCalibrator,
    "histogram": HistogramBinningCalibrator,
}


def overconfident(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores that are logits 3x too sharp: true P(correct) = sigmoid(s / 3)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=1.5, size=n)
    y = (rng.uniform(size=n) < expit(z)).astype(int)
    return 3.0 * z, y


@pytest.fixture(scope="module")
def splits():
    return overconfident(4000, seed=0), overconfident(4000, seed=1)


# --------------------------------------------------------------------------- behaviour


def test_isotonic_equals_sklearn(splits):
    (s, y), (s_test, _) = splits
    ref = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(s, y)
    ours = IsotonicCalibrator().fit(s, y)
    probe = np.r_[s_test, s.min() - 5, s.max() + 5]
    np.testing.assert_allclose(ours.transform(probe), ref.predict(probe), rtol=0, atol=1e-12)


def test_platt_is_monotone_and_improves_ece(splits):
    (s, y), (s_test, y_test) = splits
    cal = PlattCalibrator().fit(s, y)
    grid = np.linspace(-15, 15, 301)
    assert np.all(np.diff(cal.transform(grid)) >= 0)
    assert cal.a_ == pytest.approx(1 / 3, rel=0.15)  # recovers the 3x sharpening
    before = ece(y_test, expit(s_test))
    after = ece(y_test, cal.transform(s_test))
    assert after < before / 2


def test_platt_matches_sklearn_sigmoid_calibration(splits):
    sk_cal = pytest.importorskip("sklearn.calibration")
    if not hasattr(sk_cal, "_sigmoid_calibration"):
        pytest.skip("private sklearn helper not available")
    (s, y), _ = splits
    a, b = sk_cal._sigmoid_calibration(s, y)  # P = 1 / (1 + exp(a*s + b)), same Platt targets
    cal = PlattCalibrator().fit(s, y)
    assert cal.a_ == pytest.approx(-a, rel=1e-3)
    assert cal.b_ == pytest.approx(-b, abs=1e-3)


def test_temperature_recovers_sharpening_and_improves_ece(splits):
    (s, y), (s_test, y_test) = splits
    cal = TemperatureCalibrator().fit(s, y)
    assert cal.temperature_ == pytest.approx(3.0, rel=0.15)
    assert ece(y_test, cal.transform(s_test)) < ece(y_test, expit(s_test)) / 2


def test_temperature_prob_input_equals_logit_input(splits):
    (s, y), (s_test, _) = splits
    on_logits = TemperatureCalibrator().fit(s, y)
    on_probs = TemperatureCalibrator(score_type="prob").fit(expit(s), y)
    assert on_probs.temperature_ == pytest.approx(on_logits.temperature_, rel=1e-4)
    np.testing.assert_allclose(on_probs.transform(expit(s_test)), on_logits.transform(s_test), atol=1e-4)
    with pytest.raises(UserInputError, match="outside"):
        on_probs.transform([0.2, 1.5])


def test_histogram_hand_example():
    s = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    y = [0, 0, 1, 0, 1, 1]
    cal = HistogramBinningCalibrator(n_bins=2).fit(s, y)
    # median edge 0.35: bins {.1,.2,.3} (1 of 3 correct) and {.4,.5,.6} (2 of 3)
    # Beta(1,1) posterior means: (1+1)/(3+2) = .4 and (2+1)/(3+2) = .6
    np.testing.assert_allclose(cal.bin_values_, [0.4, 0.6])
    np.testing.assert_allclose(cal.transform([-5.0, 0.3, 0.35, 0.36, 9.0]), [0.4, 0.4, 0.4, 0.6, 0.6])


@pytest.mark.parametrize("kind", KINDS)
def test_outputs_are_probabilities_and_inputs_untouched(kind, splits):
    (s, y), (s_test, _) = splits
    s_copy, y_copy = s.copy(), y.copy()
    out = make_calibrator(kind).fit(s, y).transform(np.r_[s_test, np.inf, -np.inf])
    assert out.shape == (s_test.size + 2,)
    assert np.all((out >= 0) & (out <= 1))
    np.testing.assert_array_equal(s, s_copy)
    np.testing.assert_array_equal(y, y_copy)


# --------------------------------------------------------------------------- JSON


@pytest.mark.parametrize("kind", KINDS)
def test_json_round_trip_gives_identical_transform(kind, splits, tmp_path):
    (s, y), (s_test, _) = splits
    cal = make_calibrator(kind).fit(s, y)
    text = cal.to_json()
    payload = json.loads(text)
    assert payload["kind"] == kind
    again = Calibrator.from_json(text)
    assert type(again) is KINDS[kind]
    np.testing.assert_array_equal(again.transform(s_test), cal.transform(s_test))

    path = tmp_path / f"{kind}.json"
    cal.save(path)
    loaded = load_calibrator(path)
    assert type(loaded) is KINDS[kind]
    np.testing.assert_array_equal(loaded.transform(s_test), cal.transform(s_test))
    assert type(KINDS[kind].load(path)) is KINDS[kind]


def test_unfitted_round_trip_keeps_params():
    cal = Calibrator.from_json(HistogramBinningCalibrator(n_bins=7).to_json())
    assert isinstance(cal, HistogramBinningCalibrator)
    assert cal.n_bins == 7
    assert not cal.is_fitted


def test_from_json_on_wrong_class_raises():
    text = PlattCalibrator().fit([0.0, 1.0, 2.0], [0, 1, 1]).to_json()
    with pytest.raises(UserInputError, match="platt"):
        IsotonicCalibrator.from_json(text)
    with pytest.raises(UserInputError, match="not a tokentrust calibrator"):
        Calibrator.from_json("{}")


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("kind", KINDS)
def test_transform_before_fit_raises(kind):
    with pytest.raises(UserInputError, match="not fitted"):
        make_calibrator(kind).transform([0.1, 0.2])


def test_make_calibrator_unknown_kind_suggests():
    with pytest.raises(UnknownNameError, match="Did you mean 'isotonic'"):
        make_calibrator("isotonik")


def test_make_calibrator_bad_params():
    with pytest.raises(UserInputError, match="bad parameters"):
        make_calibrator("platt", temperature=2)


def test_constructors_are_keyword_only_and_only_store():
    with pytest.raises(TypeError):
        HistogramBinningCalibrator(5)  # type: ignore[misc]
    cal = HistogramBinningCalibrator(n_bins=-3)  # stored, validated at fit
    assert cal.get_params() == {"n_bins": -3}
    with pytest.raises(UserInputError, match="n_bins=-3"):
        cal.fit([0.1, 0.2], [0, 1])


def test_fit_validation():
    cal = PlattCalibrator()
    with pytest.raises(UserInputError, match=r"scores\[1\]"):
        cal.fit([0.1, np.nan], [0, 1])
    with pytest.raises(UserInputError, match="binary"):
        cal.fit([0.1, 0.2], [0, 2])
    with pytest.raises(UserInputError, match="same length"):
        cal.fit([0.1, 0.2, 0.3], [0, 1])
    cal.fit([0.1, 0.2, 0.3], [0, 1, 1])
    with pytest.raises(UserInputError, match=r"scores\[0\]"):
        cal.transform([np.nan])
