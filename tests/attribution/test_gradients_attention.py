"""Gradient × input, integrated gradients and attention attribution: closed forms on hand-built models,
Captum and the model's own attention weights on the default model, and the public ``explain`` API."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from tokentrust.attribution import explain
from tokentrust.attribution._ops.attention import head_mean, rollout, target_rows
from tokentrust.attribution._ops.gradients import gauss_legendre, gradient_x_input, integrated_gradients
from tokentrust.attribution.attention import Attention, eager_attention
from tokentrust.attribution.forward import TargetScorer
from tokentrust.attribution.gradients import GradientXInput, IntegratedGradients, target_function
from tokentrust.attribution.methods import make_attributor
from tokentrust.attribution.sources import answer_targets, groups_of, token_sources, word_sources
from tokentrust.errors import CapabilityError, UserInputError

METHODS = ["gradient_x_input", "integrated_gradients:steps=8", "attention", "attention:mode=rollout"]


# ---- hand-built models ------------------------------------------------------------------------------------
class LinearLM(torch.nn.Module):
    """A causal "language model" linear in its input embeddings: ``h_i = Σ_{j≤i} c_j e_j``, logits ``h_i Uᵀ + β``.
    So ``∂ logit[i, v] / ∂ e_j = c_j U[v]`` for ``j ≤ i`` (0 after ``i``)."""

    def __init__(self, vocab: int = 7, dim: int = 5, n: int = 6) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.embed = torch.nn.Embedding(vocab, dim)
        self.embed.weight.data = torch.randn(vocab, dim, generator=g)
        self.c = torch.randn(n, generator=g)
        self.U = torch.randn(vocab, dim, generator=g)
        self.beta = torch.randn(vocab, generator=g)

    def get_input_embeddings(self) -> torch.nn.Module:
        return self.embed

    def forward(self, inputs_embeds: torch.Tensor) -> Any:
        n = inputs_embeds.shape[1]
        h = torch.cumsum(self.c[:n, None] * inputs_embeds, dim=1)
        return type("Out", (), {"logits": h @ self.U.T + self.beta})()


@pytest.fixture
def linear():
    model = LinearLM()
    x = model.get_input_embeddings()(torch.tensor([3, 1, 4, 1, 5, 6])).detach()
    picks = [(2, 0), (5, 3), (4, 6)]  # (position, token): each target is one logit

    def f(e: torch.Tensor) -> torch.Tensor:
        logits = model(inputs_embeds=e).logits
        return torch.stack([logits[:, i, v] for i, v in picks], dim=-1)

    grad = torch.stack([model.c[:, None] * model.U[v] * (torch.arange(6) <= i)[:, None].float() for i, v in picks])
    return f, x, grad  # grad: (T, n, d), the closed-form gradient


def test_gradient_x_input_is_the_closed_form_on_a_linear_model(linear) -> None:
    f, x, grad = linear
    scores, values, backwards = gradient_x_input(f, x, 3, chunk=2)
    torch.testing.assert_close(scores, (grad * x).sum(-1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(values, f(x[None])[0])
    assert backwards == 2  # 3 target rows in chunks of 2
    assert scores[0, 3:].abs().max() == 0  # nothing after the predicting position


def test_integrated_gradients_of_a_linear_model_are_exact(linear) -> None:
    f, x, grad = linear
    baseline = torch.full((5,), 0.3)
    ig = integrated_gradients(f, x, baseline, 3, steps=4, chunk=5)
    torch.testing.assert_close(ig.attributions, (grad * (x - baseline)).sum(-1), atol=1e-5, rtol=1e-5)
    assert ig.gap.max() < 1e-4
    assert ig.backwards == 3  # 4 steps × 3 targets = 12 rows in chunks of 5
    torch.testing.assert_close(ig.f_input, f(x[None])[0])


def test_integrated_gradients_follow_the_path_on_polynomials() -> None:
    x = torch.tensor([[0.5, -1.0], [2.0, 0.25]])
    # f = Σ x²: IG from 0 is x² (completeness, with a linear integrand); gradient × input is 2x²
    square = lambda e: (e**2).sum((1, 2))[:, None]
    ig = integrated_gradients(square, x, torch.zeros(2), 1, steps=1)  # Gauss–Legendre, one node: exact
    torch.testing.assert_close(ig.attributions[0], (x**2).sum(-1))
    torch.testing.assert_close(gradient_x_input(square, x, 1)[0][0], (2 * x**2).sum(-1))
    # f = Σ x³: the integrand 3α²x³ is quadratic in α; two Gauss–Legendre nodes are exact, one (α = ½) is not
    cube = lambda e: (e**3).sum((1, 2))[:, None]
    exact = integrated_gradients(cube, x, torch.zeros(2), 1, steps=2)
    torch.testing.assert_close(exact.attributions[0], (x**3).sum(-1))
    assert float(exact.gap[0]) < 1e-5
    midpoint = integrated_gradients(cube, x, torch.zeros(2), 1, steps=1)  # 3 · (½)² = ¾ instead of 1
    torch.testing.assert_close(midpoint.attributions[0], 0.75 * (x**3).sum(-1))
    assert float(midpoint.gap[0]) == pytest.approx(0.25 * abs(float((x**3).sum())), rel=1e-5)


def test_gauss_legendre_nodes() -> None:
    alphas, weights = gauss_legendre(2)
    assert alphas == pytest.approx([0.5 - 3**-0.5 / 2, 0.5 + 3**-0.5 / 2]) and weights == pytest.approx([0.5, 0.5])
    alphas, weights = gauss_legendre(7)
    assert sum(weights) == pytest.approx(1) and all(0 < a < 1 for a in alphas)  # never an end of the path
    with pytest.raises(ValueError, match="steps >= 1"):
        gauss_legendre(0)


def test_rollout_of_a_hand_built_stack() -> None:
    # every head of every layer sends position 1 entirely to position 0: Â = [[1, 0], [½, ½]], Âᴺ[1] = [1 − 2⁻ᴺ, 2⁻ᴺ]
    to_first = torch.tensor([[1.0, 0.0], [1.0, 0.0]]).expand(3, 2, 2)
    for n in (1, 2, 5):
        torch.testing.assert_close(rollout([to_first] * n), torch.tensor([[1.0, 0.0], [1 - 2.0**-n, 2.0**-n]]))
    # two layers that do not commute: the product is Â₂ · Â₁ (top layer on the left)
    a1 = torch.tensor([[1.0, 0, 0], [1, 0, 0], [0, 1, 0]])  # position 2 reads 1, 1 reads 0
    a2 = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 1, 0]])  # position 2 reads 1
    h1, h2 = (a1 + torch.eye(3)) / 2, (a2 + torch.eye(3)) / 2
    h1, h2 = h1 / h1.sum(-1, keepdim=True), h2 / h2.sum(-1, keepdim=True)
    torch.testing.assert_close(rollout([a1[None], a2[None]]), h2 @ h1)
    assert rollout([a1[None], a2[None]])[2].tolist() == pytest.approx([0.25, 0.5, 0.25])
    # heads are averaged first; a span target takes the mean of its predicting rows
    heads = torch.stack([a1, a2])
    torch.testing.assert_close(head_mean(heads[None]), (a1 + a2) / 2)
    torch.testing.assert_close(target_rows(a1, [[1], [1, 2]], 2), torch.tensor([[1.0, 0.0], [0.5, 0.5]]))


# ---- the default model --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def short(backend):
    """A short plain-text prompt (5 tokens) and a 2-token answer: few rows through the model."""
    return backend.generate("The capital of France is", chat=False, max_new_tokens=2)


@pytest.fixture(scope="module")
def scorer(backend, short):
    s = TargetScorer(backend, short, batch_size=4)
    s.check()
    return s


@pytest.fixture(scope="module")
def every_token(backend, short):
    """Each method on every answer token, token granularity (batches of 2 rows: chunk boundaries inside)."""
    return {m: explain(short, m, backend=backend, granularity="token", batch_size=2) for m in METHODS}


def _captum_forward(scorer, target):
    return lambda e: scorer.target_logprob(scorer.logprobs(e, grad=True), [target.tokens])[:, 0]


def _relative(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    ours, theirs = torch.as_tensor(ours).detach(), torch.as_tensor(theirs).detach()
    return float((ours - theirs).abs().max() / theirs.abs().max())


# float32 matrix products round differently for different batch shapes, and 30 layers of backpropagation
# amplify it: the same gradient computed in a batch of 1 or of 2 rows differs by up to ~5e-4 of its largest
# entry on the default model (float64: 0). Comparisons across batch shapes allow 2e-3 of the row's maximum.
def assert_same_row(got, expected) -> None:
    assert _relative(got, expected) < 2e-3


def test_gradient_x_input_equals_captum(scorer, short) -> None:
    from captum.attr import InputXGradient

    targets = answer_targets(short)
    x = scorer.prompt_embeds
    f = target_function(scorer, targets)
    single, _, _ = gradient_x_input(f, x, len(targets), chunk=1)  # Captum's batch shape: one row per target
    batched, _, _ = gradient_x_input(f, x, len(targets), chunk=len(targets))
    for i, t in enumerate(targets):
        theirs = InputXGradient(_captum_forward(scorer, t)).attribute(x[None].clone().requires_grad_())[0].sum(-1)
        assert _relative(single[i], theirs) < 1e-4
        assert_same_row(batched[i], theirs)


def test_integrated_gradients_equal_captum(scorer, short) -> None:
    from captum.attr import IntegratedGradients as CaptumIG

    target = answer_targets(short)[0]
    x, steps = scorer.prompt_embeds, 8
    # all 8 path points in one chunk, as Captum batches them
    ig = integrated_gradients(target_function(scorer, [target]), x, scorer.baseline, 1, steps=steps, chunk=steps)
    theirs, delta = CaptumIG(_captum_forward(scorer, target)).attribute(
        x[None].clone(), baselines=torch.zeros_like(x[None]), n_steps=steps, method="gausslegendre",
        return_convergence_delta=True)
    assert _relative(ig.attributions[0], theirs[0].sum(-1)) < 1e-4
    assert float(ig.gap[0]) == pytest.approx(abs(float(delta[0])), rel=1e-3, abs=1e-4)


def test_attention_last_equals_the_models_own_weights(backend, scorer, short) -> None:
    targets = answer_targets(short)
    n = scorer.n_prompt
    scores, _ = Attention().attribute(scorer, targets, groups_of(token_sources(scorer)))
    ids = torch.tensor([scorer.prompt_ids + scorer.answer_ids])
    with eager_attention(backend.model), torch.no_grad():
        attentions = backend.model(input_ids=ids, output_attentions=True).attentions
    last = attentions[-1][0].mean(0)  # (L, L), heads averaged
    expected = torch.stack([last[n + t.tokens[0] - 1, :n] for t in targets])
    np.testing.assert_allclose(scores, expected.numpy(), atol=1e-6)
    rolled, _ = Attention(mode="rollout").attribute(scorer, targets, groups_of(token_sources(scorer)))
    expected = rollout([a[0] for a in attentions])[[n + t.tokens[0] - 1 for t in targets], :n]
    np.testing.assert_allclose(rolled, expected.numpy(), atol=1e-6)
    assert (scores >= 0).all() and (scores.sum(-1) <= 1 + 1e-6).all()


def test_attention_restores_the_attention_implementation(backend) -> None:
    model = backend.model
    before_impl = model.config._attn_implementation
    before = backend.generate("Name a colour.", chat=False, max_new_tokens=4)
    explain(before, "attention", backend=backend)
    assert model.config._attn_implementation == before_impl
    after = backend.generate("Name a colour.", chat=False, max_new_tokens=4)
    assert after.token_ids == before.token_ids and after.logprobs == before.logprobs
    with pytest.raises(RuntimeError, match="boom"), eager_attention(model):
        assert model.config._attn_implementation == "eager"
        raise RuntimeError("boom")
    assert model.config._attn_implementation == before_impl


@pytest.mark.parametrize("method", METHODS)
def test_records_explain_the_traces_logprobs_and_batching_changes_nothing(every_token, scorer, short, method) -> None:
    a = every_token[method]
    visible = [i for i, s in enumerate(short.special) if not s]
    assert a.target_logprobs == pytest.approx([short.logprobs[i] for i in visible])
    assert a.extras["logprob_input"] == pytest.approx(a.target_logprobs, abs=1e-3)  # the forward the method ran
    assert len(a.sources) == scorer.n_prompt and all(np.isfinite(a.scores).ravel())
    attributor, groups = make_attributor(method), groups_of(token_sources(scorer))
    for i, target in enumerate(a.targets):
        single, _ = attributor.attribute(scorer, [target], groups)
        assert_same_row(single[0], a.scores[i])


@pytest.mark.parametrize("method", METHODS)
def test_word_scores_sum_their_tokens(backend, every_token, short, method) -> None:
    words = explain(short, method, backend=backend, granularity="word", batch_size=2)
    tokens = every_token[method]
    assert [w.tokens for w in words.sources] == [w.tokens for w in word_sources(tokens.sources)]
    expected = [[sum(row[j] for j in w.tokens) for w in words.sources] for row in tokens.scores]
    np.testing.assert_allclose(words.scores, expected, rtol=1e-4, atol=1e-6)
    assert words.method == tokens.method == make_attributor(method).id


def test_a_span_target(backend, every_token, short) -> None:
    # gradients are linear in the target: a span's row is the sum of its tokens' rows; attention takes the mean
    a = explain(short, "gradient_x_input", backend=backend, target=short.text.strip(), granularity="token")
    (span,) = a.targets
    assert len(span.tokens) > 1 and a.target_logprobs[0] == pytest.approx(sum(short.logprobs[i] for i in span.tokens))
    row = {t.tokens[0]: r for r, t in enumerate(every_token["gradient_x_input"].targets)}
    rows = [row[i] for i in span.tokens]
    assert_same_row(a.scores[0], np.asarray(every_token["gradient_x_input"].scores)[rows].sum(0))
    att = explain(short, "attention", backend=backend, target=short.text.strip(), granularity="token")
    np.testing.assert_allclose(att.scores[0], np.asarray(every_token["attention"].scores)[rows].mean(0), atol=1e-6)


def test_integrated_gradients_report_counts_and_the_completeness_gap(every_token, short) -> None:
    a = every_token["integrated_gradients:steps=8"]
    t = len(a.targets)
    assert a.method == "integrated_gradients(steps=8)"
    assert len(a.extras["completeness_gap"]) == t and all(g >= 0 for g in a.extras["completeness_gap"])
    rows = 8 * t
    assert a.extras["backwards"] == -(-rows // 2)  # one backward per chunk of batch_size rows
    assert a.extras["forwards"] == rows + 2  # the path and both ends (explain does not count its check)
    gx = every_token["gradient_x_input"]
    assert gx.extras["forwards"] == t and gx.extras["backwards"] == -(-t // 2)
    assert every_token["attention"].extras["forwards"] == 1 and every_token["attention"].extras["backwards"] == 0


# ---- bad input ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec, match", [
    ("integrated_gradients:steps=0", "steps must be an integer >= 1"),
    ("integrated_gradients:steps=2.5", "parameter steps must be an integer, got 2.5"),
    ("integrated_gradients:method=riemann", "no parameter method"),
    ("attention:mode=first", "last, rollout"),
])
def test_bad_parameters(spec, match) -> None:
    with pytest.raises(UserInputError, match=match):
        make_attributor(spec)
    with pytest.raises(UserInputError, match="steps"):
        IntegratedGradients(steps=True)


@pytest.mark.parametrize("method, missing", [("gradient_x_input", "gradients"),
                                             ("integrated_gradients", "gradients"), ("attention", "attentions")])
def test_a_backend_without_the_capability_is_refused(method, missing) -> None:
    from tokentrust.backends.replay import ReplayBackend, text_trace

    trace = text_trace("Q?", "An answer.", logprob=-1.0)
    replay = ReplayBackend([trace, text_trace("Q?", "An answer.", logprob=-1.0, forced=True)])
    with pytest.raises(CapabilityError, match=rf"{method}\b.* needs {missing}"):
        explain(trace, method, backend=replay)


def test_method_ids() -> None:
    assert GradientXInput().id == "gradient_x_input"
    assert IntegratedGradients(steps=16).id == "integrated_gradients(steps=16)"
    assert Attention(mode="rollout").id == "attention(mode='rollout')"
