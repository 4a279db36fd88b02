"""Byte-level ensembles and sampling: models with different tokenizers agree on one alphabet, the bytes.

The ensemble's next-byte distribution (over the 256 bytes and the end of the text) is the mean of its
members' (Phan et al. 2024). A sampler draws from it byte by byte; with one member it is statistically
the tokenized model itself, without any prompt-boundary artefact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import UserInputError
from .lm import ByteLM, NextByte


class ByteEnsemble:
    """Mean of the next-byte distributions of ``members`` (each a :class:`ByteLM` with its own context)."""

    def __init__(self, members: Sequence[ByteLM]) -> None:
        if not members:
            raise UserInputError("an ensemble needs at least one model")
        self.members = list(members)
        self.model_id = "ensemble(" + ", ".join(m.model_id for m in self.members) + ")"

    @property
    def forward_passes(self) -> int:
        return sum(m.forward_passes for m in self.members)

    def next_byte(self, text: str | bytes) -> NextByte:
        before = self.forward_passes
        parts = [m.next_byte(text) for m in self.members]
        mean = np.mean([p.with_end() for p in parts], axis=0)
        going_on = float(mean[:256].sum())
        return NextByte(probs=mean[:256] / going_on if going_on > 0 else np.full(256, 1 / 256),
                        end_prob=float(mean[256]), prefix_logprob=float(np.mean([p.prefix_logprob for p in parts])),
                        coverage=float(np.mean([p.coverage for p in parts])),
                        forward_passes=self.forward_passes - before)


@dataclass(frozen=True)
class ByteStep:
    """One sampled byte (256 = the end of the text), its log-probability and the top alternatives."""

    byte: int
    logprob: float
    top: list[tuple[int, float]] = field(default_factory=list)


@dataclass(frozen=True)
class ByteSample:
    """A text written byte by byte, with every step."""

    data: bytes
    steps: list[ByteStep]
    ended: bool
    model_id: str

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


def sample_bytes(model: ByteLM | ByteEnsemble, *, max_bytes: int = 64, temperature: float = 0.0, seed: int = 0,
                 top: int = 5) -> ByteSample:
    """Write up to ``max_bytes`` bytes from the byte-level distribution (greedy when ``temperature`` is 0)."""
    if max_bytes < 1:
        raise UserInputError(f"max_bytes must be at least 1, got {max_bytes}")
    if temperature < 0:
        raise UserInputError(f"temperature must be >= 0, got {temperature}")
    rng = np.random.default_rng(seed)
    data, steps, ended = b"", [], False
    for _ in range(max_bytes):
        dist = model.next_byte(data).with_end()
        if temperature == 0:
            choice = int(np.argmax(dist))
        else:
            warped = np.where(dist > 0, np.exp(np.log(np.maximum(dist, 1e-300)) / temperature), 0.0)
            choice = int(rng.choice(257, p=warped / warped.sum()))
        order = np.argsort(-dist, kind="stable")[:top]
        steps.append(ByteStep(choice, float(np.log(dist[choice])), [(int(b), float(np.log(dist[b]))) for b in order]))
        if choice == 256:
            ended = True
            break
        data += bytes([choice])
    return ByteSample(data, steps, ended, model.model_id)
