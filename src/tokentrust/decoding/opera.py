"""OPERA decoding for text LMs (METHODS.md §4.1): over-trust penalty, candidate look-ahead, retrospection.

Each step, every beam keeps its ``N_can`` highest-logit next tokens; one batched forward pass appends every
candidate to its beam (KV cache reused) and returns the candidate's last-layer attention row (max over heads,
renormalised). For the first ``bonus_tokens`` response tokens the penalty is minus the candidate's attention
on the grounding span (the user question, or a given document); afterwards it is the column-product score
``φ`` of the local window (:mod:`.overtrust`, log space). Candidates score ``logit − α·penalty``, log-softmaxed
among the beam's candidates only. When, for every beam, the current aggregation column ``c*`` (the mode over
candidates and beams) has been the argmax in more than ``threshold`` steps and lies at least ``bonus_tokens``
tokens into the response, decoding rolls back to ``c* + 1`` and forbids the tokens chosen there before (at
most ``N_can`` times per position, then ``c*``, else no rollback; never further back than ``window_size``).
The forward pass that scores a candidate also yields its next-step logits and cache, so a step costs one
forward of ``beams × N_can`` tokens. ``num_beams = 1`` is the greedy variant.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config import GenerationConfig
from ..errors import CapabilityError, UserInputError
from ..trace import Trace, as_messages
from .overtrust import LOG_FLOOR, SCALE_FACTOR

_MAX_LOG_PENALTY = 80.0  # φ beyond e^80 already removes a candidate; capping keeps the arithmetic finite


@dataclass(frozen=True)
class OperaConfig:
    """OPERA's settings; the defaults are the published ones (``r = 25, N_can = 1`` is the faster setting)."""

    num_beams: int = 5
    scale_factor: float = SCALE_FACTOR
    threshold: int = 15
    num_attn_candidates: int = 5
    penalty_weights: float = 1.0
    window_size: int = 512
    bonus_tokens: int = 10

    def __post_init__(self) -> None:
        for name in ("num_beams", "num_attn_candidates", "window_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserInputError(f"{name} must be an integer ≥ 1, got {value!r}")
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, int) or self.threshold < 0:
            raise UserInputError(f"threshold must be an integer ≥ 0, got {self.threshold!r}")
        if not self.scale_factor > 0:
            raise UserInputError(f"scale_factor must be > 0, got {self.scale_factor!r}")
        if not self.penalty_weights >= 0:
            raise UserInputError(f"penalty_weights must be ≥ 0, got {self.penalty_weights!r}")
        if self.bonus_tokens < 0:
            raise UserInputError(f"bonus_tokens must be ≥ 0, got {self.bonus_tokens!r}")


def rollback_position(histories: Sequence[Sequence[int]], location: int, counts: dict[int, int], *,
                      threshold: int, min_location: int, max_per_position: int, length: int,
                      window_size: int) -> int | None:
    """Where to roll back to (the response length to restore), or ``None``.

    ``histories[b]`` are beam ``b``'s ``c*`` so far, ``location`` the current mode of ``c*``, ``counts`` the
    rollbacks already made per position, ``length`` the current response length. Rolls back to
    ``location + 1`` when every beam saw ``location`` more than ``threshold`` times and ``location ≥
    min_location``; a position already rolled back ``max_per_position`` times falls back to ``location``,
    and if that is used up too, no rollback. The target is clipped to the last ``window_size`` tokens.
    """
    if location < min_location or not histories:
        return None
    if not all(sum(1 for c in h if c == location) > threshold for h in histories):
        return None
    for target in (location + 1, location):
        target = max(target, length - window_size)
        if counts.get(target, 0) < max_per_position and target < length:
            return target
    return None


@dataclass
class _Beam:
    ids: list[int]
    score: float
    col_sums: np.ndarray  # Σ_i log(σ ω_{i,c}) over the rows so far, per window column
    history: list[int] = field(default_factory=list)  # c* of each chosen token
    log_phi: list[float] = field(default_factory=list)

    def copy(self) -> _Beam:
        return _Beam(list(self.ids), self.score, self.col_sums.copy(), list(self.history), list(self.log_phi))


@dataclass(frozen=True)
class OperaResult:
    """The chosen answer (a trace, teacher-forced for its raw per-token statistics) and what decoding did:
    ``log_phi`` / ``location`` per answer token (the pattern seen when it was chosen, ``c*`` as an answer
    index), ``rollbacks`` made, ``forwards`` (batched passes) and ``tokens_forwarded`` (positions computed)."""

    trace: Trace
    log_phi: list[float]
    location: list[int]
    rollbacks: int
    forwards: int
    tokens_forwarded: int


def grounding_span(backend: Any, prompt: Any, prompt_text: str, prompt_ids: list[int],
                   document: str | None = None) -> list[int]:
    """Prompt token indices of the grounding text: ``document`` when given, else the (last) user question.

    Found by character offsets in the rendered prompt; the whole prompt when the text cannot be located.
    """
    messages = as_messages(prompt)
    if document is not None:
        text = document
    elif messages is not None:
        text = next((m.content for m in reversed(messages) if m.role == "user"), messages[-1].content)
    else:
        text = prompt
    start = prompt_text.rfind(text.strip())
    if document is not None and start < 0:
        raise UserInputError("the grounding document does not occur in the prompt; include it in the prompt")
    end = start + len(text.strip())
    with backend.tokenizer_lock:
        enc = backend.tokenizer(prompt_text, add_special_tokens=False, return_offsets_mapping=True)
    if start < 0 or list(enc["input_ids"]) != list(prompt_ids):
        return list(range(len(prompt_ids)))
    span = [i for i, (a, b) in enumerate(enc["offset_mapping"]) if a < end and b > start]
    return span or list(range(len(prompt_ids)))


class _Decoder:
    """The batched model calls: prefill beams (after a rollback too) and score candidates with one forward."""

    def __init__(self, backend: Any, cfg: OperaConfig, prompt_ids: list[int], span: list[int]) -> None:
        import torch

        self.torch = torch
        self.model, self.cfg, self.prompt_ids = backend.model, cfg, prompt_ids
        self.device = next(self.model.parameters()).device
        self.span = torch.tensor(span, device=self.device)
        self.n_prompt = len(prompt_ids)
        self.log_scale = math.log(cfg.scale_factor)
        self.forwards = self.tokens = 0
        import inspect

        params = inspect.signature(self.model.forward).parameters
        self.cache_arg = "cache" if "cache" in params else "past_key_values"

    def _run(self, ids: Any, cache: Any, start: int) -> tuple[Any, Any]:
        """(logits at the last position, last layer's rows of the new positions: max over heads, renormalised)."""
        torch = self.torch
        n = ids.shape[1]
        out = self.model(input_ids=ids, **{self.cache_arg: cache}, use_cache=True, output_attentions=True,
                         position_ids=torch.arange(start, start + n, device=self.device)[None].expand(ids.shape[0], -1),
                         cache_position=torch.arange(start, start + n, device=self.device))
        self.forwards += 1
        self.tokens += ids.numel()
        attention = out.attentions[-1] if out.attentions else None
        if attention is None:
            raise CapabilityError(f"{type(self.model).__name__} returned no attention weights with eager attention")
        rows = attention.float().amax(dim=1)  # (batch, n, total)
        rows = rows / rows.sum(-1, keepdim=True).clamp_min(1e-30)
        return out.logits[:, -1].float(), rows

    def _log_terms(self, rows: Any) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(rows.double().cpu().numpy()) + self.log_scale

    def prefill(self, beams: list[list[int]]) -> tuple[Any, Any, list[np.ndarray]]:
        """(cache, next logits, window column sums) for beams of equal length."""
        from transformers import DynamicCache

        torch = self.torch
        cache = DynamicCache(config=self.model.config)
        ids = torch.tensor([[*self.prompt_ids, *b] for b in beams], device=self.device)
        logits, rows = self._run(ids, cache, 0)
        window = rows[:, self.n_prompt :, self.n_prompt :]
        sums = [np.tril(self._log_terms(w)).sum(axis=0) if w.shape[0] else np.zeros(0) for w in window]
        return cache, logits, sums

    def candidates(self, cache: Any, tokens: Any, length: int) -> tuple[Any, Any, Any, Any]:
        """Append candidate ``tokens`` (one per row of the repeated cache): next logits, window rows, grounding
        mass of each candidate's attention row."""
        logits, rows = self._run(tokens[:, None], cache, self.n_prompt + length)
        row = rows[:, -1]
        return logits, row[:, self.n_prompt :], row[:, self.span].sum(-1), row


def opera_generate(backend: Any, prompt: Any, config: GenerationConfig | None = None,
                   opera: OperaConfig | None = None, *, document: str | None = None) -> OperaResult:
    """Answer ``prompt`` with OPERA beam search (``opera.num_beams = 1``: greedy) on an in-process model.

    ``config`` gives the answer length, chat template and recorded alternatives (its temperature is
    ignored: OPERA is a deterministic search); ``document`` grounds the early-token bonus instead of the
    user question. Refused before generating when the backend has no attention weights.
    """
    cfg = opera or OperaConfig()
    gen = config or GenerationConfig()
    if getattr(backend, "model", None) is None:
        raise CapabilityError(f"OPERA needs an in-process transformers model with attention weights; "
                              f"{getattr(backend, 'model_id', 'this backend')} gives none")
    import torch

    from ..attribution.attention import eager_attention

    rendered = backend.render(prompt, chat=gen.chat)
    prompt_ids = list(rendered.token_ids or [])
    span = grounding_span(backend, prompt, rendered.text, prompt_ids, document)
    max_new = min(gen.max_new_tokens, backend.context_length - len(prompt_ids))
    eos = set(backend.eos_ids)
    with eager_attention(backend.model), torch.no_grad():
        dec = _Decoder(backend, cfg, prompt_ids, span)
        best, rollbacks = _search(dec, cfg, max_new, eos)
    answer = best.ids
    trace = backend.score(prompt, answer, chat=gen.chat, top_k=gen.top_k) if answer else backend.generate(
        prompt, gen.model_copy(update={"max_new_tokens": 1}))
    finish = "stop" if answer and answer[-1] in eos else "length"
    trace = Trace(**{**trace.model_dump(exclude={"digest", "config", "finish_reason"}),
                     "config": gen, "finish_reason": finish})
    location = [int(c) for c in best.history]
    return OperaResult(trace=trace, log_phi=list(best.log_phi), location=location, rollbacks=rollbacks,
                       forwards=dec.forwards, tokens_forwarded=dec.tokens)


def _search(dec: _Decoder, cfg: OperaConfig, max_new: int, eos: set[int]) -> tuple[_Beam, int]:
    """The beam loop with retrospection; returns the best hypothesis (score / length) and the rollbacks made."""
    torch = dec.torch
    cache, logits, sums = dec.prefill([[]])
    beams = [_Beam([], 0.0, sums[0])]
    snapshots: dict[int, list[_Beam]] = {}
    forbidden: dict[int, set[int]] = {}
    counts: dict[int, int] = {}
    finished: list[_Beam] = []
    rollbacks = 0
    n_can, width = cfg.num_attn_candidates, cfg.num_beams
    while beams and len(finished) < width:
        length = len(beams[0].ids)
        if length >= max_new:
            break
        snapshots[length] = [b.copy() for b in beams]
        masked = logits.clone()
        if forbidden.get(length):
            masked[:, list(forbidden[length])] = -float("inf")
        k = min(n_can, masked.shape[-1])
        cand_logits, cand_ids = masked.topk(k, dim=-1)  # (beams, k)
        cache.batch_repeat_interleave(k)
        next_logits, window, grounding, _ = dec.candidates(cache, cand_ids.reshape(-1), length)
        terms = dec._log_terms(window)  # (beams*k, length+1)
        log_phi = np.empty(len(terms))
        where = np.empty(len(terms), dtype=int)
        for r, row in enumerate(terms):
            col = np.concatenate([beams[r // k].col_sums + row[:length], row[length:]]) + LOG_FLOOR
            where[r] = int(np.argmax(col))
            log_phi[r] = col[where[r]]
        if length < cfg.bonus_tokens:
            penalty = -grounding.double().cpu().numpy()
        else:
            penalty = np.exp(np.minimum(log_phi, _MAX_LOG_PENALTY))
        scored = cand_logits.double().cpu().numpy().reshape(-1) - cfg.penalty_weights * penalty
        scored = scored.reshape(len(beams), k)
        cand_logp = scored - np.logaddexp.reduce(scored, axis=1, keepdims=True)
        total = (np.array([b.score for b in beams])[:, None] + cand_logp).reshape(-1)
        flat_ids = cand_ids.reshape(-1).tolist()
        chosen: list[int] = []
        new_beams: list[_Beam] = []
        for rank, r in enumerate(np.argsort(-total, kind="stable")[: 2 * width]):
            parent = beams[r // k]
            child = _Beam([*parent.ids, flat_ids[r]], float(total[r]),
                          np.concatenate([parent.col_sums + terms[r][:length], terms[r][length:]]),
                          [*parent.history, int(where[r])], [*parent.log_phi, float(log_phi[r])])
            if flat_ids[r] in eos:
                if rank < width:
                    finished.append(child)
                continue
            if len(new_beams) < width:
                new_beams.append(child)
                chosen.append(int(r))
        beams = new_beams
        if not beams:
            break
        index = torch.tensor(chosen, device=dec.device)
        cache.batch_select_indices(index)
        logits = next_logits[index]
        location = Counter(where.tolist()).most_common(1)[0][0]
        target = rollback_position([b.history for b in beams], location, counts, threshold=cfg.threshold,
                                   min_location=cfg.bonus_tokens, max_per_position=n_can, length=length + 1,
                                   window_size=cfg.window_size)
        if target is not None and target in snapshots:
            counts[target] = counts.get(target, 0) + 1
            forbidden = {p: s for p, s in forbidden.items() if p <= target}
            forbidden.setdefault(target, set()).update(b.ids[target] for b in beams)
            beams = [b.copy() for b in snapshots[target]]
            snapshots = {p: s for p, s in snapshots.items() if p <= target}
            cache, logits, sums = dec.prefill([b.ids for b in beams])
            for b, s in zip(beams, sums, strict=True):
                b.col_sums = s
            rollbacks += 1
    pool = finished + (beams if len(finished) < width else [])
    best = max(pool, key=lambda b: b.score / max(len(b.ids), 1)) if pool else _Beam([], 0.0, np.zeros(0))
    return best, rollbacks


DECODINGS: tuple[str, ...] = ("greedy", "opera")


def decoding_plan(decoding: str, beams: int | None, estimators: list[Any], temperature: float = 0.0
                  ) -> tuple[list[Any], Any]:
    """Check a command line's ``--decoding`` / ``--beams`` before any model loads; return the estimators to
    compute (OPERA adds the ``overtrust`` diagnostic) and ``generate(backend, prompt, config) -> Trace``."""
    if decoding not in DECODINGS:
        raise UserInputError(f"--decoding must be one of {', '.join(DECODINGS)}, got {decoding!r}")
    if decoding != "opera":
        if beams is not None:
            raise UserInputError(f"--beams {beams} applies only with --decoding opera")
        return estimators, lambda backend, prompt, config: backend.generate(prompt, config)
    if temperature:
        raise UserInputError(f"--decoding opera is a deterministic search; drop --temperature {temperature}")
    if beams is not None and beams < 1:
        raise UserInputError(f"--beams must be an integer ≥ 1 (1 = OPERA's greedy variant), got {beams}")
    settings = OperaConfig(num_beams=5 if beams is None else beams)
    from ..estimators.base import build_estimator

    extra = build_estimator("overtrust")
    chosen = [*estimators, extra] if extra not in estimators else list(estimators)
    return chosen, lambda backend, prompt, config: opera_generate(backend, prompt, config, settings).trace
