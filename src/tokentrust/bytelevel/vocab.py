"""What each token of a vocabulary spells, as bytes, and whether a model's bytes line up with text.

Two families are understood, read from the tokenizer's decoder: byte-level BPE (GPT-2, SmolLM, Llama 3:
each piece is bytes mapped to printable characters) and SentencePiece-style pieces (``▁`` for a space,
``<0xNN>`` byte-fallback pieces, a dummy leading space the decoder strips). Special tokens spell nothing.
A probe round trip checks the result, so a tokenizer that normalises text (lowercasing, NFKC) or cannot
spell some bytes is refused with one line instead of giving wrong probabilities.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from ..errors import UserInputError
from .trie import ByteTrie

_BYTE_PIECE = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")
#: Texts whose encoding must spell them back byte for byte (spaces, newlines, accents, CJK, an emoji).
_PROBES = ("Hello world", "def f(x):\n\treturn  x", "café 中文 😀")
#: Bytes every aligned model must spell: printable ASCII, tab, newline, carriage return and the bytes of
#: every character up to the emoji plane (continuation bytes, lead bytes 0xc2–0xf0). Other control bytes
#: and rare lead bytes may be missing (byte-level BPE vocabularies drop some); they then get probability 0.
TEXT_BYTES = (9, 10, 13, *range(0x20, 0x7F), *range(0x80, 0xC0), *range(0xC2, 0xF1))


class AlignmentError(UserInputError):
    """A model's tokens cannot be lined up with bytes (so its byte-level probabilities are undefined)."""


@cache
def _unicode_to_byte() -> dict[str, int]:
    """The inverse of GPT-2's printable mapping of the 256 bytes (the ``ByteLevel`` pre-tokenizer's)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


def _decoder_kinds(tokenizer: Any) -> set[str]:
    """The types of the fast tokenizer's decoder(s): ``ByteLevel``, ``ByteFallback``, ``Metaspace`` …"""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return set()
    decoder = json.loads(backend.to_str()).get("decoder") or {}
    found: set[str] = set()
    stack = [decoder]
    while stack:
        d = stack.pop()
        found.add(str(d.get("type")))
        stack.extend(d.get("decoders") or [])
        if d.get("type") == "Replace" and (d.get("pattern") or {}).get("String") == "▁":
            found.add("Metaspace")
    return found


@dataclass(frozen=True, eq=False)
class ByteVocab:
    """Token spellings of one tokenizer (``None`` for tokens that spell no text) and their trie.

    ``prefix_space``: the tokenizer spells a text with one extra leading space (SentencePiece's dummy
    prefix); byte strings given by the caller are then matched against ``b" " + text``.
    """

    spellings: tuple[bytes | None, ...]
    prefix_space: bool
    trie: ByteTrie
    name: str

    @classmethod
    def from_tokenizer(cls, tokenizer: Any, *, special_ids: frozenset[int] = frozenset(), size: int | None = None,
                       name: str = "model") -> ByteVocab:
        """Spellings of every id below ``size`` (default: the tokenizer's length); checked on probe texts."""
        kinds = _decoder_kinds(tokenizer)
        n = max(size or 0, len(tokenizer))
        pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        added = {int(i): bool(getattr(t, "special", True))
                 for i, t in (getattr(tokenizer, "added_tokens_decoder", None) or {}).items()}
        table = _unicode_to_byte()
        spellings: list[bytes | None] = [None] * n
        for tid, piece in enumerate(pieces):
            fallback = _BYTE_PIECE.match(piece or "") if "ByteFallback" in kinds else None
            if fallback:  # byte-fallback pieces spell their byte, even when registered as added tokens
                spellings[tid] = bytes([int(fallback.group(1), 16)])
            elif piece is None or tid in special_ids:
                continue
            elif tid in added:
                spellings[tid] = None if added[tid] else piece.encode("utf-8")
            elif "ByteLevel" in kinds:
                try:
                    spellings[tid] = bytes(table[c] for c in piece)
                except KeyError:
                    spellings[tid] = None
            elif "Metaspace" in kinds or "ByteFallback" in kinds:
                spellings[tid] = piece.replace("▁", " ").encode("utf-8")
            else:
                raise AlignmentError(
                    f"{name}: its tokenizer's decoder ({', '.join(sorted(kinds)) or 'none'}) is not byte-level BPE "
                    "or SentencePiece, so its tokens cannot be lined up with bytes; byte-level probabilities need "
                    "a byte-level BPE or SentencePiece tokenizer")
        vocab = cls(tuple(spellings), False, ByteTrie(spellings), name)
        return vocab._checked(tokenizer)

    def _checked(self, tokenizer: Any) -> ByteVocab:
        prefix_space: bool | None = None
        for probe in _PROBES:
            ids = tokenizer(probe, add_special_tokens=False)["input_ids"]
            pieces = [self.spellings[i] if i < len(self.spellings) else None for i in ids]
            spelled = b"".join(p for p in pieces if p is not None)
            text = probe.encode("utf-8")
            if None not in pieces and spelled == text and prefix_space is not True:
                prefix_space = False
            elif None not in pieces and spelled == b" " + text and prefix_space is not False:
                prefix_space = True
            else:
                raise AlignmentError(
                    f"{self.name}: its tokens do not spell the text they encode ({probe!r} came back as "
                    f"{spelled!r}); byte-level probabilities need a tokenizer that keeps every byte "
                    "(byte-level BPE, or SentencePiece with byte fallback) and does not normalise text")
        missing = [b for b in TEXT_BYTES if not self.trie.exact(bytes([b]))]
        if missing:
            shown = ", ".join(f"0x{b:02x}" for b in missing[:6]) + (" …" if len(missing) > 6 else "")
            raise AlignmentError(
                f"{self.name}: no token spells the single byte(s) {shown} ({len(missing)} of the bytes of "
                "printable text), so some texts have no encoding; byte-level probabilities need byte-level BPE or "
                "byte fallback")
        return ByteVocab(self.spellings, bool(prefix_space), self.trie, self.name)

    def spell(self, ids: Any) -> bytes:
        """The bytes a token sequence spells (special tokens spell nothing)."""
        return b"".join(self.spellings[i] or b"" for i in ids)

    @property
    def max_len(self) -> int:
        return self.trie.max_len
