"""Ranking metrics against scikit-learn, scipy and hand-computed numbers (METHODS §11.1–11.4, 11.8)."""

from __future__ import annotations

import dataclasses
import json
import warnings

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import auc, average_precision_score, roc_auc_score

from tokentrust.errors import UndefinedMetricWarning, UserInputError
from tokentrust.metrics.ranking import (
    RejectionCurve,
    auarc,
    kendall,
    pearson,
    pr_auc,
    prr,
    rejection_curve,
    roc_auc,
    selective_accuracy,
    spearman,
)
from tokentrust.registry import metrics as metric_registry


@pytest.fixture
def binary_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=200)
    c = rng.normal(size=200) + 0.8 * y
    return y, c


# --------------------------------------------------------------------------- ROC / PR


def test_roc_auc_matches_sklearn(binary_data):
    y, c = binary_data
    assert roc_auc(y, c) == pytest.approx(roc_auc_score(y, c), abs=1e-15)


def test_roc_auc_accepts_bools_and_lists(binary_data):
    y, c = binary_data
    assert roc_auc(list(y.astype(bool)), list(c)) == pytest.approx(roc_auc_score(y, c))


def test_roc_auc_maps_infinities_like_lm_polygraph():
    y = np.array([1, 0, 1, 0, 1])
    c = np.array([np.inf, 0.2, 0.5, -np.inf, 0.1])
    c_before = c.copy()
    # +inf -> max finite + 1 = 1.5, -inf -> min finite - 1 = -0.9
    expected = roc_auc_score(y, [1.5, 0.2, 0.5, -0.9, 0.1])
    assert roc_auc(y, c) == pytest.approx(expected)
    np.testing.assert_array_equal(c, c_before)  # caller's array untouched


def test_roc_auc_hand_example_with_tie():
    # pairs (correct, incorrect): (0.9,0.3) win, (0.9,0.5) win, (0.5,0.3) win, (0.5,0.5) tie -> 3.5/4
    assert roc_auc([1, 1, 0, 0], [0.9, 0.5, 0.3, 0.5]) == pytest.approx(0.875)


def test_pr_auc_both_variants_match_sklearn(binary_data):
    y, c = binary_data
    assert pr_auc(y, c) == pytest.approx(average_precision_score(y, c))
    assert pr_auc(y, c, positive="incorrect") == pytest.approx(average_precision_score(1 - y, -c))


def test_pr_auc_rejects_bad_positive(binary_data):
    y, c = binary_data
    with pytest.raises(UserInputError, match="positive"):
        pr_auc(y, c, positive="wrong")  # type: ignore[arg-type]


@pytest.mark.parametrize("fn", [roc_auc, pr_auc])
@pytest.mark.parametrize("label", [0, 1])
def test_one_class_is_nan_with_warning(fn, label):
    with pytest.warns(UndefinedMetricWarning, match="undefined"):
        value = fn([label] * 4, [0.1, 0.2, 0.3, 0.4])
    assert np.isnan(value)


# --------------------------------------------------------------------------- PRR


def test_prr_hand_worked_example():
    quality = [2.0, 4.0, 6.0, 10.0]  # continuous quality (e.g. ROUGE x 10)
    confidence = [0.1, 0.4, 0.3, 0.9]
    # 1. min-max: (g - 2) / 8 = [0, 0.25, 0.5, 1]
    # 2. most confident first: items 3, 1, 2, 0 -> qualities 1, 0.25, 0.5, 0
    #    running means: 1, 1.25/2 = 0.625, 1.75/3 = 0.58333, 1.75/4 = 0.4375
    pra = (1 + 0.625 + 1.75 / 3 + 0.4375) / 4  # = 0.661458...
    # 3. oracle order 1, 0.5, 0.25, 0 -> running means 1, 0.75, 0.58333, 0.4375
    oracle = (1 + 0.75 + 1.75 / 3 + 0.4375) / 4  # = 0.692708...
    #    random: LM-Polygraph's loop (seed 42, one arange shuffled in place 1000 times and used
    #    as the uncertainty), here over the quality-sorted items [0, 0.25, 0.5, 1].
    q_sorted = np.array([0.0, 0.25, 0.5, 1.0])
    rng = np.random.RandomState(42)
    order = np.arange(4)
    pras = []
    for _ in range(1000):
        rng.shuffle(order)
        kept = q_sorted[np.argsort(order)]
        pras.append(np.mean(np.cumsum(kept) / np.arange(1, 5)))
    random = float(np.mean(pras))
    assert random == pytest.approx(0.4375, abs=0.01)  # its expectation is mean quality
    expected = (pra - random) / (oracle - random)
    assert prr(quality, confidence) == pytest.approx(expected, rel=1e-12)
    assert 0.8 < expected < 0.9


def test_prr_max_rejection_changes_the_range():
    # R = floor(0.5 * 4) = 2: only k = 3, 4 count. Running means at k = 3, 4 equal the oracle's
    # (0.58333, 0.4375), so PRA = oracle and PRR = 1.
    assert prr([2.0, 4.0, 6.0, 10.0], [0.1, 0.4, 0.3, 0.9], max_rejection=0.5) == pytest.approx(1.0)


def test_prr_perfect_random_and_reversed():
    rng = np.random.default_rng(1)
    q = rng.uniform(size=300)
    assert prr(q, q) == pytest.approx(1.0)
    assert prr(q, -q) < -0.9
    assert abs(prr(q, rng.normal(size=300))) < 0.2


def test_prr_matches_lm_polygraph_without_ties_up_to_monte_carlo():
    # LM-Polygraph shuffles input order; the baseline differs only by Monte-Carlo noise.
    rng = np.random.default_rng(3)
    q = rng.uniform(size=50)
    c = q + rng.normal(scale=0.3, size=50)
    qn = (q - q.min()) / (q.max() - q.min())
    pra = np.mean(np.cumsum(qn[np.argsort(-c)]) / np.arange(1, 51))
    oracle = np.mean(np.cumsum(np.sort(qn)[::-1]) / np.arange(1, 51))
    exact_random = qn.mean()  # the expectation the 1000 shuffles estimate
    assert prr(q, c) == pytest.approx((pra - exact_random) / (oracle - exact_random), abs=0.02)


def test_prr_constant_quality_is_nan_with_warning():
    with pytest.warns(UndefinedMetricWarning, match="constant"):
        assert np.isnan(prr([0.3, 0.3, 0.3], [1.0, 2.0, 3.0]))


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5])
def test_prr_rejects_bad_max_rejection(bad):
    with pytest.raises(UserInputError, match="max_rejection"):
        prr([0, 1, 1], [0.1, 0.2, 0.3], max_rejection=bad)


# --------------------------------------------------------------------------- AUARC, selective


def test_auarc_hand_example():
    y = [1, 0, 1, 1, 0]
    c = [0.9, 0.8, 0.7, 0.2, 0.1]
    # running accuracy most-confident first: 1, 1/2, 2/3, 3/4, 3/5 on x = 0, .25, .5, .75, 1
    # trapezoid: .25 * ((1+.5)/2 + (.5+2/3)/2 + (2/3+.75)/2 + (.75+.6)/2)
    expected = 0.25 * ((1 + 0.5) / 2 + (0.5 + 2 / 3) / 2 + (2 / 3 + 0.75) / 2 + (0.75 + 0.6) / 2)
    assert expected == pytest.approx(0.6791667, abs=1e-7)
    assert auarc(y, c) == pytest.approx(expected, rel=1e-12)
    assert auarc(y, c) == pytest.approx(auc(np.linspace(0, 1, 5), [1, 1 / 2, 2 / 3, 3 / 4, 3 / 5]))


def test_auarc_single_item_is_nan_with_warning():
    with pytest.warns(UndefinedMetricWarning):
        assert np.isnan(auarc([1], [0.5]))


def test_selective_accuracy_hand_examples():
    y = [1, 0, 1, 1, 0]
    c = [0.9, 0.8, 0.7, 0.2, 0.1]
    assert selective_accuracy(y, c, coverage=0.6) == pytest.approx(2 / 3)  # keep 3: 1, 0, 1
    assert selective_accuracy(y, c, coverage=1.0) == pytest.approx(0.6)
    assert selective_accuracy(y, c, coverage=0.2) == pytest.approx(1.0)
    # tie at the cut: items 1 and 2 tie at 0.5 with labels 1 and 0 -> each counts 0.5
    assert selective_accuracy([1, 1, 0, 0], [0.9, 0.5, 0.5, 0.1], coverage=0.5) == pytest.approx(0.75)


def test_selective_accuracy_float_coverage_rounding():
    y = [1] * 7 + [0] * 3
    c = np.arange(10, 0, -1)
    assert selective_accuracy(y, c, coverage=0.7) == pytest.approx(1.0)  # 0.7*10 -> 7, not 8


@pytest.mark.parametrize("bad", [0.0, 1.01, -1])
def test_selective_accuracy_rejects_bad_coverage(bad):
    with pytest.raises(UserInputError, match="coverage"):
        selective_accuracy([0, 1], [0.1, 0.2], coverage=bad)


# --------------------------------------------------------------------------- rejection curve


def test_rejection_curve_is_a_named_frozen_object():
    y = [1, 0, 1, 1, 0]
    c = [0.9, 0.8, 0.7, 0.2, 0.1]
    curve = rejection_curve(y, c)
    assert isinstance(curve, RejectionCurve)
    assert not isinstance(curve, tuple)
    np.testing.assert_allclose(curve.coverage, [0.2, 0.4, 0.6, 0.8, 1.0])
    np.testing.assert_allclose(curve.accuracy, [1, 1 / 2, 2 / 3, 3 / 4, 3 / 5])
    np.testing.assert_allclose(curve.oracle, [1, 1, 1, 3 / 4, 3 / 5])
    np.testing.assert_allclose(curve.random, [0.6] * 5)
    np.testing.assert_allclose(curve.threshold, [0.9, 0.8, 0.7, 0.2, 0.1])
    with pytest.raises(dataclasses.FrozenInstanceError):
        curve.accuracy = np.zeros(5)  # type: ignore[misc]
    with pytest.raises(ValueError):
        curve.accuracy[0] = 0.0
    assert json.loads(json.dumps(curve.to_dict()))["accuracy"][1] == 0.5


# --------------------------------------------------------------------------- correlations


@pytest.mark.parametrize(
    ("fn", "ref"), [(spearman, stats.spearmanr), (pearson, stats.pearsonr), (kendall, stats.kendalltau)]
)
def test_correlations_match_scipy(fn, ref):
    rng = np.random.default_rng(2)
    q = rng.uniform(size=100)
    c = q + rng.normal(scale=0.5, size=100)
    assert fn(q, c) == pytest.approx(ref(q, c).statistic, rel=1e-12)


@pytest.mark.parametrize("fn", [spearman, pearson, kendall])
@pytest.mark.parametrize("constant", ["correct", "confidence"])
def test_correlations_constant_input_is_nan_with_warning(fn, constant):
    q = [0.2, 0.5, 0.9]
    c = [0.1, 0.4, 0.3]
    if constant == "correct":
        q = [0.5, 0.5, 0.5]
    else:
        c = [0.5, 0.5, 0.5]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no scipy warning leaks, only ours
        with pytest.raises(UndefinedMetricWarning, match=constant):
            fn(q, c)
    with pytest.warns(UndefinedMetricWarning):
        assert np.isnan(fn(q, c))


def test_pearson_rejects_infinite_confidence():
    with pytest.raises(UserInputError, match=r"confidence\[1\]"):
        pearson([0.1, 0.2, 0.3], [0.0, np.inf, 1.0])


# --------------------------------------------------------------------------- validation / contract

SCALAR_RANKING = [roc_auc, pr_auc, prr, auarc, selective_accuracy, spearman, pearson, kendall]


@pytest.mark.parametrize("fn", SCALAR_RANKING)
def test_nan_confidence_rejected_naming_index(fn):
    with pytest.raises(UserInputError, match=r"confidence\[2\] is NaN"):
        fn([1, 0, 1, 0], [0.1, 0.2, np.nan, 0.4])


@pytest.mark.parametrize("fn", SCALAR_RANKING)
def test_length_mismatch_and_empty_rejected(fn):
    with pytest.raises(UserInputError, match="same length"):
        fn([1, 0, 1], [0.1, 0.2])
    with pytest.raises(UserInputError, match="empty"):
        fn([], [])


@pytest.mark.parametrize("fn", [roc_auc, pr_auc, auarc, selective_accuracy])
def test_binary_metrics_reject_non_binary_correct(fn):
    with pytest.raises(UserInputError, match=r"correct\[1\] = 0.5"):
        fn([1, 0.5, 0], [0.1, 0.2, 0.3])


@pytest.mark.parametrize("fn", SCALAR_RANKING)
def test_order_invariance(fn):
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, size=60)
    c = np.round(rng.normal(size=60) + y, 1)  # rounding creates ties on purpose
    perm = rng.permutation(60)
    assert fn(y[perm], c[perm]) == pytest.approx(fn(y, c), rel=1e-12, abs=1e-15)


def test_registry_attributes_and_aliases():
    for name in ("roc_auc", "pr_auc", "prr", "auarc", "selective_accuracy", "spearman", "pearson", "kendall"):
        fn = metric_registry.get(name)
        assert fn.higher_is_better is True
        assert fn.needs_probability is False
    assert metric_registry.get("auroc") is roc_auc
    assert metric_registry.get("average_precision") is pr_auc
