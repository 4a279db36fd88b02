"""The canonical-encoding validity rule: which token sequences the tokenizer could itself have produced.

A cover encoding counts only if it is *valid*: the tokenizer, given the text the sequence spells, would
encode it into exactly that sequence. Sequences the tokenizer never produces were never seen in training,
so a trained model gives them (near) zero probability; counting them would add noise, not signal.

For BPE the test is local: a sequence is canonical exactly when each short window of it is (Vieira et al.,
"Language Models over Canonical Byte-Pair Encodings", 2025, show adjacent pairs suffice for BPE). A new
token is therefore checked together with the two tokens before it, and the verdict is memoised on that
window. The tokenizer can only encode whole characters, so a window whose bytes end inside a UTF-8
character is accepted (such splits only occur inside one character and are few); a window that starts
inside a character is shortened from the left. With a dummy-prefix (SentencePiece) tokenizer a window
is widened to start at a word so the tokenizer's added space lines up.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from .vocab import ByteVocab

Validity = Literal["canonical", "all"]
_WINDOW = 2


def _decodes(data: bytes) -> str | None:
    """``data`` as text, or ``None`` when it is not whole UTF-8 characters."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _ends_inside_character(data: bytes) -> bool:
    """True when ``data`` is valid UTF-8 except for an unfinished last character."""
    try:
        codecs.getincrementaldecoder("utf-8")().decode(data, final=False)
    except UnicodeDecodeError:
        return False
    return True


class CanonicalRule:
    """``valid(prefix, token)``: may ``token`` follow the (already valid) ``prefix``? Memoised per window.

    ``validity="all"`` accepts every sequence: the byte-level model is then the exact marginal of the token
    model over *all* encodings (useful to check the algebra; exponential for long texts).
    """

    def __init__(self, tokenizer: Any, vocab: ByteVocab, validity: Validity = "canonical") -> None:
        if validity not in ("canonical", "all"):
            raise ValueError(f"validity must be 'canonical' or 'all', got {validity!r}")
        self.tokenizer, self.vocab, self.validity = tokenizer, vocab, validity
        self._memo: dict[tuple[int, ...], bool] = {}

    def _window(self, prefix: Sequence[int], tid: int) -> tuple[int, ...]:
        """The memo key: the last tokens of ``prefix`` (``-1`` first when they start the answer) and ``tid``."""
        return (*self._prefix_window(tuple(prefix[-8:]), len(prefix) <= 8), tid)

    def _prefix_window(self, tail: tuple[int, ...], reaches_start: bool) -> tuple[int, ...]:
        spell = self.vocab.spellings
        start = max(0, len(tail) - _WINDOW)
        if self.vocab.prefix_space:  # widen to a word start so the tokenizer's dummy space matches
            while start > 0 and not (spell[tail[start]] or b"").startswith(b" "):
                start -= 1
        window = tail[start:]
        at_start = reaches_start and start == 0
        while window and 0x80 <= (self.vocab.spell(window) or b"\0")[0] < 0xC0:
            window, at_start = window[1:], False  # starts inside a character: shorten from the left
        return (-1, *window) if at_start else window

    def _check(self, window: tuple[int, ...]) -> bool:
        ids = window[1:] if window[0] == -1 else window
        data = self.vocab.spell(ids)
        text = _decodes(data)
        if text is None:
            return _ends_inside_character(data)
        if self.vocab.prefix_space:
            if not text.startswith(" "):
                return False
            text = text[1:]
        encoded = self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []
        return list(encoded) == list(ids)

    def valid(self, prefix: Sequence[int], tid: int) -> bool:
        """May ``tid`` follow ``prefix`` (token ids after the fixed context)?"""
        if self.validity == "all":
            return True
        window = self._window(prefix, tid)
        verdict = self._memo.get(window)
        if verdict is None:
            verdict = self._memo[window] = self._check(window)
        return verdict

    def valid_many(self, prefix: Sequence[int], ids: np.ndarray) -> np.ndarray:
        """:meth:`valid` for many candidate next tokens at once (unseen windows encoded in one batch)."""
        if self.validity == "all" or len(ids) == 0:
            return np.ones(len(ids), dtype=bool)
        windows = [self._window(prefix, int(t)) for t in ids]
        todo = [w for w in dict.fromkeys(windows) if w not in self._memo]
        if todo:
            self._check_batch(todo)
        return np.fromiter((self._memo[w] for w in windows), dtype=bool, count=len(windows))

    def _check_batch(self, windows: list[tuple[int, ...]]) -> None:
        texts: list[str] = []
        pending: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
        for w in windows:
            ids = w[1:] if w[0] == -1 else w
            data = self.vocab.spell(ids)
            text = _decodes(data)
            if text is None:
                self._memo[w] = _ends_inside_character(data)
            elif self.vocab.prefix_space and not text.startswith(" "):
                self._memo[w] = False
            else:
                texts.append(text[1:] if self.vocab.prefix_space else text)
                pending.append((w, ids))
        if not texts:
            return
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is not None:
            encoded = [e.ids for e in backend.encode_batch(texts, add_special_tokens=False)]
        else:
            encoded = [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        for (w, ids), enc in zip(pending, encoded, strict=True):
            self._memo[w] = list(enc) == list(ids)
        if len(self._memo) > 2_000_000:
            self._memo.clear()
