"""Known-answer tests: hand-computed similarity matrices, cluster entropies, graph scores and SAR."""

import math

import numpy as np
import pytest
from _samples import QUESTION

import tokentrust as tt
from tokentrust.backends.replay import ReplayBackend
from tokentrust.estimators.consistency import cluster_entropy
from tokentrust.estimators.graph import degree_uncertainty, eccentricities, eigv, laplacian
from tokentrust.estimators.sar import sentence_sar, token_sar_value
from tokentrust.stats.clusters import greedy_clusters, nli_equivalent
from tokentrust.stats.lexical import jaccard


def blocks(*sizes):
    """Similarity 1 inside each block (cluster), 0 across."""
    m = sum(sizes)
    w = np.zeros((m, m))
    start = 0
    for s in sizes:
        w[start : start + s, start : start + s] = 1
        start += s
    return w


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_k_equal_clusters_have_entropy_log_k(k):
    ids = np.repeat(np.arange(k), 3)
    assert cluster_entropy(ids) == pytest.approx(math.log(k))
    assert cluster_entropy(ids, np.full(len(ids), -2.0)) == pytest.approx(math.log(k))


def test_probability_weighted_entropy_by_hand():
    ids = np.array([0, 0, 1])
    logw = np.log([0.2, 0.2, 0.6])  # cluster masses 0.4 and 0.6
    assert cluster_entropy(ids, logw) == pytest.approx(-(0.4 * math.log(0.4) + 0.6 * math.log(0.6)))
    assert cluster_entropy(ids) == pytest.approx(-(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3)))


def test_greedy_clustering_compares_with_first_member_only():
    # 0~1 and 1~2 but not 0~2: 2 opens its own cluster (non-transitive, order-dependent)
    eq = {(0, 1), (1, 2)}
    ids = greedy_clusters(3, lambda a, b: (a, b) in eq or (b, a) in eq)
    assert ids.tolist() == [0, 0, 1]


def test_nli_rules_strict_and_lenient():
    p = np.zeros((2, 2, 3))
    p[0, 0] = p[1, 1] = (1, 0, 0)
    p[0, 1] = (0.8, 0.1, 0.1)  # entail
    p[1, 0] = (0.2, 0.7, 0.1)  # neutral
    assert not nli_equivalent(p, "strict")(0, 1)
    assert nli_equivalent(p, "lenient")(0, 1)
    p[1, 0] = (0.1, 0.2, 0.7)  # contradiction
    assert not nli_equivalent(p, "lenient")(0, 1)


def test_laplacian_and_eigv_against_numpy():
    rng = np.random.default_rng(0)
    a = rng.uniform(size=(6, 6))
    w = (a + a.T) / 2
    np.fill_diagonal(w, 1)
    d = np.diag(w.sum(axis=1))
    d_inv_sqrt = np.linalg.inv(np.sqrt(d))
    ref = np.eye(6) - d_inv_sqrt @ w @ d_inv_sqrt
    np.testing.assert_allclose(laplacian(w), ref, atol=1e-12)
    lam = np.linalg.eigvals(ref).real
    assert eigv(w) == pytest.approx(np.sum(np.maximum(0, 1 - lam)))


@pytest.mark.parametrize("sizes,k", [((4,), 1), ((2, 2), 2), ((3, 2, 1), 3), ((1, 1, 1, 1), 4)])
def test_eigv_counts_disjoint_clusters(sizes, k):
    assert eigv(blocks(*sizes)) == pytest.approx(k)


def test_degree_by_hand():
    w = np.array([[1, 0.5, 0.0], [0.5, 1, 0.25], [0.0, 0.25, 1]])
    # trace(mI − D)/m² = (9 − sum W)/9 ; sum W = 3 + 2·0.75 = 4.5
    assert degree_uncertainty(w) == pytest.approx(4.5 / 9)
    assert degree_uncertainty(np.ones((4, 4))) == pytest.approx(0.0)


def test_eccentricity_by_hand():
    # all different (W = I): every eigenvalue 0, V orthogonal, ‖v_j − v̄‖² = 1 − 1/m
    m = 5
    np.testing.assert_allclose(eccentricities(np.eye(m)), np.full(m, math.sqrt(1 - 1 / m)), atol=1e-9)
    # two clusters of two: v = (1/√2, 0) or (0, 1/√2), v̄ = (1/(2√2), 1/(2√2)) → distance 1/2 each
    np.testing.assert_allclose(eccentricities(blocks(2, 2)), np.full(4, 0.5), atol=1e-9)
    # one cluster: only the constant eigenvector stays → no spread
    np.testing.assert_allclose(eccentricities(np.ones((4, 4))), 0, atol=1e-9)


def test_graph_estimators_on_recorded_clusters():
    # answer + 4 samples: 2 say Hugo, 2 say Dickens; jaccard similarity is 1 within, 0 across
    b = ReplayBackend.from_texts(QUESTION, "Victor Hugo", ["Victor Hugo", "Charles Dickens"] * 2)
    ctx = tt.Context(b.generate(QUESTION), b)

    def value(spec):
        return ctx.get(tt.build_estimator(f"{spec}:n_samples=4,similarity=lexical:jaccard")).value

    assert value("eigv") == pytest.approx(-2.0)
    assert value("deg") == pytest.approx(1 - 8 / 16)
    assert value("ecc") == pytest.approx(-1.0)
    assert value("num_sem_sets") == -2
    assert value("dse") == pytest.approx(-math.log(2))
    # the greedy answer joins the Hugo cluster: degree 3 of 5 nodes
    assert value("c_deg") == pytest.approx(3 / 5)
    ecc5 = eccentricities(np.array([[1, 1, 0, 1, 0], [1, 1, 0, 1, 0], [0, 0, 1, 0, 1], [1, 1, 0, 1, 0],
                                    [0, 0, 1, 0, 1]], dtype=float))
    assert value("c_ecc") == pytest.approx(-ecc5[0])


def test_lexical_similarity_against_rouge_score():
    from rouge_score import rouge_scorer

    samples = ["Victor Hugo wrote it", "It was Victor Hugo", "Hugo"]
    b = ReplayBackend.from_texts(QUESTION, "Victor Hugo", samples)
    ctx = tt.Context(b.generate(QUESTION), b)
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    pairs = [(0, 1), (0, 2), (1, 2)]
    expected = np.mean([scorer.score(samples[i], samples[j])["rougeL"].fmeasure for i, j in pairs])
    assert ctx.get(tt.build_estimator("lexical_similarity:n_samples=3")).value == pytest.approx(expected)
    exp_j = np.mean([jaccard(samples[i], samples[j]) for i, j in pairs])
    assert ctx.get(tt.build_estimator("lexical_similarity:n_samples=3,metric=jaccard")).value == pytest.approx(exp_j)
    assert jaccard("Victor Hugo", "victor hugo wrote") == pytest.approx(2 / 3)


def test_sar_formulas_by_hand():
    log_p = np.log([0.5, 0.25])
    g = np.array([[1.0, 0.4], [0.4, 1.0]])
    t = 0.5
    e1 = -math.log(0.5 + 0.4 * 0.25 / t)
    e2 = -math.log(0.25 + 0.4 * 0.5 / t)
    assert sentence_sar(log_p, g, t) == pytest.approx((e1 + e2) / 2)
    trace = ReplayBackend.from_texts(QUESTION, "a b", ["a b"], sample_logprobs=[-3.0]).sample(QUESTION, 1)[0]
    assert token_sar_value(trace, np.array([0.25, 0.75])) == pytest.approx(1.5 * 0.25 + 1.5 * 0.75)


def test_semantic_entropy_weights_clusters_by_sequence_probability():
    samples = ["Victor Hugo", "Victor Hugo", "Charles Dickens"]
    b = ReplayBackend.from_texts(QUESTION, "Victor Hugo", samples, sample_logprobs=[-2.0, -2.0, -0.5])
    ctx = tt.Context(b.generate(QUESTION), b)
    s = ctx.get(tt.build_estimator("semantic_entropy:n_samples=3,similarity=lexical:jaccard"))
    # mean token log-prob per sample (2 words): -1, -1, -0.25
    w = np.exp([-1.0, -1.0, -0.25])
    p = np.array([w[0] + w[1], w[2]]) / w.sum()
    assert s.raw[0] == pytest.approx(-(p * np.log(p)).sum())
    assert s.value == pytest.approx(-s.raw[0])
