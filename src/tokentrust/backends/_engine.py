"""The decoding loop of in-process models: one path for generate, sample, stream and the serving scheduler.

Rows (one answer each) decode together in one batch over a shared KV cache. After every forward pass the
last position's raw logits are reduced to their statistics on the device (:func:`._distribution.step_stats`)
and dropped, so full-vocabulary logits never outlive their step. Rows join a running batch at a step
boundary: their prompts are prefilled together (left-padded, only the last position projected onto the
vocabulary), their cache is left-padded to the running length and concatenated, and from then on every row
advances by one token per step. A row leaves when it emits an end-of-sequence id, reaches its length limit
or is cancelled: its cache rows are dropped and cache columns that only padding occupies are trimmed.

Greedy rows take the argmax of the raw logits, exactly as ``model.generate(do_sample=False)`` does (its
positions, masks and cache are reproduced here, and a test checks the tokens and logits against it). Sampled
rows warp the logits (temperature, then top-p) and draw with their own seeded generator, so a seeded row
gives the same answer whatever it is batched with. A shared prompt (``n`` samples of one question) is
prefilled once and its cache repeated, never recomputed; a shared prompt *beginning* (the system prompt and
chat headers every question repeats) is computed once per batch and its cache reused by every row that
starts with it (then the rest of each prompt sits after a few padding columns: the mask hides them and the
positions skip them, so each row sees exactly its own prompt).
"""

from __future__ import annotations

import inspect
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from ..config import GenerationConfig
from ..trace import TokenRecord, Trace
from ._distribution import StepStats, step_stats


class DecodingModel(Protocol):
    """What the loop needs of an in-process backend (:class:`~tokentrust.backends.hf.HFBackend` is one)."""

    model: Any
    pad_id: int
    eos_ids: frozenset[int]
    tokenizer_lock: threading.RLock

    @property
    def device(self) -> torch.device: ...

    def display(self, tid: int) -> str: ...


class IncrementalDecoder:
    """Answer text built token by token without ever rewriting what was already emitted.

    Decodes a small window of recent ids (the way text-generation servers do) so each token costs O(1);
    a piece that ends inside a multi-byte character is held back until the character completes. Special
    tokens add no text. The pieces concatenate to the decoded answer.
    """

    def __init__(self, tokenizer: Any, special_ids: frozenset[int]) -> None:
        self.tokenizer = tokenizer
        self.special_ids = special_ids
        self.plain: list[int] = []
        self.text = ""
        self._prefix = 0
        self._read = 0

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, clean_up_tokenization_spaces=False) if ids else ""

    def add(self, tid: int) -> tuple[str, bool]:
        """Feed one id; return ``(piece, special)``: the characters it completes (possibly ``""``)."""
        if tid in self.special_ids:
            return "", True
        self.plain.append(tid)
        before = self._decode(self.plain[self._prefix : self._read])
        after = self._decode(self.plain[self._prefix :])
        if len(after) > len(before) and not after.endswith("\ufffd"):
            piece = after[len(before) :]
            self._prefix, self._read = self._read, len(self.plain)
            self.text += piece
            return piece, False
        return "", False


@dataclass(eq=False)
class Row:
    """One answer being generated: its prompt and settings in, its columns out."""

    prompt: Any  # as recorded in the trace
    prompt_text: str
    prompt_ids: list[int]
    config: GenerationConfig
    max_new: int
    decoder: IncrementalDecoder
    generator: torch.Generator | None = None
    ids: list[int] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    offsets: list[tuple[int, int]] = field(default_factory=list)
    special: list[bool] = field(default_factory=list)
    columns: dict[str, list[Any]] = field(default_factory=lambda: {k: [] for k in _COLUMNS})
    finish: str | None = None  # "stop" | "length" | "forced" once done
    cancelled: bool = False

    @property
    def done(self) -> bool:
        return self.finish is not None or self.cancelled

    def add(self, tid: int, stats: StepStats, i: int, display: Callable[[int], str]) -> None:
        """Append token ``tid`` with position ``i`` of ``stats`` (its distribution's statistics)."""
        k = self.config.top_k
        top_ids = stats.top_ids[i][:k]
        c = self.columns
        c["logprobs"].append(stats.logprobs[i])
        c["top_ids"].append(top_ids)
        c["top_tokens"].append([display(t) for t in top_ids])
        c["top_logprobs"].append(stats.top_logprobs[i][:k])
        c["entropy"].append(stats.entropy[i])
        c["max_prob"].append(stats.max_prob[i])
        c["margin"].append(stats.margin[i])
        c["rank"].append(stats.rank[i])
        c["kurtosis"].append(stats.kurtosis[i])
        start = len(self.decoder.text)
        piece, special = self.decoder.add(tid)
        self.ids.append(tid)
        self.special.append(special)
        self.offsets.append((start, start + len(piece)))
        self.tokens.append(piece or display(tid))

    def record(self, i: int) -> TokenRecord:
        """Token ``i`` as it will appear in the finished trace."""
        start, end = self.offsets[i]
        c = self.columns
        return TokenRecord(
            index=i, id=self.ids[i], token=self.tokens[i], text=self.decoder.text[start:end], offset=(start, end),
            special=self.special[i], logprob=c["logprobs"][i], top_ids=c["top_ids"][i],
            top_tokens=c["top_tokens"][i], top_logprobs=c["top_logprobs"][i], entropy=c["entropy"][i],
            max_prob=c["max_prob"][i], margin=c["margin"][i], rank=c["rank"][i], kurtosis=c["kurtosis"][i],
        )

    def trace(self, model_id: str) -> Trace:
        """The finished answer as a trace (its ``records()`` equal :meth:`record` of every token)."""
        return Trace(
            model_id=model_id, prompt=self.prompt, prompt_text=self.prompt_text, text=self.decoder.text,
            token_ids=self.ids, tokens=self.tokens, offsets=self.offsets, special=self.special,
            top_k=self.config.top_k, config=self.config, finish_reason=self.finish or "length",
            prompt_tokens=len(self.prompt_ids), **self.columns,
        )


_COLUMNS = ("logprobs", "top_ids", "top_tokens", "top_logprobs", "entropy", "max_prob", "margin", "rank", "kurtosis")


def top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Mask (−inf) the least likely tokens outside the nucleus of mass ``top_p`` (the top token always stays)."""
    if top_p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, descending=False)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    remove = cumulative <= (1 - top_p)
    remove[..., -1:] = False
    return logits.masked_fill(remove.scatter(-1, order, remove), float("-inf"))


def choose(logits: torch.Tensor, rows: Sequence[Row]) -> torch.Tensor:
    """The next id of each row: argmax of the raw logits (greedy), or a draw from the warped distribution.

    Sampled rows are drawn together by inverting their cumulative distributions (float64) at one uniform
    number each, taken from the row's own generator, so a row's draw does not depend on its batch.
    """
    chosen = logits.argmax(-1)
    sampled = [i for i, row in enumerate(rows) if not row.config.greedy]
    if not sampled:
        return chosen
    index = torch.tensor(sampled, device=logits.device)
    temperature = torch.tensor([rows[i].config.temperature for i in sampled], device=logits.device)
    warped = logits[index] / temperature[:, None]
    for j, i in enumerate(sampled):
        if rows[i].config.top_p < 1.0:
            warped[j] = top_p_filter(warped[j], rows[i].config.top_p)
    cdf = warped.softmax(-1).double().cumsum(-1)
    u = torch.stack([torch.rand((), generator=rows[i].generator, dtype=torch.float64, device=logits.device)
                     for i in sampled])
    draw = torch.searchsorted(cdf, (u * cdf[:, -1])[:, None], right=True).squeeze(-1)
    chosen[index] = draw.clamp_max(logits.shape[-1] - 1)
    return chosen


class DecodeBatch:
    """Rows decoding together over one KV cache; rows join at step boundaries and leave when done."""

    def __init__(self, backend: DecodingModel) -> None:
        from transformers import DynamicCache

        self.backend = backend
        self.model = backend.model
        self.device = backend.device
        self.rows: list[Row] = []  # aligned with the cache's batch dimension
        self.cache: Any = None
        self.attention: torch.Tensor | None = None  # (B, L) 1 = real token
        self.n_real: torch.Tensor | None = None  # (B,) real tokens in the cache per row
        self.pending: torch.Tensor | None = None  # (B,) chosen ids not yet fed to the model
        self._new_cache = lambda: DynamicCache(config=self.model.config)
        self._prefixes: dict[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] = {}
        self.can_merge_layers = _plain_layers(self._new_cache())
        params = inspect.signature(self.model.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        self._keep_arg = next((k for k in ("logits_to_keep", "num_logits_to_keep") if k in params), None)

    def __len__(self) -> int:
        return len(self.rows)

    # ---- the model ------------------------------------------------------------------------------------
    def _forward(self, input_ids: torch.Tensor, attention: torch.Tensor, positions: torch.Tensor, cache: Any,
                 start: int) -> torch.Tensor:
        kwargs: dict[str, Any] = {self._cache_arg: cache}
        if self._keep_arg is not None:
            kwargs[self._keep_arg] = 1
        with torch.no_grad():
            out = self.model(
                input_ids=input_ids, attention_mask=attention, position_ids=positions, use_cache=True,
                cache_position=torch.arange(start, start + input_ids.shape[1], device=self.device), **kwargs,
            )
        return out.logits[:, -1].to(copy=True, dtype=torch.float32)

    def _take(self, rows: Sequence[Row], logits: torch.Tensor) -> torch.Tensor:
        """Choose each row's next token from its raw logits and record it; return the chosen ids."""
        chosen = choose(logits, rows)
        stats = step_stats(logits, chosen, max(r.config.top_k for r in rows))
        ids = chosen.tolist()
        backend = self.backend
        with backend.tokenizer_lock:
            for i, row in enumerate(rows):
                row.add(ids[i], stats, i, backend.display)
                if ids[i] in backend.eos_ids:
                    row.finish = "stop"
                elif len(row.ids) >= row.max_new:
                    row.finish = "length"
        return chosen

    # ---- joining -------------------------------------------------------------------------------------
    def admit(self, rows: Sequence[Row], *, shared_prompt: bool = False) -> None:
        """Prefill ``rows`` and add the unfinished ones to the batch.

        ``shared_prompt``: every row has the same prompt ids; it is prefilled once and its cache repeated.
        Otherwise prompts that begin with a known prefix (a system prompt and chat header that every
        question repeats) reuse its cache: only the rest of each prompt is computed.
        """
        if not rows:
            return
        prompts = [rows[0].prompt_ids] if shared_prompt else [r.prompt_ids for r in rows]
        prefix = self._prefix_for(prompts)
        start = len(prefix[0]) if prefix is not None else 0
        tails = [ids[start:] for ids in prompts]
        width = max(len(t) for t in tails)
        input_ids = torch.full((len(tails), width), self.backend.pad_id, dtype=torch.long)
        attention = torch.zeros((len(tails), start + width), dtype=torch.long)
        attention[:, :start] = 1
        positions = torch.ones((len(tails), width), dtype=torch.long)
        for i, ids in enumerate(tails):
            input_ids[i, width - len(ids) :] = torch.tensor(ids)
            attention[i, start + width - len(ids) :] = 1
            positions[i, width - len(ids) :] = torch.arange(start, start + len(ids))
        input_ids, attention, positions = input_ids.to(self.device), attention.to(self.device), positions.to(self.device)
        cache = self._new_cache()
        if prefix is not None:
            for layer, (keys, values) in enumerate(prefix[1]):
                cache.update(keys.expand(len(tails), -1, -1, -1).clone(),
                             values.expand(len(tails), -1, -1, -1).clone(), layer)
        logits = self._forward(input_ids, attention, positions, cache, start)
        if shared_prompt and len(rows) > 1:
            cache.batch_repeat_interleave(len(rows))
            attention = attention.repeat_interleave(len(rows), dim=0)
            logits = logits.repeat_interleave(len(rows), dim=0)
        chosen = self._take(rows, logits)
        n_real = attention.sum(-1)
        keep = [i for i, r in enumerate(rows) if not r.done]
        if len(keep) < len(rows):
            if not keep:
                return
            index = torch.tensor(keep, device=self.device)
            cache.batch_select_indices(index)
            attention, n_real, chosen = attention[index], n_real[index], chosen[index]
        self._merge([rows[i] for i in keep], cache, attention, n_real, chosen)

    #: A common beginning shorter than this is recomputed rather than shared.
    MIN_PREFIX = 16
    #: Prefix caches kept per batch (least recently used dropped first).
    MAX_PREFIXES = 4

    def _prefix_for(self, prompts: list[list[int]]) -> tuple[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] | None:
        """A cached prefix (ids, per-layer keys and values of one row) that every prompt extends by at least
        one token; made here from the prompts' common beginning when several share one."""
        if not self.can_merge_layers:
            return None
        shortest = min(len(p) for p in prompts)
        fitting = [ids for ids in self._prefixes
                   if len(ids) < shortest and all(p[: len(ids)] == list(ids) for p in prompts)]
        best = max(fitting, key=len, default=None)
        if best is None and len(prompts) > 1:
            common = len(os.path.commonprefix(prompts))
            common = min(common, shortest - 1)
            if common >= self.MIN_PREFIX:
                best = tuple(prompts[0][:common])
                self._prefixes[best] = self._prefill_prefix(list(best))
                while len(self._prefixes) > self.MAX_PREFIXES:
                    self._prefixes.pop(next(iter(self._prefixes)))
        if best is None:
            return None
        self._prefixes[best] = self._prefixes.pop(best)  # most recently used last
        return best, self._prefixes[best]

    def _prefill_prefix(self, ids: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        cache = self._new_cache()
        tokens = torch.tensor([ids], device=self.device)
        self._forward(tokens, torch.ones_like(tokens), torch.arange(len(ids), device=self.device)[None], cache, 0)
        return [(layer.keys, layer.values) for layer in cache.layers]

    def _merge(self, rows: list[Row], cache: Any, attention: torch.Tensor, n_real: torch.Tensor,
               chosen: torch.Tensor) -> None:
        if not self.rows:
            self.rows, self.cache, self.attention, self.n_real, self.pending = rows, cache, attention, n_real, chosen
            self._trim()
            return
        assert self.attention is not None and self.n_real is not None and self.pending is not None
        old, new = self.attention.shape[1], attention.shape[1]
        width = max(old, new)
        for mine, theirs in zip(self.cache.layers, cache.layers, strict=True):
            mine.keys = torch.cat([_left_pad(mine.keys, width), _left_pad(theirs.keys, width)], dim=0)
            mine.values = torch.cat([_left_pad(mine.values, width), _left_pad(theirs.values, width)], dim=0)
        self.attention = torch.cat([_left_pad(self.attention, width, dim=1), _left_pad(attention, width, dim=1)])
        self.n_real = torch.cat([self.n_real, n_real])
        self.pending = torch.cat([self.pending, chosen])
        self.rows = self.rows + rows

    @property
    def can_merge(self) -> bool:
        """Whether rows can join while others decode (plain full-attention caches only)."""
        return self.cache is None or self.can_merge_layers

    # ---- stepping ------------------------------------------------------------------------------------
    def step(self) -> None:
        """Feed every row its pending token, choose the next one, and retire rows that are done."""
        self.retire()
        if not self.rows:
            return
        assert self.attention is not None and self.n_real is not None and self.pending is not None
        ones = torch.ones((len(self.rows), 1), dtype=self.attention.dtype, device=self.device)
        start = self.attention.shape[1]
        self.attention = torch.cat([self.attention, ones], dim=1)
        logits = self._forward(self.pending[:, None], self.attention, self.n_real[:, None], self.cache, start)
        self.n_real = self.n_real + 1
        self.pending = self._take(self.rows, logits)
        self.retire()

    def retire(self) -> list[Row]:
        """Drop finished and cancelled rows from the batch (and the cache columns nobody needs); return them."""
        gone = [r for r in self.rows if r.done]
        if not gone:
            return []
        keep = [i for i, r in enumerate(self.rows) if not r.done]
        self.rows = [self.rows[i] for i in keep]
        if not keep:
            self.cache = self.attention = self.n_real = self.pending = None
            return gone
        assert self.attention is not None and self.n_real is not None and self.pending is not None
        index = torch.tensor(keep, device=self.device)
        self.cache.batch_select_indices(index)
        self.attention, self.n_real, self.pending = self.attention[index], self.n_real[index], self.pending[index]
        self._trim()
        return gone

    def _trim(self) -> None:
        """Cut cache columns that are padding in every row (left over from rows that left)."""
        assert self.attention is not None
        used = self.attention.any(dim=0)
        first = int(used.long().argmax()) if bool(used.any()) else 0
        if first == 0:
            return
        self.attention = self.attention[:, first:]
        for layer in self.cache.layers:
            layer.keys = layer.keys[:, :, first:]
            layer.values = layer.values[:, :, first:]


def _plain_layers(cache: Any) -> bool:
    """True when every layer of the model's cache is a plain growing one (full attention): only those can
    be padded, concatenated and shared as this loop does (sliding-window or recurrent layers cannot)."""
    from transformers.cache_utils import DynamicLayer

    layers = getattr(cache, "layers", None)
    return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)


def _left_pad(x: torch.Tensor, width: int, dim: int = 2) -> torch.Tensor:
    missing = width - x.shape[dim]
    if missing <= 0:
        return x
    shape = list(x.shape)
    shape[dim] = missing
    return torch.cat([x.new_zeros(shape), x], dim=dim)


def run_rows(batch: DecodeBatch, rows: Sequence[Row], max_batch: int) -> None:
    """Decode every row to the end, at most ``max_batch`` at a time. Free places are refilled a few at a
    time (an eighth of the batch): each admission is a forward pass of its own, so one per finished row
    would cost more than it gains."""
    waiting = list(rows)
    group = max(1, max_batch // 8)
    while waiting or len(batch):
        free = max_batch - len(batch)
        if waiting and free >= min(group, len(waiting)) and (batch.can_merge or not len(batch)):
            batch.admit(waiting[:free])
            del waiting[:free]
        batch.step()
