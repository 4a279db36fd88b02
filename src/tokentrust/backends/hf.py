"""White-box backend: any causal LM through Hugging Face transformers, in process.

Generation runs tokentrust's own decoding loop (:mod:`._engine`): the same positions, masks and cache as
``model.generate``, but each step's *raw* distribution (before temperature/top-p warping) is reduced to a
few statistics on the device right after the forward pass, so full-vocabulary logits are never kept;
``generate_many``, ``sample`` and ``stream`` share that loop, and the serving scheduler drives it too.
Answer tokens end at the first end-of-sequence id of the *generated* part only, and prompt tokens come
from our own tokenisation, never from a padded tensor, so an end-of-turn token that doubles as the pad
token (SmolLM2's ``<|im_end|>``) is never dropped or shifted.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from ..capability import Capability
from ..config import GenerationConfig
from ..errors import ContextLengthError, ModelLoadError, UserInputError
from ..trace import Message, TokenRecord, Trace, as_messages
from ._distribution import step_stats
from ._engine import DecodeBatch, IncrementalDecoder, Row, run_rows
from .base import RenderedPrompt, merged_config, sample_config

_CAPABILITIES = frozenset(Capability)


def _available_memory(device: torch.device) -> int:
    """Bytes free for new tensors on ``device`` (CUDA: free device memory; CPU: available RAM)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def _local_json(path: str, name: str) -> dict[str, Any]:
    import json
    from pathlib import Path

    file = Path(path) / name
    try:
        data = json.loads(file.read_text(encoding="utf-8")) if file.is_file() else {}
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _model_class(path: str) -> Any:
    """The model class a local folder's ``config.json`` names, imported directly: the ``Auto`` classes first
    index every architecture transformers knows (about a CPU-second); any doubt falls back to them."""
    import importlib

    config = _local_json(path, "config.json")
    kind, names = config.get("model_type"), config.get("architectures") or []
    if isinstance(kind, str) and len(names) == 1 and kind.isidentifier():
        try:
            found = getattr(importlib.import_module(f"transformers.models.{kind}.modeling_{kind}"), names[0])
            if found.__name__.endswith("ForCausalLM"):
                return found
        except (ImportError, AttributeError):
            pass
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM


@contextmanager
def _quiet_loading() -> Iterator[None]:
    """No transformers progress bars ("Loading weights") while loading, unless ``TOKENTRUST_VERBOSE`` is set
    (``tokentrust --verbose``) or the bars are already off; the previous setting is restored afterwards."""
    from transformers.utils import logging as hf_logging

    quiet = hf_logging.is_progress_bar_enabled() and not os.environ.get("TOKENTRUST_VERBOSE")
    if quiet:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if quiet:
            with warnings.catch_warnings():  # the hub warns when its own bars stay off by environment variable
                warnings.simplefilter("ignore")
                hf_logging.enable_progress_bar()


def _load_tokenizer(path: str) -> Any:
    """The tokenizer; a folder whose ``tokenizer_config.json`` names the generic fast tokenizer loads it
    directly (the same class ``AutoTokenizer`` would pick, without indexing every tokenizer)."""
    if _local_json(path, "tokenizer_config.json").get("tokenizer_class") in ("PreTrainedTokenizerFast",
                                                                            "TokenizersBackend"):
        from transformers import PreTrainedTokenizerFast

        return PreTrainedTokenizerFast.from_pretrained(path)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def auto_batch_size(model: Any, *, context: int = 1024, cap: int | None = None) -> int:
    """Rows decoded at once: as many as half the free memory holds (KV cache of ``context`` tokens plus the
    float32 work on one step's logits per row), at most ``cap`` (64 on a GPU, 32 on a CPU, where larger
    batches stop paying off)."""
    cfg = model.config
    heads = int(getattr(cfg, "num_attention_heads", 1) or 1)
    kv_heads = int(getattr(cfg, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(cfg, "head_dim", None) or getattr(cfg, "hidden_size", 64) // heads)
    layers = int(getattr(cfg, "num_hidden_layers", 1) or 1)
    param = next(model.parameters())
    per_row = 2 * layers * kv_heads * head_dim * context * param.element_size()
    per_row += int(getattr(cfg, "vocab_size", 32_000)) * 4 * 8
    limit = cap if cap is not None else (64 if param.device.type == "cuda" else 32)
    return max(1, min(limit, _available_memory(param.device) // 2 // max(per_row, 1)))


class HFBackend:
    """In-process transformers model. ``HFBackend.from_pretrained(path_or_hub_id)`` or wrap a loaded model.

    ``batch_size`` bounds the rows decoded at once (default: :func:`auto_batch_size`, from the model's size
    and the free memory); ``generate_many`` refills a row's place as soon as its answer ends.
    """

    def __init__(self, model: Any, tokenizer: Any, *, model_id: str | None = None, batch_size: int | None = None) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.model_id = model_id or getattr(model.config, "_name_or_path", None) or type(model).__name__
        self.batch_size = batch_size or auto_batch_size(model)
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
        # Fast tokenizers refuse concurrent use ("Already borrowed"); every call here goes through this lock,
        # so the serving scheduler's worker can decode while request threads render prompts.
        self.tokenizer_lock = threading.RLock()

    @classmethod
    def from_spec(cls, spec: str, **kwargs: Any) -> HFBackend:
        """``hf:<path or hub id>`` (or the bare path / hub id)."""
        from pathlib import Path

        path = spec.removeprefix("hf:")
        local = Path(path).expanduser()
        if path.startswith((".", "/", "~")) or local.exists():
            if not (local / "config.json").exists():
                raise ModelLoadError(
                    f"no model at {path!r}: expected a folder with config.json and weights "
                    "(or a hub id, or omit the model for the embedded default)"
                )
            path = str(local)
        return cls.from_pretrained(path, **kwargs)

    @classmethod
    def from_pretrained(cls, path: str, *, device: str | None = None, dtype: Any = "auto",
                        batch_size: int | None = None, **kwargs: Any) -> HFBackend:
        """Load any causal LM by local path or hub id (hub ids need the files in the local HF cache when offline)."""
        try:
            with _quiet_loading():
                tokenizer = _load_tokenizer(path)
                model = _model_class(path).from_pretrained(path, dtype=dtype, **kwargs)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(
                f"cannot load model {path!r}: {str(exc).splitlines()[0]} "
                "(give a local folder with config.json and weights, or a hub id available offline; "
                "omit the model to use the embedded default)"
            ) from None
        if device:
            model = model.to(device)
        return cls(model, tokenizer, model_id=path, batch_size=batch_size)

    def __repr__(self) -> str:
        return f"HFBackend({self.model_id!r}, batch_size={self.batch_size}, device={self.device})"

    @property
    def capabilities(self) -> frozenset[Capability]:
        return _CAPABILITIES

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ---- prompts -----------------------------------------------------------------------------------
    def render(self, prompt: Any, *, chat: bool = True) -> RenderedPrompt:
        """The prompt as recorded, the exact text the model sees (chat template applied) and its token ids."""
        with self.tokenizer_lock:
            return self._render(prompt, chat)

    def _render(self, prompt: Any, chat: bool) -> RenderedPrompt:
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
        return RenderedPrompt(prompt=messages if messages is not None else prompt, text=text, token_ids=ids)

    def display(self, tid: int) -> str:
        """Readable text of a vocabulary entry (byte-level pieces decoded; special tokens by name), memoised."""
        text = self._display_cache.get(tid)
        if text is None:
            with self.tokenizer_lock:
                text = self._decode_one(tid)
            self._display_cache[tid] = text
        return text

    def _decode_one(self, tid: int) -> str:
        if tid in self.special_ids:
            return str(self.tokenizer.convert_ids_to_tokens(tid))
        return str(self.tokenizer.decode([tid], clean_up_tokenization_spaces=False))

    def row(self, prompt: Any, config: GenerationConfig, *, rendered: RenderedPrompt | None = None) -> Row:
        """One answer to generate: its rendered prompt, length limit and (when sampling) a generator seeded
        with ``config.seed``, so the trace records the seed that reproduces it."""
        rendered = rendered or self.render(prompt, chat=config.chat)
        ids = rendered.token_ids or []
        generator = None
        if not config.greedy:
            generator = torch.Generator(device=self.device).manual_seed(config.seed or 0)
        return Row(prompt=rendered.prompt, prompt_text=rendered.text, prompt_ids=ids, config=config,
                   max_new=min(config.max_new_tokens, self.context_length - len(ids)),
                   decoder=IncrementalDecoder(self.tokenizer, self.special_ids), generator=generator)

    def sample_rows(self, prompt: Any, config: GenerationConfig, n: int) -> list[Row]:
        """``n`` rows of one prompt (rendered once); row ``k`` samples with seed ``config.seed + k``."""
        rendered = self.render(prompt, chat=config.chat)
        base = config.seed or 0
        return [self.row(prompt, config.model_copy(update={"seed": base + k}), rendered=rendered) for k in range(n)]

    def engine(self) -> DecodeBatch:
        """An empty batch of this model's decoding loop (the serving scheduler drives one)."""
        return DecodeBatch(self)

    # ---- generation --------------------------------------------------------------------------------
    def generate(self, prompt: Any, config: GenerationConfig | None = None, **overrides: Any) -> Trace:
        """Answer one prompt (a string or chat messages) and return its trace."""
        return self.generate_many([prompt], config, **overrides)[0]

    def generate_many(
        self, prompts: Sequence[Any], config: GenerationConfig | None = None, **overrides: Any
    ) -> list[Trace]:
        """Answer several prompts, ``batch_size`` rows at a time (a finished row's place is refilled at once)."""
        cfg = merged_config(config, overrides)
        rows = [self.row(p, cfg) for p in prompts]
        run_rows(self.engine(), rows, self.batch_size)
        return [r.trace(self.model_id) for r in rows]

    def sample(
        self, prompt: Any, n: int = 10, *, temperature: float = 1.0, top_p: float = 1.0, seed: int = 0,
        max_new_tokens: int | None = None, chat: bool = True, top_k: int = 10,
    ) -> list[Trace]:
        """``n`` sampled answers; answer ``k`` draws with seed ``seed + k`` (and records it). The prompt is
        encoded once and its cache shared by every row (rows beyond ``batch_size`` take a second prefill)."""
        rows = self.sample_rows(prompt, sample_config(n=n, temperature=temperature, top_p=top_p, seed=seed,
                                                      max_new_tokens=max_new_tokens, chat=chat, top_k=top_k), n)
        for start in range(0, n, self.batch_size):
            batch = self.engine()
            batch.admit(rows[start : start + self.batch_size], shared_prompt=True)
            while len(batch):
                batch.step()
        return [r.trace(self.model_id) for r in rows]

    def stream(self, prompt: Any, config: GenerationConfig | None = None, **overrides: Any
               ) -> Iterator[TokenRecord | Trace]:
        """Answer one prompt token by token: a :class:`TokenRecord` per token as it is chosen, then the Trace.

        Runs the loop of :meth:`generate` in the caller's thread, so the numbers are ``generate``'s and
        closing the iterator stops the generation at once.
        """
        row = self.row(prompt, merged_config(config, overrides))
        batch = self.engine()
        batch.admit([row])
        sent = 0
        while True:
            while sent < len(row.ids):
                yield row.record(sent)
                sent += 1
            if row.done:
                break
            batch.step()
        yield row.trace(self.model_id)

    # ---- teacher forcing ---------------------------------------------------------------------------
    def score(
        self, prompt: Any, answer: str | Sequence[int], *, chat: bool = True, end_of_turn: bool = True,
        top_k: int = 10,
    ) -> Trace:
        """Teacher-force an answer the user already has and return its trace (one forward pass).

        ``answer`` is text or token ids. For text, ``end_of_turn`` appends the end-of-sequence token, so the
        trace also says how sure the model was that the answer ends there (as a generated trace does).
        """
        rendered = self.render(prompt, chat=chat)
        prompt_ids = rendered.token_ids or []
        if isinstance(answer, str):
            if not answer.strip():
                raise UserInputError("answer is empty; give the answer text to score")
            with self.tokenizer_lock:
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
        stats = step_stats(logits, torch.tensor(answer_ids, device=logits.device), top_k)
        cfg = GenerationConfig(max_new_tokens=len(answer_ids), top_k=top_k, chat=chat)
        row = self.row(prompt, cfg, rendered=rendered)
        with self.tokenizer_lock:
            for i, tid in enumerate(answer_ids):
                row.add(tid, stats, i, self.display)
        row.finish = "forced"
        return row.trace(self.model_id)

    def token_logprobs(self, token_ids: Sequence[int]) -> list[float]:
        """``log p(ids[t] | ids[<t])`` for ``t = 1 … len-1``, with no prompt and no template (PMI's pass)."""
        if len(token_ids) < 2:
            return []
        ids = torch.tensor([list(token_ids)], device=self.device)
        with torch.no_grad():
            logp = torch.log_softmax(self.model(input_ids=ids).logits[0, :-1].float(), dim=-1)
        return logp.gather(-1, ids[0, 1:, None]).squeeze(-1).tolist()
