"""The attribution record, the shared forward function, sources and occlusion (known answers, default model)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import tokentrust as tt
from tokentrust.attribution import Attribution, Span, explain
from tokentrust.attribution._ops.occlusion import leave_one_out
from tokentrust.attribution.forward import TargetScorer
from tokentrust.attribution.sources import answer_targets, token_sources, word_sources


@pytest.fixture(scope="module")
def capital(backend):
    return backend.generate("What is the capital of Australia?", max_new_tokens=10)


def test_occlusion_on_a_function_of_one_input_only() -> None:
    # the "model": target log-prob -0.2 when input 2 is kept, -3.0 when it is removed; the others do not matter
    def score(keep: torch.Tensor) -> torch.Tensor:
        return torch.where(keep[:, 2], -0.2, -3.0)[:, None].repeat(1, 2)

    full, drops = leave_one_out(score, [[0], [1], [2], [3]], 4)
    assert full.tolist() == pytest.approx([-0.2, -0.2])
    np.testing.assert_allclose(drops.numpy(), [[0.0, 0.0, 2.8, 0.0]] * 2, atol=1e-6)
    _, grouped = leave_one_out(score, [[0, 1], [2, 3]], 4)
    np.testing.assert_allclose(grouped.numpy(), [[0.0, 2.8]] * 2, atol=1e-6)


def test_scorer_reproduces_the_trace_and_batches(backend, capital) -> None:
    scorer = TargetScorer(backend, capital, batch_size=3)
    assert scorer.check() < 1e-4
    keep = torch.ones(7, scorer.n_prompt, dtype=torch.bool)
    keep[1:, 5] = False
    batched = scorer.logprobs(scorer.masked(keep))
    single = torch.cat([scorer.logprobs(scorer.masked(keep[i : i + 1])) for i in range(7)])
    assert torch.allclose(batched, single, atol=1e-5)
    assert np.allclose(batched[0].numpy(), capital.logprobs, atol=1e-4)
    assert scorer.forwards == 1 + 7 + 7


def test_occlusion_explains_the_number_the_trace_recorded(backend, capital) -> None:
    a = explain(capital, "occlusion", backend=backend, granularity="token")
    visible = [i for i, s in enumerate(capital.special) if not s]
    assert [t.tokens for t in a.targets] == [[i] for i in visible]
    assert a.target_logprobs == pytest.approx([capital.logprobs[i] for i in visible])
    assert a.extras["perturbed_logprob_full"] == pytest.approx(a.target_logprobs, abs=1e-4)
    assert a.extras["forwards"] == 1 + len(a.sources)  # one batched pass: the prompt and each source removed
    assert len(a.sources) == capital.prompt_tokens
    assert any(s.special for s in a.sources)  # chat-template tokens are sources like any other
    assert all(math.isfinite(v) for row in a.scores for v in row)


def test_one_target_at_a_time_equals_all_targets_at_once(backend, capital) -> None:
    every = explain(capital, "occlusion", backend=backend, granularity="word")
    canberra = explain(capital, "occlusion", backend=backend, granularity="word", target="Canberra")
    (target,) = canberra.targets
    rows = [every.row(i) for i, t in enumerate(every.targets) if t.tokens[0] in target.tokens]
    if len(target.tokens) == 1:
        assert canberra.row(0) == pytest.approx(rows[0], abs=1e-5)
    assert canberra.target_logprobs == pytest.approx([sum(capital.logprobs[i] for i in target.tokens)])
    assert "Australia" in " ".join(s.text for s, _ in canberra.top_sources(0, k=3))


def test_words_merge_subword_pieces_and_word_scores_sum_tokens(backend, capital) -> None:
    scorer = TargetScorer(backend, capital)
    tokens = token_sources(scorer)
    words = word_sources(tokens)
    assert "".join(w.text for w in words) == "".join(t.text for t in tokens)
    assert sorted(i for w in words for i in w.tokens) == list(range(scorer.n_prompt))
    assert any(w.text.strip() == "Australia" for w in words)
    by_token = explain(capital, "occlusion", backend=backend, granularity="token")
    summed = by_token.aggregate(words, "word")
    assert summed.granularity == "word" and summed.extras["aggregated_from"] == "token"
    for j, w in enumerate(words):
        assert summed.scores[0][j] == pytest.approx(sum(by_token.scores[0][i] for i in w.tokens))


def test_record_round_trip_merge_and_errors(tmp_path) -> None:
    sources = [Span(text="a", tokens=[0]), Span(text="b", tokens=[1], special=True)]
    a = Attribution(method="occlusion", model_id="m", prompt="p", answer="xy", sources=sources,
                    targets=[Span(text="x", tokens=[0])], scores=[[0.5, -0.1]], target_logprobs=[-1.0])
    b = a.model_copy(update={"targets": [Span(text="y", tokens=[1])], "scores": [[0.2, 0.3]], "target_logprobs": [-2.0]})
    a.save(tmp_path / "a.json")
    assert Attribution.load(tmp_path / "a.json") == a
    both = a.merge(b)
    assert both.row("y") == [0.2, 0.3] and both.target_logprobs == [-1.0, -2.0]
    assert [s.text for s, _ in both.top_sources("x")] == ["a", "b"]
    with pytest.raises(tt.UserInputError, match="no target 'z'"):
        both.row("z")
    with pytest.raises(tt.UserInputError, match="exactly once"):
        a.aggregate([Span(text="a", tokens=[0])], "word")
    with pytest.raises(tt.UserInputError, match="need as many score rows"):
        Attribution(method="m", model_id="m", prompt="p", answer="x", sources=sources, targets=[], scores=[[1.0]],
                    target_logprobs=[])
    with pytest.raises(tt.UserInputError, match="different method"):
        a.merge(a.model_copy(update={"method": "shapley"}))


def test_bad_input_is_refused_clearly(backend, capital) -> None:
    with pytest.raises(tt.UserInputError, match="is not in the answer"):
        answer_targets(capital, "Sydney")
    with pytest.raises(tt.UnknownNameError, match="unknown attribution method"):
        explain(capital, "lime", backend=backend)
    with pytest.raises(tt.UserInputError, match="no parameter"):
        explain(capital, "occlusion:window=3", backend=backend)
    with pytest.raises(tt.UserInputError, match="granularity must be"):
        explain(capital, "occlusion", backend=backend, granularity="sentence")
    from tokentrust.backends.replay import ReplayBackend

    with pytest.raises(tt.CapabilityError):
        explain(capital, "occlusion", backend=ReplayBackend([capital]))
