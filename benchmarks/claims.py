"""Claim-level failure prediction and the cost of CCP on the embedded model (country_facts, offline).

1. ``tokentrust bench --dataset country_facts --level claim`` on the first ``--limit`` prompts (default 120)
   with :func:`claim_estimators` (CCP with the offline embedding judge, claim probability as product and
   geometric mean, max token entropy): claim-level ROC-AUC, PR-AUC (of true claims) and PRR over the
   automatically labelled claims, the number of claims, the labelled and dropped shares.
2. CCP's cost over plain generation: the same prompts generated with ``generate_many`` (the trace
   tokentrust always records), then ``ccp`` computed on every trace (claims cut, alternatives judged by
   the sentence encoder, loaded before timing), in wall and CPU seconds. Goal: ≤ 1.5×.
3. Conformal claim filtering on CCP (:func:`filter_table`): fitted on a random half of the answers, the
   share of the other half's answers whose kept claims are all true (guarantee ≥ 1 − ε) and of claims kept.

    .venv/bin/python benchmarks/claims.py [--limit 120] [--max-new-tokens 96] [--no-cost]
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time

import tokentrust as tt

DATASET = "country_facts"


def claim_estimators() -> list[str]:
    """The claim scores compared: CCP and the baselines the issue names."""
    return ["ccp", "claim_probability", "claim_probability:reduce=geometric_mean", "claim_max_entropy"]


def run_bench(backend, limit: int, max_new_tokens: int) -> tuple[dict, list[dict]]:
    """The claim-level run's metrics and :func:`filter_table` on its claims."""
    from tokentrust.bench.runner import run
    from tokentrust.bench.spec import RunSpec

    with tempfile.TemporaryDirectory() as tmp:
        spec = RunSpec(dataset=DATASET, limit=limit, level="claim", estimators=claim_estimators(),
                       max_new_tokens=max_new_tokens, out=f"{tmp}/run", cache=f"{tmp}/cache.sqlite")
        result = run(spec, backend=backend, progress=False)
        return result.metrics, filter_table(result.out)


def filter_table(run_dir, *, score: str = "claim_conditioned_probability", epsilons=(0.1, 0.2, 0.3),
                 splits: int = 500, seed: int = 0) -> list[dict]:
    """Conformal claim filtering on answers not used to fit it: over ``splits`` random halves of the
    answers with labelled claims, fit on one half, and on the other measure the share of answers whose
    kept claims are all true (the guarantee: ≥ 1 − ε on average) and the share of claims kept."""
    from collections import defaultdict

    import numpy as np

    from tokentrust.bench.claims import measured_rows
    from tokentrust.bench.layout import load_items
    from tokentrust.decide.risk import claim_filter
    from tokentrust.errors import UserInputError

    groups: dict[str, tuple[list[float], list[bool]]] = defaultdict(lambda: ([], []))
    for r in measured_rows(run_dir, load_items(run_dir)):
        values, labels = groups[str(r["id"]).rsplit("#", 1)[0]]
        values.append(float(r["scores"][score]["value"]))
        labels.append(bool(r["correct"]))
    answers = list(groups.values())
    rng = np.random.default_rng(seed)
    table = []
    for eps in epsilons:
        all_true, kept, refused = [], [], 0
        for _ in range(splits):
            order = rng.permutation(len(answers))
            fit, test = order[: len(order) // 2], order[len(order) // 2:]
            try:
                f = claim_filter([answers[i] for i in fit], epsilon=eps, score=score)
            except UserInputError:  # too few answers for this ε
                refused += 1
                continue
            for i in test:
                values, labels = answers[i]
                keep = f.keep(values)
                all_true.append(all(t for t, k in zip(labels, keep) if k))
                kept.append(sum(keep) / len(keep))
        table.append({"epsilon": eps, "answers": len(answers), "splits": splits - refused,
                      "answers_all_true": float(np.mean(all_true)) if all_true else None,
                      "claims_kept": float(np.mean(kept)) if kept else None})
    return table


def ccp_cost(backend, limit: int, max_new_tokens: int) -> dict:
    from tokentrust.bench.datasets import load_dataset
    from tokentrust.stats.embedding import EmbeddingSimilarity

    prompts = [item.prompt for item in load_dataset(DATASET, limit=limit).items]
    EmbeddingSimilarity().encoder()  # loaded once per process; not part of the per-answer cost
    t0, c0 = time.perf_counter(), time.process_time()
    traces = backend.generate_many(prompts, max_new_tokens=max_new_tokens)
    t1, c1 = time.perf_counter(), time.process_time()
    results = [tt.annotate(t, ["ccp"], with_token_forms=False) for t in traces]
    t2, c2 = time.perf_counter(), time.process_time()
    shares = [v for r in results for v in r["ccp"].extras["neutral_share"] if not math.isnan(v)]
    return {
        "generation_wall_s": t1 - t0, "ccp_wall_s": t2 - t1, "ratio_wall": (t2 - t0) / (t1 - t0),
        "generation_cpu_s": c1 - c0, "ccp_cpu_s": c2 - c1, "ratio_cpu": (c2 - c0) / (c1 - c0),
        "tokens": sum(len(t) for t in traces), "claims": sum(len(r.claims) for r in results),
        "mean_neutral_share": sum(shares) / len(shares) if shares else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=120)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--no-cost", action="store_true", help="Skip the timed CCP cost measurement.")
    args = parser.parse_args()
    backend = tt.load()
    metrics, filters = run_bench(backend, args.limit, args.max_new_tokens)
    print(json.dumps(metrics["claims"], indent=2))
    print(f"share of labelled claims that are true: {metrics['accuracy']:.3f}")
    print(f"{'estimator':<45} {'ROC-AUC':>8} {'PR-AUC':>8} {'PRR':>8} {'n':>5}")
    for eid, row in metrics["estimators"].items():
        cells = [row.get(k) for k in ("roc_auc", "pr_auc", "prr")]
        print(f"{eid:<45} " + " ".join(f"{c:8.3f}" if c is not None else f"{'–':>8}" for c in cells)
              + f" {row['n']:5d}")
    print("conformal claim filtering on CCP, fitted on half of the answers, measured on the other half:")
    for row in filters:
        print(json.dumps(row))
    if args.no_cost:
        return
    cost = ccp_cost(backend, args.limit, args.max_new_tokens)
    print(json.dumps(cost, indent=2))


if __name__ == "__main__":
    main()
