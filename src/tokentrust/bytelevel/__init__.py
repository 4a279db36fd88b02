"""Exact byte-level probabilities from tokenized language models (METHODS §6).

* :class:`ByteLM` — a transformers backend as a model over bytes: ``next_byte``, ``prefix_logprob``,
  ``string_logprob`` (cover encodings, canonical validity, key/value cache reuse; :mod:`.lm`).
* :func:`healed_next_byte` — token healing, the cheap approximation (:mod:`.healing`).
* :func:`score_text`, :func:`char_logprobs` — per-character / per-word log-probabilities as a trace (:mod:`.scoring`).
* :class:`ByteEnsemble`, :func:`sample_bytes` — models with different tokenizers averaged on bytes, and a
  byte-level sampler (:mod:`.ensemble`).
* :class:`ByteVocab`, :class:`ByteTrie`, :class:`CanonicalRule` — token spellings, the vocabulary's byte
  trie, the validity rule.

Needs the whole next-token distribution, so only in-process transformers backends are accepted.
"""

from .canonical import CanonicalRule
from .ensemble import ByteEnsemble, ByteSample, ByteStep, sample_bytes
from .healing import healed_next_byte
from .lm import ByteLM, NextByte, byte_vocab, require_full_logits, require_in_process
from .scoring import char_logprobs, sample_trace, score_text
from .trie import ByteTrie
from .vocab import AlignmentError, ByteVocab

__all__ = [
    "AlignmentError", "ByteEnsemble", "ByteLM", "ByteSample", "ByteStep", "ByteTrie", "ByteVocab", "CanonicalRule",
    "NextByte", "byte_vocab", "char_logprobs", "healed_next_byte", "require_full_logits", "require_in_process",
    "sample_bytes",
    "sample_trace", "score_text",
]
