"""Learned confidence: synthetic data with a known optimum, JSON round trips (never pickle), refusals,
cross-fitting, and on small real runs of the default model: calibrate --method learned, transfer, export."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tokentrust.bench.calibrate import calibrate_run, cross_fit
from tokentrust.bench.transfer import EXPORT_FIELDS, export_rows, transfer
from tokentrust.calibration import (
    AUTO_C_FOLDS,
    AUTO_C_GRID,
    CALIBRATED_ID,
    DEFAULT_QUANTILES,
    GBT_SETTINGS,
    LearnedConfidence,
    PlattCalibrator,
    apply_calibrator,
    calibrator_from_json,
    feature_names,
    load_calibrator,
)
from tokentrust.errors import UserInputError
from tokentrust.metrics import roc_auc

TRUE_COEF = {"a": 2.0, "b": -1.0}
TRUE_INTERCEPT = 0.5
ESTIMATORS = ["msp", "mean_token_entropy", "perplexity"]
ENV = {**os.environ, "COLUMNS": "400", "OMP_NUM_THREADS": "1"}


def synthetic(n, *, seed=0, entropy=True, model="toy-model"):
    """Rows like run items: scores a, b drive a logistic model; the token log-probs and entropies are noise."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(size=n)
    p = 1 / (1 + np.exp(-(TRUE_INTERCEPT + TRUE_COEF["a"] * a + TRUE_COEF["b"] * b)))
    y = rng.random(n) < p
    rows = []
    for i in range(n):
        length = int(rng.integers(3, 9))
        trace = {"model_id": model, "logprobs": rng.normal(-1, 0.3, length).tolist(), "special": [False] * length}
        if entropy:
            trace["entropy"] = rng.random(length).tolist()
        rows.append({"scores": {"a": {"value": a[i]}, "b": {"value": b[i]}}, "trace": trace, "correct": bool(y[i])})
    return rows, p, y


# --------------------------------------------------------------------------- synthetic: known optimum


def test_lr_recovers_known_coefficients_and_the_bayes_roc_auc():
    fit_rows, _, _ = synthetic(2000, seed=1)
    test_rows, p_true, y = synthetic(2000, seed=2)
    lc = LearnedConfidence(scores=("a", "b")).fit(fit_rows)
    assert lc.features_ == feature_names(["a", "b"], DEFAULT_QUANTILES, True)
    coef = lc.coefficients()
    assert coef["score:a"] == pytest.approx(TRUE_COEF["a"], rel=0.15)
    assert coef["score:b"] == pytest.approx(TRUE_COEF["b"], rel=0.15)
    p = lc.transform(test_rows)
    assert np.mean(np.abs(p - p_true)) < 0.05  # close to the true probabilities, so calibrated
    assert roc_auc(y, p) == pytest.approx(roc_auc(y, p_true), abs=0.015)  # the Bayes-optimal ranking


@pytest.mark.parametrize("model", ["lr", "gbt"])
def test_json_round_trip_reproduces_sklearn(model, tmp_path):
    rows, _, _ = synthetic(300, seed=3)
    probe, _, _ = synthetic(200, seed=4)
    lc = LearnedConfidence(scores=("a", "b"), model=model, **({"C": 1.0} if model == "lr" else {})).fit(rows)
    path = tmp_path / "conf.json"
    lc.save(path)
    doc = json.loads(path.read_text())
    assert doc["kind"] == "learned_confidence" and doc["model"] == "toy-model"
    assert doc["score_ids"] == ["a", "b"] and doc["params"]["quantiles"] == list(DEFAULT_QUANTILES)
    assert doc["features"][-1] == "n_tokens" and model in doc["fitted"]
    loaded = load_calibrator(path)
    assert isinstance(loaded, LearnedConfidence)
    np.testing.assert_array_equal(loaded.transform(probe), lc.transform(probe))

    x, y = lc.features(rows), np.array([r["correct"] for r in rows])
    if model == "lr":
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        sk = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=10_000)).fit(x, y)
    else:
        from sklearn.ensemble import GradientBoostingClassifier

        sk = GradientBoostingClassifier(**GBT_SETTINGS).fit(x, y)
    np.testing.assert_allclose(loaded.transform(probe), sk.predict_proba(lc.features(probe))[:, 1], rtol=0,
                               atol=1e-9 if model == "lr" else 1e-12)


def _one_se_c(z, y):
    """The one-standard-error choice of C, by sklearn's own cross-validation scorer (an independent path)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    folds = StratifiedKFold(n_splits=AUTO_C_FOLDS, shuffle=True, random_state=0)
    loss = -np.array([cross_val_score(LogisticRegression(C=c, max_iter=10_000), z, y, cv=folds,
                                      scoring="neg_log_loss") for c in AUTO_C_GRID]).T  # (folds, Cs)
    mean, se = loss.mean(axis=0), loss.std(axis=0, ddof=1) / np.sqrt(AUTO_C_FOLDS)
    best = int(np.argmin(mean))
    return AUTO_C_GRID[int(np.flatnonzero(mean <= mean[best] + se[best])[0])], folds


def test_auto_c_is_the_one_standard_error_choice_rescaled_on_held_out_logits():
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict
    from sklearn.preprocessing import StandardScaler

    rows, _, y = synthetic(300, seed=3)
    probe, _, _ = synthetic(200, seed=4)
    lc = LearnedConfidence(scores=("a", "b")).fit(rows)  # C="auto" is the default
    scaler = StandardScaler().fit(lc.features(rows))
    z, zp = scaler.transform(lc.features(rows)), scaler.transform(lc.features(probe))
    c, folds = _one_se_c(z, y)
    assert lc.state_["lr"]["C"] == c < 1.0  # stronger than sklearn's default, chosen inside the fit set
    sk = LogisticRegression(C=c, max_iter=10_000).fit(z, y)
    held_out = cross_val_predict(LogisticRegression(C=c, max_iter=10_000), z, y, cv=folds, method="decision_function")
    platt = PlattCalibrator().fit(held_out, y)
    expected = 1 / (1 + np.exp(-(platt.a_ * sk.decision_function(zp) + platt.b_)))
    np.testing.assert_allclose(lc.transform(probe), expected, atol=1e-4)  # the solvers differ, the optimum not
    loaded = calibrator_from_json(lc.to_json())
    assert loaded.C == "auto" and loaded.state_["lr"]["C"] == c
    np.testing.assert_array_equal(loaded.transform(probe), lc.transform(probe))


def test_auto_c_regularises_fully_when_there_is_nothing_to_learn():
    rows, _, _ = synthetic(300, seed=8)
    probe, _, _ = synthetic(500, seed=9)
    y = np.random.default_rng(8).random(300) < 0.3  # labels independent of every feature: the optimum is the base rate
    lc = LearnedConfidence(scores=("a", "b")).fit(rows, y)
    assert lc.state_["lr"]["C"] == AUTO_C_GRID[0]
    p = lc.transform(probe)
    assert abs(p.mean() - y.mean()) < 0.02 and p.std() < 0.07


def test_refuses_another_model_a_missing_score_and_missing_entropies():
    rows, _, _ = synthetic(60, seed=5)
    lc = LearnedConfidence(scores=("a", "b")).fit(rows)
    other, _, _ = synthetic(5, model="other-model")
    with pytest.raises(UserInputError, match="'other-model'.*'toy-model'"):
        lc.transform(other)
    lacking = [{**r, "scores": {"a": r["scores"]["a"]}} for r in rows[:3]]
    with pytest.raises(UserInputError, match="lacks the score.*b"):
        lc.transform(lacking)
    black_box, _, _ = synthetic(60, seed=6, entropy=False)
    with pytest.raises(UserInputError, match="no token entropies"):
        lc.transform(black_box)  # fitted with entropies
    with pytest.raises(UserInputError, match="no token entropies"):
        LearnedConfidence(scores=("a",), entropies=True).fit(black_box)  # refused before fitting
    assert "entropy_q0" not in LearnedConfidence(scores=("a",)).fit(black_box).features_
    with pytest.raises(UserInputError, match="several models"):
        LearnedConfidence(scores=("a",)).fit(rows + other)
    with pytest.raises(UserInputError, match="correct and wrong"):
        LearnedConfidence(scores=("a",)).fit([{**r, "correct": True} for r in rows])
    with pytest.raises(UserInputError, match="model='rf'"):
        LearnedConfidence(scores=("a",), model="rf").fit(rows)
    with pytest.raises(UserInputError, match="C='big' must be a positive number or 'auto'"):
        LearnedConfidence(scores=("a",), C="big").fit(rows)


def test_corrupt_json_is_refused():
    lc = LearnedConfidence(scores=("a", "b")).fit(synthetic(60, seed=7)[0])
    doc = json.loads(lc.to_json())
    doc["fitted"]["lr"]["coef"] = doc["fitted"]["lr"]["coef"][:-1]
    with pytest.raises(UserInputError, match="one per feature"):
        calibrator_from_json(json.dumps(doc))
    with pytest.raises(UserInputError, match="not a tokentrust calibrator"):
        calibrator_from_json("{not json")


def test_cross_fit_is_out_of_fold_and_stratified():
    y = np.array([1.0] * 12 + [0.0] * 3)
    seen = []

    def fit_predict(train, test):
        seen.append((set(train), set(test)))
        assert set(y[train]) == {0.0, 1.0}
        return np.full(len(test), 0.5)

    out = cross_fit(y.size, y, fit_predict, folds=5, seed=0)
    assert len(seen) == 3  # folds cut to the smaller class's size
    assert all(not (tr & te) for tr, te in seen) and set().union(*(te for _, te in seen)) == set(range(15))
    assert np.all(out == 0.5)
    with pytest.raises(UserInputError, match="at least 2 correct and 2 wrong"):
        cross_fit(4, np.array([1.0, 1.0, 1.0, 0.0]), fit_predict, folds=5, seed=0)


def test_single_score_maps_record_model_and_score_and_old_files_still_load(capital_trace):
    from tokentrust import annotate

    annotated = annotate(capital_trace, ["msp"], with_token_forms=False)
    platt = PlattCalibrator().fit([0.1, 0.2, 0.6, 0.9], [0, 1, 0, 1])
    old = calibrator_from_json(platt.to_json())  # written without model and score
    with pytest.raises(UserInputError, match="does not record which score"):
        apply_calibrator(annotated, old)
    assert apply_calibrator(annotated, old, score="msp").is_probability
    bound = calibrator_from_json(platt.bind(model=capital_trace.model_id, score="maximum_sequence_probability")
                                 .to_json())
    assert (bound.model_id_, bound.score_id_) == (capital_trace.model_id, "maximum_sequence_probability")
    s = apply_calibrator(annotated, bound)
    assert s.estimator == CALIBRATED_ID and 0 <= s.value <= 1
    assert s.value == pytest.approx(float(platt.transform([annotated["msp"].value])[0]))
    with pytest.raises(UserInputError, match="fitted on model 'elsewhere'"):
        apply_calibrator(annotated, PlattCalibrator().fit([0.1, 0.9], [0, 1]).bind(model="elsewhere", score="msp"))


# --------------------------------------------------------------------------- small real runs


@pytest.fixture(scope="module")
def runs(backend, tmp_path_factory):
    """Two small real runs of the default model, and a copy of one with every answer marked correct."""
    from tokentrust.bench.runner import run
    from tokentrust.bench.spec import RunSpec

    root = tmp_path_factory.mktemp("runs")
    out = {}
    for ds in ("capitals", "currencies"):
        spec = RunSpec(dataset=ds, limit=20, estimators=ESTIMATORS, max_new_tokens=12, out=str(root / ds),
                       cache=str(root / "cache.sqlite"))
        out[ds] = run(spec, backend=backend, progress=False).out
    one = root / "one_class"
    shutil.copytree(out["capitals"], one)
    items = [json.loads(line) for line in (one / "items.jsonl").read_text().splitlines()]
    (one / "items.jsonl").write_text("".join(json.dumps({**r, "correct": True}) + "\n" for r in items))
    out["one_class"] = one
    return out


def test_calibrate_learned_on_a_real_run_and_apply_to_an_answer(runs, capital_trace, tmp_path):
    from tokentrust import annotate

    res = calibrate_run(runs["capitals"], ESTIMATORS, method="learned", out=tmp_path / "conf.json")
    assert res["n"] == 20 and res["estimators"][0] == "maximum_sequence_probability"
    for key in ("platt", "after"):
        assert all(res[key][m] is None or 0 <= res[key][m] <= 1 for m in ("roc_auc", "ece", "brier"))
    lc = load_calibrator(tmp_path / "conf.json")
    assert lc.model_id_ == capital_trace.model_id and lc.entropies_
    s = apply_calibrator(annotate(capital_trace, ESTIMATORS, with_token_forms=False), lc)
    assert s.estimator == CALIBRATED_ID and s.is_probability and 0 <= s.value <= 1
    single = calibrate_run(runs["capitals"], "msp", method="platt", out=tmp_path / "platt.json")
    doc = json.loads((tmp_path / "platt.json").read_text())
    assert (doc["model"], doc["score"]) == (capital_trace.model_id, single["estimator"])
    with pytest.raises(UserInputError, match="all 20 scored items are correct"):
        calibrate_run(runs["one_class"], ESTIMATORS, method="learned")


def test_transfer_matrices_and_nan_for_one_class(runs, tmp_path):
    res = transfer([runs["capitals"], runs["currencies"], runs["one_class"]], ESTIMATORS)
    for m in ("roc_auc", "ece", "brier"):
        assert np.array(res[m]).shape == (3, 3)
        assert np.isfinite(np.array(res[m])[:2, :2]).all()
        assert np.isnan(res[m][2]).all()  # a one-class run cannot be fitted on
    assert np.isnan(res["roc_auc"][0][2]) and np.isfinite(res["brier"][0][2])  # nor ranked, but scored
    assert set(res["single"]) == {"maximum_sequence_probability", "mean_token_entropy", "perplexity"}
    assert all(len(v) == 3 and np.isnan(v[2]) for v in res["single"].values())
    assert all(c in AUTO_C_GRID for c in res["C"][:2]) and res["C"][2] is None
    base = res["baseline"]  # the score best on the fit run, Platt-scaled there, tested like the learned one
    assert base["estimator"][2] is None and np.isnan(base["ece"][2]).all()
    best = max(res["single"], key=lambda e: res["single"][e][0])
    assert base["estimator"][0] == best and base["roc_auc"][0][1] == res["single"][best][1]
    from tokentrust.bench.calibrate import learned_rows
    from tokentrust.metrics import ece

    (fit, _, _), (test, _, _) = (learned_rows(runs[k], ESTIMATORS) for k in ("capitals", "currencies"))
    platt = PlattCalibrator().fit([r["scores"][best]["value"] for r in fit], [r["correct"] for r in fit])
    y = np.array([r["correct"] for r in test], dtype=float)
    assert base["ece"][0][1] == pytest.approx(ece(y, platt.transform([r["scores"][best]["value"] for r in test])))
    other = tmp_path / "other"
    shutil.copytree(runs["currencies"], other)
    meta = json.loads((other / "run.json").read_text())
    (other / "run.json").write_text(json.dumps({**meta, "model": "another-model"}))
    with pytest.raises(UserInputError, match="different models"):
        transfer([runs["capitals"], other], ESTIMATORS)


def test_export_schema(runs, tmp_path):
    rows = list(export_rows(runs["capitals"], "msp"))
    assert len(rows) == 20 and all(list(r) == list(EXPORT_FIELDS) for r in rows)
    assert all(isinstance(r["correct"], bool) and 0 <= r["confidence"] <= 1 for r in rows)
    assert {r["estimator"] for r in rows} == {"maximum_sequence_probability"}
    assert isinstance(rows[0]["prompt"], str) and rows[0]["model"]
    assert next(export_rows(runs["capitals"]))["estimator"] == "maximum_sequence_probability"  # first probability


def _cli(*args):
    return subprocess.Popen([sys.executable, "-m", "tokentrust", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)


def test_cli_end_to_end_and_bad_inputs(runs, tmp_path):
    conf = tmp_path / "conf.json"
    (tmp_path / "corrupt.json").write_text('{"kind": "learned_confidence", "params": ')
    es = [a for e in ESTIMATORS for a in ("-e", e)]
    good = {
        "calibrate": _cli("calibrate", runs["capitals"], *es, "--method", "learned", "--out", conf, "--json"),
        "transfer": _cli("transfer", runs["capitals"], runs["currencies"], runs["one_class"], *es, "--json"),
        "export": _cli("export", runs["currencies"], "--format", "jsonl", "-e", "perplexity"),
    }
    bad = {
        "not a tokentrust calibrator": _cli("export", runs["capitals"], "--calibrator", tmp_path / "corrupt.json"),
        "unknown method 'isotonik'": _cli("calibrate", runs["capitals"], "-e", "msp", "--method", "isotonik"),
        "are correct; calibration needs both": _cli("calibrate", runs["one_class"], *es, "--method", "learned"),
        "unknown format 'csv'": _cli("export", runs["capitals"], "--format", "csv"),
    }
    out = {k: p.communicate(timeout=300) + (p.returncode,) for k, p in {**good, **bad}.items()}
    for k in good:
        assert out[k][2] == 0, out[k][1][-2000:]
    cal = json.loads(out["calibrate"][0])
    assert cal["method"] == "learned" and cal["n"] == 20 and isinstance(load_calibrator(conf), LearnedConfidence)
    tr = json.loads(out["transfer"][0])
    assert len(tr["roc_auc"]) == 3 and tr["roc_auc"][2] == [None, None, None]
    lines = out["export"][0].splitlines()
    assert len(lines) == 20 and set(json.loads(lines[0])) == set(EXPORT_FIELDS)
    assert json.loads(lines[0])["estimator"] == "perplexity"
    for message in bad:
        stdout, stderr, code = out[message]
        assert code == 2 and message in stderr and "Traceback" not in stderr
        assert len(stderr.strip().splitlines()) == 1 and stdout == ""
