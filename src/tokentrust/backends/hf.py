"""White-box backend: any causal LM through Hugging Face transformers, in process.

Generation uses ``model.generate(output_logits=True)``, whose logits are the *raw* distribution (before
temperature/top-p warping); each step is reduced to a few statistics right after generation, on the
device where the logits live (see ``_distribution.py``). Prompts are batched with left padding; answer
tokens are cut at the first end-of-sequence id of the *generated* part only, and prompt tokens come
from our own tokenisation, never from the padded tensor, so an end-of-turn token that doubles as the
pad token (SmolLM2's ``<|im_end|>``) is never dropped or shifted.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from ..config import GenerationConfig
from ..errors import ContextLengthError, ModelLoadError, UserInputError
from ..trace import Message, Trace, as_messages
from ._distribution import step_stats
from .base import Capability

_CAPABILITIES = frozenset(Capability)


class HFBackend:
    """In-process transformers model. ``HFBackend.from_pretrained(path_or_hub_id)`` or wrap a loaded model."""

    def __init__(self, model: Any, tokenizer: Any, *, model_id: str | None = None, batch_size: int = 16) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.model_id = model_id or getattr(model.config, "_name_or_path", None) or type(model).__name__
        self.batch_size = batch_size
        self.context_length: int = int(getattr(model.config, "max_position_embeddings", 0) or 1_000_000)
        eos = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
        gen_eos = getattr(model.generation_config, "eos_token_id", None)
        eos |= set(gen_eos if isinstance(gen_eos, list) else [gen_eos] if gen_eos is not None else [])
        if not eos:
            raise ModelLoadError(f"{self.model_id}: the tokenizer defines no end-of-sequence token")
        self.eos_ids: frozenset[int] = frozenset(eos)
        self.special_ids: frozenset[int] = frozenset(tokenizer.all_special_ids) | self.eos_ids
        self.pad_id: int = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos_ids)
        self._display_cache: dict[int, str] = {}

    @classmethod
    def from_pretrained(cls, path: str, *, device: str | None = None, dtype: Any = "auto", **kwargs: Any) -> HFBackend:
        """Load any causal LM by local path or hub id (hub ids need the files in the local HF cache when offline)."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **kwargs)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(
                f"cannot load model {path!r}: {str(exc).splitlines()[0]} "
                "(give a local folder with config.json and weights, or a hub id available offline; "
                "omit the model to use the embedded default)"
            ) from None
        if device:
            model = model.to(device)
        return cls(model, tokenizer, model_id=path)

    @property
    def capabilities(self) -> frozenset[Capability]:
        return _CAPABILITIES

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ---- prompts -----------------------------------------------------------------------------------
    def render(self, prompt: Any, *, chat: bool = True) -> tuple[str | list[Message], str, list[int]]:
        """Return (prompt as recorded, the exact text the model sees, its token ids)."""
        messages = as_messages(prompt)
        use_template = chat and getattr(self.tokenizer, "chat_template", None)
        if use_template:
            msgs = messages or [Message(role="user", content=prompt)]
            text = self.tokenizer.apply_chat_template(
                [m.model_dump() for m in msgs], add_generation_prompt=True, tokenize=False
            )
        elif messages is not None:
            raise UserInputError(f"{self.model_id} has no chat template; give the prompt as plain text")
        else:
            text = prompt
        ids = self.tokenizer(text, add_special_tokens=not use_template)["input_ids"]
        if len(ids) >= self.context_length:
            raise ContextLengthError(
                f"prompt is {len(ids)} tokens; {self.model_id} has a context of {self.context_length} tokens "
                f"(at most {self.context_length - 1} prompt tokens leave room for an answer)"
            )
        return (messages if messages is not None else prompt), text, ids

    def _decode(self, ids: Sequence[int]) -> tuple[str, list[str], list[tuple[int, int]], list[bool]]:
        """Answer text (special tokens excluded), per-token display text, character offsets, special mask.

        Offsets come from incremental decoding, so tokens that split a multi-byte character share it:
        the token that completes the character gets its span, the earlier pieces an empty span.
        """
        plain: list[int] = []
        text = ""
        tokens, offsets, special = [], [], []
        for tid in ids:
            is_special = tid in self.special_ids
            special.append(is_special)
            if is_special:
                tokens.append(self.tokenizer.convert_ids_to_tokens(tid))
                offsets.append((len(text), len(text)))
                continue
            plain.append(tid)
            decoded = self.tokenizer.decode(plain, clean_up_tokenization_spaces=False)
            if decoded.endswith("\ufffd"):  # an incomplete multi-byte character: the next piece completes it
                tokens.append(self.tokenizer.decode([tid], clean_up_tokenization_spaces=False))
                offsets.append((len(text), len(text)))
                continue
            start = len(os.path.commonprefix([text, decoded]))
            tokens.append(decoded[start:])
            offsets.append((start, len(decoded)))
            text = decoded
        return text, tokens, offsets, special

    # ---- generation --------------------------------------------------------------------------------
    def generate(self, prompt: Any, config: GenerationConfig | None = None, **overrides: Any) -> Trace:
        """Answer one prompt (a string or chat messages) and return its trace."""
        return self.generate_many([prompt], config, **overrides)[0]

    def generate_many(
        self, prompts: Sequence[Any], config: GenerationConfig | None = None, **overrides: Any
    ) -> list[Trace]:
        """Answer several prompts, batched ``batch_size`` at a time with left padding."""
        cfg = GenerationConfig(**{**(config or GenerationConfig()).model_dump(), **overrides})
        rendered = [self.render(p, chat=cfg.chat) for p in prompts]
        traces: list[Trace] = []
        for start in range(0, len(rendered), self.batch_size):
            traces.extend(self._generate_batch(rendered[start : start + self.batch_size], cfg, n=1))
        return traces

    def sample(
        self, prompt: Any, n: int = 10, *, temperature: float = 1.0, top_p: float = 1.0, seed: int = 0,
        max_new_tokens: int | None = None,
    ) -> list[Trace]:
        """``n`` sampled answers from one batched call that shares the prompt (``num_return_sequences``)."""
        if n < 1:
            raise UserInputError(f"n (number of samples) must be ≥ 1, got {n}")
        if temperature <= 0:
            raise UserInputError(f"sampling needs temperature > 0, got {temperature}")
        update: dict[str, Any] = {"temperature": temperature, "top_p": top_p, "seed": seed}
        if max_new_tokens is not None:
            update["max_new_tokens"] = max_new_tokens
        cfg = GenerationConfig(**update)
        return self._generate_batch([self.render(prompt, chat=cfg.chat)], cfg, n=n)

    def _generate_batch(
        self, rendered: list[tuple[Any, str, list[int]]], cfg: GenerationConfig, *, n: int
    ) -> list[Trace]:
        width = max(len(ids) for _, _, ids in rendered)
        max_new = min(cfg.max_new_tokens, self.context_length - width)
        input_ids = torch.full((len(rendered), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(rendered), width), dtype=torch.long)
        for row, (_, _, ids) in enumerate(rendered):
            input_ids[row, width - len(ids) :] = torch.tensor(ids)
            attention[row, width - len(ids) :] = 1
        sampling = not cfg.greedy
        kwargs: dict[str, Any] = dict(  # noqa: C408 (keyword form reads as generate() arguments)
            max_new_tokens=max_new,
            do_sample=sampling,
            num_return_sequences=n,
            output_logits=True,
            return_dict_in_generate=True,
            pad_token_id=self.pad_id,
            eos_token_id=sorted(self.eos_ids),
            top_k=None,
        )
        if sampling:
            kwargs.update(temperature=cfg.temperature, top_p=cfg.top_p)
            torch.manual_seed(cfg.seed or 0)
        else:
            kwargs.update(temperature=None, top_p=None)
        with torch.no_grad():
            out = self.model.generate(
                input_ids=input_ids.to(self.device), attention_mask=attention.to(self.device), **kwargs
            )
        generated = out.sequences[:, width:]
        logits = torch.stack(out.logits, dim=1)  # (B*n, L, V): raw, before any warping
        traces = []
        for row in range(generated.shape[0]):
            seq = generated[row].tolist()
            length = next((i + 1 for i, t in enumerate(seq) if t in self.eos_ids), len(seq))
            finish = "stop" if length < len(seq) or (seq and seq[length - 1] in self.eos_ids) else "length"
            prompt, text, _ = rendered[row // n]
            traces.append(
                self._trace(prompt, text, seq[:length], logits[row, :length], generated[row, :length], cfg, finish)
            )
        return traces

    def _trace(
        self, prompt: Any, prompt_text: str, ids: list[int], logits: torch.Tensor, chosen: torch.Tensor,
        cfg: GenerationConfig, finish: str,
    ) -> Trace:
        stats = step_stats(logits, chosen.to(logits.device), cfg.top_k)
        text, tokens, offsets, special = self._decode(ids)
        top_tokens = [[self._display(t) for t in row] for row in stats.top_ids]
        return Trace(
            model_id=self.model_id,
            prompt=prompt,
            prompt_text=prompt_text,
            text=text,
            token_ids=ids,
            tokens=tokens,
            offsets=offsets,
            logprobs=stats.logprobs,
            special=special,
            top_k=cfg.top_k,
            top_ids=stats.top_ids,
            top_tokens=top_tokens,
            top_logprobs=stats.top_logprobs,
            entropy=stats.entropy,
            max_prob=stats.max_prob,
            margin=stats.margin,
            rank=stats.rank,
            kurtosis=stats.kurtosis,
            config=cfg,
            finish_reason=finish,
        )

    def _display(self, tid: int) -> str:
        """Readable text of a vocabulary entry (byte-level pieces decoded; special tokens by name), memoised."""
        text = self._display_cache.get(tid)
        if text is None:
            if tid in self.special_ids:
                text = self.tokenizer.convert_ids_to_tokens(tid)
            else:
                text = self.tokenizer.decode([tid], clean_up_tokenization_spaces=False)
            self._display_cache[tid] = text
        return text

    # ---- teacher forcing ---------------------------------------------------------------------------
    def score(
        self, prompt: Any, answer: str | Sequence[int], *, chat: bool = True, end_of_turn: bool = True,
        top_k: int = 10,
    ) -> Trace:
        """Teacher-force an answer the user already has and return its trace (one forward pass).

        ``answer`` is text or token ids. For text, ``end_of_turn`` appends the end-of-sequence token, so the
        trace also says how sure the model was that the answer ends there (as a generated trace does).
        """
        recorded, prompt_text, prompt_ids = self.render(prompt, chat=chat)
        if isinstance(answer, str):
            if not answer.strip():
                raise UserInputError("answer is empty; give the answer text to score")
            answer_ids = self.tokenizer(answer, add_special_tokens=False)["input_ids"]
            if end_of_turn:
                answer_ids = [*answer_ids, min(self.eos_ids) if self.tokenizer.eos_token_id is None
                              else self.tokenizer.eos_token_id]
        else:
            answer_ids = [int(t) for t in answer]
            if not answer_ids:
                raise UserInputError("answer has no tokens")
        total = len(prompt_ids) + len(answer_ids)
        if total > self.context_length:
            raise ContextLengthError(
                f"prompt ({len(prompt_ids)}) + answer ({len(answer_ids)}) = {total} tokens exceed the context "
                f"of {self.context_length} tokens of {self.model_id}"
            )
        ids = torch.tensor([prompt_ids + answer_ids], device=self.device)
        with torch.no_grad():
            logits = self.model(input_ids=ids).logits[0, len(prompt_ids) - 1 : -1]
        cfg = GenerationConfig(max_new_tokens=len(answer_ids), top_k=top_k, chat=chat)
        chosen = torch.tensor(answer_ids, device=logits.device)
        return self._trace(recorded, prompt_text, answer_ids, logits, chosen, cfg, "forced")

    def token_logprobs(self, token_ids: Sequence[int]) -> list[float]:
        """``log p(ids[t] | ids[<t])`` for ``t = 1 … len-1``, with no prompt and no template (PMI's pass)."""
        if len(token_ids) < 2:
            return []
        ids = torch.tensor([list(token_ids)], device=self.device)
        with torch.no_grad():
            logp = torch.log_softmax(self.model(input_ids=ids).logits[0, :-1].float(), dim=-1)
        return logp.gather(-1, ids[0, 1:, None]).squeeze(-1).tolist()


    # ---- streaming ---------------------------------------------------------------------------------
    def stream(self, prompt: Any, config: GenerationConfig | None = None, **overrides: Any) -> Iterator[Any]:
        """Answer one prompt token by token: yield one record (a dict) per generated token, then the Trace.

        Each record has ``index, id, token`` (display text), ``piece`` (text added to the answer),
        ``offset, special, logprob, top_ids, top_tokens, top_logprobs, entropy, max_prob, margin, rank,
        kurtosis``, all read from the same raw logits ``generate`` records (a forward hook takes each
        step's last-position logits; a streamer pairs them with the chosen id), so the numbers equal
        ``generate``'s. The final Trace is built exactly as ``generate`` builds it. Generation runs in a
        worker thread; closing the iterator early stops it. One stream per model at a time: the hook
        sees every forward pass of the model, so callers serialise use of the model (the server does).
        """
        import queue
        import threading
        from collections import deque

        from transformers.generation import BaseStreamer, StoppingCriteria, StoppingCriteriaList

        cfg = GenerationConfig(**{**(config or GenerationConfig()).model_dump(), **overrides})
        recorded, prompt_text, prompt_ids = self.render(prompt, chat=cfg.chat)
        max_new = min(cfg.max_new_tokens, self.context_length - len(prompt_ids))
        events: queue.Queue[tuple[str, Any]] = queue.Queue()
        pending: deque[torch.Tensor] = deque()  # raw last-position logits, one per forward pass, in order
        cancel = threading.Event()
        state: dict[str, Any] = {"ids": [], "plain": [], "text": "", "prompt_seen": False}

        def capture(_module: Any, _args: Any, output: Any) -> None:
            pending.append(output.logits[:, -1].to(copy=True, dtype=torch.float32))

        def record(tid: int, logits: torch.Tensor) -> dict[str, Any]:
            stats = step_stats(logits, torch.tensor([tid], device=logits.device), cfg.top_k)
            text, plain = state["text"], state["plain"]
            special = tid in self.special_ids
            if special:
                token, offset, piece = self.tokenizer.convert_ids_to_tokens(tid), (len(text), len(text)), ""
            else:
                plain.append(tid)
                decoded = self.tokenizer.decode(plain, clean_up_tokenization_spaces=False)
                if decoded.endswith("\ufffd"):  # incomplete multi-byte character, as in _decode
                    token, offset, piece = self.tokenizer.decode([tid], clean_up_tokenization_spaces=False), (
                        len(text), len(text)), ""
                else:
                    start = len(os.path.commonprefix([text, decoded]))
                    token, offset = decoded[start:], (start, len(decoded))
                    piece = decoded[len(text):] if decoded.startswith(text) else decoded[start:]
                    state["text"] = decoded
            index = len(state["ids"])
            state["ids"].append(tid)
            return {
                "index": index, "id": tid, "token": token, "piece": piece, "offset": offset, "special": special,
                "logprob": stats.logprobs[0], "top_ids": stats.top_ids[0],
                "top_tokens": [self._display(t) for t in stats.top_ids[0]], "top_logprobs": stats.top_logprobs[0],
                "entropy": stats.entropy[0], "max_prob": stats.max_prob[0], "margin": stats.margin[0],
                "rank": stats.rank[0], "kurtosis": stats.kurtosis[0],
            }

        class _Streamer(BaseStreamer):
            def put(self, value: torch.Tensor) -> None:
                if not state["prompt_seen"]:  # generate first hands over the prompt
                    state["prompt_seen"] = True
                    return
                logits = pending.popleft()
                tid = int(value.reshape(-1)[0])
                if len(state["ids"]) < max_new and (not state["ids"] or state["ids"][-1] not in self_eos):
                    events.put(("token", record(tid, logits)))

            def end(self) -> None:
                pass

        class _Cancel(StoppingCriteria):
            def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
                return torch.full((input_ids.shape[0],), cancel.is_set(), dtype=torch.bool, device=input_ids.device)

        self_eos = self.eos_ids
        sampling = not cfg.greedy
        kwargs: dict[str, Any] = {
            "max_new_tokens": max_new, "do_sample": sampling, "num_return_sequences": 1, "output_logits": True,
            "return_dict_in_generate": True, "pad_token_id": self.pad_id, "eos_token_id": sorted(self.eos_ids),
            "top_k": None, "streamer": _Streamer(), "stopping_criteria": StoppingCriteriaList([_Cancel()]),
        }
        if sampling:
            kwargs.update(temperature=cfg.temperature, top_p=cfg.top_p)
        else:
            kwargs.update(temperature=None, top_p=None)

        def work() -> None:
            hook = self.model.register_forward_hook(capture)
            try:
                if sampling:
                    torch.manual_seed(cfg.seed or 0)
                ids = torch.tensor([prompt_ids], device=self.device)
                with torch.no_grad():
                    out = self.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kwargs)
                seq = out.sequences[0, len(prompt_ids):]
                ids_list = seq.tolist()
                length = next((i + 1 for i, t in enumerate(ids_list) if t in self.eos_ids), len(ids_list))
                finish = "stop" if length < len(ids_list) or (ids_list and ids_list[length - 1] in self.eos_ids) \
                    else "length"
                logits = torch.stack(out.logits, dim=1)[0, :length]
                trace = self._trace(recorded, prompt_text, ids_list[:length], logits, seq[:length], cfg, finish)
                events.put(("trace", trace))
            except BaseException as exc:  # noqa: BLE001 — handed to the consumer, re-raised there
                events.put(("error", exc))
            finally:
                hook.remove()

        worker = threading.Thread(target=work, name="tokentrust-stream", daemon=True)
        worker.start()
        try:
            while True:
                kind, item = events.get()
                if kind == "error":
                    raise item
                yield item
                if kind == "trace":
                    return
        finally:
            cancel.set()
            worker.join()
