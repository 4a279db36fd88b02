"""``tokentrust estimators``: every registered score with its level, what it costs, what it needs and measures.

On a terminal it prints a table whose id column is never cut; piped or redirected it prints plain aligned
text (one estimator per line, nothing cut or wrapped); ``--json`` prints the rows. Descriptions are the first
paragraph of each class's docstring, turned into plain text (no reStructuredText markup, no section
references to documents the reader does not have).
"""

from __future__ import annotations

import sys
from dataclasses import fields
from typing import Any

import typer

from ..estimators.describe import cost_of, plain_text
from .options import JsonOpt

__all__ = ["estimator_rows"]

def estimator_rows() -> list[dict[str, Any]]:
    """One row per registered estimator: id, aliases, level, cost, requires, parameters (defaults), description."""
    from ..registry import estimators as registry

    rows = []
    for name, cls in registry.items():
        est = cls()
        rows.append({
            "id": name, "aliases": registry.aliases_of(name), "level": cls.level.value, "cost": cost_of(est),
            "requires": sorted(c.value for c in est.requires),
            "parameters": {f.name: f.default for f in fields(cls)}, "description": plain_text(cls.__doc__ or ""),
        })
    return rows


def _short(value: Any) -> str:
    """A default as the table shows it: a list of texts by its length (``(8 texts)``), anything else by repr."""
    if isinstance(value, tuple | list) and len(value) > 2:
        return f"({len(value)} texts)" if all(isinstance(v, str) for v in value) else f"({len(value)} values)"
    return repr(value)


def _cells(row: dict[str, Any]) -> dict[str, str]:
    return {"id": row["id"], "aliases": ", ".join(row["aliases"]), "level": row["level"], "cost": row["cost"],
            "needs": ", ".join(row["requires"]),
            "parameters": ", ".join(f"{k}={_short(v)}" for k, v in row["parameters"].items()),
            "description": row["description"]}


def _plain(rows: list[dict[str, Any]]) -> str:
    """Aligned columns, one estimator per line, nothing cut (the last column, the description, runs on)."""
    cells = [_cells(r) for r in rows]
    names = list(cells[0]) if cells else []
    widths = {k: max(len(k), *(len(c[k]) for c in cells)) for k in names[:-1]}

    def line(values: dict[str, str]) -> str:
        return "  ".join([*(values[k].ljust(widths[k]) for k in names[:-1]), values[names[-1]]]).rstrip()

    return "\n".join([line({k: k for k in names}), *(line(c) for c in cells)]) + "\n"


def list_estimators(json: JsonOpt = False) -> None:
    """List every estimator: id, level, cost, what it needs, parameters and what it measures.

    cost: trace only (from the answer's own log-probs, free), extra pass (one more forward pass), sampling
    (n more answers), extra generations, + another model (an NLI or embedding model is loaded).
    Piped or redirected, the list is plain aligned text; --json gives the same rows as JSON.
    """
    import json as _json

    rows = estimator_rows()
    if json:
        sys.stdout.write(_json.dumps(rows, indent=2, default=repr) + "\n")
        return
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console()
    if not console.is_terminal:
        sys.stdout.write(_plain(rows))
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_lines=False)
    table.add_column("id · level", no_wrap=True, min_width=max(len(r["id"]) for r in rows))
    table.add_column("cost", min_width=10, max_width=14)
    table.add_column("what it measures", ratio=1, min_width=24)
    for r in rows:
        cells = _cells(r)
        name = Text(r["id"])
        name.append(f"\n{r['level']}" + (f" · alias {cells['aliases']}" if cells["aliases"] else ""), style="dim")
        about = Text(r["description"])
        about.append(f"\nneeds: {cells['needs']}" + (f" · {cells['parameters']}" if cells["parameters"] else ""),
                     style="dim")
        table.add_row(name, r["cost"], about)
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("estimators")(list_estimators)
