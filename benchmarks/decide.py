"""Decisions on the embedded model: learned confidence across question sets, risk control, deferral areas.

1. ``bench`` on :data:`SETS` (first ``--limit`` questions each, greedy, 24 new tokens, the default trace-only
   answer scores) with SmolLM2-135M-Instruct.
2. Transfer: the learned confidence (:data:`FEATURES` + quantile features; logistic regression with ``C``
   chosen inside the fit set, and the gradient-boosted trees) fitted on each set and tested on every other
   (ROC-AUC, ECE), beside the best single score on the test set (chosen with the test labels) and the single
   score best on the fit set, Platt-scaled there (chosen without them). One line per fit → test pair.
3. Risk control: Platt-calibrated ``msp`` fitted on a third of the pooled answers, the α-policy
   (:data:`ALPHAS`, δ = 0.05) chosen on the second third and its error rate and coverage measured on the
   last third (never used to fit anything).
4. Deferral: the default model with 12 new tokens as the small model and with 32 as the "large" one (no
   second model exists offline), Chow-Sum / Chow-Average / Chow-Quantile areas against random and oracle.

    .venv/bin/python benchmarks/decide.py [--limit 120] [--parts transfer,risk,deferral]

The 1/5/15-minute load averages are printed first and last: the machine is often shared.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np

SETS = ("capitals", "currencies", "continents")
FEATURES = ("msp", "mean_token_entropy", "perplexity", "minimum_token_probability")
ALPHAS = (0.1, 0.2, 0.3, 0.4, 0.5)
RULES = ("chow_sum", "chow_average", "chow_quantile:alpha=0.1")


def run_sets(root: Path, limit: int, backend) -> dict[str, Path]:
    from tokentrust.bench.runner import run
    from tokentrust.bench.spec import RunSpec

    out = {}
    for name in SETS:
        spec = RunSpec(dataset=name, limit=limit, out=str(root / name))  # the user's generation cache: reruns reuse it
        out[name] = run(spec, backend=backend, progress=False).out
    return out


def transfer_table(runs: dict[str, Path], model: str = "lr") -> dict:
    from tokentrust.bench.transfer import transfer

    return transfer([str(p) for p in runs.values()], list(FEATURES), model=model)


def transfer_pairs(result: dict) -> list[dict]:
    """One row per fit → test pair: the learned confidence against both single-score comparisons."""
    names, single, base = result["runs"], result["single"], result["baseline"]
    out = []
    for i, fit in enumerate(names):
        for j, test in enumerate(names):
            oracle = max(single, key=lambda e: single[e][j])
            out.append({"fit": fit, "test": test, "C": result["C"][i],
                        "learned_auc": result["roc_auc"][i][j], "learned_ece": result["ece"][i][j],
                        "best_on_test": oracle, "best_on_test_auc": single[oracle][j],
                        "best_on_fit": base["estimator"][i], "best_on_fit_auc": base["roc_auc"][i][j],
                        "best_on_fit_ece": base["ece"][i][j]})
    return out


def print_pairs(label: str, rows: list[dict]) -> None:
    print(f"{label}: fit → test | learned ROC-AUC, ECE | best on test (ROC-AUC) | best on fit, Platt (ROC-AUC, ECE)")
    for r in rows:
        print(f"  {r['fit']:>10} → {r['test']:<10} | {r['learned_auc']:.3f} {r['learned_ece']:.3f} | "
              f"{r['best_on_test']} {r['best_on_test_auc']:.3f} ({r['learned_auc'] - r['best_on_test_auc']:+.3f}) | "
              f"{r['best_on_fit']} {r['best_on_fit_auc']:.3f} {r['best_on_fit_ece']:.3f} "
              f"({r['learned_auc'] - r['best_on_fit_auc']:+.3f}) | C {r['C']}")


def risk_table(runs: dict[str, Path], seed: int = 0) -> list[dict]:
    """Achieved risk and coverage of each α-policy on answers used neither for calibration nor for the policy."""
    from tokentrust.bench.layout import load_items
    from tokentrust.calibration import PlattCalibrator
    from tokentrust.decide.risk import risk_threshold
    from tokentrust.errors import UserInputError

    rows = [r for p in runs.values() for r in load_items(p) if "maximum_sequence_probability" in r["scores"]]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(rows))
    value = np.array([rows[i]["scores"]["maximum_sequence_probability"]["value"] for i in order])
    correct = np.array([rows[i]["correct"] for i in order], dtype=int)
    a, b = len(rows) // 3, (2 * len(rows)) // 3
    platt = PlattCalibrator().fit(value[:a], correct[:a])
    p = platt.transform(value)
    out = []
    for alpha in ALPHAS:
        try:
            control = risk_threshold(p[a:b], correct[a:b], alpha=alpha, delta=0.05)
        except UserInputError as exc:
            out.append({"alpha": alpha, "refused": str(exc)})
            continue
        kept = p[b:] >= control.threshold
        out.append({"alpha": alpha, "threshold": control.threshold, "coverage": float(kept.mean()),
                    "risk": float(1 - correct[b:][kept].mean()) if kept.any() else math.nan,
                    "n_test": int(len(p) - b)})
    return out


def deferral_table(backend, limit: int) -> list[dict]:
    from tokentrust.bench.datasets import load_dataset
    from tokentrust.bench.quality import judge
    from tokentrust.decide.cascade import evaluate, rule_scores

    dataset = load_dataset("capitals", limit=limit)
    prompts = [item.prompt for item in dataset.items]
    small = backend.generate_many(prompts, max_new_tokens=12)
    large = backend.generate_many(prompts, max_new_tokens=32)
    sq = [float(judge(dataset, t.text, i.references).correct) for t, i in zip(small, dataset.items, strict=True)]
    lq = [float(judge(dataset, t.text, i.references).correct) for t, i in zip(large, dataset.items, strict=True)]
    out = []
    for rule in RULES:
        report = evaluate(rule_scores(small, rule), sq, lq, rule=rule)
        out.append({"rule": rule, "area": report.curve.area, "random": report.random.area,
                    "oracle": report.oracle.area, "relative": report.relative_area,
                    "small_acc": float(np.mean(sq)), "large_acc": float(np.mean(lq))})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=120)
    parser.add_argument("--parts", default="transfer,risk,deferral", help="comma-separated: transfer, risk, deferral")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    import tokentrust as tt

    print("load average (1, 5, 15 min):", os.getloadavg(), "on", os.cpu_count(), "CPUs")
    backend = tt.load()
    with tempfile.TemporaryDirectory() as tmp:
        runs = run_sets(Path(tmp), args.limit, backend)
        if "transfer" in parts:
            for model in ("lr", "gbt"):
                result = transfer_table(runs, model)
                print(json.dumps({"transfer": result}, default=str))
                print_pairs(f"{model}, first {args.limit} of each set, accuracy "
                            + " / ".join(f"{a:.3f}" for a in result["accuracy"]), transfer_pairs(result))
        if "risk" in parts:
            print(json.dumps({"risk": risk_table(runs)}, indent=1))
    if "deferral" in parts:
        print(json.dumps({"deferral": deferral_table(backend, args.limit)}, indent=1))
    print("load average (1, 5, 15 min):", os.getloadavg())


if __name__ == "__main__":
    main()
