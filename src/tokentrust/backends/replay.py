"""Serve recorded traces instead of running a model: tests and re-scoring need neither network nor model.

:class:`ReplayBackend` answers ``generate``/``sample``/``score`` from traces recorded earlier (matched by prompt,
and by answer for ``score``) and declares only the capabilities its recordings support. :class:`RecordingBackend`
wraps a live backend, counts and records every call, and turns the recording into a replay with :meth:`replay`.
:func:`text_trace` builds a trace from plain text (a black-box answer with no log-probs: they are NaN).

A request with no recording raises :class:`~tokentrust.errors.UserInputError` naming the prompt and what was
recorded for it. ``replay:<file>`` (``tokentrust.load``, ``--model``) reads a JSONL file of traces, or of bench
items that carry one (a run folder's ``items.jsonl``), so a run can be served or re-scored without its model.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ..capability import Capability
from ..config import GenerationConfig
from ..errors import CapabilityError, UserInputError
from ..trace import Message, TokenRecord, Trace, as_messages
from .base import RenderedPrompt, sample_config


def prompt_key(prompt: Any) -> str:
    """A string identifying a prompt: the text itself, or the JSON of its chat messages."""
    if isinstance(prompt, str):
        return prompt
    msgs = [m.model_dump() if isinstance(m, Message) else dict(m) for m in prompt]
    return json.dumps(msgs, sort_keys=True, ensure_ascii=False)


def text_trace(prompt: Any, text: str, *, model_id: str = "replay", temperature: float = 0.0,
               logprob: float | None = None, forced: bool = False) -> Trace:
    """A trace of a plain-text answer, one token per word; ``logprob`` (the sequence's, spread evenly) or NaN."""
    words = re.findall(r"\S+\s*", text) or [text]
    offsets, pos = [], 0
    for w in words:
        offsets.append((pos, pos + len(w)))
        pos += len(w)
    per = float("nan") if logprob is None else logprob / len(words)
    return Trace(
        model_id=model_id,
        prompt=prompt,
        prompt_text=prompt_key(prompt),
        text=text,
        token_ids=list(range(len(words))),
        tokens=words,
        offsets=offsets,
        logprobs=[per] * len(words),
        special=[False] * len(words),
        top_k=0,
        top_ids=[[] for _ in words],
        top_tokens=[[] for _ in words],
        top_logprobs=[[] for _ in words],
        config=GenerationConfig(temperature=temperature, top_k=0),
        finish_reason="forced" if forced else "stop",
    )


class ReplayBackend:
    """A backend that replays recorded traces.

    ``traces`` holds greedy answers (``temperature == 0``; served by ``generate``), samples (``temperature > 0``;
    served by ``sample``, in recorded order) and teacher-forced scores (``finish_reason == "forced"``; served
    by ``score`` when prompt and answer match). Capabilities: sampling only if samples were recorded, forced
    scoring only if scores were, log-probs only if the recordings carry finite ones, the full distribution only
    if every recording has it.
    """

    def __init__(self, traces: Iterable[Trace] = (), *, model_id: str | None = None,
                 token_logprobs: dict[tuple[int, ...], list[float]] | None = None) -> None:
        self.traces: list[Trace] = list(traces)
        self.model_id = model_id or (self.traces[0].model_id if self.traces else "replay")
        self._token_logprobs = dict(token_logprobs or {})
        self.calls: Counter[str] = Counter()

    @classmethod
    def from_texts(cls, prompt: Any, answer: str, samples: Sequence[str] = (), *,
                   sample_logprobs: Sequence[float] | None = None, temperature: float = 1.0,
                   model_id: str = "replay") -> ReplayBackend:
        """A replay of one prompt: its greedy ``answer`` and plain-text ``samples`` (optionally with log-probs)."""
        lps = list(sample_logprobs) if sample_logprobs is not None else [None] * len(samples)
        if len(lps) != len(samples):
            raise UserInputError(f"{len(samples)} samples but {len(lps)} sample log-probs")
        traces = [text_trace(prompt, answer, model_id=model_id)]
        traces += [text_trace(prompt, s, model_id=model_id, temperature=temperature, logprob=lp)
                   for s, lp in zip(samples, lps, strict=True)]
        return cls(traces, model_id=model_id)

    @classmethod
    def from_spec(cls, spec: str, **kwargs: Any) -> ReplayBackend:
        """``replay:<file>``: a JSONL file with one trace per line (or bench items holding a ``trace``)."""
        path = Path(spec.removeprefix("replay:")).expanduser()
        if not path.is_file():
            raise UserInputError(f"replay file {str(path)!r} does not exist; give replay:<traces.jsonl or items.jsonl>")
        traces = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                traces.append(Trace.model_validate(data.get("trace", data) if isinstance(data, dict) else data))
            except ValueError as exc:
                raise UserInputError(f"{path}:{number} is not a trace ({str(exc).splitlines()[0]})") from None
        if not traces:
            raise UserInputError(f"replay file {str(path)!r} holds no traces")
        return cls(traces, **kwargs)

    def add(self, traces: Iterable[Trace]) -> None:
        """Record more traces."""
        self.traces.extend(traces)

    @property
    def capabilities(self) -> frozenset[Capability]:
        caps: set[Capability] = {Capability.STREAMING} if self.traces else set()
        if any(t.config.temperature > 0 and t.finish_reason != "forced" for t in self.traces):
            caps.add(Capability.SAMPLING)
        if any(t.config.temperature == 0 and t.finish_reason != "forced" for t in self.traces):
            caps.add(Capability.GENERATION)  # answers to the prompts it recorded
        if any(t.finish_reason == "forced" for t in self.traces) or self._token_logprobs:
            caps.add(Capability.FORCED_SCORING)
        if self.traces and all(_finite(t.logprobs) for t in self.traces):
            caps.add(Capability.LOGPROBS)
            if all(t.top_k > 0 for t in self.traces):
                caps.add(Capability.TOP_LOGPROBS)
            if all(t.has_distribution for t in self.traces):
                caps.add(Capability.FULL_DISTRIBUTION)
        return frozenset(caps)

    def _recorded(self, prompt: Any, *, sampled: bool | None = None, forced: bool = False) -> list[Trace]:
        key = prompt_key(prompt)
        out = []
        for t in self.traces:
            if prompt_key(t.prompt) != key or (t.finish_reason == "forced") != forced:
                continue
            if sampled is not None and (t.config.temperature > 0) != sampled:
                continue
            out.append(t)
        return out

    def _miss(self, what: str, prompt: Any) -> UserInputError:
        have = Counter(
            "score" if t.finish_reason == "forced" else "sample" if t.config.temperature > 0 else "answer"
            for t in self.traces if prompt_key(t.prompt) == prompt_key(prompt)
        )
        recorded = ", ".join(f"{n} {k}(s)" for k, n in sorted(have.items())) or "nothing"
        return UserInputError(f"replay has no {what} for prompt {prompt_key(prompt)[:80]!r}; recorded for it: {recorded}")

    def render(self, prompt: Any, *, chat: bool = True) -> RenderedPrompt:
        """The prompt as recorded; its text is the recording's ``prompt_text`` when there is one."""
        messages = as_messages(prompt)
        recorded: str | list[Message] = messages if messages is not None else prompt
        found = self._recorded(recorded) or self._recorded(recorded, forced=True)
        if found:
            return RenderedPrompt(prompt=recorded, text=found[0].prompt_text, token_ids=None,
                                  exact=found[0].prompt_text != prompt_key(recorded))
        return RenderedPrompt(prompt=recorded, text=prompt_key(recorded), exact=False)

    def stream(self, prompt: Any, config: GenerationConfig | None = None, **overrides: Any
               ) -> Iterator[TokenRecord | Trace]:
        """The recorded answer's tokens, one record at a time, then its trace."""
        trace = self.generate(prompt, config, **overrides)
        self.calls["stream"] += 1
        yield from trace.records()
        yield trace

    def generate(self, prompt: Any, config: GenerationConfig | None = None, **overrides: Any) -> Trace:
        self.calls["generate"] += 1
        found = self._recorded(prompt, sampled=False) or self._recorded(prompt)
        if not found:
            raise self._miss("recorded answer", prompt)
        return found[0]

    def generate_many(self, prompts: Sequence[Any], config: GenerationConfig | None = None,
                      **overrides: Any) -> list[Trace]:
        self.calls["generate_many"] += 1
        return [self.generate(p, config, **overrides) for p in prompts]

    def sample(self, prompt: Any, n: int = 10, *, temperature: float = 1.0, top_p: float = 1.0, seed: int = 0,
               max_new_tokens: int | None = None, chat: bool = True, top_k: int = 10) -> list[Trace]:
        """The first ``n`` recorded samples for ``prompt`` (recordings are fixed, so ``seed`` is ignored)."""
        sample_config(n=n, temperature=temperature, top_p=top_p, seed=seed, max_new_tokens=max_new_tokens,
                      chat=chat, top_k=top_k)
        self.calls["sample"] += 1
        found = self._recorded(prompt, sampled=True)
        if len(found) < n:
            raise UserInputError(
                f"replay has {len(found)} recorded samples for prompt {prompt_key(prompt)[:80]!r}, {n} requested"
            )
        return found[:n]

    def score(self, prompt: Any, answer: str | Sequence[int], *, chat: bool = True, end_of_turn: bool = True,
              top_k: int = 10) -> Trace:
        self.calls["score"] += 1
        for t in self._recorded(prompt, forced=True):
            if (isinstance(answer, str) and t.text.strip() == answer.strip()) or (
                not isinstance(answer, str) and list(t.token_ids) == list(answer)
            ):
                return t
        raise self._miss(f"score of answer {str(answer)[:40]!r}", prompt)

    def token_logprobs(self, token_ids: Sequence[int]) -> list[float]:
        self.calls["token_logprobs"] += 1
        key = tuple(int(t) for t in token_ids)
        if key not in self._token_logprobs:
            raise CapabilityError("replay has no prompt-free log-probs recorded for these token ids")
        return list(self._token_logprobs[key])


def _finite(values: Sequence[float]) -> bool:
    return not any(math.isnan(v) for v in values)


class RecordingBackend:
    """Wraps a live backend: forwards every call, counts it in ``calls`` and records the traces it returns."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.model_id = backend.model_id
        self.calls: Counter[str] = Counter()
        self.traces: list[Trace] = []
        self._token_logprobs: dict[tuple[int, ...], list[float]] = {}

    @property
    def capabilities(self) -> frozenset[Capability]:
        return self.backend.capabilities

    def render(self, prompt: Any, *, chat: bool = True) -> RenderedPrompt:
        return self.backend.render(prompt, chat=chat)

    def stream(self, prompt: Any, config: GenerationConfig | None = None, **overrides: Any
               ) -> Iterator[TokenRecord | Trace]:
        self.calls["stream"] += 1
        for item in self.backend.stream(prompt, config, **overrides):
            if isinstance(item, Trace):
                self.traces.append(item)
            yield item

    def _keep(self, name: str, out: Any) -> Any:
        self.calls[name] += 1
        self.traces.extend(out if isinstance(out, list) else [out])
        return out

    def generate(self, prompt: Any, config: GenerationConfig | None = None, **overrides: Any) -> Trace:
        return self._keep("generate", self.backend.generate(prompt, config, **overrides))

    def generate_many(self, prompts: Sequence[Any], config: GenerationConfig | None = None,
                      **overrides: Any) -> list[Trace]:
        return self._keep("generate_many", self.backend.generate_many(prompts, config, **overrides))

    def sample(self, prompt: Any, n: int = 10, **kwargs: Any) -> list[Trace]:
        return self._keep("sample", self.backend.sample(prompt, n, **kwargs))

    def score(self, prompt: Any, answer: str | Sequence[int], **kwargs: Any) -> Trace:
        return self._keep("score", self.backend.score(prompt, answer, **kwargs))

    def token_logprobs(self, token_ids: Sequence[int]) -> list[float]:
        self.calls["token_logprobs"] += 1
        out = self.backend.token_logprobs(token_ids)
        self._token_logprobs[tuple(int(t) for t in token_ids)] = list(out)
        return out

    def replay(self) -> ReplayBackend:
        """A :class:`ReplayBackend` serving everything recorded so far."""
        return ReplayBackend(self.traces, model_id=self.model_id, token_logprobs=self._token_logprobs)
