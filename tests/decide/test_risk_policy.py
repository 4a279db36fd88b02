"""Decisions with a guarantee: risk-controlled abstention, conformal claim filtering, policy files, decide(),
the rationale, and ``ask`` / ``serve`` with ``--calibrator`` / ``--policy`` on the default model."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.stats import beta, binom

from _traces import make_trace
from tokentrust import Annotated
from tokentrust.calibration import PlattCalibrator
from tokentrust.decide import Guarantee, Policy, claim_filter, decide, disagreement, risk_threshold
from tokentrust.decide.rationale import rationale_from_context
from tokentrust.decide.risk import clopper_pearson_upper, min_answered, start_size
from tokentrust.errors import UserInputError
from tokentrust.scores import Level, Scores
from tokentrust.stat import Context, Stat

# --------------------------------------------------------------------------- fixed-sequence testing


def _blocks(*blocks):
    """Items in blocks of (probability, count, wrong)."""
    p = np.concatenate([np.full(n, v) for v, n, _ in blocks])
    y = np.concatenate([np.r_[np.zeros(w), np.ones(n - w)] for _, n, w in blocks])
    return p, y


def cp(errors, n, delta=0.05):  # the one-sided Clopper–Pearson upper bound, written out with scipy
    return beta.ppf(1 - delta, errors + 1, n - errors)


def test_fixed_sequence_stops_at_the_first_failure():
    # answered at τ = .9 / .7 / .5 / .3: 30, 60, 100, 150 items with 0, 2, 3, 40 wrong
    p, y = _blocks((0.95, 30, 0), (0.8, 30, 2), (0.6, 40, 1), (0.4, 50, 37))
    assert cp(0, 30) == pytest.approx(0.0950, abs=1e-4) and cp(2, 60) == pytest.approx(0.1012, abs=1e-4)
    assert cp(3, 100) == pytest.approx(0.0757, abs=1e-4)  # would pass, but the scan stopped at .7
    rc = risk_threshold(p, y, alpha=0.1, delta=0.05, grid=[0.9, 0.7, 0.5, 0.3], start=0)
    assert (rc.threshold, rc.n_answered, rc.n_errors) == (0.9, 30, 0)
    assert rc.upper == pytest.approx(cp(0, 30)) and rc.coverage == 0.2 and rc.risk == 0.0
    assert [t[:3] for t in rc.tested] == [(0.9, 30, 0), (0.7, 60, 2)]
    assert rc.tested[1][3] == pytest.approx(cp(2, 60))
    # one error fewer in the .8 block: .7 and .5 pass, .3 fails
    p, y = _blocks((0.95, 30, 0), (0.8, 30, 1), (0.6, 40, 1), (0.4, 50, 37))
    assert risk_threshold(p, y, alpha=0.1, delta=0.05, grid=[0.9, 0.7, 0.5, 0.3], start=0).threshold == 0.5
    # by default testing starts at the first threshold answering start_size items (37 of 150 here)
    assert start_size(0.1, 0.05, 150) == 37 and min_answered(0.1, 0.05) == 29
    assert risk_threshold(p, y, alpha=0.1, delta=0.05, grid=[0.9, 0.7, 0.5, 0.3]).tested[0][:3] == (0.7, 60, 1)


def test_refuses_when_the_calibration_set_is_too_small():
    p, y = _blocks((0.99, 20, 0))
    with pytest.raises(UserInputError, match="needs at least 29 answered"):
        risk_threshold(p, y, alpha=0.1, delta=0.05)
    assert clopper_pearson_upper(0, 29, 0.05) <= 0.1 < clopper_pearson_upper(0, 28, 0.05)
    p, y = _blocks((0.9, 40, 10))
    with pytest.raises(UserInputError, match="10 errors among 40 answered"):
        risk_threshold(p, y, alpha=0.1, delta=0.05)
    with pytest.raises(UserInputError, match="too few for ε"):
        claim_filter([([0.5], [True])] * 5, epsilon=0.1)


def _monotone_data(seed=7, n=400):
    rng = np.random.default_rng(seed)
    p = rng.beta(4, 1, size=n)
    return p, (rng.uniform(size=n) < p).astype(int)


def test_agrees_with_mapie_fixed_sequence_testing():
    from mapie.risk_control import BinaryClassificationController
    from mapie.risk_control.methods import compute_hoeffding_bentkus_p_value

    alpha, delta = 0.1, 0.05
    grid = np.round(np.linspace(0.5, 0.85, 8), 3)  # the top threshold already answers > 76 items
    p, y = _monotone_data()
    n_tau = np.array([(p >= t).sum() for t in grid])
    e_tau = np.array([((p >= t) & (y == 0)).sum() for t in grid])
    risk = e_tau / n_tau
    assert n_tau[-1] >= start_size(alpha, delta, p.size) and np.all(np.diff(risk) <= 0)  # where both coincide
    # mapie's binary Hoeffding–Bentkus p-value is the exact binomial one: p ≤ δ ⇔ Clopper–Pearson bound ≤ α
    # (mapie counts the errors as ceil(n · (e/n)), which floating point turns into e + 1 for some n, e, e.g.
    # 15 of 232: then it is more conservative; this data has no such count)
    assert np.all(np.ceil(n_tau * risk) == e_tau)
    pv = compute_hoeffding_bentkus_p_value(risk, n_tau, alpha, binary=True)[:, 0]
    assert pv == pytest.approx(binom.cdf(e_tau, n_tau, alpha), rel=1e-9)
    assert list(pv <= delta) == [cp(e, n, delta) <= alpha for e, n in zip(e_tau, n_tau, strict=True)]
    controller = BinaryClassificationController(
        predict_function=lambda x: np.c_[1 - x, x], risk="precision", target_level=1 - alpha,
        confidence_level=1 - delta, list_predict_params=grid, fwer_method="fixed_sequence",
    ).calibrate(p, y)
    ours = risk_threshold(p, y, alpha=alpha, delta=delta, grid=grid)
    assert controller.best_predict_param == pytest.approx(ours.threshold)
    passed = sorted(t for t, _, _, u in ours.tested if u <= alpha)
    assert sorted(controller.valid_predict_params) == pytest.approx(passed)
    assert 0 < len(passed) < len(grid)  # a real test: some thresholds pass, some do not
    # where they differ: mapie starts at the grid's top; when that answers 3 items its scan stops at once
    fine = np.round(np.linspace(0.5, 0.999, 50), 3)
    mapie_top = BinaryClassificationController(
        predict_function=lambda x: np.c_[1 - x, x], risk="precision", target_level=1 - alpha,
        confidence_level=1 - delta, list_predict_params=fine, fwer_method="fixed_sequence",
    )
    with pytest.warns(UserWarning):  # its observed risk is not monotone over this grid
        mapie_top.calibrate(p, y)
    assert mapie_top.best_predict_param is None
    assert risk_threshold(p, y, alpha=alpha, delta=delta, grid=fine).threshold < 0.999


def _true_risk(tau):
    """P(wrong | p ≥ τ) for p ~ Beta(3, 1) (density 3p²) and P(correct | p) = p."""
    return (0.25 - tau**3 + 0.75 * tau**4) / (1 - tau**3)


@pytest.mark.parametrize(("n", "alpha", "delta"), [(300, 0.1, 0.1), (1000, 0.1, 0.05)])
def test_the_risk_guarantee_holds_by_simulation(n, alpha, delta):
    rng = np.random.default_rng(n)
    trials, violated, refused = 500, 0, 0
    for _ in range(trials):
        p = rng.beta(3, 1, size=n)
        y = (rng.uniform(size=n) < p).astype(int)
        try:
            tau = risk_threshold(p, y, alpha=alpha, delta=delta).threshold
        except UserInputError:
            refused += 1  # never answering is safe
            continue
        violated += _true_risk(tau) > alpha
    margin = 3 * math.sqrt(delta * (1 - delta) / trials)
    assert violated / trials <= delta + margin
    assert refused < trials / 2  # and it is not safe by refusing


def test_conformal_claim_filter_guarantee_by_simulation():
    rng = np.random.default_rng(7)

    def answers(k):
        out = []
        for _ in range(k):
            s = rng.uniform(size=rng.integers(1, 6))
            out.append((list(s), list(rng.uniform(size=s.size) < s)))
        return out

    eps, hits, total = 0.1, 0, 0
    for _ in range(200):
        f = claim_filter(answers(60), epsilon=eps)
        for values, true in answers(20):
            kept = f.keep(values)
            hits += all(t for t, k in zip(true, kept, strict=True) if k)
            total += 1
    assert hits / total >= 1 - eps - 3 * math.sqrt(eps * (1 - eps) / total)
    assert hits / total <= 1 - eps + 1 / 61 + 3 * math.sqrt(eps * (1 - eps) / total)  # and not trivially


def test_claim_filter_from_claim_run_rows():
    from tokentrust.decide import claim_filter_from_rows

    rows = [{"id": f"a{i}#{k}", "correct": k != 1 or i % 3, "scores": {"ccp": {"value": 0.9 - 0.3 * k}}}
            for i in range(30) for k in range(3)]
    f = claim_filter_from_rows(rows, "ccp", epsilon=0.2)
    assert f.n == 30 and f.threshold == pytest.approx(0.6)  # the false claims (k = 1) score 0.6
    assert f.keep([0.9, 0.6, math.nan]) == [True, False, False] and f.answers_all_true == 1.0


# --------------------------------------------------------------------------- policy file, bands, phrases


def _guarantee(**kw):
    base = {"alpha": 0.1, "delta": 0.05, "n": 200, "n_answered": 90, "coverage": 0.45, "risk": 0.05,
            "upper": 0.098, "run": "runs/cal", "model": "hand", "calibrator": "platt(maximum_sequence_probability)"}
    return Guarantee(**{**base, **kw})


def test_policy_json_round_trip_and_clear_errors(tmp_path):
    policy = Policy(score="calibrated_confidence", hedge_below=0.85, low_below=0.55, abstain_below=0.4,
                    phrases={"medium": "I'm not sure ({probability:.0%}), but {answer}"}, guarantee=_guarantee())
    path = tmp_path / "policy.json"
    policy.save(path)
    assert Policy.load(path) == policy and json.loads(path.read_text())["guarantee"]["alpha"] == 0.1
    assert Policy(score="msp", hedge_below=0.8, abstain_below=0.3).low_below is None  # the old constructor
    path.write_text("{not json")
    with pytest.raises(UserInputError, match="is not a tokentrust policy"):
        Policy.load(path)
    path.write_text('{"kind": "platt"}')
    with pytest.raises(UserInputError, match="is not a tokentrust policy"):
        Policy.load(path)
    path.write_text(json.dumps({**policy.model_dump(), "abstain_below": 0.9}))
    with pytest.raises(UserInputError, match="must not exceed"):
        Policy.load(path)
    with pytest.raises(UserInputError, match="cannot read policy"):
        Policy.load(tmp_path / "missing.json")


def test_bands_and_phrases():
    policy = Policy(hedge_below=0.8, low_below=0.5, abstain_below=0.2,
                    phrases={"low": "My best guess ({probability:.0%}): {answer}"})
    cases = {0.9: ("answer", "answer", "The capital is Canberra."),
             0.6: ("hedge", "medium", "I'm not sure, but the capital is Canberra."),
             0.3: ("hedge", "low", "My best guess (30%): the capital is Canberra."),
             0.1: ("abstain", "abstain", "I don't know; I am not confident enough in any answer to give one."),
             math.nan: ("abstain", "abstain", "I don't know; I am not confident enough in any answer to give one.")}
    for p, (action, band, phrase) in cases.items():
        d = policy.decide(p, "The capital is Canberra.", rationale="I'm not sure: …")
        assert (d.action, d.band, d.phrase, d.text) == (action, band, phrase, phrase)
        assert d.probability == d.value or math.isnan(p)
        assert (d.rationale is None) == (action == "answer")
    with pytest.raises(UserInputError, match="may only use"):
        Policy(phrases={"medium": "{confidence} {answer}"})
    with pytest.raises(UserInputError, match="unknown band"):
        Policy(phrases={"certain": "{answer}"})
    with pytest.raises(UserInputError, match="low_below"):
        Policy(hedge_below=0.8, low_below=0.9, abstain_below=0.3)


# --------------------------------------------------------------------------- decide() and the rationale


def _annotated(msp=0.7, rationale=None):
    trace = make_trace([math.log(msp)], text_tokens=["Canberra."])
    gm = Scores(estimator="geometric_mean_token_probability", level=Level.SEQUENCE, spans=[[0]], values=[msp],
                raw=[msp], is_probability=True)
    ms = gm.model_copy(update={"estimator": "maximum_sequence_probability"})
    return Annotated(trace=trace, scores=[gm, ms], rationale=rationale)


def _platt(model="hand"):
    cal = PlattCalibrator().fit([0.1, 0.2, 0.4, 0.6, 0.8, 0.9], [0, 0, 1, 0, 1, 1])
    return cal.bind(model=model, score="maximum_sequence_probability")


def test_decide_on_hand_built_results():
    why = "I'm not sure: my answers varied between Canberra (2 of 3) and Sydney (1 of 3)."
    d = decide(_annotated(0.7, why))  # Policy(): 0.8 / 0.3 on the geometric mean
    assert (d.action, d.probability, d.phrase, d.rationale) == ("hedge", 0.7, "I'm not sure, but Canberra.", why)
    cal = _platt()
    expected = float(cal.transform([0.7])[0])
    policy = Policy(score="calibrated_confidence", hedge_below=0.95, abstain_below=0.2, guarantee=_guarantee())
    d = decide(_annotated(0.7), cal, policy)
    assert d.score == "calibrated_confidence" and d.probability == pytest.approx(expected)
    assert d.guaranteed.startswith("error among answered ≤ 0.1 with probability ≥ 0.95")
    decided = _annotated(0.7).decided(policy, cal)  # the calibrated probability joins the scores
    assert decided.decision == d and decided["calibrated_confidence"].value == pytest.approx(expected)
    assert decide(_annotated(0.7), cal).band in {"answer", "medium", "low"}  # no abstention without a guarantee


def test_mismatched_model_or_scores_are_refused():
    policy = Policy(score="calibrated_confidence", guarantee=_guarantee())
    with pytest.raises(UserInputError, match="calibrator was fitted on answers of model 'other'"):
        decide(_annotated(), _platt(model="other"), policy)
    with pytest.raises(UserInputError, match="policy was fitted on answers of model 'other'"):
        decide(_annotated(), _platt(), Policy(score="calibrated_confidence", guarantee=_guarantee(model="other")))
    iso = _platt()
    iso.score_id_ = "geometric_mean_token_probability"
    with pytest.raises(UserInputError, match=r"fitted with the calibrator platt\(maximum_sequence_probability\)"):
        decide(_annotated(), iso, policy)
    with pytest.raises(UserInputError, match="give the calibrator it was fitted with"):
        decide(_annotated(), None, policy)
    with pytest.raises(UserInputError, match="not a calibrated probability"):
        decide(_annotated(), _platt(), Policy())


def test_rationale_from_hand_built_clusters():
    texts = ["The capital is Canberra.", "The capital is Sydney.", "The capital is Canberra.", "It is Melbourne."]
    assert disagreement(texts[:3], [0, 1, 0]) == (
        "I'm not sure: my answers varied between Canberra (2 of 3) and Sydney (1 of 3).")
    assert disagreement(texts, [0, 1, 0, 2], most=2) == (
        "I'm not sure: my answers varied between Canberra (2 of 4), Sydney (1 of 4) and 1 other answer.")
    assert disagreement(texts[:1] * 3, [0, 0, 0]) is None

    @dataclass(frozen=True, kw_only=True)
    class Texts(Stat):
        def compute(self, ctx):
            return tuple(texts[:3])

    @dataclass(frozen=True, kw_only=True)
    class Clusters(Stat):  # stands in for SemanticClusters: texts, then one cluster id per text
        texts: Texts = Texts()

        def compute(self, ctx):
            ctx.get(self.texts)
            return np.array([0, 1, 0])

    clustered = SimpleNamespace(semantic_clusters=Clusters())  # what a clustered estimator exposes
    ctx = Context(make_trace([-0.1]))
    assert rationale_from_context(ctx, [object(), clustered]) is None  # not computed: no new work is done
    ctx.get(clustered.semantic_clusters)  # what the sampling score computed
    assert rationale_from_context(ctx, [object(), clustered]).endswith("Canberra (2 of 3) and Sydney (1 of 3).")


# --------------------------------------------------------------------------- ask and serve, end to end


def _cli(*args, timeout=300):
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "tokentrust", *args], capture_output=True, text=True, env=env,
                          timeout=timeout, check=False)


@pytest.fixture(scope="module")
def fitted(backend, tmp_path_factory):
    """A calibrator and a policy fitted on 30 real capitals answers (both on the same small run here; a real
    guarantee needs a policy run the calibrator never saw)."""
    from tokentrust.bench.calibrate import calibrate_run
    from tokentrust.bench.runner import run
    from tokentrust.bench.spec import RunSpec

    tmp = tmp_path_factory.mktemp("decide")
    out = tmp / "run"
    run(RunSpec(dataset="capitals", limit=30, estimators=["msp", "geometric_mean_token_probability"], out=str(out),
                cache=str(tmp / "cache.sqlite")), backend=backend, progress=False)
    conf = tmp / "conf.json"
    calibrate_run(out, "msp", method="platt", out=conf)
    policy = tmp / "policy.json"
    proc = _cli("calibrate", str(out), "--target-risk", "0.4", "--delta", "0.2", "--calibrator", str(conf),
                "--out", str(policy))
    assert proc.returncode == 0, proc.stderr
    assert "guarantee: error among answered ≤ 0.4 with probability ≥ 0.8" in proc.stdout
    return {"run": out, "conf": conf, "policy": policy, "tmp": tmp}


def test_ask_with_calibrator_and_policy(fitted):
    g = Policy.load(fitted["policy"]).guarantee
    assert g.model == "SmolLM2-135M-Instruct" and g.calibrator == "platt(maximum_sequence_probability)"
    assert g.n == 30 and g.risk <= 0.4 and g.upper <= 0.4
    proc = _cli("ask", "What is the capital of Australia?", "-n", "16", "--calibrator", str(fitted["conf"]),
                "--policy", str(fitted["policy"]))
    assert proc.returncode == 0, proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("→ "))
    assert "calibrated_confidence = " in line and line.split()[1] in {"answer", "hedge", "abstain"}
    assert "guarantee: error among answered ≤ 0.4" in proc.stdout


def test_cli_refuses_corrupt_or_mismatched_files(fitted):
    bad = fitted["tmp"] / "corrupt.json"
    bad.write_text('{"score": ')
    proc = _cli("ask", "q", "--policy", str(bad))
    assert proc.returncode == 2 and "is not a tokentrust policy" in proc.stderr and "Traceback" not in proc.stderr
    other = _platt(model="SmolLM2-135M-Instruct")
    other.score_id_ = "geometric_mean_token_probability"
    other.save(fitted["tmp"] / "other.json")
    proc = _cli("serve", "--calibrator", str(fitted["tmp"] / "other.json"), "--policy", str(fitted["policy"]))
    assert proc.returncode == 2 and "was fitted with the calibrator platt(maximum_sequence_probability)" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 3  # one error line (wrapped by the console at most)


def test_serve_with_calibrator_and_policy(backend, fitted):
    from fastapi.testclient import TestClient

    from tokentrust.calibration import load_calibrator
    from tokentrust.serve import create_app

    policy, cal = Policy.load(fitted["policy"]), load_calibrator(fitted["conf"])
    body = {"model": "m", "max_tokens": 12, "messages": [{"role": "user", "content": "What is the capital of France?"}]}
    with TestClient(create_app(backend, policy=policy, calibrator=cal)) as client:
        reply = client.post("/v1/chat/completions", json=body).json()
        result = Annotated.model_validate(reply["tokentrust"])
        d = result.decision
        assert d.score == "calibrated_confidence" and d.guaranteed is not None
        msp = result["maximum_sequence_probability"].value
        assert d.probability == pytest.approx(float(cal.transform([msp])[0]))
        assert d.probability == pytest.approx(result["calibrated_confidence"].value)
        assert d.action == policy.decide(d.probability, "").action
        own = client.post("/v1/chat/completions", json={**body, "tokentrust": {"policy": {"score": "msp"}}}).json()
        assert own["tokentrust"]["decision"]["score"] == "maximum_sequence_probability"
        assert own["tokentrust"]["decision"]["guaranteed"] is None
    other = policy.model_copy(update={"guarantee": policy.guarantee.model_copy(update={"model": "other"})})
    with pytest.raises(UserInputError, match="fitted on answers of model 'other'"):
        create_app(backend, policy=other, calibrator=cal)


@pytest.mark.parametrize("kept, expected", [
    ((True, True, False, True), "Portugal is in southern Europe, and its capital is Lisbon. Its population is 10 million."),
    ((True, False, True, False), "Portugal is in southern Europe; it uses the euro."),
    ((False, False, True, True), "It uses the euro. Its population is 10 million."),
    ((False, True, False, False), "Its capital is Lisbon."),
    ((False, False, False, False), ""),
])
def test_removed_claims_are_cut_with_their_connectives(kept, expected):
    from tokentrust.decide.policy import KeptClaim, without
    from tokentrust.stats.claims import clause_spans

    text = "Portugal is in southern Europe, and its capital is Lisbon; it uses the euro. Its population is 10 million."
    spans = [*clause_spans(text, 0, 76), (77, len(text) - 1)]
    claims = [KeptClaim(text=text[a:b], char_span=(a, b), value=0.5, kept=k, sentence=int(a > 76))
              for (a, b), k in zip(spans, kept, strict=True)]
    assert without(text, claims) == expected
