"""The benchmark's progress line on stderr: the phase it is in and an ETA taken from this run's own pace.

A batch is generated in one call, so items finish in bursts; an ETA fitted to finished items alone reads
"-:--:--" for the whole first batch and then jumps. :class:`Pace` instead times the two phases apart
(generating a batch, scoring an item) and predicts the rest from them; until the first batch is generated
it says so instead of guessing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

__all__ = ["Pace", "progress_bar"]


def _clock(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class _ItemsColumn(ProgressColumn):
    """``k/n items`` once the number of items is known."""

    def render(self, task: Task) -> Text:
        if task.total is None:
            return Text("")
        return Text(f"{int(task.completed)}/{int(task.total)} items", style="progress.download")


class _EtaColumn(ProgressColumn):
    """Time left: the ``done_at`` field (a ``time.monotonic()`` deadline) counted down, else rich's estimate."""

    def render(self, task: Task) -> Text:
        if task.total is None or task.finished:
            return Text("")
        if "done_at" in task.fields:
            done_at = task.fields["done_at"]
            if done_at is None:
                return Text("ETA after the first batch", style="progress.remaining")
            return Text(f"ETA {_clock(done_at - time.monotonic())}", style="progress.remaining")
        left = task.time_remaining
        return Text("ETA …" if left is None else f"ETA {_clock(left)}", style="progress.remaining")


def progress_bar(enabled: bool) -> Progress:
    """A progress display on stderr: spinner, phase, bar, ``k/n items``, elapsed time and ETA."""
    return Progress(
        SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), _ItemsColumn(),
        TimeElapsedColumn(), _EtaColumn(),
        console=Console(stderr=True), disable=not enabled, transient=False,
    )


@dataclass
class Pace:
    """Seconds spent generating per item of a generated batch and scoring per item, measured in this run.

    ``left(n)`` predicts the time for ``n`` more items as ``n × (generation + scoring per item)``; the
    generation share counts every item of the batches seen, cached ones included, so a partly cached run
    is predicted at its own mix. ``None`` until one batch has been generated and one item scored.
    """

    generation_s: float = 0.0
    batch_items: int = 0
    scoring_s: float = 0.0
    scored: int = 0

    def generated(self, seconds: float, items: int) -> None:
        self.generation_s += seconds
        self.batch_items += items

    def scored_one(self, seconds: float) -> None:
        self.scoring_s += seconds
        self.scored += 1

    def left(self, n: int) -> float | None:
        if not self.batch_items or not self.scored:
            return None
        return n * (self.generation_s / self.batch_items + self.scoring_s / self.scored)

    def deadline(self, n: int) -> float | None:
        """``time.monotonic()`` when ``n`` more items should be done (the ``done_at`` field of the bar)."""
        left = self.left(n)
        return None if left is None else time.monotonic() + left

