"""Critical-token rollouts: a deterministic toy backend with a known critical position, real-model rollouts
continuing a token prefix, and the command's refusals."""

from __future__ import annotations

import random

import pytest

from _cli import run_cli
from tokentrust.decoding.critical import arithmetic_reference, find_critical, model_rollout
from tokentrust.trace import Trace

# Toy model: an answer is the prefix continued to 6 tokens, each drawn from {9, 7} (seeded); it is correct when
# its token 3 is not 7. Position 3 emitting 7 is the critical choice.
_GOOD = 9


def _toy_rollout(prefix: list[int], k: int) -> list[str]:
    rng = random.Random(hash(tuple(prefix)) % 10_000)
    out = []
    for _ in range(k):
        ids = [*prefix, *(rng.choice([_GOOD, 7]) for _ in range(6 - len(prefix)))]
        out.append(" ".join(map(str, ids)))
    return out


def _toy_verify(text: str) -> bool:
    ids = [int(x) for x in text.split()]
    return ids[3] != 7


def _toy_trace(ids: list[int]) -> Trace:
    text = " ".join(map(str, ids))
    offsets, pos = [], 0
    for tok in map(str, ids):
        start = text.index(tok, pos)
        offsets.append((start, start + len(tok)))
        pos = start + len(tok)
    alt = [[t, _GOOD if t != _GOOD else 4] for t in ids]
    return Trace(model_id="toy", prompt="q", prompt_text="q", text=text, token_ids=ids, tokens=list(map(str, ids)),
                 offsets=offsets, logprobs=[-0.1] * len(ids), special=[False] * len(ids), top_k=2, top_ids=alt,
                 top_tokens=[[str(a) for a in row] for row in alt], top_logprobs=[[-0.1, -2.0]] * len(ids))


def test_known_critical_position_on_a_toy_model():
    trace = _toy_trace([9, 9, 9, 7, 9, 9])
    report = find_critical(trace, _toy_rollout, _toy_verify, k=64, alternatives=1)
    assert not report.correct and report.critical == 3
    by_index = {p.index: p for p in report.positions}
    assert by_index[3].success_with == 0.0 and by_index[4].success_with == 0.0
    assert 0.3 < by_index[3].success_before < 0.7  # token 3 still open: about half the draws avoid 7
    assert by_index[2].success_with == by_index[3].success_before  # shared prefix, rolled out once
    assert by_index[3].alternatives == [("9", 1.0)]  # forcing the alternative always succeeds
    assert all(abs(p.drop) < 0.25 for p in report.positions if p.index < 3)  # sampling noise only
    assert all(p.drop == 0 for p in report.positions if p.index > 3)


def test_rollouts_continue_the_prefix_on_the_default_model(backend):
    question = "What is 17 * 23?"
    roll = model_rollout(backend, question, temperature=1.0, max_new_tokens=6, seed=3)
    plain = backend.sample(question, 3, temperature=1.0, seed=3, max_new_tokens=6, top_k=0)
    assert roll([], 3) == [t.text for t in plain]  # no prefix: exactly the backend's own samples
    prefix = backend.tokenizer("17 * 23 =", add_special_tokens=False)["input_ids"]
    texts = roll(prefix, 3)
    assert len(texts) == 3 and all(t.startswith("17 * 23 =") for t in texts)


def test_arithmetic_verifier_and_bad_input(capsys):
    assert arithmetic_reference("What is 17 * 23?") == "391"
    assert arithmetic_reference("What is 8 × 12?") == "96" and arithmetic_reference("Who wrote Hamlet?") is None
    code, _, err = run_cli(capsys, "critical", "Who wrote Hamlet?", "--rollouts", "4")
    assert code == 2 and "no verifier" in err and "--reference" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(capsys, "critical", "What is 17 * 23?", "--rollouts", "0")
    assert code == 2 and "--rollouts" in err and "got 0" in err
    with pytest.raises(Exception, match="rollouts"):
        find_critical(_toy_trace([9]), _toy_rollout, _toy_verify, k=0)


def test_contrastive_score_of_one_model_against_itself_is_zero(backend, capital_trace):
    from tokentrust.decoding.critical import contrastive_scores

    assert contrastive_scores(capital_trace, backend, backend) == [0.0] * len(capital_trace)


def test_contrastive_models_come_in_pairs(capsys):
    code, _, err = run_cli(capsys, "critical", "What is 17 * 23?", "--negative-model", "./neg")
    assert code == 2 and "--positive-model" in err and len(err.strip().splitlines()) == 1
