"""Where users meet attributions: ``tokentrust explain``, the one-sentence explanation, the terminal and HTML
views of a record, and ``POST /api/explain``."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient
from rich.console import Console
from typer.testing import CliRunner

import tokentrust as tt
from _servers import RunningServer
from tokentrust.attribution import Attribution, Span
from tokentrust.attribution.verbalize import explain_sentence, shares, source_labels
from tokentrust.render.attribution import (
    importance_color,
    importance_rgb,
    prompt_runs,
    render_attribution_html,
    render_attribution_rich,
)

Q = "What is the capital of Australia?"
TEMPLATE = "Would you buy {item} for {price} in {city}?"
FIELDS = ["--field", "item=a bike", "--field", "price=$20", "--field", "city=Paris"]
METHODS = tt.registry.attributors.names()


# --------------------------------------------------------------------------- hand-built records


def hand_built() -> Attribution:
    """Two targets over eight word sources; row 0 has a positive mass of exactly 1, row 1 is all zeros."""
    sources = [Span(text="<|im_start|>", tokens=[0], special=True), Span(text="user", tokens=[1]),
               Span(text="\n", tokens=[2]), Span(text="What", tokens=[3]), Span(text=" capital", tokens=[4]),
               Span(text=" of", tokens=[5]), Span(text=" Australia", tokens=[6]), Span(text="?", tokens=[7])]
    return Attribution(method="occlusion", model_id="hand", prompt=Q, answer="Canberra.", granularity="word",
                       sources=sources, targets=[Span(text="Canberra", tokens=[0]), Span(text=".", tokens=[1])],
                       scores=[[0.0, 0.05, 0.1, 0.0, 0.22, -0.3, 0.61, 0.02], [0.0] * 8],
                       target_logprobs=[-0.43, -0.1])


def components(scores: list[float]) -> Attribution:
    names = ["template", "system", "user", "item"]
    texts = ["<|im_start|>system\n…<|im_end|>\n…<|im_end|>\n", "You are helpful.", "Would you buy…?", " a bike"]
    tokens = [[0, 2, 6], [1], [3, 5], [4]]
    return Attribution(method="shapley", model_id="hand", prompt="Would you buy a bike?", answer="Yes",
                       granularity="component", sources=[Span(text=t, tokens=k, name=n) for t, k, n in
                                                         zip(texts, tokens, names, strict=True)],
                       targets=[Span(text="Yes", tokens=[0])], scores=[scores], target_logprobs=[-0.2])


def test_the_sentence_names_the_largest_shares_of_the_positive_mass():
    a = hand_built()
    assert explain_sentence(a, 0) == "'Canberra' relied mostly on 'Australia' (0.61) and 'capital' (0.22); 'of' lowered it (-0.30)."
    assert explain_sentence(a, "Canberra", k=1) == "'Canberra' relied mostly on 'Australia' (0.61); 'of' lowered it (-0.30)."
    assert explain_sentence(a, 0, k=3).startswith("'Canberra' relied mostly on 'Australia' (0.61), 'capital' (0.22) and 'user' (0.05)")
    assert explain_sentence(a) == "No part of the prompt raised the probability of '.': every score is 0."  # the last
    negative = a.model_copy(update={"scores": [a.scores[0], [-0.1, -0.2, 0.0, -0.05, -0.4, -0.3, -0.2, -0.1]]})
    assert explain_sentence(negative, -1) == "No part of the prompt raised the probability of '.'; 'capital' lowered it most (-0.4)."
    # whitespace is never named, but a large share of it is reported; scales do not matter, only shares
    blank = a.model_copy(update={"scores": [[0.0, 0.0, 3.0, 0.0, 1.0, 0.0, 2.0, 0.0], [0.0] * 8]})
    assert explain_sentence(blank, 0) == ("'Canberra' relied mostly on 'Australia' (0.33) and 'capital' (0.17); "
                                          "line breaks and spaces carried 0.50.")
    assert "positive mass" in (sys.modules[explain_sentence.__module__].__doc__ or "")
    with pytest.raises(tt.UserInputError, match="no target 'Perth'"):
        explain_sentence(a, "Perth")


def test_the_sentence_names_components_and_tells_repeated_words_apart():
    a = components([0.01, 0.2, 0.1, 0.69])
    assert explain_sentence(a) == ("'Yes' relied mostly on the field item (0.69) and the system prompt (0.20); "
                                   "the chat template mattered little.")
    b = components([0.5, -0.2, 0.3, 0.2])
    assert explain_sentence(b) == ("'Yes' relied mostly on the chat template (0.50) and the user text (0.30); "
                                   "the system prompt lowered it (-0.20).")
    twice = hand_built().model_copy(update={"sources": [*hand_built().sources[:6], Span(text=" user", tokens=[6]),
                                                         hand_built().sources[7]]})
    assert source_labels(twice)[1] == "the 1st 'user'" and source_labels(twice)[6] == "the 2nd 'user'"


def _styles(text) -> dict[str, str]:
    """Each styled run of a rich Text: its characters → its style string."""
    return {text.plain[s.start:s.end]: str(s.style) for s in text.spans}


def test_terminal_view_shades_the_prompt_by_share_and_lists_the_top_sources():
    a = hand_built()
    console = Console(record=True, width=120, color_system="truecolor")
    group = render_attribution_rich(a, target=0)
    console.print(group)
    out = console.export_text()
    assert "<|im_start|>user↵" in out and "What capital of Australia?" in out  # special tokens shown, by name
    assert "log-prob -0.430 (p = 0.651)" in out
    assert re.search(r"1\s+'Australia'\s+0\.61\s+0\.61", out) and re.search(r"2\s+'capital'\s+0\.22\s+0\.22", out)
    assert explain_sentence(a, 0) in out
    prompt = next(r for r in group.renderables if getattr(r, "plain", "").startswith("<|im_start|>"))
    styles = _styles(prompt)
    share = shares(a.scores[0])
    for j, s in enumerate(a.sources):
        assert importance_color(share[j]) in styles[s.text.replace("\n", "↵\n")]
    assert "italic" in styles["<|im_start|>"] and "italic" not in styles[" Australia"]
    assert "scores: target × top sources" in out  # several targets: the compact table


def test_colour_scale_is_white_at_zero_blue_up_orange_down():
    assert importance_rgb(0.0) == (255, 255, 255) and importance_rgb(1.0) == (8, 81, 156)
    assert importance_rgb(-1.0) == (166, 54, 3) and importance_rgb(math.nan) == (190, 190, 190)
    assert importance_rgb(0.25)[0] == round(255 + 0.5 * (8 - 255))  # square-root scale: a quarter is half way


def test_html_heatmap_cells_are_the_scores_and_the_last_target_shows_without_scripts():
    a = hand_built()
    page = render_attribution_html(a)
    assert "<script" not in page and "http" not in page
    rows = re.findall(r'<tr data-target="(\d+)">(.*?)</tr>', page)
    assert [int(i) for i, _ in rows] == [0, 1]
    cells = [[float(x) for x in re.findall(r'data-score="([^"]+)"', row)] for _, row in rows]
    assert np.allclose(cells, a.scores)
    checked = re.findall(r'<input type="radio"[^>]*id="[^"]+-(\d+)"[^>]*>', page)
    assert checked == ["0", "1"] and re.search(r'id="[^"]+-1" value="1" checked>', page)
    assert page.count('class="tt-tgt"') == 2  # each answer token a label: clicking shows its view (CSS only)
    views = re.findall(r'<div class="tt-att-view" data-target="(\d+)">(.*?)</table></div>', page, re.DOTALL)
    assert len(views) == 2 and explain_sentence(a, 0).replace("'", "&#x27;") in views[0][1]
    spans = re.findall(r'<span class="(tt-src[^"]*)" data-source="(\d+)" data-share="([^"]+)"[^>]*'
                       r'style="background:(#[0-9a-f]+)', views[0][1])
    share = shares(a.scores[0])
    assert [int(j) for _, j, _, _ in spans] == list(range(8))
    assert all(float(s) == pytest.approx(share[int(j)], abs=1e-5) and c == importance_color(share[int(j)])
               for _, j, s, c in spans)
    assert spans[0][0] == "tt-src tt-special" and "&lt;|im_start|&gt;" in views[0][1]
    assert render_attribution_html(a, target=0).count(" checked>") == 1


def test_html_clicking_a_token_shows_its_sources_without_javascript():
    from playwright.sync_api import sync_playwright

    a = hand_built()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                    args=["--headless", "--no-sandbox", "--disable-gpu"])
        page = browser.new_page(java_script_enabled=False)
        page.set_content(f"<html><body>{render_attribution_html(a)}</body></html>")
        views = page.locator(".tt-att-view")
        assert [views.nth(i).is_visible() for i in range(2)] == [False, True]  # the last target first
        page.click("label.tt-tgt >> nth=0")
        assert [views.nth(i).is_visible() for i in range(2)] == [True, False]
        assert page.inner_text(".tt-att-view:visible .tt-att-sentence") == explain_sentence(a, 0)
        page.click(".tt-heat th.tt-row label >> nth=1")  # a heatmap row does the same
        assert [views.nth(i).is_visible() for i in range(2)] == [False, True]
        browser.close()


def test_component_prompt_reads_in_prompt_order():
    a = components([0.01, 0.2, 0.1, 0.69])
    runs = prompt_runs(a)
    assert [j for j, _ in runs] == [0, 1, 0, 2, 3, 2, 0]
    assert "".join(t for _, t in runs) == "<|im_start|>system\nYou are helpful.<|im_end|>\nWould you buy a bike?<|im_end|>\n"


# --------------------------------------------------------------------------- the command line


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "300"}
    proc = subprocess.run([sys.executable, "-m", "tokentrust", "explain", *args], capture_output=True, text=True,
                          env=env, timeout=600, check=False)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_cli_explains_a_generated_answer(backend):
    out = cli(Q, "-n", "16").stdout
    assert "occlusion · SmolLM2-135M-Instruct · word-level sources" in out
    assert "<|im_start|>" in out and "top sources" in out and "'.' relied mostly on" in out
    assert "scores: target × top sources" in out and "Canberra" in out
    a = Attribution.model_validate_json(cli(Q, "-n", "16", "--method", "occlusion", "--granularity", "word",
                                            "--json").stdout)
    trace = backend.generate(Q, max_new_tokens=16)
    assert a.answer == trace.text == "The capital of Australia is Canberra." and len(a.targets) == 7
    assert np.allclose(a.scores, tt.explain(trace, "occlusion", backend=backend).scores, atol=1e-4)


def test_cli_explains_a_given_answers_span_as_json(backend):
    a = Attribution.model_validate_json(cli(Q, "--answer", "Sydney.", "--target", "Sydney", "--json").stdout)
    assert a.method == "occlusion" and a.answer == "Sydney." and [t.text for t in a.targets] == ["Sydney"]
    direct = tt.explain(backend.score(Q, "Sydney."), "occlusion", backend=backend, target="Sydney")
    assert np.allclose(a.scores, direct.scores, atol=1e-4)
    assert a.extras["forwards"] == len(a.sources) + 1 and a.extras["backwards"] == 0


def test_cli_template_fields_are_components(backend):
    a = Attribution.model_validate_json(cli("--template", TEMPLATE, *FIELDS, "-n", "4", "--json").stdout)
    assert a.prompt == "Would you buy a bike for $20 in Paris?" and a.granularity == "component"
    assert {"item", "price", "city", "system", "user", "template"} <= {s.name for s in a.sources}
    assert next(s for s in a.sources if s.name == "price").text.strip() == "$20"


def test_cli_faithfulness_numbers(backend):
    given = [Q, "--answer", "Canberra.", "--granularity", "component", "--faithfulness"]
    proc = cli(*given)
    assert re.search(r"deletion_drop\s+\S+\s+\S+\s+\S+", proc.stdout) and "ratio" in proc.stdout
    a = Attribution.model_validate_json(cli(*given, "--json").stdout)
    assert {"soft_sufficiency_ratio", "soft_comprehensiveness_ratio", "deletion_drop_ratio"} <= set(a.extras["faithfulness"])


@pytest.fixture
def in_process(backend, monkeypatch) -> CliRunner:
    """The command run in this process on the session's model (``load`` returns it)."""
    monkeypatch.setattr(tt, "load", lambda model=None: backend)
    return CliRunner()


#: Small settings for the slow methods: these tests check the command, not the method's quality.
CHEAP = {"integrated_gradients": ":steps=4", "reagent": ":probes=2,max_steps=5", "shapley": ":max_permutations=4"}


@pytest.mark.parametrize("method", METHODS)
def test_every_method_through_the_cli(in_process, method):
    from tokentrust.cli import app

    spec = method + CHEAP.get(method, "")
    words = in_process.invoke(app, ["explain", Q, "--answer", "Canberra.", "--method", spec, "--granularity", "word",
                                    "--json"])
    assert words.exit_code == 0, words.output
    a = Attribution.model_validate_json(words.stdout)
    assert a.method.startswith(method) and a.granularity == "word" and "".join(t.text for t in a.targets) == "Canberra."
    assert len(a.sources) == 33 and np.isfinite(np.asarray(a.scores)).all()
    assert a.extras["forwards"] + a.extras["backwards"] > 0
    parts = in_process.invoke(app, ["explain", "--template", TEMPLATE, *FIELDS, "--answer", "Yes.", "--method", spec],
                              env={"COLUMNS": "200"})
    assert parts.exit_code == 0, parts.output
    assert "component-level sources" in parts.stdout and "target '.'" in parts.stdout
    assert "[item] a bike" in parts.stdout and "[city] Paris" in parts.stdout  # components named in the prompt
    assert "the field" in parts.stdout and "the chat template" in parts.stdout  # and in the top sources


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([Q, "--answer", "Sydney.", "--target", "Melbourne"], "target 'Melbourne' is not in the answer 'Sydney.'"),
        (["--template", TEMPLATE, "--field", "item=", "--field", "price=1", "--field", "city=Rome"],
         "--field item is empty"),
        (["--template", TEMPLATE, *FIELDS, "--field", "colour=red"],
         "--field colour is not in the template; its placeholders: item, price, city"),
        (["--template", TEMPLATE, "--field", "item=a bike", "--field", "price=$20"],
         "template placeholder {city} has no --field city=…"),
        (["--template", "Buy {} now"], "template placeholder {} must be a name"),
        (["--template", "Buy {item now", "--field", "item=x"], "bad --template"),
        ([Q, "--template", TEMPLATE, *FIELDS], "give either a prompt or --template, not both"),
        ([Q, "--field", "item=x"], "--field fills a --template"),
        ([], "prompt is empty"),
        ([Q, "--method", "occlusio"], "unknown attribution method 'occlusio'. Did you mean 'occlusion'?"),
        ([Q, "--method", "shapley:exactt=true"], "attribution method 'shapley' has no parameter exactt"),
        ([Q, "--granularity", "sentence"], "--granularity must be token, word or component"),
        ([Q, "-n", "3", "--target", "Melbourne"], "target 'Melbourne' is not in the answer 'The capital of'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message):
    proc = cli(*args, check=False)
    assert proc.returncode == 2, proc.stdout
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def black_box(backend) -> Iterator[str]:
    """``openai:`` spec of tokentrust's own server on the session model: a black box to the client."""
    from tokentrust.serve import create_app

    with RunningServer(create_app(backend)) as srv:
        yield f"openai:{srv.url}/v1#{backend.model_id}"


@pytest.mark.parametrize("method", METHODS)
def test_a_method_the_backend_cannot_serve_is_refused_in_one_line(black_box, method):
    proc = cli(Q, "--model", black_box, "--method", method, check=False)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    needs = sorted(c.value for c in tt.attribution.make_attributor(method).requires)
    assert f"{method} needs" in proc.stderr and all(n in proc.stderr for n in needs if n != "forced_scoring")


# --------------------------------------------------------------------------- the web API


@pytest.fixture(scope="module")
def client(backend) -> Iterator[TestClient]:
    from tokentrust.serve import create_app

    with TestClient(create_app(backend)) as c:
        yield c


def test_api_explain_returns_the_attribution_json(client, backend):
    r = client.post("/api/explain", json={"prompt": Q, "max_tokens": 16})
    assert r.status_code == 200, r.text
    a = Attribution.model_validate(r.json())
    trace = backend.generate(Q, max_new_tokens=16)
    assert a.answer == trace.text and a.method == "occlusion" and a.granularity == "word"
    assert np.allclose(a.scores, tt.explain(trace, backend=backend).scores, atol=1e-4)
    assert a.extras["sentences"] == [explain_sentence(a, i) for i in range(len(a.targets))]
    given = client.post("/api/explain", json={"messages": [{"role": "user", "content": Q}], "answer": "Sydney.",
                                               "target": "Sydney", "granularity": "component"})
    assert given.status_code == 200, given.text
    b = Attribution.model_validate(given.json())
    assert [t.text for t in b.targets] == ["Sydney"] and {s.name for s in b.sources} == {"system", "template", "user"}
    info = client.get("/api/info").json()
    assert info["can_explain"] and {m["id"] for m in info["attribution_methods"] if m["available"]} == set(METHODS)


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"prompt": Q, "method": "nope"}, "method", "unknown_method"),
        ({"prompt": Q, "method": "shapley:exact=3"}, "method", "invalid_value"),
        ({"prompt": Q, "answer": "Sydney.", "target": "Perth"}, "target", "invalid_value"),
        ({"prompt": Q, "messages": [{"role": "user", "content": Q}]}, "prompt", "invalid_value"),
        ({"prompt": " "}, "prompt", "invalid_value"),
        ({"prompt": Q, "granularity": "sentence"}, "granularity", "invalid_value"),
        ({"prompt": Q, "colour": "red"}, "colour", "unknown_parameter"),
    ],
)
def test_api_explain_refuses_bad_requests(client, body, param, code):
    r = client.post("/api/explain", json=body)
    assert r.status_code == 400 and r.json()["error"]["param"] == param and r.json()["error"]["code"] == code


def test_api_explain_refuses_what_the_backend_cannot_serve_and_needs_the_key(backend, capital_trace, tmp_path):
    from tokentrust.serve import create_app

    path = tmp_path / "traces.jsonl"
    path.write_text(json.dumps(capital_trace.model_dump(mode="json")) + "\n")
    with TestClient(create_app(tt.load(f"replay:{path}"))) as replay:
        r = replay.post("/api/explain", json={"prompt": Q})
        assert r.status_code == 400 and r.json()["error"]["code"] == "method_not_supported"
        assert "in-process" in r.json()["error"]["message"]
        assert replay.get("/api/info").json()["can_explain"] is False
    with TestClient(create_app(backend, api_key="k")) as guarded:
        assert guarded.post("/api/explain", json={"prompt": Q}).status_code == 401
