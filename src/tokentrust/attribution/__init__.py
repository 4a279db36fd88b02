"""Attribution: which parts of the prompt made the model say this (``tt.explain``).

:func:`explain` returns an :class:`Attribution` (targets × sources scores, saved as JSON); methods are
registered in :data:`tokentrust.registry.attributors` (occlusion in :mod:`.methods`, gradient × input and
integrated gradients in :mod:`.gradients`, attention in :mod:`.attention`, ReAGent in :mod:`.reagent`,
Shapley values in :mod:`.shapley`), their maths in :mod:`._ops` (tensors only).
"""

from . import attention, gradients, reagent, shapley  # noqa: F401  (register the methods)
from .explain import DEFAULT_METHOD, explain
from .methods import Attributor, make_attributor
from .record import Attribution, Span

__all__ = ["DEFAULT_METHOD", "Attribution", "Attributor", "Span", "explain", "make_attributor"]
