"""Backends turn prompts into traces. Each registers a spec prefix in :data:`tokentrust.registry.backends`.

================  ==========================================================================
``default``       the embedded SmolLM2-135M-Instruct (also ``smollm2``, or no model at all)
``hf:<path|id>``  any causal LM through transformers, in process (a bare path or hub id works too)
``openai:<url>``  a model behind an OpenAI-compatible server: ``openai:<base_url>#<model>``
``replay:<file>`` recorded traces (a JSONL of traces, or a bench run's ``items.jsonl``), no model
================  ==========================================================================

Entries are lazy (``module:callable``), so importing tokentrust imports neither torch nor httpx clients;
each callable takes the whole spec string and keyword options.
"""

from ..registry import backends
from .base import Backend, RenderedPrompt

backends.register_lazy("default", "tokentrust.backends.embedded:load_default", aliases=("smollm2",))
backends.register_lazy("hf", "tokentrust.backends.hf:HFBackend.from_spec", aliases=("transformers",))
backends.register_lazy("openai", "tokentrust.backends.openai:OpenAIBackend.from_spec")
backends.register_lazy("replay", "tokentrust.backends.replay:ReplayBackend.from_spec")

__all__ = ["Backend", "RenderedPrompt"]
