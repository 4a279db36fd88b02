"""OPERA's column score, retrospection rule and decoder, and the overtrust diagnostic on the default model."""

from __future__ import annotations

import math

import numpy as np
import pytest

from _cli import run_cli
from tokentrust import errors as tt_errors
from tokentrust.decoding.opera import OperaConfig, opera_generate, rollback_position
from tokentrust.decoding.overtrust import column_log_scores, normalised_rows, pattern, running_patterns


def _aggregating_map(n: int = 40, column: int = 12, weight: float = 0.6) -> np.ndarray:
    """A causal window (rows are slices of full rows, most mass on the prompt): 0.01 on each earlier response
    token, ``weight`` on ``column`` from that row on."""
    rows = np.tril(np.full((n, n), 0.01))
    rows[column:, column] = weight
    return rows


def test_column_score_is_the_product_down_each_column():
    rng = np.random.default_rng(0)
    heads = np.tril(rng.random((3, 6, 6)))
    window = normalised_rows(heads)
    expected = heads.max(axis=0)
    expected = expected / expected.sum(axis=1, keepdims=True)
    assert np.allclose(window, expected)
    sigma = 50.0
    brute = [1e-7 * math.prod(sigma * window[i, c] for i in range(c, 6)) for c in range(6)]
    assert np.allclose(np.exp(column_log_scores(window, sigma)), brute, rtol=1e-9)
    log_phi, c = pattern(window, sigma)
    assert c == int(np.argmax(brute)) and math.isclose(math.exp(log_phi), max(brute), rel_tol=1e-9)
    running, where = running_patterns(window, sigma)
    for t in range(6):
        assert (running[t], where[t]) == pytest.approx(pattern(window[: t + 1, : t + 1], sigma))


def test_log_space_survives_long_columns():
    window = _aggregating_map(400, column=12, weight=0.9)
    log_phi, c = pattern(window)
    assert c == 12 and math.isfinite(log_phi) and log_phi > 700  # e^700 overflows a float product


def test_rollback_fires_on_a_persistent_column():
    window = _aggregating_map(40, column=12)
    _, where = running_patterns(window)
    assert list(where[12:]) == [12] * 28
    history = list(where)
    first = next(t for t in range(40) if rollback_position(
        [history[: t + 1]], int(where[t]), {}, threshold=15, min_location=10, max_per_position=5,
        length=t + 1, window_size=512) is not None)
    assert first == 12 + 15  # c* = 12 from step 12 on; its 16th step exceeds r = 15
    kwargs = {"threshold": 15, "min_location": 10, "max_per_position": 5, "length": 30, "window_size": 512}
    assert rollback_position([history[:30]] * 2, 12, {}, **kwargs) == 13
    assert rollback_position([history[:30], history[:20]], 12, {}, **kwargs) is None  # every beam must agree
    assert rollback_position([history[:30]], 12, {13: 5}, **kwargs) == 12  # position used up: try c*
    assert rollback_position([history[:30]], 12, {13: 5, 12: 5}, **kwargs) is None
    assert rollback_position([history[:30]], 12, {}, **{**kwargs, "min_location": 13}) is None
    assert rollback_position([history[:30]], 12, {}, **{**kwargs, "window_size": 8}) == 22  # clipped


def test_overtrust_estimator_matches_an_independent_attention_pass(backend, capital_trace):
    import torch

    import tokentrust as tt

    scores = tt.annotate(capital_trace, ["overtrust"], backend=backend)["overtrust"]
    prompt = backend.render(capital_trace.prompt).token_ids
    ids = torch.tensor([prompt + capital_trace.token_ids])
    model = backend.model
    before = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            att = model(input_ids=ids, output_attentions=True).attentions[-1][0].double().max(dim=0).values
    finally:
        model.set_attn_implementation(before)
    assert model.config._attn_implementation == before
    att = att / att.sum(-1, keepdim=True)
    n = len(prompt)
    for t in range(len(capital_trace)):
        w = att[n : n + t + 1, n : n + t + 1]
        cols = [1e-7 * float(torch.prod(50 * w[c:, c])) for c in range(t + 1)]
        assert scores.raw[t] == pytest.approx(math.log(max(cols)), abs=1e-3)
        assert scores.extras["location"][t] == int(np.argmax(cols))
        assert scores.values[t] == pytest.approx(-scores.raw[t])


def test_opera_greedy_without_penalty_is_greedy_and_tracks_the_pattern(backend, capital_trace):
    import tokentrust as tt

    result = opera_generate(backend, capital_trace.prompt, capital_trace.config,
                            OperaConfig(num_beams=1, penalty_weights=0.0))
    assert result.trace.token_ids == capital_trace.token_ids
    assert result.forwards == len(capital_trace) + 1  # the prompt, then one look-ahead pass per token
    diag = tt.annotate(result.trace, ["overtrust"], backend=backend)["overtrust"]
    assert result.log_phi == pytest.approx(diag.raw, abs=1e-3)  # incremental rows = one full pass
    assert result.location == diag.extras["location"]


def test_ask_with_opera_beams_and_bad_beam_count(capsys):
    code, out, err = run_cli(capsys, "ask", "What is 2 + 2?", "--decoding", "opera", "--beams", "2", "-n", "6",
                             "--json", "-e", "msp")
    assert code == 0, err
    assert '"overtrust"' in out and '"maximum_sequence_probability"' in out
    code, out, err = run_cli(capsys, "ask", "What is 2 + 2?", "--decoding", "opera", "--beams", "0")
    assert code == 2 and "--beams" in err and "got 0" in err and len(err.strip().splitlines()) == 1
    code, out, err = run_cli(capsys, "ask", "What is 2 + 2?", "--beams", "3")
    assert code == 2 and "--decoding opera" in err


def test_opera_rolls_back_and_forbids_the_earlier_choice(backend, capital_trace):
    settings = OperaConfig(num_beams=1, threshold=0, bonus_tokens=2, num_attn_candidates=2)
    result = opera_generate(backend, capital_trace.prompt, capital_trace.config.model_copy(
        update={"max_new_tokens": 12}), settings)
    assert result.rollbacks >= 1
    assert result.forwards > len(result.trace) + 1  # re-decoding after each rollback
    first_change = next(i for i, (a, b) in enumerate(zip(result.trace.token_ids, capital_trace.token_ids,
                                                         strict=False)) if a != b)
    assert first_change >= settings.bonus_tokens + 1  # rollbacks land after c* ≥ bonus_tokens


def test_grounding_span_is_the_question_inside_the_chat_template(backend):
    from tokentrust.decoding.opera import grounding_span

    question = "What is the capital of Australia?"
    rendered = backend.render(question)
    span = grounding_span(backend, question, rendered.text, rendered.token_ids)
    assert span == list(range(span[0], span[-1] + 1)) and len(span) < len(rendered.token_ids)
    assert backend.tokenizer.decode([rendered.token_ids[i] for i in span]).strip() == question
    doc = grounding_span(backend, question, rendered.text, rendered.token_ids, document="Australia")
    assert backend.tokenizer.decode([rendered.token_ids[i] for i in doc]).strip() == "Australia"
    with pytest.raises(tt_errors.UserInputError, match="does not occur"):
        grounding_span(backend, question, rendered.text, rendered.token_ids, document="Tasmania")
