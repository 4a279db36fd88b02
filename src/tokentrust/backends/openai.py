"""Any model behind an OpenAI-compatible server (vLLM, llama.cpp, Ollama, TGI, a hosted API), black-box.

Model spec grammar (``tokentrust.load`` and ``--model``)::

    openai:<base_url>#<model>      e.g. openai:http://127.0.0.1:8080/v1#smollm2
    openai:<base_url>              the server's only model (asked from GET <base_url>/models)

``<base_url>`` is the API root that ``/chat/completions`` and ``/completions`` hang off (usually ending
in ``/v1``); ``<model>`` is the name the server knows the model by. The API key comes from ``api_key=``
or the ``OPENAI_API_KEY`` environment variable; local servers need none.

What the server can give is probed once, on first use, with a few one-token requests, and reported as
:attr:`OpenAIBackend.capabilities`: chosen-token log-probs and top alternatives (``logprobs`` /
``top_logprobs`` on the chat endpoint), streaming, whether it honours ``n`` (several answers per request;
otherwise sampling sends concurrent one-answer requests with seeds ``seed, seed+1, …``) and prompt log-probs
(completions ``echo`` + ``logprobs``, as vLLM gives; trusted only when they agree with the server's
generation log-probs). Sampling is always available. Teacher-forced scoring of a chat prompt
(``forced_scoring``, used by ``p_true``) also needs the model's chat template, which a server does not
reveal: pass ``chat_template=`` (the model folder, a ``.jinja`` file or the template text); raw-text
scoring (``chat=False``) needs only ``echo``. A server never shows the full distribution, so exact entropy and the
other white-box columns stay ``None``. A server without log-probs (``transformers serve``, many hosted
APIs) still serves the sampling-based estimators.

All requests go through one ``httpx.AsyncClient`` (HTTP/1.1 keep-alive) on a private event loop thread,
at most ``concurrency`` at a time; the synchronous methods of the :class:`~tokentrust.Backend` protocol
wait on it. 429, 5xx and connection errors are retried with exponential backoff (``Retry-After``
honoured); a read timeout is not retried (the server may still be working on the request).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import os
import random
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from ..capability import Capability
from ..config import GenerationConfig
from ..errors import CapabilityError, ServerError, UserInputError
from ..openai_format import (
    UNKNOWN_ID,
    TokenEntry,
    check_choices,
    choice_entries,
    choice_text,
    chunk_records,
    render_prompt_text,
    spans,
    trace_from_choice,
    usage_prompt_tokens,
)
from ..trace import Message, TokenRecord, Trace, as_messages
from .base import RenderedPrompt, merged_config, sample_config
from .cancel import cancellable, wait_polling

T = TypeVar("T")
PREFIX = "openai:"
_RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
_MAX_TOP_LOGPROBS = 20  # the OpenAI API's limit on top_logprobs
_ECHO_AGREEMENT = 0.1  # nats: echo vs generation log-prob of the same token in the same context


@dataclass(frozen=True)
class ModelSpec:
    """A parsed ``openai:<base_url>#<model>`` spec; ``model`` is ``None`` when the server should name it."""

    base_url: str
    model: str | None

    @classmethod
    def parse(cls, spec: str) -> ModelSpec:
        if not spec.startswith(PREFIX):
            raise UserInputError(f"model spec {spec!r} must start with {PREFIX!r} (openai:<base_url>#<model>)")
        url, _, model = spec[len(PREFIX) :].partition("#")
        url = url.strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise UserInputError(
                f"model spec {spec!r}: the base URL must start with http:// or https:// "
                "(e.g. openai:http://127.0.0.1:8080/v1#smollm2)"
            )
        return cls(url, model.strip() or None)

    def __str__(self) -> str:
        return f"{PREFIX}{self.base_url}#{self.model}" if self.model else f"{PREFIX}{self.base_url}"


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds from a ``Retry-After`` header (a number or an HTTP date), or ``None``."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
        err = body.get("error", body) if isinstance(body, dict) else body
        message = err.get("message", err) if isinstance(err, dict) else err
        return str(message)[:300]
    except ValueError:
        return response.text[:300]


def _special_text(value: Any) -> str:
    return str(value.get("content", "")) if isinstance(value, dict) else ("" if value is None else str(value))


@dataclass(frozen=True)
class ChatTemplate:
    """A Hugging Face chat template rendered with Jinja, to see a chat prompt as the server's model does."""

    source: str
    bos_token: str = ""
    eos_token: str = ""

    @classmethod
    def load(cls, where: str | Path) -> ChatTemplate:
        """From a model folder (``chat_template.jinja`` or ``tokenizer_config.json``), a file, or template text."""
        text = str(where)
        path = Path(text).expanduser()
        if "{%" in text or "{{" in text:
            return cls(text)
        config: dict[str, Any] = {}
        if path.is_dir():
            cfg_file = path / "tokenizer_config.json"
            config = json.loads(cfg_file.read_text(encoding="utf-8")) if cfg_file.exists() else {}
            jinja = path / "chat_template.jinja"
            source = jinja.read_text(encoding="utf-8") if jinja.exists() else config.get("chat_template")
        elif path.is_file():
            source = path.read_text(encoding="utf-8")
        else:
            raise UserInputError(f"chat_template {text!r} is neither template text nor an existing file or folder")
        if not isinstance(source, str) or not source:
            raise UserInputError(f"no chat template in {path} (expected chat_template.jinja or tokenizer_config.json)")
        return cls(source, _special_text(config.get("bos_token")), _special_text(config.get("eos_token")))

    def render(self, messages: Sequence[Message]) -> str:
        """The prompt text, ending with the assistant's header (``add_generation_prompt=True``)."""
        try:
            from jinja2.exceptions import TemplateError
            from jinja2.sandbox import ImmutableSandboxedEnvironment
        except ImportError:
            raise UserInputError("rendering a chat template needs jinja2: pip install 'tokentrust[templates]'") from None

        def raise_exception(message: str) -> None:
            raise TemplateError(message)

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = raise_exception
        try:
            return env.from_string(self.source).render(
                messages=[m.model_dump() for m in messages], add_generation_prompt=True,
                bos_token=self.bos_token, eos_token=self.eos_token,
            )
        except TemplateError as exc:
            raise UserInputError(f"the chat template failed on these messages: {exc}") from None


def _answer_suffix(entries: Sequence[TokenEntry], answer: str) -> list[TokenEntry] | None:
    """The last echoed tokens that spell ``answer`` exactly (the echo may end with one generated token).

    Matched on token texts rather than ``text_offset``, which servers compute differently (llama.cpp counts
    characters with control tokens removed).
    """
    for end in (len(entries), len(entries) - 1):
        text = ""
        for start in range(end - 1, -1, -1):
            text = entries[start].token + text
            if len(text) >= len(answer):
                if text == answer:
                    return list(entries[start:end])
                break
    return None


class _Loop:
    """A private event loop on a daemon thread, so sync callers (and callers inside another loop) can wait."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="tokentrust-openai", daemon=True)
        self.thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """The coroutine's result; cancelled (its HTTP request closed) when the caller's work is cancelled."""
        future = self.submit(coro)
        try:
            return wait_polling(future.result, future.cancel)
        except KeyboardInterrupt:
            future.cancel()
            raise

    def close(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=5)
        if not self.loop.is_running():
            self.loop.close()


class OpenAIBackend:
    """A model behind an OpenAI-compatible server. ``OpenAIBackend.from_spec("openai:<url>#<model>")``.

    ``concurrency`` bounds the requests in flight (raise it to keep a large server busy: vLLM batches
    whatever arrives together). ``connect_timeout``/``read_timeout`` are in seconds; the read timeout is
    long by default because a long answer from a busy server takes minutes. ``max_retries`` retries
    429/5xx/connection errors with backoff ``backoff · 2^attempt`` seconds (capped at ``max_backoff``).
    ``extra_body`` adds server-specific fields to every generation request, e.g. ``{"repeat_penalty": 1.0}``
    for llama-cpp-python's server, which otherwise penalises repeats (so "greedy" is not the raw argmax).
    """

    def __init__(
        self, base_url: str, model: str | None = None, *, api_key: str | None = None, concurrency: int = 8,
        connect_timeout: float = 10.0, read_timeout: float = 600.0, max_retries: int = 5, backoff: float = 0.5,
        max_backoff: float = 60.0, headers: dict[str, str] | None = None,
        chat_template: str | Path | ChatTemplate | None = None, extra_body: dict[str, Any] | None = None,
    ) -> None:
        if concurrency < 1:
            raise UserInputError(f"concurrency must be ≥ 1, got {concurrency}")
        if max_retries < 0:
            raise UserInputError(f"max_retries must be ≥ 0, got {max_retries}")
        for name, value in (("connect_timeout", connect_timeout), ("read_timeout", read_timeout)):
            if not value > 0:
                raise UserInputError(f"{name} must be > 0 seconds, got {value}")
        self.base_url = ModelSpec.parse(PREFIX + base_url).base_url
        self._api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.concurrency = concurrency
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._headers = dict(headers or {})
        self.extra_body = dict(extra_body or {})
        self._loop: _Loop | None = None
        self._client: httpx.AsyncClient | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._lock = threading.Lock()
        self._probe_lock = threading.Lock()
        self._model = model
        self._capabilities: frozenset[Capability] | None = None
        self._n_supported: bool | None = None  # the server returns n choices for n > 1 (probed)
        self._echo_ok: bool | None = None  # completions echo returns prompt log-probs
        self.chat_template = (
            chat_template if isinstance(chat_template, ChatTemplate | None) else ChatTemplate.load(chat_template)
        )
        self.model_id = str(ModelSpec(self.base_url, model)) if model else str(ModelSpec(self.base_url, None))

    @classmethod
    def from_spec(cls, spec: str, **kwargs: Any) -> OpenAIBackend:
        """A backend for ``openai:<base_url>#<model>`` (see the module docstring for the grammar)."""
        parsed = ModelSpec.parse(spec)
        return cls(parsed.base_url, parsed.model, **kwargs)

    @classmethod
    def upstream(cls, base_url: str, model: str | None = None, *, api_key: str | None = None) -> OpenAIBackend:
        """The server behind a confidence proxy (``tokentrust serve --upstream``): it fails fast (one quick
        retry, 5 s to connect) so the proxy answers 502 at once when the server is down, and allows 64
        requests in flight. Without ``model``, the first model the server lists."""
        if not base_url.startswith(("http://", "https://")):
            raise UserInputError(f"the upstream must be an http(s) URL such as http://127.0.0.1:8080/v1, got {base_url!r}")
        options: dict[str, Any] = {"api_key": api_key, "max_retries": 1, "backoff": 0.2, "connect_timeout": 5.0,
                                   "concurrency": 64}
        backend = cls(base_url, model, **options)
        if model is None:
            try:
                names = backend.model_names()
            except ServerError as exc:
                raise UserInputError(f"{exc}; start it or name the model (--upstream-model)") from None
            if not names:
                raise UserInputError(f"{base_url} lists no models; name one (--upstream-model)")
            backend.close()
            backend = cls(base_url, names[0], **options)
        return backend

    def __repr__(self) -> str:
        return f"OpenAIBackend({self.model_id!r}, concurrency={self.concurrency})"

    # ---- plumbing ------------------------------------------------------------------------------------
    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        with self._lock:
            if self._loop is None:
                self._loop = _Loop()
        return self._loop.run(coro)

    def close(self) -> None:
        """Close the connections and stop the private loop (the backend reopens them if used again)."""
        with self._lock:
            loop, self._loop = self._loop, None
        if loop is None:
            return
        if self._client is not None:
            try:
                loop.run(self._client.aclose())
            except RuntimeError:
                pass  # loop already stopped
            self._client = None
        self._semaphore = None
        loop.close()

    def _http(self) -> tuple[httpx.AsyncClient, asyncio.Semaphore]:
        """The client and semaphore, created on the private loop the first time they are needed."""
        if self._client is None or self._semaphore is None:
            headers = {"content-type": "application/json", **self._headers}
            if self._api_key:
                headers["authorization"] = f"Bearer {self._api_key}"
            self._client = httpx.AsyncClient(
                base_url=self.base_url + "/",
                headers=headers,
                http1=True,
                http2=False,
                timeout=httpx.Timeout(self.read_timeout, connect=self.connect_timeout),
                limits=httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency),
            )
            self._semaphore = asyncio.Semaphore(self.concurrency)
        return self._client, self._semaphore

    async def _post(self, path: str, payload: dict[str, Any], *, probe: bool = False) -> dict[str, Any]:
        """POST JSON with bounded concurrency and retries; the parsed JSON body, or :class:`ServerError`.

        ``probe=True`` turns a 4xx answer other than 401/403 into ``{"_status": code}`` instead of an error.
        """
        client, semaphore = self._http()
        url = f"{self.base_url}/{path}"
        if not probe and self.extra_body:
            payload = {**self.extra_body, **payload}
        attempt = 0
        while True:
            wait: float | None = None
            async with semaphore:
                try:
                    response = await client.post(path, json=payload)
                except httpx.TimeoutException as exc:
                    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout) and attempt < self.max_retries:
                        wait = None
                        failure = f"connect timeout after {self.connect_timeout:g} s"
                    else:
                        kind = "connect" if isinstance(exc, httpx.ConnectTimeout) else "read"
                        limit = self.connect_timeout if kind == "connect" else self.read_timeout
                        raise ServerError(
                            f"{url}: no answer within the {kind} timeout of {limit:g} s "
                            f"(raise {kind}_timeout for slow servers or long answers)"
                        ) from None
                except httpx.TransportError as exc:
                    failure = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                    if attempt >= self.max_retries:
                        raise ServerError(
                            f"cannot reach {url} after {attempt + 1} tries ({failure}): the server is unreachable; is it running?"
                        ) from None
                else:
                    if response.status_code < 400:
                        try:
                            body = response.json()
                        except ValueError:
                            raise ServerError(
                                f"{url} answered HTTP {response.status_code} with malformed JSON: "
                                f"{response.text[:200]!r}"
                            ) from None
                        if not isinstance(body, dict):
                            raise ServerError(f"{url} answered with JSON that is not an object: {response.text[:200]!r}")
                        return body
                    status = response.status_code
                    if status not in _RETRY_STATUS:
                        if probe and status not in (401, 403):  # an unsupported field or endpoint
                            return {"_status": status, "_message": _error_message(response)}
                        hint = " (set OPENAI_API_KEY or pass api_key=)" if status in (401, 403) else ""
                        raise ServerError(f"{url} refused the request: HTTP {status}: {_error_message(response)}{hint}",
                                          status=status)
                    failure = f"HTTP {status}: {_error_message(response)}"
                    if attempt >= self.max_retries:
                        raise ServerError(f"{url} failed {attempt + 1} times; last answer {failure}", status=status)
                    wait = _retry_after(response)
            delay = min(self.max_backoff, wait if wait is not None else self.backoff * 2**attempt)
            await asyncio.sleep(delay * (1 if wait is not None else 0.75 + 0.5 * random.random()))
            attempt += 1

    # ---- model name and capabilities -----------------------------------------------------------------
    @property
    def model(self) -> str:
        """The server's name for the model (asked from ``GET /models`` when the spec did not give one)."""
        if self._model is None:
            self._model = self._run(self._only_model())
            self.model_id = str(ModelSpec(self.base_url, self._model))
        return self._model

    def model_names(self) -> list[str]:
        """The model names the server lists at ``GET <base_url>/models``."""
        return self._run(self._model_names())

    async def _model_names(self) -> list[str]:
        client, _ = self._http()
        try:
            response = await client.get("models")
            names = [str(m["id"]) for m in response.json().get("data", [])]
        except httpx.TransportError as exc:
            raise ServerError(f"cannot reach {self.base_url}: the server is unreachable ({type(exc).__name__})"
                              ) from None
        except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ServerError(f"cannot list the models of {self.base_url}: {exc}") from None
        return names

    async def _only_model(self) -> str:
        try:
            names = await self._model_names()
        except ServerError as exc:
            raise ServerError(f"{exc}; name the model with #<model>") from None
        if len(names) != 1:
            raise UserInputError(
                f"{self.base_url} serves {len(names)} models ({', '.join(names[:10])}); "
                f"name one: openai:{self.base_url}#<model>"
            )
        return names[0]

    @property
    def capabilities(self) -> frozenset[Capability]:
        """What the server gives, probed once: sampling always; log-probs and top-k if returned; forced
        scoring if ``echo`` returns prompt log-probs and the chat template is known."""
        if self._capabilities is None:
            with self._probe_lock:
                if self._capabilities is None:
                    self._capabilities = self._run(self._probe())
        return self._capabilities

    async def _probe(self) -> frozenset[Capability]:
        model = self._model or await self._only_model()
        self._model = model
        self.model_id = str(ModelSpec(self.base_url, model))
        found = {Capability.SAMPLING, Capability.GENERATION}
        chat = await self._post(
            "chat/completions",
            {"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1, "temperature": 0,
             "logprobs": True, "top_logprobs": 2},
            probe=True,
        )
        if "_status" not in chat and chat.get("choices"):
            entries = self._probe_entries(chat, "chat/completions")
            if entries and not math.isnan(entries[0].logprob):
                found.add(Capability.LOGPROBS)
                if entries[0].top:
                    found.add(Capability.TOP_LOGPROBS)
        self._echo_ok = await self._probe_echo(model)
        if self._echo_ok and self.chat_template is not None:
            found.add(Capability.FORCED_SCORING)
        several = await self._post(
            "chat/completions",
            {"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1, "temperature": 1.0,
             "n": 2, "seed": 0},
            probe=True,
        )
        choices = several.get("choices")
        self._n_supported = "_status" not in several and isinstance(choices, list) and len(choices) == 2
        if await self._probe_stream(model):
            found.add(Capability.STREAMING)
        return frozenset(found)

    def _probe_entries(self, body: dict[str, Any], path: str) -> list[TokenEntry] | None:
        """The first choice's token entries of a probe answer; a wrong shape is a :class:`ServerError`."""
        try:
            check_choices(body.get("choices"))
            return choice_entries(body["choices"][0])
        except UserInputError as exc:
            raise ServerError(f"{self.base_url}/{path} answered in an unexpected format: {exc}") from None

    async def _probe_stream(self, model: str) -> bool:
        """True when a one-token streamed chat request answers with server-sent chunks."""
        try:
            async for _ in self._chunks("chat/completions", {
                "model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1,
                "temperature": 0, "stream": True,
            }):
                pass
        except ServerError:
            return False
        return True

    async def _probe_echo(self, model: str) -> bool:
        """True when completions ``echo`` returns prompt log-probs that agree with generation log-probs.

        The last token of a fresh prompt is scored twice: by ``echo`` and as the next token after the rest
        of the prompt (from the top alternatives). Some servers return prompt log-probs that are wrong
        (llama-cpp-python 0.3.36 returns wrong ones for a prompt that is not in its cache);
        a disagreement beyond ``_ECHO_AGREEMENT`` nats marks ``echo`` as unusable rather than trusting it.
        """
        probe_prompt = f"The capital of France is Paris. {random.randrange(10**6)} The capital of Italy is Rome"
        echo = await self._post(
            "completions",
            {"model": model, "prompt": probe_prompt, "max_tokens": 1, "temperature": 0, "echo": True, "logprobs": 1},
            probe=True,
        )
        if "_status" in echo or not echo.get("choices"):
            return False
        try:
            entries = _answer_suffix(self._probe_entries(echo, "completions") or [], " Rome")
        except ServerError:
            return False  # echo in another shape: prompt log-probs are not usable

        if not entries or len(entries) != 1 or math.isnan(entries[0].logprob):
            return False
        prefix = probe_prompt[: -len(" Rome")]
        nxt = await self._post(
            "completions",
            {"model": model, "prompt": prefix, "max_tokens": 1, "temperature": 0, "logprobs": 5},
            probe=True,
        )
        if "_status" in nxt or not nxt.get("choices"):
            return False
        try:
            generated = self._probe_entries(nxt, "completions") or []
        except ServerError:
            return False
        alternatives = {tok: lp for tok, lp, _ in generated[0].top} if generated else {}
        if generated and generated[0].token == " Rome":
            alternatives[" Rome"] = generated[0].logprob
        reference = alternatives.get(" Rome")
        return reference is not None and abs(reference - entries[0].logprob) <= _ECHO_AGREEMENT

    def require(self, capability: Capability, what: str) -> None:
        """Raise :class:`CapabilityError` naming ``capability`` unless the server has it."""
        if capability not in self.capabilities:
            raise CapabilityError(
                f"{what} needs {capability.value}, which {self.model_id} does not return "
                f"(available: {', '.join(sorted(c.value for c in self.capabilities))})"
            )

    def render(self, prompt: Any, *, chat: bool = True) -> RenderedPrompt:
        """The prompt as recorded and as text; exact only for raw text or with a known chat template.

        A server does not reveal its tokenizer, so token ids are unknown here (``n_tokens`` is ``None``; the
        server's usage counts come back with each answer as ``Trace.prompt_tokens``).
        """
        messages = as_messages(prompt)
        if not chat and messages is not None:
            raise UserInputError("chat=False sends plain text to the completions endpoint; give the prompt as a string")
        recorded: str | list[Message] = messages if messages is not None else prompt
        return RenderedPrompt(prompt=recorded, text=self._prompt_text(recorded, chat), token_ids=None,
                              exact=not chat or self.chat_template is not None)

    # ---- requests ------------------------------------------------------------------------------------
    def _payload(self, prompt: Any, cfg: GenerationConfig, *, n: int = 1) -> tuple[str, dict[str, Any], Any]:
        """(endpoint, request JSON, prompt as recorded) for one generation request."""
        messages = as_messages(prompt)
        recorded: str | list[Message] = messages if messages is not None else prompt
        payload: dict[str, Any] = {
            "model": self._model, "max_tokens": cfg.max_new_tokens, "temperature": cfg.temperature,
        }
        if cfg.top_p < 1:
            payload["top_p"] = cfg.top_p
        if cfg.seed is not None:
            payload["seed"] = cfg.seed
        if n > 1:
            payload["n"] = n
        caps = self.capabilities
        if cfg.chat:
            payload["messages"] = [m.model_dump() for m in (messages or [Message(role="user", content=prompt)])]
            if Capability.LOGPROBS in caps:
                payload["logprobs"] = True
                if Capability.TOP_LOGPROBS in caps and cfg.top_k:
                    payload["top_logprobs"] = min(cfg.top_k, _MAX_TOP_LOGPROBS)
            return "chat/completions", payload, recorded
        if messages is not None:
            raise UserInputError("chat=False sends plain text to the completions endpoint; give the prompt as a string")
        payload["prompt"] = prompt
        if Capability.LOGPROBS in caps:
            payload["logprobs"] = max(1, min(cfg.top_k, 5)) if Capability.TOP_LOGPROBS in caps else 1
        return "completions", payload, recorded

    def _prompt_text(self, recorded: Any, chat: bool) -> str:
        """The exact prompt text when it is known (raw text, or chat with a known template), else a readable record."""
        if chat and self.chat_template is not None:
            messages = recorded if isinstance(recorded, list) else [Message(role="user", content=recorded)]
            return self.chat_template.render(messages)
        return render_prompt_text(recorded)

    def _traces(self, body: dict[str, Any], recorded: Any, cfg: GenerationConfig) -> list[Trace]:
        choices = body.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ServerError(f"{self.model_id} answered without a list of choices: {json.dumps(body)[:200]}")
        try:
            check_choices(choices)
            traces = [
                trace_from_choice(c, prompt=recorded, model_id=self.model_id, config=cfg,
                                  prompt_text=self._prompt_text(recorded, cfg.chat),
                                  prompt_tokens=usage_prompt_tokens(body))
                for c in sorted(choices, key=lambda c: c.get("index", 0))
            ]
        except (UserInputError, AttributeError, TypeError, KeyError, ValueError) as exc:
            raise ServerError(f"{self.model_id} answered in an unexpected format: {exc}") from None
        if Capability.LOGPROBS in self.capabilities and any(t.text and not len(t) for t in traces):
            raise ServerError(
                f"{self.model_id} answered without the log-probs it returned when probed; its answers changed shape"
            )
        return traces

    # ---- streaming -----------------------------------------------------------------------------------
    async def _chunks(self, path: str, payload: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """POST a streamed request and yield each server-sent JSON chunk (connection problems retried first)."""
        client, semaphore = self._http()
        url = f"{self.base_url}/{path}"
        attempt = 0
        async with semaphore:
            while True:
                try:
                    async with client.stream("POST", path, json=payload) as response:
                        if response.status_code >= 400:
                            await response.aread()
                            status = response.status_code
                            if status in _RETRY_STATUS and attempt < self.max_retries:
                                wait = _retry_after(response)
                            else:
                                raise ServerError(f"{url} refused the streamed request: HTTP {status}: "
                                                  f"{_error_message(response)}", status=status)
                        else:
                            kind = response.headers.get("content-type", "")
                            if "text/event-stream" not in kind:
                                body = (await response.aread())[:200]
                                raise ServerError(f"{url} answered a streamed request with {kind or 'no content type'}"
                                                  f" instead of server-sent events: {body!r}")
                            received = 0
                            async for line in response.aiter_lines():
                                if not line.startswith("data:"):
                                    continue
                                data = line[5:].strip()
                                if data == "[DONE]":
                                    break
                                try:
                                    chunk = json.loads(data)
                                except ValueError:
                                    raise ServerError(f"{url} streamed an unreadable chunk: {data[:200]!r}") from None
                                if not isinstance(chunk, dict):
                                    raise ServerError(f"{url} streamed a chunk that is not an object: {data[:200]!r}")
                                if "error" in chunk:
                                    raise ServerError(f"{url} failed mid-stream: {str(chunk['error'])[:300]}")
                                received += 1
                                yield chunk
                            if not received:
                                raise ServerError(f"{url} ended the stream without sending any chunk")
                            return
                except httpx.TimeoutException:
                    raise ServerError(f"{url}: no answer within the read timeout of {self.read_timeout:g} s") from None
                except httpx.TransportError as exc:
                    if attempt >= self.max_retries:
                        raise ServerError(f"cannot reach {url} after {attempt + 1} tries ({type(exc).__name__}): "
                                          "the server is unreachable; is it running?") from None
                    wait = None
                delay = min(self.max_backoff, wait if wait is not None else self.backoff * 2**attempt)
                await asyncio.sleep(delay)
                attempt += 1

    def stream(self, prompt: Any, config: GenerationConfig | None = None, **overrides: Any
               ) -> Iterator[TokenRecord | Trace]:
        """Answer one prompt as the server streams it: a record per token as chunks arrive, then the trace.

        Each token spans the text of the chunk that brought it, so the records' texts add up to the answer;
        closing the iterator closes the connection (the server stops generating).
        """
        cfg = merged_config(config, overrides)
        self.require(Capability.STREAMING, "answering token by token")
        path, payload, recorded = self._payload(prompt, cfg)
        payload = {**self.extra_body, **payload, "stream": True}
        if cfg.chat:
            payload["stream_options"] = {"include_usage": True}
        chunks = self._chunks(path, payload)
        records: list[TokenRecord] = []
        text, finish, prompt_tokens = "", None, None
        try:
            while True:
                try:
                    chunk = self._run(anext(chunks))
                except StopAsyncIteration:
                    break
                prompt_tokens = usage_prompt_tokens(chunk) or prompt_tokens
                try:
                    new, text, chunk_finish = chunk_records(chunk, text, records, chat=cfg.chat)
                except (UserInputError, AttributeError, TypeError, KeyError, ValueError) as exc:
                    raise ServerError(f"{self.model_id} streamed a chunk in an unexpected format: {exc}") from None
                finish = chunk_finish or finish
                for record in new:
                    records.append(record)
                    yield record
        finally:
            with cancellable(None):  # closing the connection is never cancelled
                self._run(chunks.aclose())
        if text and not records and Capability.LOGPROBS in self.capabilities:
            raise ServerError(f"{self.model_id} streamed without the log-probs it returned when probed")
        yield Trace.from_records(
            records, text=text, model_id=self.model_id, prompt=recorded,
            prompt_text=self._prompt_text(recorded, cfg.chat), config=cfg, prompt_tokens=prompt_tokens,
            finish_reason="length" if finish == "length" else "stop",
        )

    async def _generate_one(self, prompt: Any, cfg: GenerationConfig, n: int = 1) -> list[Trace]:
        path, payload, recorded = self._payload(prompt, cfg, n=n)
        return self._traces(await self._post(path, payload), recorded, cfg)

    async def agenerate_many(
        self, prompts: Sequence[Any], cfg: GenerationConfig,
        on_result: Callable[[int, Trace], None] | None = None,
    ) -> list[Trace]:
        """Answer every prompt, ``concurrency`` requests at a time; the first failure cancels the rest.

        ``on_result(index, trace)`` is called as each answer arrives (in completion order), so a caller can
        keep what finished before a failure.
        """
        async def one(i: int) -> Trace:
            trace = (await self._generate_one(prompts[i], cfg))[0]
            if on_result is not None:
                on_result(i, trace)
            return trace

        tasks = [asyncio.ensure_future(one(i)) for i in range(len(prompts))]
        if not tasks:
            return []
        _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        return [task.result() for task in tasks]

    # ---- the Backend protocol --------------------------------------------------------------------------
    def generate(self, prompt: Any, config: GenerationConfig | None = None, **overrides: Any) -> Trace:
        """Answer one prompt (a string or chat messages) and return its trace."""
        return self.generate_many([prompt], config, **overrides)[0]

    def generate_many(
        self, prompts: Sequence[Any], config: GenerationConfig | None = None, *,
        on_result: Callable[[int, Trace], None] | None = None, **overrides: Any,
    ) -> list[Trace]:
        """Answer several prompts concurrently (at most ``concurrency`` requests in flight), in order."""
        cfg = merged_config(config, overrides)
        for p in prompts:
            as_messages(p)  # fail on a bad prompt before any request
        self.capabilities  # noqa: B018  (probe once, before the concurrent requests)
        return self._run(self.agenerate_many(list(prompts), cfg, on_result))

    def sample(
        self, prompt: Any, n: int = 10, *, temperature: float = 1.0, top_p: float = 1.0, seed: int = 0,
        max_new_tokens: int | None = None, chat: bool = True, top_k: int = 10,
    ) -> list[Trace]:
        """``n`` sampled answers: one request with ``n`` where the server honours it (probed), else ``n``
        concurrent one-answer requests with seeds ``seed, seed+1, …`` (answers differ and stay reproducible).

        A server that returns fewer choices than asked is asked for the rest the same way.
        """
        cfg = sample_config(n=n, temperature=temperature, top_p=top_p, seed=seed, max_new_tokens=max_new_tokens,
                            chat=chat, top_k=top_k)
        as_messages(prompt)
        self.capabilities  # noqa: B018
        return self._run(self._sample(prompt, n, cfg))

    async def _sample(self, prompt: Any, n: int, cfg: GenerationConfig) -> list[Trace]:
        traces: list[Trace] = []
        if self._n_supported or n == 1:
            traces = (await self._generate_one(prompt, cfg, n=n))[:n]
        missing = n - len(traces)
        if missing:
            base = cfg.seed or 0
            seeds = [base + len(traces) + i for i in range(missing)] if traces else [base + i for i in range(missing)]
            configs = [cfg.model_copy(update={"seed": s}) for s in seeds]
            rest = await asyncio.gather(*(self._generate_one(prompt, c) for c in configs))
            traces += [t[0] for t in rest]
        return traces

    def score(
        self, prompt: Any, answer: str | Sequence[int], *, chat: bool = True, end_of_turn: bool = False,
        top_k: int = 5,
    ) -> Trace:
        """Teacher-forced log-probs of ``answer`` after ``prompt``, from completions ``echo`` + ``logprobs``.

        The completions endpoint takes the text as the model sees it: with ``chat=True`` the prompt is
        rendered with ``chat_template`` (a server does not reveal its own), with ``chat=False`` it is sent
        as given. Needs a server whose ``echo`` prompt log-probs agree with its generation log-probs (vLLM).
        """
        if end_of_turn:
            raise UserInputError("end_of_turn=True is not available through a server; score the answer text alone")
        if not 0 <= top_k <= _MAX_TOP_LOGPROBS:
            raise UserInputError(f"top_k must be in [0, {_MAX_TOP_LOGPROBS}] through a server, got {top_k}")
        if not isinstance(answer, str):
            raise UserInputError(
                "scoring token ids needs the server's tokenizer, which it does not expose; give the answer as text"
            )
        if not answer.strip():
            raise UserInputError("answer is empty; give the answer text to score")
        messages = as_messages(prompt)
        self.capabilities  # noqa: B018  (probe once)
        if not self._echo_ok:
            raise CapabilityError(
                f"score() needs prompt log-probs (completions echo + logprobs) that agree with its generation "
                f"log-probs, which {self.model_id} does not return (vLLM does)"
            )
        if chat:
            if self.chat_template is None:
                raise CapabilityError(
                    f"scoring a chat prompt through {self.model_id} needs the model's chat template, which a server "
                    "does not reveal: load the backend with chat_template=<model folder or .jinja file>, or apply "
                    "the template yourself and pass chat=False (--raw)"
                )
            recorded: str | list[Message] = messages if messages is not None else prompt
            text = self._prompt_text(recorded, True)
        elif messages is not None:
            raise UserInputError("chat=False sends plain text; give the prompt as a string")
        else:
            recorded = text = prompt
        trace = self._run(self._score_text(text, answer, top_k))
        cfg = trace.config.model_copy(update={"chat": chat})
        data = trace.model_dump(exclude={"digest"})
        data.update(prompt=recorded, prompt_text=text, config=cfg)
        return Trace(**data)

    async def _echo(self, prompt: str | list[int], top_k: int) -> tuple[str, list[TokenEntry], list[int]]:
        body = await self._post(
            "completions",
            {"model": self._model, "prompt": prompt, "max_tokens": 1, "temperature": 0, "echo": True,
             "logprobs": max(top_k, 1)},
        )
        try:
            choice = body["choices"][0]
            logprobs = choice["logprobs"]
            entries = choice_entries(choice) or []
            offsets = list(logprobs.get("text_offset") or [])
            return choice_text(choice), entries, offsets
        except (KeyError, IndexError, TypeError, AttributeError, UserInputError) as exc:
            raise ServerError(f"{self.model_id}: echo answer in an unexpected format ({exc})") from None

    async def _score_text(self, prompt: str, answer: str, top_k: int) -> Trace:
        _, entries, _ = await self._echo(prompt + answer, top_k)
        answer_entries = _answer_suffix(entries, answer)
        if answer_entries is None:
            raise ServerError(
                f"{self.model_id}: the echoed tokens do not end with the answer {answer!r} (the prompt's end and the "
                "answer's start may share a token; end the prompt on a token boundary, e.g. the assistant header)"
            )
        offsets, special = spans(answer, answer_entries)
        cfg = GenerationConfig(max_new_tokens=max(1, len(answer_entries)), top_k=top_k, chat=False)
        top_len = max((len(e.top) for e in answer_entries), default=0)
        return Trace(
            model_id=self.model_id, prompt=prompt, prompt_text=render_prompt_text(prompt), text=answer,
            token_ids=[e.token_id for e in answer_entries], tokens=[e.token for e in answer_entries],
            offsets=offsets, logprobs=[e.logprob for e in answer_entries], special=special,
            top_k=min(top_len, top_k), top_ids=[[t[2] for t in e.top][:top_k] for e in answer_entries],
            top_tokens=[[t[0] for t in e.top][:top_k] for e in answer_entries],
            top_logprobs=[[t[1] for t in e.top][:top_k] for e in answer_entries], config=cfg,
            finish_reason="forced",
        )

    def token_logprobs(self, token_ids: Sequence[int]) -> list[float]:
        """``log p(ids[t] | ids[<t])`` for ``t ≥ 1`` from completions ``echo`` with a token-id prompt."""
        self.require(Capability.FORCED_SCORING, "prompt-free token log-probs")
        ids = [int(t) for t in token_ids]
        if any(t == UNKNOWN_ID for t in ids):
            raise CapabilityError(
                f"{self.model_id} did not report token ids, so the answer cannot be re-scored token by token"
            )
        if len(ids) < 2:
            return []
        _, entries, _ = self._run(self._echo(ids, 0))
        if len(entries) < len(ids):
            raise ServerError(f"{self.model_id} echoed {len(entries)} tokens for a prompt of {len(ids)} token ids")
        return [e.logprob for e in entries[1 : len(ids)]]
