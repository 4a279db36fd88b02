"""Sampling cost and the failure-prediction quality (ROC-AUC) of every estimator on ``capitals``.

1. Speed: ``n`` samples per question from one batched ``backend.sample`` call, against one greedy answer per
   question (same questions, same max_new_tokens). Goal: ratio ≤ 3×.
2. ROC-AUC: greedy answers to ``capitals`` questions judged by the dataset's rule (contains-match), every
   registered estimator at its defaults (sampling estimators share one ``Samples(n=10)`` per question), AUC of
   correct-vs-incorrect with NaN scores dropped (their share is reported as coverage).
   Per-item results are appended to a JSONL file as they finish, so an interrupted run resumes where it stopped;
   rows recorded before an estimator was registered get only the new estimators on a rerun.

    .venv/bin/python benchmarks/sampling.py [--speed-questions 16] [--samples 10] [--limit 200]
        [--max-new-tokens 16] [--out benchmarks/results/sampling.jsonl] [--skip-speed] [--skip-auc]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI and server set it

from rich.progress import Progress

import tokentrust as tt
from tokentrust.bench.datasets import load_dataset
from tokentrust.bench.quality import judge
from tokentrust.metrics import roc_auc
from tokentrust.registry import estimators


def speed(backend, n_questions: int, n_samples: int, max_new_tokens: int) -> dict:
    prompts = [it.prompt for it in load_dataset("capitals", limit=n_questions).items]
    backend.generate(prompts[0], max_new_tokens=4)  # warm-up
    t0 = time.perf_counter()
    for p in prompts:
        backend.generate(p, max_new_tokens=max_new_tokens)
    greedy = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i, p in enumerate(prompts):
        backend.sample(p, n=n_samples, seed=i, max_new_tokens=max_new_tokens)
    sampled = time.perf_counter() - t0
    return {"questions": n_questions, "samples": n_samples, "max_new_tokens": max_new_tokens,
            "greedy_s": greedy, "sampled_s": sampled, "ratio": sampled / greedy}


def all_estimators(n_samples: int) -> list:
    out = []
    for name, cls in estimators.items():
        fields = cls.__dataclass_fields__
        out.append(tt.build_estimator(f"{name}:n_samples={n_samples}" if "n_samples" in fields and
                                      name != "verbalized" else name))
    return out


def auc_run(backend, limit: int, n_samples: int, max_new_tokens: int, out: Path) -> list[dict]:
    data = load_dataset("capitals", limit=limit)
    chosen = all_estimators(n_samples)
    done = {}
    if out.exists():
        for line in out.read_text().splitlines():
            row = json.loads(line)
            done[row["id"]] = row
    todo = [it for it in data.items if it.id not in done or _missing(done[it.id], chosen)]
    with Progress() as progress, out.open("a") as sink:
        task = progress.add_task("capitals", total=len(data.items), completed=len(data.items) - len(todo))
        for start in range(0, len(todo), 16):
            batch = todo[start : start + 16]
            traces = backend.generate_many([it.prompt for it in batch], max_new_tokens=max_new_tokens)
            for item, trace in zip(batch, traces, strict=True):
                ctx = tt.Context(trace, backend, seed=0)
                row = {"id": item.id, "answer": trace.text,
                       "correct": judge(data, trace.text, item.references).correct, "scores": {}, "seconds": {}}
                if item.id in done:  # a row recorded before some estimators existed: add only those
                    old = done[item.id]
                    assert old["answer"] == trace.text, f"{item.id}: the greedy answer changed"
                    row = {**old, "scores": dict(old["scores"]), "seconds": dict(old["seconds"])}
                for est in (_missing(row, chosen) if item.id in done else chosen):
                    t0 = time.perf_counter()
                    try:
                        row["scores"][est.id] = ctx.get(est).values[0] if est.level.value == "sequence" else None
                    except tt.TokentrustError as exc:  # recorded, never a silent gap
                        row["scores"][est.id] = None
                        row.setdefault("errors", {})[est.id] = str(exc)
                    row["seconds"][est.id] = time.perf_counter() - t0
                row["scores"] = {k: v for k, v in row["scores"].items() if v is not None or k in row.get("errors", {})}
                sink.write(json.dumps(row) + "\n")
                sink.flush()
                done[item.id] = row
                progress.advance(task)
    tmp = out.with_suffix(".tmp")  # one row per id again (completed rows were appended), replaced atomically
    tmp.write_text("".join(json.dumps(done[k]) + "\n" for k in done), encoding="utf-8")
    os.replace(tmp, out)
    return [done[it.id] for it in data.items if it.id in done]


def _missing(row: dict, chosen: list) -> list:
    """The answer-level estimators a recorded row has no value or error for (registered after it was written).
    A rerun appends the completed row; reading keeps the last row of each id."""
    return [e for e in chosen if e.level.value == "sequence" and e.id not in row["scores"]
            and e.id not in row.get("errors", {})]


def summarise(rows: list[dict]) -> list[dict]:
    names = sorted({k for r in rows for k in r["scores"]})
    table = []
    for name in names:
        pairs = [(r["correct"], r["scores"].get(name)) for r in rows]
        kept = [(c, v) for c, v in pairs if v is not None and not math.isnan(v)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            auc = roc_auc([c for c, _ in kept], [v for _, v in kept]) if kept else float("nan")
        secs = [r["seconds"].get(name, 0.0) for r in rows]
        table.append({"estimator": name, "roc_auc": auc, "coverage": len(kept) / len(rows),
                      "seconds_per_item": sum(secs) / len(rows)})
    return sorted(table, key=lambda r: -r["roc_auc"] if not math.isnan(r["roc_auc"]) else 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--speed-questions", type=int, default=16)
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/sampling.jsonl"))
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-auc", action="store_true")
    ap.add_argument("--summary-only", action="store_true", help="summarise the rows already in --out, generate nothing")
    args = ap.parse_args()
    if args.summary_only:
        report([json.loads(line) for line in args.out.read_text().splitlines()])
        return
    backend = tt.load()
    if not args.skip_speed:
        print(json.dumps(speed(backend, args.speed_questions, args.samples, args.max_new_tokens)), flush=True)
    if not args.skip_auc:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        report(auc_run(backend, args.limit, args.samples, args.max_new_tokens, args.out))


def report(rows: list[dict]) -> None:
    acc = sum(r["correct"] for r in rows) / len(rows)
    print(f"{len(rows)} questions, accuracy {acc:.3f}")
    print("| estimator | ROC-AUC | coverage | s/item |\n|---|---|---|---|")
    for r in summarise(rows):
        print(f"| {r['estimator']} | {r['roc_auc']:.3f} | {r['coverage']:.2f} | {r['seconds_per_item']:.2f} |")


if __name__ == "__main__":
    main()
