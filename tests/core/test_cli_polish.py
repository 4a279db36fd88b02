"""Command-line checks before the model loads, the estimator list, --help, bench progress, quiet loading,
and the short views and alias lookup of results."""

from __future__ import annotations

import json
import re
import time
import warnings

import pytest

import tokentrust as tt
from _cli import run_cli
from tokentrust.bench.progress import Pace
from tokentrust.capability import Capability
from tokentrust.cli.options import every_estimator
from tokentrust.registry import estimators as registry

Q = "What is the capital of Australia?"
NO_MODEL = ["--model", "/nonexistent/model"]  # a check that runs before loading never reaches this path
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.mark.parametrize(("args", "message"), [
    (["ask", "   "], "the prompt is empty"),
    (["ask", ""], "the prompt is empty"),
    (["ask", Q, "-n", "0"], "--max-new-tokens (-n) must be ≥ 1, got 0"),
    (["ask", Q, "--top-p", "1.5"], "--top-p must be in (0, 1], got 1.5"),
    (["ask", Q, "-e", "logprob_quantile:alpha=abc"],
     "estimator 'logprob_quantile': parameter alpha must be a number, got 'abc' (default 0.1)"),
    (["ask", Q, "-e", "logprob_quantile:alpha=5"], "alpha must be in [0, 1], got 5"),
    (["ask", Q, "-e", "semantic_entropy:n_samples=true"], "parameter n_samples must be an integer, got True"),
    (["ask", Q, "-e", "verbalized:strategy=guess"], "parameter strategy must be one of 'vanilla', 'cot'"),
    (["ask", Q, "--colour-by", "msp"], "maximum_sequence_probability is one score for the whole answer"),
    (["score", "-p", Q, "-a", "Sydney.", "--colour-by", "perplexity"], "colour by a token-level score (overtrust"),
    (["ask", Q, "-e", "all", "-e", "msp"], "'all' cannot be combined with other estimators"),
    (["score", "-p", "  ", "-a", "Canberra."], "the prompt is empty"),
    (["score", "-p", Q, "-a", " "], "the answer is empty"),
    (["bench", "--dataset", "capitals", "-n", "0"], "--max-new-tokens (-n) must be ≥ 1, got 0"),
])
def test_bad_values_are_refused_before_the_model_loads(capsys, args, message):
    began = time.perf_counter()
    code, out, err = run_cli(capsys, *args, *NO_MODEL)
    assert code == 2, (out, err)
    line = " ".join(err.split())
    assert message in line and "no model at" not in line and "GenerationConfig" not in line, line
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert time.perf_counter() - began < 10


def test_colour_by_message_lists_every_token_level_score(capsys):
    _, _, err = run_cli(capsys, "ask", Q, "--colour-by", "msp", *NO_MODEL)
    token_level = [name for name, cls in registry.items() if cls.level is tt.Level.TOKEN]
    assert len(token_level) >= 6 and all(name in err for name in token_level)
    assert "its token-level form is token_probability" in err


def test_ask_accepts_all_and_it_means_every_supported_score_without_another_model(capsys, capital_trace, tmp_path):
    code, _, err = run_cli(capsys, "ask", Q, "-e", "all", *NO_MODEL)
    assert code == 2 and "no model at '/nonexistent/model'" in err  # `all` passed every check before loading

    recorded = tmp_path / "traces.jsonl"
    recorded.write_text(capital_trace.to_json() + "\n")
    replay = tt.load(f"replay:{recorded}")
    caps = set(replay.capabilities)
    assert Capability.SAMPLING not in caps and Capability.FORCED_SCORING not in caps
    ids = {e.id for e in every_estimator(replay)}
    assert {"maximum_sequence_probability", "token_entropy", "claim_probability", "perplexity"} <= ids
    assert not ids & {"semantic_entropy", "p_true", "pmi", "claim_conditioned_probability", "token_ccp"}
    assert "claim_conditioned_probability" not in {e.id for e in every_estimator(tt.load())}  # loads an NLI model


def test_estimators_piped_json_and_narrow_terminal(capsys, monkeypatch):
    ids = registry.names()
    code, plain, _ = run_cli(capsys, "estimators")  # captured: not a terminal
    assert code == 0
    lines = plain.splitlines()
    assert lines[0].split()[:4] == ["id", "aliases", "level", "cost"] and len(lines) == len(ids) + 1
    assert [line.split()[0] for line in lines[1:]] == ids  # every id whole, one per line
    assert "`" not in plain and "§" not in plain and "…" not in plain.replace("‖, …, ‖", "")

    rows = {r["id"]: r for r in json.loads(run_cli(capsys, "estimators", "--json")[1])}
    assert rows["maximum_sequence_probability"]["cost"] == "trace only"
    assert rows["p_true"]["cost"] == "extra pass"
    assert rows["semantic_entropy"]["cost"] == "sampling (10 answers) + another model"
    assert rows["lexical_similarity"]["cost"] == "sampling (10 answers)"
    assert rows["logprob_quantile"]["description"].endswith("length-robust.")  # "(§2.8)" dropped
    assert rows["maximum_sequence_probability"]["description"].startswith("p(y|x) = exp(Σ ℓ_t) (Chow-Sum). raw")

    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "80")
    table = ANSI.sub("", run_cli(capsys, "estimators")[1])
    assert "┃" not in table and max(len(line.rstrip()) for line in table.splitlines()) <= 81
    words = set(table.split())
    assert all(name in words for name in ids), [n for n in ids if n not in words]


def test_help_shows_defaults_and_no_type_for_flags(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    _, bench_help, _ = run_cli(capsys, "bench", "--help")
    text = " ".join(bench_help.split())
    assert "Longest answer, in tokens. [default: (24)]" in text
    assert "[default: (0)]" in text and "[default: (8)]" in text and "[default: (sequence)]" in text
    assert not re.search(r"\w \.(\s|$)", text.replace("│", " "))  # no sentence ending in " ." (a lost default)
    _, ask_help, _ = run_cli(capsys, "ask", "--help")
    assert "<bool>" not in ask_help + bench_help
    assert "[default: 64]" in " ".join(ask_help.split())
    assert re.search(r"--json\s+Print JSON", ask_help) and re.search(r"--raw\s+Send the prompt", ask_help)


def test_loading_prints_no_progress_bar_unless_verbose(capsys, monkeypatch):
    monkeypatch.delenv("TOKENTRUST_VERBOSE", raising=False)
    from transformers.utils import logging as hf_logging

    with warnings.catch_warnings():  # the hub's own bars may be off by environment variable: no matter here
        warnings.simplefilter("ignore")
        hf_logging.enable_progress_bar()
    tt.load()
    assert "Loading weights" not in capsys.readouterr().err
    assert hf_logging.is_progress_bar_enabled()  # the setting is given back
    monkeypatch.setenv("TOKENTRUST_VERBOSE", "1")
    tt.load()
    assert "Loading weights" in capsys.readouterr().err


def test_pace_predicts_from_both_phases():
    pace = Pace()
    assert pace.left(10) is None  # nothing measured: no guess
    pace.generated(6.0, 4)  # a batch of 4 answers in 6 s
    assert pace.left(10) is None
    for s in (0.1, 0.3, 0.2, 0.2):
        pace.scored_one(s)
    assert pace.left(10) == pytest.approx(10 * (6.0 / 4 + 0.8 / 4))
    pace.generated(0.0, 4)  # a batch found in the cache
    assert pace.left(8) == pytest.approx(8 * (6.0 / 8 + 0.8 / 4))


def test_bench_progress_shows_phases_and_eta(backend, tmp_path, monkeypatch, capsys):
    from tokentrust.bench.runner import run
    from tokentrust.bench.spec import RunSpec

    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "140")
    spec = RunSpec(dataset="capitals", limit=6, max_new_tokens=6, batch_size=2, estimators=["msp"],
                   out=str(tmp_path / "run"), cache=str(tmp_path / "cache.sqlite"))
    result = run(spec, backend=backend, progress=True)
    assert result.n_generated == 6
    err = ANSI.sub("", capsys.readouterr().err)
    assert "loading model default" in err, err
    assert "generating batch 1/3 (2 answers)" in err and "scoring batch 3/3" in err, err
    assert "ETA after the first batch" in err
    assert re.search(r"ETA \d+:\d\d", err)
    assert "ETA -:--:--" not in err and "0/6 items" in err and "6/6 items" in err


def test_short_views_and_lookup_by_alias_or_bare_name(capital_trace):
    result = tt.annotate(capital_trace, ["msp", "logprob_quantile:alpha=0.2", "perplexity"])
    text = str(result)
    assert len(text) < 400 and "\n" not in text and repr(result) == text
    assert text.startswith(f"Annotated({capital_trace.text[:20]!r}"[:-1])
    msp = result["msp"]
    assert msp is result["maximum_sequence_probability"]
    assert f"value={msp.value:.4g}" in str(msp) and f"raw={msp.raw[0]:.4g}" in repr(msp)
    assert f"maximum_sequence_probability={msp.value:.4g}" in text
    tokens = result["token_probability"]
    assert f"{len(capital_trace)} values" in repr(tokens) and f"min={min(tokens.values):.4g}" in repr(tokens)
    assert result["logprob_quantile"].estimator == "logprob_quantile(alpha=0.2)"  # bare name, other parameters
    assert result["logprob_quantile:alpha=0.2"] is result["logprob_quantile"]
    for alias, target in registry.aliases().items():
        if any(s.estimator == target for s in result.scores):
            assert result[alias].estimator == target
    two = tt.annotate(capital_trace, ["logprob_quantile:alpha=0.2", "logprob_quantile:alpha=0.5"])
    with pytest.raises(tt.UnknownNameError, match=r"alpha=0.2\), logprob_quantile\(alpha=0.5"):
        two["logprob_quantile"]
    assert result._repr_html_().startswith("<")  # the notebook view is unchanged
