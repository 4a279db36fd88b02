"""The web page in headless Chromium, as a keyboard, touch or phone user meets it: token popovers open by click,
tap and keyboard and stay on screen at 390 px; the legend names the colouring score and its scale; any token
score can colour the answer; Stop aborts a running answer; a key prompt instead of the API error; past runs with
model, dataset and accuracy; a calibrated server's decision; and the notebook fragment's popover escaping a
clipping output cell.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

from _browser import chromium
from _servers import API_KEY, RunningServer
from tokentrust import Trace, annotate
from tokentrust.render import render_html

TESTS = Path(__file__).resolve().parents[1]
PHONE = {"viewport": {"width": 390, "height": 800}, "has_touch": True, "is_mobile": True}


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def _open(browser, url: str, **context):
    ctx = browser.new_context(**context)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url + "/")
    return page, errors


def _ask(page, question: str, tokens: int) -> dict:
    """Ask through the page; the ``tokentrust`` extension of the final streamed chunk."""
    page.wait_for_selector("#policy-score option", state="attached")
    page.fill("#question", question)
    page.fill("#max-tokens", str(tokens))
    with page.expect_response(lambda r: r.url.endswith("/v1/chat/completions")) as response:
        page.click("#go")
    page.wait_for_selector("#action:not([hidden])", timeout=120_000)
    chunks = [json.loads(line[5:]) for line in response.value.text().splitlines()
              if line.startswith("data:") and "[DONE]" not in line]
    return next(c["tokentrust"] for c in reversed(chunks) if "trace" in c.get("tokentrust", {}))


def _box(locator) -> dict:
    return locator.evaluate("e => { const r = e.getBoundingClientRect(); "
                            "return {left: r.left, right: r.right, top: r.top, bottom: r.bottom}; }")


def _inside(box: dict, width: int, height: int) -> bool:
    return 0 <= box["left"] and box["right"] <= width and 0 <= box["top"] and box["bottom"] <= height


def test_phone_popover_by_keyboard_click_and_tap(browser, server):
    page, errors = _open(browser, server.url, **PHONE)
    _ask(page, "What is the capital of Australia? Answer in one sentence.", 24)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing pushed off-screen
    assert _inside(_box(page.locator("#apikey")), 390, 800)
    assert page.inner_text("#legend").endswith("colour: token_probability · fixed scale: a probability, "
                                               "orange = 0 … blue = 1")
    tokens = page.locator("#output .tt-tok")
    rights = tokens.evaluate_all("es => es.map(e => e.getBoundingClientRect().right)")
    end = max(range(len(rights)), key=rights.__getitem__)  # the token nearest the right edge
    tip = tokens.nth(end).locator(".tt-tip")
    # keyboard: Tab from the palette picker onto the tokens, on to the one at the line's end
    page.focus("#palette")
    for _ in range(end + 1):
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.dataset.index") == tokens.nth(end).get_attribute("data-index")
    assert tip.is_visible() and tokens.nth(end).get_attribute("aria-expanded") == "true"
    page.keyboard.press("Escape")
    assert not tip.is_visible()
    page.keyboard.press("Enter")
    assert tip.is_visible()
    assert _inside(_box(tip), 390, 800)  # moved back inside the viewport, not cut at the right edge
    page.keyboard.press(" ")
    assert not tip.is_visible()
    # the alternatives are a table: one row per alternative, columns aligned
    page.keyboard.press("Enter")
    lefts = tip.locator(".tt-alt").evaluate_all(
        "rs => rs.map(r => [...r.children].map(c => Math.round(c.getBoundingClientRect().left)))")
    assert len(lefts) >= 3 and all(row == lefts[0] for row in lefts)
    # click and tap: the first token's popover opens, a second click closes it
    first = tokens.nth(0)
    first.click()
    assert first.locator(".tt-tip").is_visible() and not tip.is_visible()
    first.click()
    assert not first.locator(".tt-tip").is_visible()
    tokens.nth(1).tap()
    assert tokens.nth(1).locator(".tt-tip").is_visible()
    assert _inside(_box(tokens.nth(1).locator(".tt-tip")), 390, 800)
    assert not errors
    page.context.close()


def test_any_token_score_colours_with_an_honest_legend(browser, server):
    page, errors = _open(browser, server.url, viewport={"width": 1000, "height": 900})
    ext = _ask(page, "What is the capital of France?", 8)
    info = page.evaluate("fetch('/api/info').then(r => r.json())")
    token_scores = {e["id"] for e in info["estimators"] if e["level"] == "token" and e["available"]}
    assert len(token_scores) > 2 and token_scores <= set(page.locator("#colour-by option").evaluate_all(
        "os => os.map(o => o.value)"))
    page.select_option("#colour-by", "token_entropy")
    legend = page.locator("#legend")
    assert legend.get_attribute("data-fixed") == "false"
    assert "colour: token_entropy · relative to this answer (not a probability, rescaled)" in legend.inner_text()
    entropy = next(s for s in ext["scores"] if s["estimator"] == "token_entropy")
    visible = [i for i, s in enumerate(ext["trace"]["special"]) if not s]
    worst = min(visible, key=lambda i: entropy["values"][i])
    assert f"(raw {entropy['raw'][worst]:.4g})" in legend.inner_text()
    tok = page.locator(f'#output .tt-tok[data-index="{worst}"]')
    tok.focus()
    line = tok.locator(".tt-score").inner_text()
    assert line.startswith("token_entropy = ") and f"raw {entropy['raw'][worst]:.4g}" in line
    # a score this answer lacks: the legend says so, and the next answer computes it
    page.select_option("#colour-by", "token_margin")
    assert "token_margin was not computed for this answer" in legend.inner_text()
    ext = _ask(page, "What is the capital of France?", 8)
    assert "token_margin" in {s["estimator"] for s in ext["scores"]}
    assert page.input_value("#colour-by") == "token_margin" and legend.get_attribute("data-score") == "token_margin"
    # the score picker: grouped by cost, with the hint
    groups = page.locator("#estimators fieldset").evaluate_all("fs => fs.map(f => f.dataset.cost)")
    assert groups == ["trace", "pass", "sampling"]
    assert "n times the answer's time" in page.text_content('#estimators fieldset[data-cost="sampling"] legend')
    assert "sampling (10 answers)" in page.text_content('#estimators fieldset[data-cost="sampling"]')
    assert not errors
    page.context.close()


def test_stop_aborts_the_running_answer(browser, server):
    page, errors = _open(browser, server.url, viewport={"width": 1000, "height": 900})
    page.wait_for_selector("#policy-score option", state="attached")
    page.fill("#question", "Write a long story about a dragon who learns to read.")
    page.fill("#max-tokens", "400")
    failed: list[str] = []
    page.on("requestfailed", lambda r: failed.append(r.failure or "") if "/v1/chat" in r.url else None)
    page.click("#go")
    page.wait_for_function("document.querySelectorAll('#output .tt-tok').length >= 3", timeout=60_000)
    assert page.is_visible("#stop")
    page.click("#stop")
    page.wait_for_function("document.getElementById('status').textContent.startsWith('stopped')")
    n = page.locator("#output .tt-tok").count()
    page.wait_for_timeout(1000)
    assert page.locator("#output .tt-tok").count() == n < 400  # nothing arrives after Stop
    assert page.is_hidden("#action") and page.is_hidden("#stop") and page.is_enabled("#go")
    assert failed and "ABORTED" in failed[0].upper()
    assert not errors
    page.context.close()


def test_key_prompt_instead_of_the_api_error(browser, guarded_server):
    page, errors = _open(browser, guarded_server.url, **PHONE)
    page.wait_for_selector("#key-prompt:not([hidden])")
    assert "This server asks for an API key" in page.inner_text("#key-prompt")
    assert "Authorization" not in page.inner_text("body")  # the API clients' wording stays out of the page
    page.wait_for_function("document.activeElement && document.activeElement.id === 'apikey'")
    assert _inside(_box(page.locator("#apikey")), 390, 800)
    page.wait_for_function("document.getElementById('runs').innerText.includes('enter the API key')")
    page.fill("#apikey", "wrong")
    page.press("#apikey", "Enter")
    page.wait_for_function("document.getElementById('status').textContent.includes('not accepted')")
    page.fill("#apikey", API_KEY)
    page.press("#apikey", "Enter")
    page.wait_for_selector("#policy-score option", state="attached")
    assert page.is_hidden("#key-prompt") and "SmolLM2" in page.inner_text("#model")
    assert not errors
    page.context.close()


def _finalized_run(root: Path) -> dict:
    """A finalized run folder under ``root`` (the benchmark tests' hand-built run), and its metrics."""
    spec = importlib.util.spec_from_file_location("_bench_helpers", TESTS / "bench" / "_bench_helpers.py")
    helpers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(helpers)
    from tokentrust.bench.runner import finalize

    out = helpers.hand_run_folder(root, n=12)
    finalize(out)
    return json.loads((out / "metrics.json").read_text())


@pytest.fixture(scope="module")
def calibrated_server(backend, tmp_path_factory):
    """The default model with a Platt calibrator on its maximum sequence probability, and a finalized run."""
    from tokentrust.calibration import PlattCalibrator
    from tokentrust.serve import create_app

    root = tmp_path_factory.mktemp("page-runs")
    metrics = _finalized_run(root)
    cal = PlattCalibrator().fit([0.1, 0.2, 0.4, 0.6, 0.8, 0.9], [0, 0, 1, 0, 1, 1])
    cal = cal.bind(model=backend.model_id, score="maximum_sequence_probability")
    with RunningServer(create_app(backend, runs_dir=root, calibrator=cal)) as srv:
        srv.metrics = metrics
        yield srv


def test_calibrated_decision_and_past_runs(browser, calibrated_server):
    page, errors = _open(browser, calibrated_server.url, viewport={"width": 1000, "height": 900})
    page.wait_for_selector("#policy-score option", state="attached")
    assert page.locator("#policy-score option").first.inner_text() == "calibrated: platt(maximum_sequence_probability)"
    # past runs: model, dataset, accuracy and date from the run's metrics
    page.wait_for_selector("#runs tbody tr")
    m = calibrated_server.metrics
    cells = page.locator("#runs tbody tr").first.locator("td").all_inner_texts()
    assert cells[:4] == ["run", m["model"], m["dataset"]["name"], f"{100 * m['accuracy']:.1f} % of {m['n_items']}"]
    assert cells[4] and "report.html" in cells[5]
    # the decision: the calibrated probability that the answer is correct, its band and the phrase
    ext = _ask(page, "What is the capital of Italy?", 8)
    d = ext["decision"]
    assert d["score"] == "calibrated_confidence"
    box = page.locator("#action")
    assert box.get_attribute("data-action") == d["action"]
    p = float(page.inner_text("#action .prob").split(": ")[1].split()[0])
    assert p == pytest.approx(d["probability"], rel=6e-3)  # shown to three significant digits
    assert "(calibrated)" in page.inner_text("#action .prob")
    assert page.inner_text("#action .phrase") == d["phrase"]
    if d["band"] not in (None, d["action"]):
        assert f"{d['band']} band" in page.inner_text("#action .act").lower()
    msp = next(s for s in ext["scores"] if s["estimator"] == "maximum_sequence_probability")["values"][0]
    assert 0 < d["probability"] < 1 and not math.isclose(d["probability"], msp)  # calibrated, not the raw score
    assert not errors
    page.context.close()


@pytest.mark.parametrize("scripts", [True, False], ids=["script", "no-script"])
def test_notebook_fragment_popover_escapes_a_clipping_cell(browser, scripts):
    """A notebook output cell clips what overflows it; the fragment's popover still shows whole, on screen."""
    result = annotate(Trace.load(TESTS / "data" / "golden" / "greedy_chat.json"))
    ctx = browser.new_context(viewport={"width": 390, "height": 500}, java_script_enabled=scripts)
    page = ctx.new_page()
    page.set_content('<div style="margin-top:200px;margin-left:150px;width:220px;height:70px;overflow:auto">'
                     f"{render_html(result)}</div>")
    page.keyboard.press("Tab")
    tok = page.locator(".tt-tok").first
    tip = tok.locator(".tt-tip")
    assert tip.is_visible()
    if scripts:
        box = _box(tip)
        assert _inside(box, 390, 500)
        x, y = (box["left"] + box["right"]) / 2, (box["top"] + box["bottom"]) / 2
        assert page.evaluate(f"document.elementFromPoint({x}, {y}).closest('.tt-tip') !== null")  # not clipped
        page.keyboard.press("Escape")
        assert not tip.is_visible()
        page.keyboard.press("Enter")
        assert tip.is_visible()
    ctx.close()


def test_a_claim_filter_names_the_claims_it_removed(browser, backend):
    """A policy whose claim filter keeps no claim (threshold 1): the page abstains and lists every claim."""
    from tokentrust.decide import ClaimRule, Policy
    from tokentrust.serve import create_app

    rule = ClaimRule(score="claim_conditioned_probability", threshold=1.0, epsilon=0.2, n=10, kept_share=0.0,
                     answers_all_true=1.0, run="hand-made", model=backend.model_id)
    with RunningServer(create_app(backend, policy=Policy(claims=rule))) as srv:
        page, errors = _open(browser, srv.url)
        ext = _ask(page, "Tell me about Portugal in two sentences.", 40)
        removed = page.inner_text("#action .removed-claims")
    claims = ext["decision"]["claims"]
    assert claims and not any(c["kept"] for c in claims) and ext["decision"]["action"] == "abstain"
    assert removed.startswith(f"removed {len(claims)} of {len(claims)} claims: ")
    assert all(c["text"] in removed for c in claims)
    assert not errors
    page.context.close()
