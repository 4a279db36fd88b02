"""The white-box backend against independent forward passes of the same model."""

import math

import numpy as np
import pytest
import scipy.stats
import torch

from tokentrust import GenerationConfig

QUESTIONS = [
    "What is the capital of Australia?",
    "Name a primary colour.",
    "Who wrote Hamlet? Answer in one short sentence please, and mention the century.",
]


def forward_logprobs(backend, prompt_ids, answer_ids):
    """Independent reference: one plain forward pass, log_softmax of the logits."""
    ids = torch.tensor([prompt_ids + answer_ids])
    with torch.no_grad():
        logits = backend.model(input_ids=ids).logits[0].float()
    logp = torch.log_softmax(logits, -1)[len(prompt_ids) - 1 : -1]
    return logp


def test_trace_logprobs_match_independent_forward_pass(backend, capital_trace):
    prompt_ids = backend.render(capital_trace.prompt).token_ids
    logp = forward_logprobs(backend, prompt_ids, capital_trace.token_ids)
    chosen = logp.gather(-1, torch.tensor(capital_trace.token_ids)[:, None]).squeeze(-1).numpy()
    np.testing.assert_allclose(capital_trace.logprobs, chosen, atol=1e-4)
    # statistics of the full raw distribution, recomputed with numpy / scipy
    p = logp.exp().double().numpy()
    entropy = -(p * np.log(np.where(p > 0, p, 1))).sum(-1)
    np.testing.assert_allclose(capital_trace.entropy, entropy, atol=1e-4)
    srt = np.sort(p, -1)[:, ::-1]
    np.testing.assert_allclose(capital_trace.max_prob, srt[:, 0], atol=1e-5)
    np.testing.assert_allclose(capital_trace.margin, srt[:, 0] - srt[:, 1], atol=1e-5)
    np.testing.assert_allclose(capital_trace.kurtosis, scipy.stats.kurtosis(p, axis=-1), rtol=1e-3)
    ranks = [int((row > row[t]).sum()) + 1 for row, t in zip(p, capital_trace.token_ids)]
    assert capital_trace.rank == ranks
    # top-k alternatives: sorted, k of them, and equal to the forward pass's top-k
    top = torch.topk(logp, capital_trace.top_k, -1)
    assert capital_trace.top_ids == top.indices.tolist()
    np.testing.assert_allclose(capital_trace.top_logprobs, top.values.numpy(), atol=1e-4)


def test_answer_ends_with_end_of_turn_kept(backend, capital_trace):
    assert capital_trace.finish_reason == "stop"
    assert capital_trace.special[-1] and capital_trace.token_ids[-1] in backend.eos_ids
    assert not any(capital_trace.special[:-1])


def test_generate_then_score_gives_the_same_numbers(backend, capital_trace):
    forced = backend.score(capital_trace.prompt, capital_trace.token_ids)
    assert forced.token_ids == capital_trace.token_ids
    assert forced.text == capital_trace.text
    np.testing.assert_allclose(forced.logprobs, capital_trace.logprobs, atol=1e-4)
    np.testing.assert_allclose(forced.entropy, capital_trace.entropy, atol=1e-4)
    assert forced.top_ids == capital_trace.top_ids
    # scoring the text (not ids) re-tokenises it and appends the end-of-turn token
    from_text = backend.score(capital_trace.prompt, capital_trace.text)
    assert from_text.token_ids == capital_trace.token_ids
    assert from_text.finish_reason == "forced"


def test_batched_left_padded_generation_equals_single(backend):
    cfg = GenerationConfig(max_new_tokens=16)
    # chat prompts contain <|im_end|>, which is also SmolLM2's pad token: padding must not touch them
    chat = [{"role": "user", "content": "Say yes."}, {"role": "assistant", "content": "Yes."},
            {"role": "user", "content": "Now say no."}]
    prompts = [*QUESTIONS, chat]
    batched = backend.generate_many(prompts, cfg)
    for prompt, got in zip(prompts, batched):
        single = backend.generate(prompt, cfg)
        assert got.token_ids == single.token_ids
        assert got.prompt_text == single.prompt_text
        np.testing.assert_allclose(got.logprobs, single.logprobs, atol=1e-4)
        np.testing.assert_allclose(got.entropy, single.entropy, atol=1e-4)
    lengths = {backend.render(p).n_tokens for p in prompts}
    assert len(lengths) == len(prompts)  # really different lengths, so padding happened
    assert batched[3].prompt_text.count("<|im_end|>") == 4


def test_raw_mode_skips_the_chat_template(backend):
    t = backend.generate("The capital of France is", max_new_tokens=4, chat=False)
    assert t.prompt_text == "The capital of France is"
    assert "<|im_start|>" not in t.prompt_text
    chat = backend.generate("The capital of France is", max_new_tokens=4)
    assert "<|im_start|>assistant" in chat.prompt_text
    assert "You are a helpful AI assistant named SmolLM" in chat.prompt_text  # default system prompt kept


def test_sampling_is_deterministic_per_seed_and_scores_raw_distribution(backend):
    a = backend.sample(QUESTIONS[1], n=4, temperature=1.5, seed=7, max_new_tokens=12)
    b = backend.sample(QUESTIONS[1], n=4, temperature=1.5, seed=7, max_new_tokens=12)
    assert [t.token_ids for t in a] == [t.token_ids for t in b]
    assert len({tuple(t.token_ids) for t in a}) > 1  # temperature 1.5 gives different answers
    # log-probs are of the raw (unwarped) distribution: they equal a plain forward pass
    t = a[0]
    prompt_ids = backend.render(t.prompt).token_ids
    logp = forward_logprobs(backend, prompt_ids, t.token_ids)
    chosen = logp.gather(-1, torch.tensor(t.token_ids)[:, None]).squeeze(-1).numpy()
    np.testing.assert_allclose(t.logprobs, chosen, atol=1e-4)
    assert t.config.temperature == 1.5 and t.config.seed == 7


def test_length_limit_sets_finish_reason(backend):
    t = backend.generate("Count from one to twenty in words.", max_new_tokens=3)
    assert len(t) == 3 and t.finish_reason == "length"


def test_token_logprobs_without_prompt(backend, capital_trace):
    ids = capital_trace.token_ids
    got = backend.token_logprobs(ids)
    with torch.no_grad():
        logits = backend.model(input_ids=torch.tensor([ids])).logits[0].float()
    want = [torch.log_softmax(logits[t - 1], -1)[ids[t]].item() for t in range(1, len(ids))]
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert all(math.isfinite(x) for x in got)


def test_multibyte_characters_keep_offsets_consistent(backend):
    t = backend.score("Say something in French.", "Très bien, café crème ☕ déjà vu.")
    assert t.text == "Très bien, café crème ☕ déjà vu."
    for tok, (start, end), special in zip(t.tokens, t.offsets, t.special):
        assert 0 <= start <= end <= len(t.text)
        if not special and start < end:
            assert t.text[start:end] == tok


@pytest.mark.parametrize("bad", ["", "   "])
def test_empty_prompt_rejected(backend, bad):
    from tokentrust import UserInputError

    with pytest.raises(UserInputError, match="prompt is empty"):
        backend.generate(bad)


def test_decoding_loop_equals_model_generate(backend):
    """tokentrust's own loop (finished rows leave the batch, a shared prompt beginning computed once,
    statistics reduced per step) against transformers' ``model.generate`` of each prompt alone: the same
    tokens and the same raw log-probs (float32 noise of a different batch aside)."""
    prompts = [*QUESTIONS, "Write one sentence about café crème ☕."]
    traces = backend.generate_many(prompts, max_new_tokens=16)
    for prompt, trace in zip(prompts, traces):
        ids = backend.render(prompt).token_ids
        with torch.no_grad():
            out = backend.model.generate(
                input_ids=torch.tensor([ids]), max_new_tokens=16, do_sample=False, output_logits=True,
                return_dict_in_generate=True, pad_token_id=backend.pad_id, eos_token_id=sorted(backend.eos_ids),
                top_k=None, temperature=None, top_p=None)
        n = len(trace)
        assert out.sequences[0, len(ids) : len(ids) + n].tolist() == trace.token_ids
        logp = torch.log_softmax(torch.stack(out.logits, dim=1)[0, :n].float(), -1)
        chosen = logp.gather(-1, torch.tensor(trace.token_ids)[:, None]).squeeze(-1).numpy()
        np.testing.assert_allclose(trace.logprobs, chosen, atol=1e-4)  # batched (shared prefix) vs alone


def test_a_shared_prompt_beginning_is_computed_once_and_changes_nothing(backend):
    from tokentrust.backends._engine import run_rows

    prompts = ["What is the capital of Peru?", "What is the capital of Chile?", "What is the capital of Mali?",
               "Name a colour."]
    cfg = GenerationConfig(max_new_tokens=12)
    batch = backend.engine()
    rows = [backend.row(p, cfg) for p in prompts]
    run_rows(batch, rows, max_batch=8)
    # the chat template's system prompt and headers: one cached beginning, common to every prompt
    (prefix,) = batch._prefixes
    rendered = [backend.render(p).token_ids for p in prompts]
    assert len(prefix) >= batch.MIN_PREFIX and all(ids[: len(prefix)] == list(prefix) for ids in rendered)
    for prompt, row in zip(prompts, rows):
        alone = backend.generate(prompt, cfg)
        shared = row.trace(backend.model_id)
        assert shared.token_ids == alone.token_ids and shared.text == alone.text
        np.testing.assert_allclose(shared.logprobs, alone.logprobs, atol=1e-4)
        np.testing.assert_allclose(shared.entropy, alone.entropy, atol=1e-4)


def test_sample_k_is_the_answer_drawn_with_seed_plus_k(backend):
    samples = backend.sample(QUESTIONS[1], n=3, temperature=1.2, seed=40, max_new_tokens=10)
    for k, sample in enumerate(samples):
        again = backend.generate(QUESTIONS[1], max_new_tokens=10, temperature=1.2, seed=40 + k)
        assert sample.token_ids == again.token_ids and sample.config.seed == 40 + k
