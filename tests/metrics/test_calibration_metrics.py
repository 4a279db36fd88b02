"""ECE, Brier and reliability diagrams against hand-computed numbers and scikit-learn (METHODS §11.6–11.7)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss

from tokentrust.errors import UserInputError
from tokentrust.metrics.calibration import ReliabilityDiagram, brier, ece, reliability_diagram
from tokentrust.registry import metrics as metric_registry

PROB = [0.1, 0.2, 0.4, 0.6, 0.8, 0.9]
CORRECT = [0, 1, 0, 0, 1, 1]


def test_ece_uniform_hand_example():
    # 2 equal-width bins [0, .5], (.5, 1]:
    #   bin 0: {.1, .2, .4} conf 0.7/3 = .2333, acc 1/3 -> gap .1
    #   bin 1: {.6, .8, .9} conf 2.3/3 = .7667, acc 2/3 -> gap .1
    # ECE = 3/6 * .1 + 3/6 * .1 = .1
    assert ece(CORRECT, PROB, n_bins=2) == pytest.approx(0.1)


def test_ece_quantile_hand_example():
    # 3 equal-mass bins at the quantiles of PROB: edges .1, .3333, .6667, .9
    #   {.1, .2}: conf .15, acc .5 -> gap .35
    #   {.4, .6}: conf .5,  acc 0  -> gap .5
    #   {.8, .9}: conf .85, acc 1  -> gap .15
    # ECE = 2/6 * (.35 + .5 + .15) = 1/3
    assert ece(CORRECT, PROB, n_bins=3, strategy="quantile") == pytest.approx(1 / 3)


def test_ece_bin_boundaries_are_right_closed():
    # 5 bins with edges .2, .4, ...: 0.2 falls in [0, .2] with 0.1, so that bin has conf .15, acc 1
    # and 0.3 sits alone in (.2, .4] with acc 0: ECE = 2/3 * .85 + 1/3 * .3 = (1.7 + .3) / 3
    assert ece([1, 1, 0], [0.1, 0.2, 0.3], n_bins=5) == pytest.approx((1.7 + 0.3) / 3)


def test_perfectly_calibrated_bins_give_zero_ece():
    assert ece([1, 0, 1, 0], [0.5, 0.5, 0.5, 0.5]) == pytest.approx(0.0)
    assert ece([1, 1], [1.0, 1.0]) == pytest.approx(0.0)
    assert ece([0, 0], [0.0, 0.0]) == pytest.approx(0.0)


def test_brier_matches_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=100)
    p = rng.uniform(size=100)
    assert brier(y, p) == pytest.approx(brier_score_loss(y, p), rel=1e-12)
    assert brier(CORRECT, PROB) == pytest.approx(np.mean((np.array(PROB) - np.array(CORRECT)) ** 2))


@pytest.mark.parametrize("fn", [ece, brier, reliability_diagram])
@pytest.mark.parametrize(("bad", "text"), [(1.2, "1.2"), (-0.01, "-0.01"), (np.inf, "inf")])
def test_probability_metrics_reject_values_outside_unit_interval(fn, bad, text):
    with pytest.raises(UserInputError, match=rf"prob\[2\] = {text}"):
        fn([1, 0, 1], [0.5, 0.5, bad])


@pytest.mark.parametrize("fn", [ece, brier])
def test_nan_probability_rejected_naming_index(fn):
    with pytest.raises(UserInputError, match=r"prob\[0\] is NaN"):
        fn([1, 0], [np.nan, 0.5])


@pytest.mark.parametrize("fn", [ece, brier])
def test_non_binary_correct_rejected(fn):
    with pytest.raises(UserInputError, match="binary"):
        fn([1, 0.7], [0.4, 0.5])


def test_bad_bin_arguments():
    with pytest.raises(UserInputError, match="n_bins"):
        ece(CORRECT, PROB, n_bins=0)
    with pytest.raises(UserInputError, match="strategy"):
        ece(CORRECT, PROB, strategy="equal")  # type: ignore[arg-type]


def test_reliability_diagram_fields():
    diagram = reliability_diagram(CORRECT, PROB, n_bins=4)
    assert isinstance(diagram, ReliabilityDiagram)
    np.testing.assert_allclose(diagram.bin_edges, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_array_equal(diagram.counts, [2, 1, 1, 2])
    np.testing.assert_allclose(diagram.mean_confidence, [0.15, 0.4, 0.6, 0.85])
    np.testing.assert_allclose(diagram.accuracy, [0.5, 0, 0, 1])
    assert diagram.n_bins == 4
    assert diagram.ece == pytest.approx(ece(CORRECT, PROB, n_bins=4))
    json.dumps(diagram.to_dict())


def test_reliability_diagram_empty_bins_are_nan_and_skipped():
    diagram = reliability_diagram([1, 0], [0.95, 0.05], n_bins=10)
    assert diagram.counts.sum() == 2
    assert np.isnan(diagram.accuracy[4])
    assert diagram.to_dict()["accuracy"][4] is None
    assert diagram.ece == pytest.approx(0.05)


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
def test_order_invariance(strategy):
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, size=80)
    p = np.round(rng.uniform(size=80), 2)
    perm = rng.permutation(80)
    assert ece(y[perm], p[perm], strategy=strategy) == pytest.approx(ece(y, p, strategy=strategy))
    assert brier(y[perm], p[perm]) == pytest.approx(brier(y, p))


def test_inputs_not_mutated():
    p = np.array(PROB)
    y = np.array(CORRECT)
    ece(y, p, strategy="quantile")
    np.testing.assert_array_equal(p, PROB)
    np.testing.assert_array_equal(y, CORRECT)


def test_registry_attributes():
    for name in ("ece", "brier"):
        fn = metric_registry.get(name)
        assert fn.higher_is_better is False
        assert fn.needs_probability is True
