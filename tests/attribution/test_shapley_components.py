"""Shapley values (exact, sampled, against Captum) and prompt components on the default model (METHODS §5.2)."""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import tokentrust as tt
from tokentrust.attribution._ops.shapley import shapley
from tokentrust.attribution.sources import sources_at
from tokentrust.config import GenerationConfig
from tokentrust.errors import UserInputError

TEMPLATE = "Would you buy {item} for {price} in {city}?"
FIELDS = {"item": "a bike", "price": "$20", "city": "Paris"}


def table_game(table: dict[frozenset[int], float]):
    """A game given by its characteristic function written out as a table, evaluated row by row."""

    def value(present: torch.Tensor) -> torch.Tensor:
        return torch.tensor([[table[frozenset(np.flatnonzero(row.numpy()).tolist())]] for row in present])

    return value


def interaction_game(present: torch.Tensor) -> torch.Tensor:
    """6 players: additive weights, a pairwise and a three-way interaction, player 5 a dummy; two targets."""
    p = present.double()
    first = p @ torch.tensor([1.0, 2.0, 3.0, 0.5, -1.0, 0.0], dtype=torch.double)
    first = first + 2 * p[:, 0] * p[:, 1] - 1.5 * p[:, 2] * p[:, 3] * p[:, 4] + 0.7 * p[:, 1] * p[:, 3]
    second = torch.tanh(p[:, :5].sum(1) - 2) + p[:, 0] * (1 - p[:, 2])
    return torch.stack([first, second], dim=1)


def by_permutations(value, n: int) -> np.ndarray:
    """Shapley values by the textbook definition: the mean marginal contribution over all n! orderings."""
    phi = np.zeros(n)
    orders = list(itertools.permutations(range(n)))
    for order in orders:
        present = torch.zeros(1, n, dtype=torch.bool)
        before = float(value(present)[0, 0])
        for player in order:
            present[0, player] = True
            after = float(value(present)[0, 0])
            phi[player] += after - before
            before = after
    return phi / len(orders)


# ---- the maths --------------------------------------------------------------------------------------------
def test_exact_three_player_game_known_values() -> None:
    # Players 0 and 1 are symmetric, player 2 is a dummy (adds nothing to any coalition); φ = (2, 2, 0).
    table = {frozenset(): 0.0, frozenset({0}): 1.0, frozenset({1}): 1.0, frozenset({2}): 0.0,
             frozenset({0, 1}): 4.0, frozenset({0, 2}): 1.0, frozenset({1, 2}): 1.0, frozenset({0, 1, 2}): 4.0}
    result = shapley(table_game(table), 3)
    assert result.exact and result.evaluations == 8 and result.permutations == 0
    np.testing.assert_allclose(result.values[0], [2.0, 2.0, 0.0], atol=1e-12)
    assert abs(result.values.sum() - (table[frozenset({0, 1, 2})] - table[frozenset()])) < 1e-9  # efficiency
    assert result.efficiency_gap < 1e-9
    assert result.values[0, 0] == pytest.approx(result.values[0, 1], abs=1e-12)  # symmetry
    assert result.values[0, 2] == pytest.approx(0.0, abs=1e-12)  # dummy

    # An asymmetric game: agrees with the mean over all orderings.
    rng = np.random.default_rng(3)
    table = {frozenset(s): float(rng.normal()) for k in range(4) for s in itertools.combinations(range(3), k)}
    result = shapley(table_game(table), 3)
    np.testing.assert_allclose(result.values[0], by_permutations(table_game(table), 3), atol=1e-12)
    assert result.efficiency_gap < 1e-9


def test_sampling_converges_to_exact_within_standard_error() -> None:
    exact = shapley(interaction_game, 6, exact=True)
    assert exact.evaluations == 64 and exact.efficiency_gap < 1e-9
    sampled = shapley(interaction_game, 6, exact=False, max_permutations=4000, tolerance=0.02, seed=1)
    assert not sampled.exact and sampled.permutations < 4000  # stopped by the standard-error rule
    assert sampled.permutations % 2 == 0 and sampled.standard_errors.max() <= 0.02
    assert sampled.evaluations <= 64  # coalitions are memoised: never more than 2^n forwards
    assert np.all(np.abs(sampled.values - exact.values) <= 4 * sampled.standard_errors + 1e-9)
    assert sampled.efficiency_gap < 1e-9  # each ordering's marginals telescope to v(N) − v(∅)
    np.testing.assert_allclose(sampled.values[:, 5], 0.0, atol=1e-12)  # the dummy gets exactly 0
    again = shapley(interaction_game, 6, exact=False, max_permutations=4000, tolerance=0.02, seed=1)
    np.testing.assert_array_equal(again.values, sampled.values)  # the seed fixes the orderings


def test_exact_agrees_with_captum_shapley_values() -> None:
    from captum.attr import ShapleyValues

    def forward(x: torch.Tensor) -> torch.Tensor:  # captum perturbs inputs from 1 (present) to 0 (baseline)
        return interaction_game(x > 0.5)[:, 0]

    inputs = torch.ones(1, 6, dtype=torch.double)
    theirs = ShapleyValues(forward).attribute(inputs, baselines=torch.zeros_like(inputs))
    ours = shapley(interaction_game, 6)
    np.testing.assert_allclose(ours.values[0], theirs[0].numpy(), atol=1e-4)  # captum sums in float32


def test_exact_is_limited_to_20_players() -> None:
    def never(present: torch.Tensor) -> torch.Tensor:
        raise AssertionError("no coalition may be evaluated")

    with pytest.raises(UserInputError, match="21 players; exact Shapley is limited to 20, use sampling"):
        shapley(never, 21, exact=True)


# ---- components of the default model's prompt ----------------------------------------------------------------
def components(backend, prompt, fields, *, chat: bool = True):
    """The components of ``prompt`` as the attribution would see them (no forward pass needed)."""
    rendered = backend.render(prompt, chat=chat)
    scorer = SimpleNamespace(backend=backend, prompt_ids=rendered.token_ids, n_prompt=len(rendered.token_ids),
                             trace=SimpleNamespace(prompt=prompt, config=GenerationConfig(chat=chat)))
    return sources_at("component", scorer, fields=fields), rendered.token_ids


def decoded(backend, ids, span) -> str:
    return backend.tokenizer.decode([ids[j] for j in span.tokens], clean_up_tokenization_spaces=False)


def test_chat_prompt_components(backend) -> None:
    spans, ids = components(backend, TEMPLATE.format(**FIELDS), FIELDS)
    named = {s.name: s for s in spans}
    assert set(named) == {"template", "system", "user", "item", "price", "city"}
    assert sorted(j for s in spans for j in s.tokens) == list(range(len(ids)))  # every token exactly once
    # SmolLM2's template inserts its own system prompt: detected as `system`, not as template formatting.
    system = decoded(backend, ids, named["system"])
    assert system == "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    assert system in backend.tokenizer.chat_template
    for name, value in FIELDS.items():  # each field covers exactly its characters (and the space before)
        assert decoded(backend, ids, named[name]).strip() == value
    assert decoded(backend, ids, named["user"]) == "Would you buy for in?"
    template = decoded(backend, ids, named["template"])
    assert template.count("<|im_start|>") == 3 and template.count("<|im_end|>") == 2
    assert "assistant" in template and "You are" not in template

    # An explicit system message is the system component; no default is looked for.
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Is Paris big?"}]
    spans, ids = components(backend, messages, {"city": "Paris"})
    named = {s.name: s for s in spans}
    assert set(named) == {"template", "system", "user", "city"}
    assert decoded(backend, ids, named["system"]) == "Be brief."
    assert sorted(j for s in spans for j in s.tokens) == list(range(len(ids)))


def test_raw_prompt_components(backend) -> None:
    spans, ids = components(backend, TEMPLATE.format(**FIELDS), FIELDS, chat=False)
    assert [s.name for s in spans] == ["user", "item", "price", "city"]
    assert sorted(j for s in spans for j in s.tokens) == list(range(len(ids)))


def test_bad_fields(backend) -> None:
    prompt = TEMPLATE.format(**FIELDS)
    with pytest.raises(UserInputError, match="'price'.*empty"):
        components(backend, prompt, {"item": "a bike", "price": " "})
    with pytest.raises(UserInputError, match="'city'.*'Rome' is not in the prompt"):
        components(backend, prompt, {"city": "Rome"})


# ---- tt.explain on the default model ---------------------------------------------------------------------------
def check_exact(attribution, trace) -> None:
    n = len(attribution.sources)
    extras = attribution.extras
    assert extras["exact"] and extras["forwards"] == 2**n and extras["permutations"] == 0
    assert extras["efficiency_gap"] < 1e-6
    for row, full, empty in zip(attribution.scores, extras["value_all"], extras["value_empty"], strict=True):
        assert abs(math.fsum(row) - (full - empty)) < 1e-6
    # v(all sources) is the log-prob the trace recorded: Shapley splits the number the user saw.
    np.testing.assert_allclose(extras["value_all"], attribution.target_logprobs, atol=1e-3)
    assert np.all(np.asarray(extras["standard_errors"]) == 0)


def test_explain_shapley_over_components_raw(backend) -> None:
    prompt = TEMPLATE.format(**FIELDS) + " Answer:"
    trace = backend.score(prompt, " Yes, I would", chat=False, end_of_turn=False)
    a = tt.explain(trace, "shapley", backend=backend, granularity="component", fields=FIELDS)
    assert [s.name for s in a.sources] == ["user", "item", "price", "city"]
    assert a.method == "shapley" and len(a.targets) == len(trace.token_ids)
    check_exact(a, trace)
    # Forced sampling on the same game: memoised (never more than 2^n forwards), within its standard errors.
    s = tt.explain(trace, "shapley:exact=false,max_permutations=200,tolerance=0", backend=backend,
                   granularity="component", fields=FIELDS)
    assert s.extras["permutations"] == 200 and s.extras["forwards"] <= 2 ** len(s.sources)
    assert s.extras["efficiency_gap"] < 1e-6
    gap = np.abs(np.asarray(s.scores) - np.asarray(a.scores))
    assert np.all(gap <= 4 * np.asarray(s.extras["standard_errors"]) + 1e-6)


def test_explain_shapley_over_chat_components(backend) -> None:
    fields = {"city": "Paris"}
    trace = backend.generate(TEMPLATE.format(**FIELDS), max_new_tokens=3)
    a = tt.explain(trace, "shapley", backend=backend, granularity="component", fields=fields)
    assert {s.name for s in a.sources} == {"template", "system", "user", "city"}
    check_exact(a, trace)  # 4 components → 16 forwards (Captum's sampling path needed 19 for 3)


def test_explain_exact_refuses_too_many_players(backend) -> None:
    trace = backend.score("one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
                          "fifteen sixteen seventeen eighteen nineteen twenty twenty-one", " twenty-two",
                          chat=False, end_of_turn=False)
    with pytest.raises(UserInputError, match=r"\d+ players; exact Shapley is limited to 20, use sampling"):
        tt.explain(trace, "shapley:exact=true", backend=backend, granularity="token")
