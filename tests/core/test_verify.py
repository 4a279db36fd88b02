"""Verification of an answer's claims against a reference text (tokentrust.verify and ``tokentrust verify``)."""

from __future__ import annotations

import hashlib
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from _traces import make_trace
from tokentrust import CapabilityError, UserInputError
from tokentrust.stats import resources
from tokentrust.stats.claims import Claim
from tokentrust.verify import (
    MAX_REFERENCE_BYTES,
    SUPPORT_COSINE,
    VERDICTS,
    Verification,
    check_claims,
    load_reference,
    parse_verdict,
    support_from_cosine,
    verify,
)

REFERENCE = (
    "Australia is a country in the Southern Hemisphere. Canberra is the capital of Australia.\n"
    "The Murray is the longest river in Australia. Australia became a federation in 1901.\n"
    "Its currency is the Australian dollar.\n"
)
QUESTION = "Tell me about Australia."
# supported, contradicted (the Murray is the longest), absent from the reference
ANSWER = ("The capital of Australia is Canberra. The longest river in Australia is the Darling. "
          "Australia hosted the 2000 Summer Olympics.")
CANBERRA = "Canberra is the capital of Australia."
MURRAY = "The Murray is the longest river in Australia."


def word_trace(text: str = ANSWER, logprobs: list[float] | None = None):
    """A hand-built trace of ``text``, one token per word (no model needed)."""
    words = text.split(" ")
    tokens = [w + " " for w in words[:-1]] + [words[-1]]
    return make_trace(logprobs or [-0.1 * (i % 5) for i in range(len(tokens))], text_tokens=tokens)


def claim(text: str) -> Claim:
    return Claim(text=text, char_span=(0, len(text)), token_indices=[], sentence=0)


# ---- the embedding route (offline, no generating model) ----


def test_embedding_route_supports_restated_and_skips_absent_claims():
    result = verify(word_trace(), REFERENCE)  # no backend: auto = embedding
    assert result.judge == "embedding"
    assert result.reference_digest == hashlib.sha256(REFERENCE.encode()).hexdigest()
    texts = [c.claim.text for c in result.checks]
    assert texts == ["The capital of Australia is Canberra", "The longest river in Australia is the Darling",
                     "Australia hosted the 2000 Summer Olympics"]
    supported, contradicted, absent = result.checks
    assert supported.verdict == "supported"
    assert supported.evidence == CANBERRA
    assert REFERENCE[slice(*supported.evidence_span)] == supported.evidence
    assert supported.support >= 0.5
    # documented: embedding never says "contradicted"; a claim no sentence restates is "not mentioned"
    assert contradicted.verdict == "not_mentioned"
    assert absent.verdict == "not_mentioned"
    for check in (contradicted, absent):
        assert check.evidence == "" and check.evidence_span is None and check.support < 0.5
    assert absent.support < 0.01
    assert result.counts == {"supported": 1, "contradicted": 0, "not_mentioned": 2}
    # no model confidence: grounded is the support itself
    for check in result.checks:
        assert math.isnan(check.model_confidence)
        assert check.grounded == check.support


def test_embedding_support_is_the_documented_logistic():
    assert support_from_cosine(SUPPORT_COSINE) == pytest.approx(0.5)
    assert support_from_cosine(1.0) == pytest.approx(0.9, abs=0.01)
    assert support_from_cosine(0.5) < 0.01
    checks = check_claims([claim("The Murray is Australia's longest river")], REFERENCE, judge="embedding")
    assert checks[0].verdict == "supported" and checks[0].evidence == MURRAY


def test_evidence_spans_map_back_with_repeated_claims_and_top_k():
    claims = [claim("The capital of Australia is Canberra"), claim("The capital of Australia is Canberra"),
              claim("Australia's currency is the Australian dollar")]
    checks = check_claims(claims, REFERENCE, judge="embedding", top_k=1)
    assert [c.verdict for c in checks] == ["supported", "supported", "supported"]
    assert checks[0] == checks[1]
    assert checks[2].evidence == "Its currency is the Australian dollar."
    for c in checks:
        assert REFERENCE[slice(*c.evidence_span)] == c.evidence


# ---- grounded confidence ----


def test_grounded_is_support_times_model_confidence():
    claims = [claim("The capital of Australia is Canberra"), claim("Australia hosted the 2000 Summer Olympics"),
              claim("The Murray is the longest river in Australia")]
    checks = check_claims(claims, REFERENCE, judge="embedding", confidences=[0.5, 0.8, math.nan])
    assert checks[0].grounded == pytest.approx(checks[0].support * 0.5)
    assert checks[1].grounded == pytest.approx(checks[1].support * 0.8)
    assert checks[2].grounded == checks[2].support  # NaN confidence counts as none given
    with pytest.raises(UserInputError, match=r"probabilities in \[0, 1\]"):
        check_claims(claims, REFERENCE, judge="embedding", confidences=[0.5, 1.5, 0.1])
    with pytest.raises(UserInputError, match="got 2 confidences for 3 claims"):
        check_claims(claims, REFERENCE, judge="embedding", confidences=[0.5, 0.5])


def test_claim_estimator_fills_model_confidence():
    trace = word_trace()
    result = verify(trace, REFERENCE, judge="embedding", estimator="claim_probability")
    assert result.estimator == "claim_probability"
    probs = np.exp(trace.logprobs)
    for check in result.checks:
        expected = float(np.prod(probs[check.claim.token_indices]))
        assert check.model_confidence == pytest.approx(expected)
        assert check.grounded == pytest.approx(check.support * expected)
    # the estimator cuts claims as verify does, whatever extractor verify was given
    clauses = verify(trace, REFERENCE, judge="embedding", extractor="sentences:clauses=false",
                     estimator="claim_probability")
    assert clauses.estimator == "claim_probability(claims='sentences:clauses=False')"
    assert not any(math.isnan(c.model_confidence) for c in clauses.checks)
    with pytest.raises(UserInputError, match="is sequence-level; verify needs a claim-level estimator"):
        verify(trace, REFERENCE, judge="embedding", estimator="msp")


# ---- the nli route, with a stand-in classifier (no NLI model is available offline) ----


class StandInNli:
    """Entails when the premise names the claim's last word, contradicts a 'Darling' claim with the Murray."""

    def probs(self, premises, hypotheses):
        rows = []
        for p, h in zip(premises, hypotheses, strict=True):
            if h.split()[-1] in p:
                rows.append((0.9, 0.05, 0.05))
            elif "Darling" in h and "Murray" in p:
                rows.append((0.05, 0.15, 0.8))
            else:
                rows.append((0.1, 0.8, 0.1))
        return np.asarray(rows)


@pytest.fixture
def stand_in_nli():
    resources.load("nli:stand-in", StandInNli)
    yield "nli:stand-in"
    resources._CACHE.pop("nli:stand-in", None)


def test_nli_route_reads_entail_contradict_neutral(stand_in_nli):
    result = verify(word_trace(), REFERENCE, judge=stand_in_nli)
    assert result.judge == "nli:stand-in"
    supported, contradicted, absent = result.checks
    assert (supported.verdict, supported.evidence, supported.support) == ("supported", CANBERRA, 0.9)
    assert (contradicted.verdict, contradicted.evidence, contradicted.support) == ("contradicted", MURRAY, 0.05)
    assert REFERENCE[slice(*contradicted.evidence_span)] == MURRAY
    assert (absent.verdict, absent.evidence, absent.evidence_span) == ("not_mentioned", "", None)


# ---- the judge route, on the embedded model ----


def test_parse_verdict_reads_replies_robustly():
    cases = {
        "Supported.": ("supported", 1.0), "supported: the reference says so": ("supported", 1.0),
        "Contradicted": ("contradicted", 0.0), "The claim is incorrect.": ("contradicted", 0.0),
        "Not mentioned": ("not_mentioned", 0.0), "The reference doesn't mention it": ("not_mentioned", 0.0),
        "The claim is not supported": ("not_mentioned", 0.0),
        "It does not contradict the claim": ("not_mentioned", 0.5),
        "": ("not_mentioned", 0.5), "Sure! Here is": ("not_mentioned", 0.5),
    }
    for reply, expected in cases.items():
        assert parse_verdict(reply) == expected, reply


def test_judge_route_end_to_end(backend):
    trace = backend.score(QUESTION, ANSWER)
    result = verify(trace, REFERENCE, backend=backend)  # a backend that generates: auto = judge
    assert result.judge == "judge"
    assert len(result.checks) == 3
    for check in result.checks:
        assert check.verdict in VERDICTS
        assert check.support in (0.0, 0.5, 1.0)
        if check.verdict == "not_mentioned":
            assert check.evidence == "" and check.evidence_span is None
        else:
            assert REFERENCE[slice(*check.evidence_span)] == check.evidence != ""
        assert check.grounded == check.support
    assert sum(result.counts.values()) == 3
    loaded = Verification.model_validate_json(result.model_dump_json())
    assert loaded.checks[0].claim == result.checks[0].claim


# ---- bad input ----


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"  \n\t \n", "is empty"),
        (b"Canberra\x00 is the capital", "is binary (it contains NUL bytes)"),
        (b"caf\xe9 au lait", "is not UTF-8 text (invalid byte at offset 3)"),
        (b"a" * (MAX_REFERENCE_BYTES + 1), f"the limit is {MAX_REFERENCE_BYTES:,} bytes"),
    ],
)
def test_bad_reference_files(tmp_path, content, message):
    path = tmp_path / "facts.txt"
    path.write_bytes(content)
    with pytest.raises(UserInputError, match="reference file") as info:
        load_reference(path)
    assert message in str(info.value) and str(path) in str(info.value)


def test_missing_reference_and_utf8_bom(tmp_path):
    with pytest.raises(UserInputError, match="does not exist"):
        load_reference(tmp_path / "nope.txt")
    with pytest.raises(UserInputError, match="is not a regular file"):
        load_reference(tmp_path)
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbf" + REFERENCE.encode())
    assert load_reference(path) == REFERENCE


def test_bad_arguments_are_clear_errors():
    trace = word_trace()
    with pytest.raises(UserInputError, match="the reference is empty"):
        verify(trace, "   ")
    with pytest.raises(UserInputError, match="NUL"):
        verify(trace, "Canberra\x00")
    with pytest.raises(UserInputError, match=re.escape("the answer has no claims to verify: '... ?'")):
        verify(word_trace("... ?"), REFERENCE)
    with pytest.raises(UserInputError, match="unknown judge 'oracle'; valid: auto, judge, embedding, nli:"):
        verify(trace, REFERENCE, judge="oracle")
    with pytest.raises(UserInputError, match="judge 'nli:' needs a model"):
        check_claims([claim("x")], REFERENCE, judge="nli:")
    with pytest.raises(UserInputError, match="top_k"):
        check_claims([claim("x")], REFERENCE, judge="embedding", top_k=0)
    with pytest.raises(CapabilityError, match="asks the generating model"):
        check_claims([claim("x")], REFERENCE, judge="judge")
    with pytest.raises(UserInputError, match="unknown claim extractor"):
        verify(trace, REFERENCE, extractor="paragraphs")


# ---- the command line ----


def run(*args):
    env = {**os.environ, "COLUMNS": "400"}
    return subprocess.run([sys.executable, "-m", "tokentrust", "verify", *args], capture_output=True, text=True,
                          env=env, timeout=300, check=False)


@pytest.fixture(scope="module")
def reference_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("verify") / "australia.txt"
    path.write_text(REFERENCE, encoding="utf-8")
    return path


def test_cli_table(reference_file):
    proc = run("--prompt", QUESTION, "--answer", ANSWER, "--reference", str(reference_file))
    assert proc.returncode == 0, proc.stderr
    assert "judge: judge" in proc.stdout
    assert "The capital of Australia is Canberra" in proc.stdout
    assert "3 claims:" in proc.stdout


def test_cli_json_loads_back(reference_file):
    proc = run("-p", QUESTION, "-a", ANSWER, "-r", str(reference_file), "--judge", "embedding",
               "--top-k-evidence", "2", "--json", "-e", "claim_probability")
    assert proc.returncode == 0, proc.stderr
    result = Verification.model_validate_json(proc.stdout)
    assert (result.judge, result.estimator) == ("embedding", "claim_probability")
    assert [c.verdict for c in result.checks] == ["supported", "not_mentioned", "not_mentioned"]
    assert result.checks[0].evidence == CANBERRA
    for check in result.checks:
        assert 0.0 < check.model_confidence <= 1.0
        assert check.grounded == pytest.approx(check.support * check.model_confidence)


def test_cli_help_has_an_example():
    proc = run("--help")
    assert proc.returncode == 0
    assert "Example: tokentrust verify" in proc.stdout and "--top-k-evidence" in proc.stdout


def one_line_error(proc, message):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], proc.stderr


def test_cli_bad_reference_is_one_line(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text(" \n")
    one_line_error(run("-p", QUESTION, "-a", ANSWER, "-r", str(empty)), f"reference file '{empty}' is empty")
    one_line_error(run("-p", QUESTION, "-a", ANSWER, "-r", str(tmp_path / "missing.txt")), "does not exist")
    one_line_error(run("-p", QUESTION, "-a", ANSWER, "-r", str(empty), "--judge", "oracle"), "unknown judge")


def test_cli_unreachable_claims_model_is_one_line(reference_file):
    proc = run("-p", QUESTION, "-a", ANSWER, "-r", str(reference_file), "--judge", "embedding",
               "--claims-model", "openai:http://127.0.0.1:9/v1#x")
    one_line_error(proc, "--claims-model 'openai:http://127.0.0.1:9/v1#x': cannot reach http://127.0.0.1:9/v1")
