"""``tokentrust judge``: audit a run's correctness labels before trusting its metrics.

Every metric of a run is computed against its labels, so a lenient judge (case ignored, a symbol found
inside another word) silently corrupts all of them. This command judges each finished answer again,
by a stricter rule or by the current judge, and lists the items whose label would change. It reads
only the run folder; no model is loaded.
"""

from __future__ import annotations

import json as _json
import sys
from pathlib import Path
from typing import Annotated as Arg
from typing import Any

import typer

from .options import JsonOpt

#: ``--rule`` words that are not correctness rules themselves.
STRICT, RECORDED = "strict", "recorded"


def _question(prompt: Any) -> str:
    """The question of an item: the prompt text, or the last user message of a chat prompt."""
    if isinstance(prompt, str):
        return prompt
    users = [m.get("content", "") for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
    return users[-1] if users else _json.dumps(prompt, ensure_ascii=False)


def _rule_for(choice: str, recorded: str) -> str:
    """The rule an item is judged by again: ``choice`` resolved against the item's recorded rule."""
    from ..bench.quality import check_rule, strict_rule

    if choice == STRICT:
        return strict_rule(recorded)
    if choice == RECORDED:
        return check_rule(recorded)
    return check_rule(choice)


def audit(out: str | Path, rule: str = STRICT) -> dict[str, Any]:
    """The items of run folder ``out`` whose label changes when judged by ``rule``, with a summary.

    ``rule`` is ``"strict"`` (each item's recorded rule made case-sensitive, :func:`strict_rule`),
    ``"recorded"`` (each item's own rule, judged again by the current judge) or any correctness rule.
    """
    from ..bench.layout import load_items
    from ..bench.quality import check_rule, judge
    from ..errors import UserInputError

    if rule not in (STRICT, RECORDED):
        try:
            rule = check_rule(rule)
        except UserInputError as exc:
            raise UserInputError(f"--rule {rule!r}: {exc}; or '{STRICT}' / '{RECORDED}'") from None
    items = load_items(out)
    if not items:
        raise UserInputError(f"{out} has no finished items yet; nothing to judge")
    changes = []
    n_new_correct = 0
    for r in items:
        recorded = r.get("rule") or "contains"
        text = (r.get("context") or {}).get("answer") or r["answer"]
        new_rule = _rule_for(rule, recorded)
        new = bool(judge(new_rule, text, r["references"]).correct)
        n_new_correct += new
        if new != bool(r["correct"]):
            changes.append({
                "id": r["id"], "question": _question(r["prompt"]), "answer": text, "references": r["references"],
                "rule": recorded, "new_rule": new_rule, "old": bool(r["correct"]), "new": new,
            })
    n = len(items)
    return {
        "run": str(out), "rule": rule, "n_items": n, "n_changed": len(changes),
        "accuracy": {"recorded": sum(bool(r["correct"]) for r in items) / n, "rule": n_new_correct / n},
        "changes": changes,
    }


def _label(correct: bool) -> str:
    return "[green]correct[/]" if correct else "[red]wrong[/]"


def _print(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    acc = result["accuracy"]
    summary = (f"{result['n_changed']} of {result['n_items']} labels change under rule {result['rule']!r}: "
               f"accuracy {acc['recorded']:.3f} → {acc['rule']:.3f}")
    if result["changes"]:
        table = Table("id", "question", "answer", "reference", "label", show_lines=True,
                      title=f"labels that change under {result['rule']!r}")
        for c in result["changes"]:
            table.add_row(c["id"], c["question"], c["answer"].strip(), " | ".join(c["references"]),
                          f"{_label(c['old'])} → {_label(c['new'])}\n({c['rule']} → {c['new_rule']})")
        console.print(table)
    console.print(summary, highlight=False)


def judge(
    run_dir: Arg[Path, typer.Argument(help="A run folder written by `tokentrust bench`.")],
    rule: Arg[str, typer.Option(
        "--rule", help="How to judge again: strict (each item's rule made case-sensitive), recorded (each item's "
        "own rule, by the current judge) or any correctness rule (contains, exact, contains:cased, chrf>=50, …).",
    )] = STRICT,
    json: JsonOpt = False,
) -> None:
    """List the items of a run whose correct/wrong label a stricter rule would change.

    Audit labels before trusting a run's metrics: every metric is computed against them.
    Example: tokentrust judge runs/capitals --rule strict
    """
    result = audit(run_dir, rule)
    if json:
        sys.stdout.write(_json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        return
    _print(result)


def register(app: typer.Typer) -> None:
    app.command()(judge)
