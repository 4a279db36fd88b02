"""Exact byte-level probabilities from a tokenized model (Phan et al. 2024, the Byte-Token Representation).

The probability that the text a model writes starts with the bytes ``x`` is the sum, over the valid
*cover encodings* of ``x``, of the probability of that token sequence: every token but the last lies
inside ``x`` and the last reaches or crosses its end (METHODS §6). The next-byte distribution is
``P(x b) / Σ P(x b')`` over the 256 bytes; the chance that the text ends right after ``x`` is reported
beside it. Nothing depends on how ``x`` happens to be tokenised, so a prompt that stops mid-word or with
a trailing space gets the distribution the byte-level model gives, not the tokenizer's artefact.

How it is computed: the canonical tokens of ``x`` up to a safe *anchor* (well before the last tokens
any cover can change) are fed once and their key/value cache kept; a search over token prefixes that
stay inside ``x`` (valid ones only, :mod:`.canonical`) yields a small tree of *nodes*; every node not seen
before is evaluated in one batched forward pass that reuses the anchor's cache; node distributions are
memoised by token sequence, so walking along a text re-evaluates only the new nodes. Sums over "every
token that extends these bytes" come from the vocabulary's byte trie (:mod:`.trie`). Tokens in the
lowest ``tail`` of a node's probability mass are counted without the validity check (their total is at
most ``tail``, so the result moves by at most that much); ``tail=0`` checks every token.
"""

from __future__ import annotations

import copy
import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from weakref import WeakKeyDictionary

import numpy as np

from ..capability import Capability
from ..errors import CapabilityError, ContextLengthError, UserInputError
from .canonical import CanonicalRule, Validity
from .vocab import ByteVocab

_VOCABS: WeakKeyDictionary[Any, ByteVocab] = WeakKeyDictionary()


def require_full_logits(backend: Any) -> None:
    """Refuse, before any work, a backend that cannot give the whole next-token distribution in process."""
    name = getattr(backend, "model_id", type(backend).__name__)
    caps = set(getattr(backend, "capabilities", ()))
    if Capability.FULL_DISTRIBUTION not in caps or not hasattr(backend, "model") or not hasattr(backend, "tokenizer"):
        raise CapabilityError(
            f"byte-level probabilities need the logits over the whole vocabulary from an in-process transformers "
            f"model; {name} does not give them (use the default model, a local model folder or a hub id)")


def require_in_process(spec: str | None) -> None:
    """Refuse a server or replay model spec before loading it (byte-level probabilities need every logit)."""
    if spec and spec.partition(":")[0] in ("openai", "replay"):
        raise CapabilityError(
            f"byte-level probabilities need the logits over the whole vocabulary from an in-process transformers "
            f"model; {spec!r} does not give them (use the default model, a local model folder or a hub id)")


def byte_vocab(backend: Any) -> ByteVocab:
    """The backend's token spellings (built once per backend)."""
    require_full_logits(backend)
    vocab = _VOCABS.get(backend)
    if vocab is None:
        size = int(getattr(backend.model.config, "vocab_size", 0) or 0)
        vocab = ByteVocab.from_tokenizer(backend.tokenizer, special_ids=frozenset(backend.special_ids), size=size,
                                         name=str(backend.model_id))
        _VOCABS[backend] = vocab
    return vocab


def as_bytes(text: str | bytes) -> bytes:
    """Bytes of a text (UTF-8) or the bytes themselves."""
    if isinstance(text, bytes | bytearray):
        return bytes(text)
    if isinstance(text, str):
        return text.encode("utf-8")
    raise UserInputError(f"text must be str or bytes, got {type(text).__name__}")


def document_start(backend: Any) -> int:
    """The token a raw text starts after: the BOS the tokenizer adds, else ``<|endoftext|>``, else BOS/EOS.

    A byte-level model needs the distribution of the *first* token, so a raw text never starts the context.
    """
    tok = backend.tokenizer
    added = tok("a", add_special_tokens=True)["input_ids"]
    if added and added[0] in backend.special_ids:
        return int(added[0])
    vocab = tok.get_vocab()
    if "<|endoftext|>" in vocab:
        return int(vocab["<|endoftext|>"])
    return int(tok.bos_token_id if tok.bos_token_id is not None else min(backend.eos_ids))


@dataclass(frozen=True)
class NextByte:
    """The byte-level model's next byte after a prefix.

    ``probs[b]``: probability that byte ``b`` comes next, given the text goes on (the 256 sum to 1).
    ``end_prob``: probability that the text ends right here (out of ending or going on).
    ``prefix_logprob``: log-probability that the text starts with the prefix (natural log, given the context).
    ``coverage``: the share of the prefix's probability that valid continuations keep (1 with
    ``validity="all"``; just below 1 for a trained model, since invalid encodings are dropped; the unchecked
    ``tail`` can move it by up to that much either way). ``P(x b) / P(x) = probs[b] · (1 − end_prob) · coverage``.
    ``forward_passes``: model calls this prediction needed (0 when every node was cached).
    """

    probs: np.ndarray = field(repr=False)
    end_prob: float
    prefix_logprob: float
    coverage: float
    forward_passes: int

    def top(self, k: int = 10) -> list[tuple[int, float]]:
        """The ``k`` most likely next bytes as ``(byte, probability)``, most likely first."""
        idx = np.argsort(-self.probs, kind="stable")[:k]
        return [(int(b), float(self.probs[b])) for b in idx]

    def with_end(self) -> np.ndarray:
        """257 probabilities: the 256 bytes (scaled by going on) and, last, the end of the text."""
        return np.append(self.probs * (1.0 - self.end_prob), self.end_prob)


@dataclass
class _Node:
    logp: float  # log P(tokens | context)
    logprobs: np.ndarray  # next-token log-softmax (float32, model vocabulary)


class ByteLM:
    """A transformers backend seen as a model over bytes, after a fixed context.

    ``prompt``: a question rendered with the chat template (``chat=True``) whose answer the bytes begin; or
    ``None`` for a raw document (after :func:`document_start`); with ``chat=False`` (or no chat template) a
    prompt is raw text the bytes continue, one byte string with them (so its end is no token boundary), and
    every log-probability is conditional on it.
    ``validity``: ``"canonical"`` (the paper's rule) or ``"all"`` (every encoding; exact marginal).
    """

    def __init__(self, backend: Any, prompt: Any = None, *, chat: bool = True, validity: Validity = "canonical",
                 tail: float = 1e-3, cache_nodes: int = 256, max_nodes: int = 20_000) -> None:
        self.backend = backend
        self.vocab = byte_vocab(backend)
        self.rule = CanonicalRule(backend.tokenizer, self.vocab, validity)
        if not 0.0 <= tail < 1.0:
            raise UserInputError(f"tail must be in [0, 1), got {tail}")
        self.tail, self.cache_nodes, self.max_nodes = tail, cache_nodes, max_nodes
        self.prompt = prompt
        self.lead = b""
        templated = chat and bool(getattr(backend.tokenizer, "chat_template", None))
        if prompt is None or not templated:
            if prompt is not None and not isinstance(prompt, str):
                raise UserInputError(f"{backend.model_id} has no chat template here; give the prompt as plain text")
            self.lead = as_bytes(prompt or "")  # raw text: the prompt is the start of the same byte string
            self.context: tuple[int, ...] = (document_start(backend),)
            self.end_ids = frozenset(backend.eos_ids) | {self.context[0]}
        else:
            ids = backend.render(prompt, chat=True).token_ids or []
            self.context = tuple(ids) or (document_start(backend),)
            self.end_ids = frozenset(backend.eos_ids)
        self._lead_logp: float | None = None
        self.model_id = str(backend.model_id)
        self.forward_passes = 0
        self._nodes: OrderedDict[tuple[int, ...], _Node] = OrderedDict()
        self._base_ids: tuple[int, ...] = ()
        self._base_cache: Any = None
        self._context_next: np.ndarray | None = None
        self._base_next: tuple[float, np.ndarray] = (0.0, np.zeros(0, dtype=np.float32))

    # ---- public ------------------------------------------------------------------------------------
    def target(self, text: str | bytes) -> bytes:
        """The bytes the answer tokens must spell: a raw prompt, then ``text`` (after the dummy leading space of
        SentencePiece models)."""
        data = self.lead + as_bytes(text)
        return b" " + data if self.vocab.prefix_space else data

    def _raw_prefix(self, target: bytes) -> float:
        if not target:
            return 0.0
        cover, _, _, ref = self._sums(target, want_next=False, want_end=False)
        return ref + math.log(cover) if cover > 0 else -math.inf

    @property
    def lead_logprob(self) -> float:
        """log P(the raw prompt) (0 without one): every other log-probability is conditional on it."""
        if self._lead_logp is None:
            self._lead_logp = self._raw_prefix(self.target(b"")) if self.lead else 0.0
        return self._lead_logp

    def prefix_logprob(self, text: str | bytes) -> float:
        """log P(the text written after the context starts with ``text``) — independent of tokenisation."""
        return self._raw_prefix(self.target(text)) - self.lead_logprob

    def end_logprob(self, text: str | bytes) -> float:
        """log P(the text written after the context is exactly ``text``, then ends)."""
        target = self.target(text)
        _, _, end, ref = self._sums(target, want_next=False, want_end=True)
        return (ref + math.log(end) if end > 0 else -math.inf) - self.lead_logprob

    def string_logprob(self, text: str | bytes, *, end: bool = True) -> float:
        """Tokenisation-free log-probability of ``text``: as the whole answer (``end``) or as its start."""
        return self.end_logprob(text) if end else self.prefix_logprob(text)

    def next_byte(self, text: str | bytes) -> NextByte:
        """The distribution of the byte after ``text`` (and the chance the text ends there)."""
        before = self.forward_passes
        target = self.target(text)
        cover, nb, end, ref = self._sums(target, want_next=True, want_end=True)
        going_on = float(nb.sum())
        total = going_on + end
        if total <= 0:
            raise UserInputError(f"{self.model_id} gives no valid continuation to {as_bytes(text)[-20:]!r}")
        probs = nb / going_on if going_on > 0 else np.full(256, 1 / 256)
        prefix = (ref + math.log(cover) - self.lead_logprob) if target else 0.0
        coverage = total / cover if target else total
        return NextByte(probs=probs, end_prob=end / total, prefix_logprob=prefix, coverage=float(coverage),
                        forward_passes=self.forward_passes - before)

    def distribution(self, ids: Sequence[int]) -> tuple[float, np.ndarray]:
        """``(log P(ids | context), next-token log-probabilities after them)`` for token ids after the context
        (evaluated with the cache reused, memoised)."""
        key = tuple(int(i) for i in ids)
        self._evaluate(key, [key])
        return self._next_of(key)

    # ---- covers ------------------------------------------------------------------------------------
    def _anchor(self, target: bytes) -> tuple[tuple[int, ...], int, int]:
        """``(anchor ids, bytes they spell, first byte any cover's last token can start at)``."""
        n = len(target)
        first = n
        for j in range(n - 1, max(-1, n - self.vocab.max_len - 1), -1):
            lo, hi = self.vocab.trie.extending(target[j:])
            if hi > lo:
                first = j
        if self.rule.validity == "all" or first < 16:
            return (), 0, first
        cut = first
        while cut > 0 and 0x80 <= target[cut] < 0xC0:
            cut -= 1
        try:
            text = target[:cut].decode("utf-8")
        except UnicodeDecodeError:
            return (), 0, first
        if self.vocab.prefix_space:
            text = text[1:]
        with self.backend.tokenizer_lock:
            ids = self.backend.tokenizer(text, add_special_tokens=False)["input_ids"]
        anchor = tuple(ids[:-2])
        spelled = self.vocab.spell(anchor)
        if not target.startswith(spelled):
            return (), 0, first
        return anchor, len(spelled), first

    def _search(self, target: bytes, anchor: tuple[int, ...], start: int) -> list[tuple[tuple[int, ...], int]]:
        """Every valid token prefix from the anchor whose bytes stay inside ``target`` (ends included)."""
        n, out = len(target), []
        stack = [(anchor, start)]
        while stack:
            ids, end = stack.pop()
            out.append((ids, end))
            if len(out) > self.max_nodes:
                raise UserInputError(
                    f"more than {self.max_nodes} token prefixes spell part of this {n}-byte text; shorten it or "
                    "use validity='canonical'")
            if end == n:
                continue
            for tid, k in self.vocab.trie.prefixes_of(target[end:]):
                if self.rule.valid(ids, tid):
                    stack.append(((*ids, tid), end + k))
        return out

    def _sums(self, target: bytes, *, want_next: bool, want_end: bool) -> tuple[float, np.ndarray, float, float]:
        """``(cover mass, next-byte masses, end mass, log reference)``; masses are relative to ``exp(ref)``."""
        n = len(target)
        anchor, start, first = self._anchor(target)
        nodes = self._search(target, anchor, start)
        needed = [ids for ids, end in nodes if end >= first or (end == n and (want_next or want_end))]
        if not needed:
            return 0.0, np.zeros(256), 0.0, 0.0
        self._evaluate(anchor, needed)
        trie = self.vocab.trie
        cover, end_mass, nb = 0.0, 0.0, np.zeros(256)
        logps = {ids: self._next_of(ids)[0] for ids in needed}
        ref = max(logps.values())
        for ids, end in nodes:
            if ids not in logps:
                continue
            logp, logprobs = self._next_of(ids)
            w = math.exp(logp - ref)
            if end < n:
                lo, hi = trie.extending(target[end:])
                if hi == lo:
                    continue
                cand = trie.order[lo:hi]
                p = np.exp(logprobs[cand].astype(np.float64))
                ok = self._valid(ids, cand, p)
                cover += w * float(p[ok].sum())
                if want_next:
                    col = trie.column(n - end)[lo:hi]
                    sel = ok & (col >= 0)
                    nb += w * np.bincount(col[sel], weights=p[sel], minlength=256)
            else:
                if want_end:
                    end_mass += w * sum(math.exp(float(logprobs[i])) for i in self.end_ids)
                if want_next:
                    cand = trie.order
                    p = np.exp(logprobs[cand].astype(np.float64))
                    ok = self._valid(ids, cand, p)
                    nb += w * np.bincount(trie.column(0)[ok], weights=p[ok], minlength=256)
        return cover, nb, end_mass, ref

    def _valid(self, ids: tuple[int, ...], cand: np.ndarray, p: np.ndarray) -> np.ndarray:
        """Validity of each candidate next token; the lowest ``tail`` of mass is accepted unchecked."""
        ok = np.ones(len(cand), dtype=bool)
        if self.rule.validity == "all":
            return ok
        check = np.arange(len(cand))
        if self.tail > 0 and len(cand) > 64:
            asc = np.argsort(p, kind="stable")
            below = np.cumsum(p[asc]) <= self.tail
            check = asc[~below]
        ok[check] = self.rule.valid_many(ids, cand[check])
        return ok

    # ---- the model ---------------------------------------------------------------------------------
    def _evaluate(self, anchor: tuple[int, ...], wanted: Sequence[tuple[int, ...]]) -> None:
        """Make sure every wanted node (a token sequence after the context) has its distribution."""
        for ids in wanted:
            if ids in self._nodes:
                self._nodes.move_to_end(ids)
        self._set_base(anchor)
        missing = [ids for ids in wanted if ids and ids not in self._nodes]
        if not missing:
            return
        mset = set(missing)
        rows = [ids for ids in missing if not any(o != ids and o[: len(ids)] == ids for o in mset)]
        total = len(self.context) + max(len(r) for r in rows)
        if total > self.backend.context_length:
            raise ContextLengthError(f"context and text need {total} tokens; {self.model_id} has a context of "
                                     f"{self.backend.context_length} tokens")
        base = len(self._base_ids)
        for chunk in _chunks(rows, max(1, 256 // max(1, max(len(r) - base for r in rows)))):
            self._run_rows(chunk, base)
        while len(self._nodes) > max(self.cache_nodes, len(wanted)):
            self._nodes.popitem(last=False)

    def _forward(self, ids: Any, cache: Any) -> Any:
        import inspect

        import torch

        self.forward_passes += 1
        model = self.backend.model
        name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        with torch.no_grad():
            out = model(input_ids=ids, use_cache=True, **{name: cache})
        return torch.log_softmax(out.logits.float(), dim=-1)

    def _set_base(self, anchor: tuple[int, ...]) -> None:
        """Keep the key/value cache of ``context + anchor`` (extending or cropping the one held)."""
        import torch

        device = self.backend.device
        if self._base_cache is None:
            from transformers import DynamicCache

            self._base_cache = DynamicCache()
            lsm = self._forward(torch.tensor([self.context], device=device), self._base_cache)
            self._context_next = lsm[0, -1].cpu().numpy()
            self._base_ids = ()
        common = 0
        for a, b in zip(self._base_ids, anchor, strict=False):
            if a != b:
                break
            common += 1
        # The distribution after the kept part must be known (cached node, or the context's own).
        while common > 0 and anchor[:common] not in self._nodes:
            common -= 1
        if common < len(self._base_ids):
            self._base_cache.crop(-(len(self._base_ids) - common))
            self._base_ids = anchor[:common]
        new = anchor[common:]
        if new:
            lsm = self._forward(torch.tensor([list(new)], device=device), self._base_cache)[0].cpu().numpy()
            self._store_path(anchor[:common], new, lsm)
            self._base_ids = anchor
        self._base_next = self._next_of(self._base_ids)

    def _next_of(self, ids: tuple[int, ...]) -> tuple[float, np.ndarray]:
        if not ids:
            assert self._context_next is not None
            return 0.0, self._context_next
        node = self._nodes[ids]
        return node.logp, node.logprobs

    def _store_path(self, parent: tuple[int, ...], tokens: Sequence[int], lsm: np.ndarray,
                    start: tuple[float, np.ndarray] | None = None) -> None:
        logp, dist = start or self._next_of(parent)
        ids = parent
        for i, tid in enumerate(tokens):
            logp += float(dist[tid])
            ids = (*ids, int(tid))
            dist = lsm[i]
            self._nodes[ids] = _Node(logp, dist)

    def _run_rows(self, rows: Sequence[tuple[int, ...]], base: int) -> None:
        import torch

        width = max(len(r) - base for r in rows)
        pad = int(self.backend.pad_id)
        batch = [list(r[base:]) + [pad] * (width - len(r) + base) for r in rows]
        cache = copy.deepcopy(self._base_cache)
        if len(rows) > 1:
            cache.batch_repeat_interleave(len(rows))
        lsm = self._forward(torch.tensor(batch, device=self.backend.device), cache).cpu().numpy()
        for r, row in enumerate(rows):
            self._store_path(self._base_ids, row[base:], lsm[r], start=self._base_next)


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
