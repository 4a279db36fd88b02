"""Cost and faithfulness of every attribution method on one answer, against Captum/Inseq's figures.

The default model's greedy answer to the chat prompt "What is the capital of Australia?" (37 prompt tokens
with the chat template, 7 visible answer tokens: "The capital of Australia is Canberra.") is explained by
every registered method in the settings :func:`selection` gives: forward rows and backward passes counted by
the scorer (``attribution.extras["forwards"]`` / ``["backwards"]``: the method's own passes; the one check
pass proving the scorer reproduces the trace comes on top), CPU and wall seconds, side by side with the numbers the issue reports
for Captum/Inseq on the same job (occlusion 287 forwards, token Shapley 186 forwards for 5 permutations,
exact 3-component Shapley 19 forwards). Then, unless ``--no-faithfulness``, each attribution's faithfulness
(:func:`tokentrust.attribution.faithfulness.faithfulness`): soft sufficiency, soft comprehensiveness and the
delete-top-20 % drop, each as a ratio to random attributions (> 1: better than random).

Goal: equal or fewer passes than Captum/Inseq at equal faithfulness; faithfulness ratios > 1 for gradient ×
input, integrated gradients, occlusion and ReAGent.

    .venv/bin/python benchmarks/explain.py [--only occlusion] [--no-faithfulness] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

PROMPT = "What is the capital of Australia?"
PROMPT_TOKENS, ANSWER_TOKENS = 37, 7  # what the Captum/Inseq figures were measured on


@dataclass(frozen=True)
class Setting:
    """One run: a method spec at a granularity, and what Captum/Inseq needed for the same job (if reported)."""

    label: str
    spec: str
    granularity: str
    reference: str = ""
    reference_forwards: int | None = None
    faithful_goal: bool = False  # the goal: every faithfulness ratio > 1


#: The settings of the methods this script knows; any other registered method runs at its defaults, per token.
KNOWN: dict[str, list[Setting]] = {
    "occlusion": [
        Setting("occlusion, tokens", "occlusion", "token", "Captum/Inseq occlusion", 287, faithful_goal=True),
        Setting("occlusion, words", "occlusion", "word", faithful_goal=True),
    ],
    "gradient_x_input": [Setting("gradient × input", "gradient_x_input", "token", faithful_goal=True)],
    "integrated_gradients": [Setting("integrated gradients", "integrated_gradients", "token", faithful_goal=True)],
    "attention": [Setting("attention, last layer", "attention:mode=last", "token"),
                  Setting("attention rollout", "attention:mode=rollout", "token")],
    "reagent": [Setting("ReAGent", "reagent", "token", faithful_goal=True)],
    "shapley": [
        # antithetic sampling uses permutations in pairs, so 5 is bracketed by 4 and 6; tolerance 0 spends them all
        Setting("Shapley, tokens, 4 permutations", "shapley:exact=false,max_permutations=4,tolerance=0", "token",
                "Captum ShapleyValueSampling, 5 permutations", 186),
        Setting("Shapley, tokens, 6 permutations", "shapley:exact=false,max_permutations=6,tolerance=0", "token",
                "Captum ShapleyValueSampling, 5 permutations", 186),
        Setting("Shapley, exact, 3 components", "shapley:exact=true", "component",
                "Captum exact Shapley, 3 components", 19),
    ],
}


def selection(registered: Sequence[str] | None = None, only: Sequence[str] = ()) -> list[Setting]:
    """The settings run: every registered method (``registered``, default the registry), in the settings of
    :data:`KNOWN` or at its defaults per token; ``only`` keeps the methods (or labels) named."""
    from tokentrust.registry import attributors

    names = list(attributors.names() if registered is None else registered)
    chosen = [s for name in names for s in KNOWN.get(name, [Setting(name, name, "token")])]
    if only:
        chosen = [s for s in chosen if s.label in only or s.spec.partition(":")[0] in only]
    return chosen


def measure(backend, trace, setting: Setting, faithfulness: bool) -> dict:
    """One setting's counts, seconds and (optionally) faithfulness."""
    import tokentrust as tt

    t0, c0 = time.perf_counter(), time.process_time()
    attribution = tt.explain(trace, setting.spec, backend=backend, granularity=setting.granularity)  # type: ignore[arg-type]
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    row = {**asdict(setting), "method_id": attribution.method, "sources": len(attribution.sources),
           "forwards": attribution.extras["forwards"], "backwards": attribution.extras["backwards"],
           "cpu_s": cpu, "wall_s": wall}
    if setting.reference_forwards:
        row["forwards_vs_reference"] = row["forwards"] / setting.reference_forwards
    if faithfulness:
        try:
            from tokentrust.attribution.faithfulness import faithfulness as measure_faithfulness
        except ImportError:
            row["faithfulness"] = None
        else:
            found = measure_faithfulness(attribution, backend, trace)
            row["faithfulness"] = {k: float(v) for k, v in found.items() if k.endswith("_ratio")}
    return row


def _cell(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.3g}" if isinstance(x, float) else str(x)


def table(rows: list[dict]) -> str:
    """The rows as the Markdown table benchmarks/README.md shows."""
    ratios = sorted({k for r in rows for k in (r.get("faithfulness") or {})})
    head = ["setting", "granularity", "sources", "forwards", "backwards", "CPU s", "wall s", "Captum/Inseq forwards",
            *(k.removesuffix("_ratio") + " ratio" for k in ratios)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        faith = r.get("faithfulness") or {}
        cells = [r["label"], r["granularity"], r["sources"], r["forwards"], r["backwards"], r["cpu_s"], r["wall_s"],
                 f"{r['reference_forwards']} ({r['reference']})" if r["reference_forwards"] else "–",
                 *(faith.get(k) for k in ratios)]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", default=[], help="a method or setting label (repeatable)")
    parser.add_argument("--no-faithfulness", action="store_true", help="counts and seconds only")
    parser.add_argument("--max-new-tokens", type=int, default=16, help="the answer ends by itself before this")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args()

    import tokentrust as tt

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    backend = tt.load()
    trace = backend.generate(PROMPT, max_new_tokens=args.max_new_tokens)
    n_prompt = len(backend.render(trace.prompt, chat=True).token_ids or [])
    n_answer = sum(1 for s in trace.special if not s)
    print(f"prompt: {n_prompt} tokens; answer {trace.text!r}: {n_answer} visible tokens")
    if (n_prompt, n_answer) != (PROMPT_TOKENS, ANSWER_TOKENS):
        print(f"note: Captum/Inseq's figures are for {PROMPT_TOKENS} prompt and {ANSWER_TOKENS} answer tokens")
    rows = []
    for setting in selection(only=args.only):
        rows.append(measure(backend, trace, setting, faithfulness=not args.no_faithfulness))
        r = rows[-1]
        print(f"{setting.label}: {r['forwards']} forwards, {r['backwards']} backwards, {r['cpu_s']:.2f} CPU-s",
              flush=True)
    print(json.dumps(rows, indent=2) if args.json else table(rows))
    missed = [r["label"] for r in rows if r["faithful_goal"] and r.get("faithfulness")
              and not all(v > 1 for v in r["faithfulness"].values())]
    print("faithfulness goal (every ratio > 1): " + ("met" if not missed else "missed by " + ", ".join(missed)))


if __name__ == "__main__":
    main()
