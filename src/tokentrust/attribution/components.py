"""Prompt components: the named parts of the rendered prompt, the players of Shapley values (METHODS §5.2).

Every prompt token belongs to exactly one component:

* ``system``: the system prompt, the caller's or the *default* one a chat template inserts by itself
  (SmolLM2's, Qwen's …). It is found generically: the prompt is rendered again with an explicit system
  message holding a sentinel, and the text that the sentinel replaces is the default system prompt.
* ``user``: the user's text (later user messages ``user_2`` …; earlier answers ``assistant`` …), minus the
  template fields in it.
* one component per template field, named by the field (``fields={"item": "a bike", "city": "Paris"}``):
  every whole-word occurrence of the value in the user text (in any message when the user text has none).
* ``template``: chat-template formatting (role markers, ``<|im_start|>``, line breaks) and tokens the
  tokenizer adds with no characters (a BOS token). A raw (non-chat) prompt has ``user`` and fields only.

Characters are labelled on the rendered text and mapped to tokens with the fast tokenizer's offsets when
its ids equal the rendered ids, else by decoding prefixes; a token straddling two components goes to the
one holding most of its non-space characters (so ``" Paris"`` belongs to the field ``Paris``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from typing import Any

from ..errors import CapabilityError, UserInputError
from ..trace import Message, as_messages
from .forward import TargetScorer
from .record import Span

TEMPLATE, SYSTEM, USER = "template", "system", "user"
_SENTINEL = "⁂tokentrust·system⁂"


def component_sources(scorer: TargetScorer, tokens: Sequence[Span], fields: Mapping[str, str]) -> list[Span]:
    """The components of ``scorer``'s prompt (see the module docstring), ordered by their first token;
    ``tokens`` are the prompt's token sources (their texts make the components' texts)."""
    backend, trace = scorer.backend, scorer.trace
    text = backend.render(trace.prompt, chat=trace.config.chat).text
    labels = message_labels(backend, trace.prompt, text, chat=trace.config.chat)
    label_fields(labels, text, fields)
    with getattr(backend, "tokenizer_lock", nullcontext()):
        spans = token_char_spans(backend.tokenizer, text, scorer.prompt_ids)
    owner = [_majority(labels[s:e], text[s:e]) for s, e in spans]
    missing = [name for name in fields if name not in owner]
    if missing:
        raise UserInputError(f"field {missing[0]!r} ({fields[missing[0]]!r}) shares every token with the text "
                             "around it; give a value that covers whole tokens")
    return [Span(text=_text(tokens, idx), tokens=idx, name=name)
            for name in dict.fromkeys(owner)
            for idx in [[j for j, o in enumerate(owner) if o == name]]]


def message_labels(backend: Any, prompt: Any, text: str, *, chat: bool = True) -> list[str]:
    """One component name per character of the rendered ``text``: ``template`` unless it is message content
    (named by role) or the template's default system prompt."""
    messages = as_messages(prompt)
    if messages is None:
        if text == prompt:  # rendered raw: no template
            return [USER] * len(text)
        messages = [Message(role=USER, content=prompt)]
    labels = [TEMPLATE] * len(text)
    default = _default_system(backend, messages, text, chat)
    if default is not None:
        labels[default[0] : default[1]] = [SYSTEM] * (default[1] - default[0])
    seen: dict[str, int] = {}
    cursor = 0
    for message in messages:
        seen[message.role] = seen.get(message.role, 0) + 1
        name = message.role if seen[message.role] == 1 else f"{message.role}_{seen[message.role]}"
        for content in dict.fromkeys((message.content, message.content.strip())):
            found = _find_free(text, content, labels, cursor)
            if found is not None:
                labels[found : found + len(content)] = [name] * len(content)
                cursor = found + len(content)
                break
    return labels


def label_fields(labels: list[str], text: str, fields: Mapping[str, str]) -> None:
    """Relabel each field value's occurrences (whole words first) inside the user's text, else inside any
    message; raises :class:`UserInputError` naming a field whose value is empty or absent."""
    roles = {lab for lab in labels if lab != TEMPLATE}  # message contents and the default system prompt
    user = {lab for lab in roles if lab == USER or lab.startswith(f"{USER}_")}
    reserved = roles | {SYSTEM, USER, TEMPLATE}
    for name, value in fields.items():
        if not isinstance(name, str) or not name.strip() or name in reserved:
            raise UserInputError(f"field name {name!r} is empty or clashes with a component name "
                                 f"({', '.join(sorted(reserved))})")
        value = str(value)
        if not value.strip():
            raise UserInputError(f"field {name!r} has an empty value; give the text it filled into the prompt")
        hits = _occurrences(text, value, labels, user) or _occurrences(text, value, labels, roles)
        if not hits:
            raise UserInputError(f"field {name!r}: its value {value!r} is not in the prompt")
        for start in hits:
            labels[start : start + len(value)] = [name] * len(value)


def token_char_spans(tokenizer: Any, text: str, ids: Sequence[int]) -> list[tuple[int, int]]:
    """``(start, end)`` characters of ``text`` covered by each of ``ids`` (its tokenization): the fast
    tokenizer's offsets when it reproduces ``ids``, else the lengths of decoded prefixes."""
    for add_special in (False, True):
        try:
            enc = tokenizer(text, add_special_tokens=add_special, return_offsets_mapping=True)
        except (NotImplementedError, TypeError, ValueError):
            break  # a slow tokenizer has no offsets
        if list(enc["input_ids"]) == list(ids):
            return [(int(s), int(e)) for s, e in enc["offset_mapping"]]

    def decode(part: Sequence[int]) -> str:
        return str(tokenizer.decode(list(part), skip_special_tokens=False, clean_up_tokenization_spaces=False))

    full = decode(ids)
    if not full.endswith(text):
        raise CapabilityError("cannot map the prompt's tokens to its characters: decoding them does not give "
                              "the rendered prompt")
    shift, ends, last = len(full) - len(text), [], 0
    for k in range(1, len(ids) + 1):
        last = max(last, min(len(text), max(0, len(decode(ids[:k])) - shift)))
        ends.append(last)
    return list(zip([0, *ends[:-1]], ends, strict=True))


# ---- helpers ---------------------------------------------------------------------------------------------
def _default_system(backend: Any, messages: list[Message], text: str, chat: bool) -> tuple[int, int] | None:
    """Characters of the system prompt the template inserts by itself: the text an explicit system message
    (a sentinel) replaces. ``None`` when a system message is given or the template inserts none."""
    if any(m.role == SYSTEM for m in messages):
        return None
    try:
        probe = backend.render([Message(role=SYSTEM, content=_SENTINEL), *messages], chat=chat).text
    except Exception:  # noqa: BLE001  (a template without a system role raises its own errors)
        return None
    p = 0
    while p < min(len(text), len(probe)) and text[p] == probe[p]:
        p += 1
    s = 0
    while s < min(len(text), len(probe)) - p and text[-1 - s] == probe[-1 - s]:
        s += 1
    if probe[p : len(probe) - s] != _SENTINEL or not text[p : len(text) - s].strip():
        return None
    return p, len(text) - s


def _find_free(text: str, content: str, labels: list[str], start: int) -> int | None:
    """First occurrence of ``content`` at or after ``start`` lying on template characters only."""
    if not content:
        return None
    at = text.find(content, start)
    while at >= 0 and any(lab != TEMPLATE for lab in labels[at : at + len(content)]):
        at = text.find(content, at + 1)
    return None if at < 0 else at


def _occurrences(text: str, value: str, labels: list[str], allowed: set[str]) -> list[int]:
    """Non-overlapping starts of ``value`` on ``allowed`` characters: whole-word matches, else any."""
    plain = re.escape(value)
    bounded = ("(?<!\\w)" if re.match(r"\w", value) else "") + plain + ("(?!\\w)" if re.search(r"\w$", value) else "")
    for pattern in (bounded, plain):
        hits = [m.start() for m in re.finditer(pattern, text)
                if all(lab in allowed for lab in labels[m.start() : m.end()])]
        if hits:
            return hits
    return []


def _majority(labels: Sequence[str], chars: str) -> str:
    """The label holding most non-space characters (space counts only to break ties); ``template`` for a
    token with no characters (added by the tokenizer)."""
    weight: dict[str, float] = {}
    for lab, ch in zip(labels, chars, strict=True):
        weight[lab] = weight.get(lab, 0.0) + (1e-3 if ch.isspace() else 1.0)
    return max(weight, key=lambda k: weight[k]) if weight else TEMPLATE


def _text(tokens: Sequence[Span], idx: list[int]) -> str:
    """The component's text: its tokens' texts, ``…`` between runs that are not contiguous."""
    runs: list[str] = []
    for k, j in enumerate(idx):
        piece = tokens[j].text
        if k and j == idx[k - 1] + 1:
            runs[-1] += piece
        else:
            runs.append(piece)
    return "…".join(runs)
