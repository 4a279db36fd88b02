"""Claim-level failure prediction and the cost of CCP on the embedded model (country_facts, offline).

1. ``tokentrust bench --dataset country_facts --level claim`` on the first ``--limit`` prompts (default 120)
   with :func:`claim_estimators` (CCP with the offline embedding judge, claim probability as product and
   geometric mean, max token entropy): claim-level ROC-AUC, PR-AUC (of true claims) and PRR over the
   automatically labelled claims, the number of claims, the labelled and dropped shares.
2. CCP's cost over plain generation: the same prompts generated with ``generate_many`` (the trace
   tokentrust always records), then ``ccp`` computed on every trace (claims cut, alternatives judged by
   the sentence encoder, loaded before timing), in wall and CPU seconds. Goal: ≤ 1.5×.

    .venv/bin/python benchmarks/claims.py [--limit 120] [--max-new-tokens 96]
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


def run_bench(backend, limit: int, max_new_tokens: int) -> dict:
    from tokentrust.bench.runner import run
    from tokentrust.bench.spec import RunSpec

    with tempfile.TemporaryDirectory() as tmp:
        spec = RunSpec(dataset=DATASET, limit=limit, level="claim", estimators=claim_estimators(),
                       max_new_tokens=max_new_tokens, out=f"{tmp}/run", cache=f"{tmp}/cache.sqlite")
        return run(spec, backend=backend, progress=False).metrics


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
    args = parser.parse_args()
    backend = tt.load()
    metrics = run_bench(backend, args.limit, args.max_new_tokens)
    print(json.dumps(metrics["claims"], indent=2))
    print(f"share of labelled claims that are true: {metrics['accuracy']:.3f}")
    print(f"{'estimator':<45} {'ROC-AUC':>8} {'PR-AUC':>8} {'PRR':>8} {'n':>5}")
    for eid, row in metrics["estimators"].items():
        cells = [row.get(k) for k in ("roc_auc", "pr_auc", "prr")]
        print(f"{eid:<45} " + " ".join(f"{c:8.3f}" if c is not None else f"{'–':>8}" for c in cells)
              + f" {row['n']:5d}")
    cost = ccp_cost(backend, args.limit, args.max_new_tokens)
    print(json.dumps(cost, indent=2))


if __name__ == "__main__":
    main()
