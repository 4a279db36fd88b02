"""``bench --level claim``: claims labelled by facts or a reference text, pooled over answers, measured."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from tokentrust.bench.claim_labels import label_claim
from tokentrust.bench.datasets import load_dataset
from tokentrust.bench.layout import load_items
from tokentrust.bench.runner import bench_estimators, run
from tokentrust.bench.spec import RunSpec
from tokentrust.errors import UserInputError


@pytest.fixture(scope="module")
def claim_run(backend, tmp_path_factory):
    out = tmp_path_factory.mktemp("claims") / "run"
    spec = RunSpec(dataset="country_facts", limit=8, level="claim", max_new_tokens=64, out=str(out),
                   cache=str(out.parent / "cache.sqlite"))
    return run(spec, backend=backend, progress=False)


def test_claims_are_labelled_by_the_facts_and_pooled(claim_run):
    items = load_items(claim_run.out)
    facts = {item.id: item.metadata["facts"] for item in load_dataset("country_facts", limit=8).items}
    claims = [(r["id"], c) for r in items for c in r["claims"]]
    assert claims, "the default model wrote no claims"
    for item_id, c in claims:
        answer = next(r for r in items if r["id"] == item_id)["answer"]
        assert answer[slice(*c["char_span"])] == c["text"]
        assert c["label"] == label_claim(c["text"], facts[item_id]).label
    summary = claim_run.metrics["claims"]
    assert summary["n_claims"] == len(claims)
    assert summary["n_true"] + summary["n_false"] + summary["n_unverifiable"] == len(claims)
    assert summary["labelled_share"] == pytest.approx((summary["n_true"] + summary["n_false"]) / len(claims))
    assert claim_run.metrics["level"] == "claim"
    assert set(claim_run.metrics["estimators"]) == {
        "claim_conditioned_probability", "claim_probability", "claim_probability(reduce='geometric_mean')",
        "claim_max_entropy"}


def test_claim_metrics_equal_sklearn_on_the_labelled_claims(claim_run):
    items = load_items(claim_run.out)
    labelled = [c for r in items for c in r["claims"] if c["label"] != "unverifiable"]
    for eid, row in claim_run.metrics["estimators"].items():
        pairs = [(c["scores"][eid]["value"], c["label"] == "true") for c in labelled
                 if not math.isnan(c["scores"][eid]["value"])]
        v = np.array([p[0] for p in pairs])
        y = np.array([p[1] for p in pairs])
        assert row["n"] == len(pairs)
        assert row["n_missing"] == len(labelled) - len(pairs)
        if 0 < y.sum() < len(y):
            assert row["roc_auc"] == pytest.approx(roc_auc_score(y, v))
            assert row["pr_auc"] == pytest.approx(average_precision_score(y, v))
        else:
            assert row["roc_auc"] is None


def test_report_shows_answers_with_claims_and_confident_false_claims(claim_run):
    page = claim_run.report_path.read_text(encoding="utf-8")
    assert "Answers with their claims" in page
    assert "most confident false claims" in page
    assert f"{claim_run.metrics['claims']['n_claims']} claims in 8 answers" in page


def test_a_user_file_with_reference_texts_is_labelled_by_verification(backend, tmp_path):
    data = tmp_path / "facts.jsonl"
    rows = [
        {"id": "pt", "question": "Tell me about Portugal in two sentences.",
         "reference": "Portugal is a country in Europe. The capital of Portugal is Lisbon. Portugal uses the euro."},
        {"id": "fr", "question": "Tell me about France in two sentences.",
         "reference": "France is a country in Europe. The capital of France is Paris. France uses the euro."},
    ]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    result = run(RunSpec(dataset=str(data), level="claim", claim_judge="embedding", max_new_tokens=48,
                         estimators=["claim_probability"], out=str(tmp_path / "run"),
                         cache=str(tmp_path / "cache.sqlite")), backend=backend, progress=False)
    from tokentrust.stats.claims import Claim
    from tokentrust.verify import check_claims

    for r in load_items(result.out):
        reference = next(row["reference"] for row in rows if row["id"] == r["id"])
        claims = [Claim(text=c["text"], char_span=tuple(c["char_span"]), token_indices=c["token_indices"], sentence=0)
                  for c in r["claims"]]
        verdicts = [c.verdict for c in check_claims(claims, reference, judge="embedding")]
        expected = {"supported": "true", "contradicted": "false", "not_mentioned": "unverifiable"}
        assert [c["label"] for c in r["claims"]] == [expected[v] for v in verdicts]
        assert all(c["basis"] == "reference" for c in r["claims"])
    assert result.metrics["claims"]["n_claims"] == sum(len(r["claims"]) for r in load_items(result.out))


def test_a_dataset_without_facts_or_reference_is_refused_before_generating(tmp_path):
    with pytest.raises(UserInputError, match="needs items with gold facts"):
        run(RunSpec(dataset="capitals", limit=2, level="claim", out=str(tmp_path / "r")), progress=False)
    assert not (tmp_path / "r").exists()


def test_estimators_of_the_other_level_are_refused_with_a_hint():
    with pytest.raises(UserInputError, match="--level claim measures claim-level scores"):
        bench_estimators(["msp"], level="claim")
    with pytest.raises(UserInputError, match="or --level claim for claim scores"):
        bench_estimators(["ccp"])
    with pytest.raises(UserInputError, match="the run uses"):
        bench_estimators(["ccp:claims=sentences:clauses=false"], level="claim")
    chosen = bench_estimators(["ccp"], level="claim", claims="sentences:clauses=false")
    assert chosen[0].claims == "sentences:clauses=False"


def test_cli_claim_level_json(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "tokentrust", "bench", "--dataset", "country_facts", "--level", "claim", "--limit", "2",
         "-n", "48", "-e", "claim_probability", "--out", str(tmp_path / "run"), "--cache", str(tmp_path / "c.sqlite"),
         "--json"], capture_output=True, text=True, timeout=600, check=True,
    )
    metrics = json.loads(out.stdout)
    assert metrics["level"] == "claim" and set(metrics["claims"]) >= {"n_claims", "labelled_share", "dropped_share"}
    table = subprocess.run(
        [sys.executable, "-m", "tokentrust", "report", str(tmp_path / "run")], capture_output=True, text=True,
        timeout=300, check=False,
    )
    assert table.returncode == 0, table.stderr


def test_a_claim_filter_fitted_on_the_run_cuts_low_claims_from_ask(claim_run, backend, tmp_path, capsys):
    """calibrate --target-risk ε on a claim run: the conformal threshold of the run's claims, saved in a
    policy that ask uses to cut the claims it removes from the answer."""
    from tests._cli import run_cli

    from tokentrust import annotate
    from tokentrust.annotated import resolve_estimators
    from tokentrust.bench.claims import measured_rows
    from tokentrust.config import GenerationConfig
    from tokentrust.decide import Policy, claim_filter_from_rows

    path = tmp_path / "policy.json"
    code, out, err = run_cli(capsys, "calibrate", str(claim_run.out), "--target-risk", "0.3", "-e", "ccp",
                             "--out", str(path))
    assert code == 0, err
    policy = Policy.load(path)
    rule = policy.claims
    expected = claim_filter_from_rows(measured_rows(claim_run.out, load_items(claim_run.out)),
                                      "claim_conditioned_probability", epsilon=0.3)
    assert (rule.threshold, rule.n, rule.epsilon) == (expected.threshold, expected.n, 0.3)
    assert f"keep claims above {rule.threshold:.4g}" in out

    # One answer decided in-process, with a threshold that removes some claims but not all.
    trace = backend.generate("Tell me about Portugal in three sentences.", GenerationConfig(max_new_tokens=64))
    result = annotate(trace, resolve_estimators(["ccp", "geometric_mean_token_probability"]), backend=backend)
    values = sorted(c.scores["claim_conditioned_probability"] for c in result.claims)
    assert len(values) >= 2, result.claims
    cut = policy.model_copy(update={"claims": rule.model_copy(update={"threshold": values[0]})})
    d = result.decided(cut).decision
    assert [k.kept for k in d.claims] == [c.scores["claim_conditioned_probability"] > values[0] for c in result.claims]
    removed = [k for k in d.claims if not k.kept]
    assert removed and all(k.text.lower() not in d.kept_answer.lower() for k in removed)
    assert all(k.text.lower() in d.kept_answer.lower() for k in d.claims if k.kept)
    assert d.kept_answer in d.phrase or d.action == "abstain"
    from tokentrust.render.html import decision_html

    assert f"removed {len(removed)} of {len(d.claims)} claims" in decision_html(d)
    assert "every kept claim true with probability ≥ 0.7" in d.guaranteed
    everything = policy.model_copy(update={"claims": rule.model_copy(update={"threshold": 1.0})})
    assert result.decided(everything).decision.action == "abstain"

    # The CLI: the policy's claim score is computed though not asked for, the removed claims named.
    cut.save(path)
    code, out, err = run_cli(capsys, "ask", "Tell me about Portugal in three sentences.", "-n", "64",
                             "--policy", str(path), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert "claim_conditioned_probability" in {s["estimator"] for s in data["scores"]}
    assert data["decision"]["claims"] and data["decision"]["kept_answer"] is not None


def test_a_claim_filter_is_refused_on_answer_runs_and_for_another_model(claim_run, tmp_path):
    from tokentrust.decide import Policy
    from tokentrust.decide.decision import check_pairing
    from tokentrust.decide.fit import fit_claim_rule, policy_command

    rule = fit_claim_rule(claim_run.out, epsilon=0.3, score="ccp")
    with pytest.raises(UserInputError, match="fitted on answers of model"):
        check_pairing(Policy(claims=rule), None, "another/model")
    with pytest.raises(UserInputError, match="no claim scores for 'maximum_sequence_probability'"):
        fit_claim_rule(claim_run.out, epsilon=0.3, score="msp")
    with pytest.raises(UserInputError, match="too few for ε"):
        fit_claim_rule(claim_run.out, epsilon=0.01, score="ccp")
    with pytest.raises(UserInputError, match="reads a claim score"):
        policy_command(claim_run.out, ["ccp"], tmp_path / "c.json", 0.3, 0.05, None, False)
