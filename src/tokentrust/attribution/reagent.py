"""ReAGent (METHODS §5.1): model-agnostic attribution by recursive random replacement, forward passes only.

Each target runs ``probes`` independent chains over the sources (tokens, words or components: a replaced
source has all its tokens replaced). Replacement tokens come from a pluggable sampler: ``uniform`` over the
non-special vocabulary (default: offline and cheap), ``pos`` (same part-of-speech, needs nltk's tagger data)
or ``model`` (the model's own top predictions at that position). Every chain has its own generator, seeded
from ``seed``, the target's tokens and the probe index, so a target's result does not depend on which other
targets run beside it; all chains' probes of a step go through the scorer as one batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import UserInputError
from ..registry import attributors
from .forward import TargetScorer
from .methods import Attributor
from .record import Span

SAMPLERS: tuple[str, ...] = ("uniform", "pos", "model")
MODEL_SAMPLER_TOP = 10  # candidates per position for sampler="model": METHODS §1.3's top-K alternatives, K = 10


@attributors.register
@dataclass(frozen=True, kw_only=True)
class Reagent(Attributor):
    """ReAGent importance (``softmax`` of the logit-importance, averaged over the chains that met the stopping
    rule; each row sums to 1). Defaults are inseq's (METHODS §5.1): replacing ratio 0.3, keep the top 5
    sources and stop when the target is in the top 3 predictions, at most 3000 steps, 16 probes.
    ``extras["converged"][i]`` is False when no chain of target ``i`` stopped (scores: mean over all chains).
    With at most ``keep_top_n`` sources (a few components) the stopping test replaces nothing and every chain
    stops after one step: lower ``keep_top_n`` there."""

    sampler: str = "uniform"  # METHODS §5.1 recommends POS (inseq); uniform needs no tagger data
    ratio: float = 0.3  # replacing ratio ρ (inseq, METHODS §5.1)
    keep_top_n: int = 5  # sources kept in the stopping test (inseq, METHODS §5.1)
    top_k: int = 3  # stop when the target is among the top-k predictions (inseq, METHODS §5.1)
    max_steps: int = 3000  # inseq max_probe_steps (METHODS §5.1)
    probes: int = 16  # chains per target (inseq num_probes, METHODS §5.1)
    seed: int = 0

    needs_tagger: ClassVar[str] = ("sampler='pos' needs a part-of-speech tagger: `pip install nltk` and "
                                   "`python -m nltk.downloader averaged_perceptron_tagger_eng`; or use "
                                   "sampler='uniform' (the default) or sampler='model'")

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise UserInputError(f"sampler must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        if not 0 < self.ratio < 1:
            raise UserInputError(f"ratio (the replacing ratio) must be in (0, 1), got {self.ratio!r}")
        for name in ("keep_top_n", "top_k", "max_steps", "probes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserInputError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise UserInputError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.sampler == "pos":
            pos_tagger()

    def attribute(self, scorer: TargetScorer, targets: Sequence[Span], groups: Sequence[Sequence[int]]
                  ) -> tuple[np.ndarray, dict[str, Any]]:
        import torch

        from ._ops.reagent import aggregate, in_top_k, recursive_importance

        sample = make_sampler(self.sampler, scorer)
        spans = [list(t.tokens) for t in targets]
        n_targets, n_groups, n_probes = len(targets), len(groups), self.probes
        member = torch.zeros(n_groups, scorer.n_prompt)
        for g, tokens in enumerate(groups):
            member[g, list(tokens)] = 1.0
        full = scorer.target_logprob(scorer.logprobs(scorer.prompt_embeds), spans)[0].double().cpu()
        p0 = full.exp()
        owner = torch.arange(n_targets).repeat_interleave(n_probes)  # chain → target
        gens = [torch.Generator().manual_seed(_chain_seed(self.seed, span, b)) for span in spans for b in range(n_probes)]
        init = torch.stack([torch.rand(n_groups, generator=g, dtype=torch.float64) for g in gens])
        answer = torch.tensor(scorer.answer_ids)

        def embeds(replace_groups: Any, rows: list[int]) -> Any:
            replaced = (replace_groups[rows].float() @ member) > 0  # (R, n_prompt)
            ids = torch.stack([sample(gens[c]) for c in rows])
            device = scorer.prompt_embeds.device
            new = scorer.embed_ids(ids.to(device))
            return torch.where(replaced.to(device)[..., None], new, scorer.prompt_embeds[None])

        def delta(mask: Any, active: Any) -> Any:
            rows = active.nonzero().flatten().tolist()
            out = torch.zeros(len(gens), dtype=torch.float64)
            if rows:
                logp = scorer.target_logprob(scorer.logprobs(embeds(mask, rows)), spans).double().cpu()
                mine = logp[torch.arange(len(rows)), owner[rows]]
                out[rows] = p0[owner[rows]] - mine.exp()
            return out

        def stop(keep: Any, active: Any) -> Any:
            rows = active.nonzero().flatten().tolist()
            out = torch.zeros(len(gens), dtype=torch.bool)
            if rows:
                ranks = scorer.reduced(embeds(~keep, rows), lambda lp: _ranks(lp, answer)).cpu()
                hit = [bool(in_top_k(ranks[i, spans[int(owner[c])]][None], self.top_k)[0]) for i, c in enumerate(rows)]
                out[rows] = torch.tensor(hit)
            return out

        def draw_mask() -> Any:
            return torch.stack([torch.rand(n_groups, generator=g) < self.ratio for g in gens])

        importance, stopped, steps = recursive_importance(init, draw_mask, delta, stop, keep_top_n=self.keep_top_n,
                                                          max_steps=self.max_steps)
        scores, converged = [], []
        for t in range(n_targets):
            chains = owner == t
            row, ok = aggregate(importance[chains], stopped[chains])
            scores.append(row.numpy())
            converged.append(ok)
        extras = {"converged": converged, "stopped_probes": [int(stopped[owner == t].sum()) for t in range(n_targets)],
                  "steps": [int(steps[owner == t].max()) for t in range(n_targets)], "sampler": self.sampler,
                  "target_logprob_model": full.tolist()}
        return np.stack(scores) if scores else np.zeros((0, n_groups)), extras


def _ranks(logp: Any, answer: Any) -> Any:
    """``(b, n_answer)``: how many vocabulary entries score strictly above each answer token (0 = argmax)."""
    ids = answer.to(logp.device).expand(logp.shape[0], -1)[..., None]
    return (logp > logp.gather(-1, ids)).sum(-1)


def _chain_seed(seed: int, span: Sequence[int], probe: int) -> int:
    return int(np.random.SeedSequence([seed, probe, *span]).generate_state(1, dtype=np.uint64)[0] >> 1)


# ---- replacement samplers: each returns ``sample(generator) -> (n_prompt,) token ids`` ----------------------
def make_sampler(name: str, scorer: TargetScorer) -> Callable[[Any], Any]:
    """The replacement sampler ``name`` over ``scorer``'s vocabulary (the LM's own tokenizer, METHODS §5.1)."""
    import torch

    vocab = _plain_vocab(scorer)
    n = scorer.n_prompt

    def uniform(g: Any) -> Any:
        return vocab[torch.randint(len(vocab), (n,), generator=g)]

    if name == "uniform":
        return uniform
    if name == "model":
        table = _model_candidates(scorer, vocab)

        def model(g: Any) -> Any:
            ids = uniform(g)  # position 0 has no prefix to predict it from
            pick = torch.randint(table.shape[1], (n - 1,), generator=g)
            ids[1:] = table.gather(1, pick[:, None])[:, 0]
            return ids

        return model
    if name == "pos":
        return pos_sampler(_pos_table(scorer, vocab, pos_tagger()), scorer.prompt_ids)
    raise UserInputError(f"sampler must be one of {', '.join(SAMPLERS)}, got {name!r}")


def _plain_vocab(scorer: TargetScorer) -> Any:
    """Token ids the samplers may draw: the embedding rows that the tokenizer knows, minus special tokens."""
    import torch

    backend = scorer.backend
    rows = int(scorer.model.get_input_embeddings().weight.shape[0])
    tok = getattr(backend, "tokenizer", None)
    size = min(rows, len(tok)) if tok is not None else rows
    special = set(getattr(backend, "special_ids", ())) | set(getattr(tok, "all_special_ids", ()) or ())
    keep = torch.ones(size, dtype=torch.bool)
    keep[[i for i in special if 0 <= i < size]] = False
    return torch.arange(size)[keep]


def _model_candidates(scorer: TargetScorer, vocab: Any) -> Any:
    """``(n_prompt − 1, K)``: for position ``i ≥ 1`` the model's top-K next-token predictions after the
    unperturbed ``x_<i``, excluding ``x_i`` itself and special tokens (one forward over the prompt)."""
    import torch

    with torch.no_grad():
        logits = scorer.model(inputs_embeds=scorer.prompt_embeds[None]).logits[0, :-1].float().cpu()
    scorer.forwards += 1
    allowed = torch.zeros(logits.shape[-1], dtype=torch.bool)
    allowed[vocab[vocab < logits.shape[-1]]] = True
    logits[:, ~allowed] = -float("inf")
    logits[torch.arange(logits.shape[0]), torch.tensor(scorer.prompt_ids[1:])] = -float("inf")
    return logits.topk(MODEL_SAMPLER_TOP, dim=-1).indices


def pos_tagger() -> Callable[[str], str]:
    """nltk's averaged-perceptron tagger on one word, or :class:`UserInputError` naming what to install."""
    try:
        import nltk

        nltk.pos_tag(["test"])
    except (ImportError, LookupError):
        raise UserInputError(Reagent.needs_tagger) from None
    return lambda word: nltk.pos_tag([word.strip() or word])[0][1]


_POS_CACHE: dict[tuple[str, int], Any] = {}


def _pos_table(scorer: TargetScorer, vocab: Any, tag: Callable[[str], str]) -> tuple[Any, Any, Any, Any]:
    """:func:`pos_groups` of the model's vocabulary, every token tagged once as the reference does (cached)."""
    key = (str(getattr(scorer.backend, "model_id", id(scorer.backend))), len(vocab))
    if key not in _POS_CACHE:
        _POS_CACHE[key] = pos_groups([scorer.backend.display(int(i)) for i in vocab], vocab, tag,
                                     int(scorer.model.get_input_embeddings().weight.shape[0]))
    return _POS_CACHE[key]


def pos_groups(words: Sequence[str], vocab: Any, tag: Callable[[str], str], n_ids: int) -> tuple[Any, Any, Any, Any]:
    """Group ``vocab`` (token ids whose texts are ``words``) by ``tag(word)``: ``(tag_of (n_ids,), offset_of_tag,
    ids ordered by tag, size_of_tag)``. Ids outside ``vocab`` get an extra group holding the whole vocabulary."""
    import torch

    names = [tag(w) for w in words]
    order = sorted(set(names))
    index = {t: i for i, t in enumerate(order)}
    tag_id = torch.tensor([index[t] for t in names], dtype=torch.long)
    by_tag = torch.argsort(tag_id, stable=True)
    ids = torch.cat([vocab[by_tag], vocab])  # the last group: every plain token
    sizes = torch.cat([torch.bincount(tag_id, minlength=len(order)), torch.tensor([len(vocab)])])
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), sizes.cumsum(0)[:-1]])
    tag_of = torch.full((n_ids,), len(order), dtype=torch.long)
    tag_of[vocab] = tag_id
    return tag_of, offsets, ids, sizes


def pos_sampler(table: tuple[Any, Any, Any, Any], prompt_ids: Sequence[int]) -> Callable[[Any], Any]:
    """Draw, for every prompt token, a uniform token with the same tag (``table`` from :func:`pos_groups`)."""
    import torch

    tag_of, start, ids, size = table
    tag = tag_of[torch.tensor(list(prompt_ids))]

    def pos(g: Any) -> Any:
        u = torch.rand(len(tag), generator=g, dtype=torch.float64)
        return ids[start[tag] + torch.minimum((u * size[tag]).long(), size[tag] - 1)]

    return pos
