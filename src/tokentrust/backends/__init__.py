"""Backends turn prompts into traces: in-process transformers (white-box) and the embedded default model."""

from .base import Backend, Capability, check_compatible

__all__ = ["Backend", "Capability", "check_compatible"]
