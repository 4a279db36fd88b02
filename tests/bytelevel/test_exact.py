"""The byte-level model against brute-force enumeration of every token sequence on a toy model."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _brute import BruteForce

from tokentrust.bytelevel import ByteLM, ByteVocab

TEXTS = [b"the wor", b"fib(n - ", b"hello "]


@pytest.mark.parametrize("validity", ["canonical", "all"])
@pytest.mark.parametrize("x", TEXTS)
def test_prefix_probability_equals_brute_force(toy, x, validity):
    lm = ByteLM(toy, validity=validity, tail=0.0)
    brute = BruteForce(toy, lm.context, canonical=validity == "canonical")
    assert lm.prefix_logprob(x) == pytest.approx(math.log(brute.prefix_prob(x)), abs=1e-4)
    assert lm.end_logprob(x) == pytest.approx(math.log(brute.end_prob(x, lm.end_ids)), abs=1e-4)


def test_long_text_search_from_an_anchor_equals_brute_force(toy):
    """A long prefix is searched only from its anchor (the canonical tokens well before its end)."""
    x = b"def fib(n):\n    return n if n < 2 else fib(n - 1) + fi"
    lm = ByteLM(toy, tail=0.0)
    anchor, start, _ = lm._anchor(lm.target(x))
    assert start > 16 and anchor
    brute = BruteForce(toy, lm.context, canonical=True)
    assert lm.prefix_logprob(x) == pytest.approx(math.log(brute.prefix_prob(x)), abs=1e-4)


@pytest.mark.parametrize("validity", ["canonical", "all"])
def test_next_byte_equals_brute_force_ratio(toy, validity):
    x = b"the wor"
    lm = ByteLM(toy, validity=validity, tail=0.0)
    brute = BruteForce(toy, lm.context, canonical=validity == "canonical")
    nb = lm.next_byte(x)
    assert nb.probs.sum() == pytest.approx(1.0, abs=1e-9)
    bytes_ = [b for b, _ in nb.top(3)] + [ord("z"), ord("\n")]
    masses = {b: brute.prefix_prob(x + bytes([b])) for b in bytes_}
    px, pend = brute.prefix_prob(x), brute.end_prob(x, lm.end_ids)
    scale = nb.coverage * math.exp(nb.prefix_logprob) * (1 - nb.end_prob)
    for b, mass in masses.items():
        assert nb.probs[b] * scale == pytest.approx(mass, rel=1e-4, abs=1e-12)
    assert nb.prefix_logprob == pytest.approx(math.log(px), abs=1e-4)
    if validity == "all":  # every encoding counted: nothing is lost, continuing + ending = the prefix
        assert nb.coverage == pytest.approx(1.0, abs=1e-6)
        assert nb.end_prob * px == pytest.approx(pend, rel=1e-4)


def test_prompt_boundary_matches_untruncated(toy):
    """Stopping mid-token or after a space gives the byte-level conditional of the full text."""
    full = b"hello world"
    lm = ByteLM(toy, tail=0.0)
    brute = BruteForce(toy, lm.context, canonical=True)
    for cut in (b"hello ", b"hello wo"):  # trailing space, mid-token
        nb = ByteLM(toy, tail=0.0).next_byte(cut)
        nxt = full[len(cut)]
        expected = brute.prefix_prob(cut + bytes([nxt]))
        ascii_ = [b for b in range(128) if nb.probs[b] > 0]  # brute force decodes text: whole characters only
        total = sum(brute.prefix_prob(cut + bytes([b])) for b in ascii_)
        assert nb.probs[nxt] / nb.probs[ascii_].sum() == pytest.approx(expected / total, rel=1e-4)
    # chaining P(x b) / P(x) from cut prompts (fresh caches) gives the untruncated string's probability; the
    # normalised probabilities differ from the ratio by the coverage (mass of invalid continuations dropped)
    chained = lm.prefix_logprob(b"hello ")
    for i in range(len(b"hello "), len(full)):
        nb = ByteLM(toy, tail=0.0).next_byte(full[:i])
        chained += math.log(nb.probs[full[i]] * (1 - nb.end_prob) * nb.coverage)
        assert 0 < nb.coverage <= 1 + 1e-6
    assert np.isfinite(chained)
    assert chained == pytest.approx(lm.prefix_logprob(full), abs=1e-4)


def test_sentencepiece_spellings_and_prefix_probability(toy_sp):
    """SentencePiece pieces: "▁" spells a space, "<0xNN>" one byte, the dummy leading space is matched."""
    lm = ByteLM(toy_sp, tail=0.0)
    vocab: ByteVocab = lm.vocab
    tok = toy_sp.tokenizer
    assert vocab.prefix_space
    assert vocab.spellings[tok.convert_tokens_to_ids("<0xC3>")] == b"\xc3"
    assert vocab.spell(tok("hello wörld", add_special_tokens=False)["input_ids"]) == " hello wörld".encode()
    brute = BruteForce(toy_sp, lm.context, canonical=True, sentencepiece=True)
    for x in ("the wor", "hello "):
        expected = brute.prefix_prob(b" " + x.encode())
        assert lm.prefix_logprob(x) == pytest.approx(math.log(expected), abs=1e-4)
    assert lm.next_byte("the wor").probs.sum() == pytest.approx(1.0)


def test_raw_prompt_is_one_byte_string_with_the_text(toy):
    """Without a chat template the prompt and the text are one byte string: no token boundary between them."""
    lead, plain = ByteLM(toy, "the ", tail=0.0), ByteLM(toy, tail=0.0)
    assert lead.prefix_logprob("wor") == pytest.approx(plain.prefix_logprob("the wor") - plain.prefix_logprob("the "),
                                                       abs=1e-9)
    np.testing.assert_allclose(lead.next_byte("wo").probs, plain.next_byte("the wo").probs, atol=1e-12)
