"""The web page in headless Chromium (the Debian package, driven by Playwright): ask, watch tokens stream in
coloured, hover for alternatives, recolour by another score, mark and list the claims of a claim-level
score, score a pasted answer, list past runs, explain an answer and click its tokens.

Screenshots are saved as ``test-artifacts/webui.png``, ``test-artifacts/webui-claims.png`` and
``test-artifacts/webui-explain.png``.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import httpx
import numpy as np
import pytest

from _browser import chromium
from tokentrust.render.colors import confidence_rgb

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

# Records when each coloured token and the action box appear, to prove tokens arrive one by one.
OBSERVE = """
window.__tt = {tokens: [], action: null};
new MutationObserver((muts) => {
  for (const m of muts) for (const n of m.addedNodes)
    if (n.classList && n.classList.contains('tt-tok')) window.__tt.tokens.push(performance.now());
}).observe(document.getElementById('output'), {childList: true});
new MutationObserver(() => {
  if (!document.getElementById('action').hidden && window.__tt.action === null) window.__tt.action = performance.now();
}).observe(document.getElementById('action'), {attributes: true});
"""


def _rgb(css: str) -> tuple[int, int, int]:
    return tuple(int(x) for x in re.findall(r"\d+", css)[:3])  # type: ignore[return-value]


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def test_ask_streams_coloured_tokens_with_alternatives(browser, server, backend):
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    external: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(server.url) else external.append(r.url))
    page.goto(server.url + "/")
    page.wait_for_selector("#policy-score option", state="attached")  # /api/info loaded
    assert backend.model_id in page.inner_text("#model")
    page.evaluate(OBSERVE)
    question = "What is the capital of Australia?"
    page.fill("#question", question)
    page.fill("#max-tokens", "16")
    page.click("#go")
    page.wait_for_selector("#action:not([hidden])", timeout=120_000)
    times = page.evaluate("window.__tt")
    reference = backend.generate(question, max_new_tokens=16)
    visible = [i for i, s in enumerate(reference.special) if not s]
    spans = page.locator("#output .tt-tok")
    assert spans.count() == len(visible) >= 3
    assert page.inner_text("#output") == reference.text
    # tokens were inserted one at a time, before the scores arrived
    assert len(times["tokens"]) == len(visible) and times["tokens"][0] < times["action"]
    # each token is coloured by its probability on the same scale as render/colors.py
    for k, i in enumerate(visible):
        p = float(spans.nth(k).get_attribute("data-p"))
        assert p == pytest.approx(math.exp(reference.logprobs[i]), abs=1e-4)
        assert _rgb(spans.nth(k).evaluate("e => getComputedStyle(e).backgroundColor")) == confidence_rgb(p)
    # the action box shows the policy's verdict on the geometric mean
    gm = math.exp(sum(reference.logprobs) / len(reference))
    action = "answer" if gm >= 0.8 else "hedge" if gm >= 0.3 else "abstain"
    assert page.get_attribute("#action", "class") == f"action {action}"
    if action == "hedge":
        assert "I'm not sure, but" in page.inner_text("#action")
    assert page.locator("#scores tbody tr").count() == 5
    # hover: probability, entropy and the top alternatives
    spans.nth(1).hover()
    tip = spans.nth(1).locator(".tt-tip")
    assert tip.is_visible()
    text = tip.inner_text()
    assert "p = " in text and "entropy = " in text
    assert tip.locator(".tt-alt").count() == reference.top_k
    assert repr(reference.top_tokens[visible[1]][1]).strip("'") in text or reference.top_tokens[visible[1]][1] in text
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "webui.png"), full_page=True)
    # recolour by entropy: the most uncertain visible token takes the low end of the scale
    page.select_option("#colour-by", "token_entropy")
    worst = max(visible, key=lambda i: reference.entropy[i])
    red = spans.nth(visible.index(worst)).evaluate("e => getComputedStyle(e).backgroundColor")
    assert _rgb(red) == confidence_rgb(0.0)
    assert not errors and not external
    page.close()


def test_score_a_pasted_answer_and_list_runs(browser, server, backend):
    page = browser.new_page()
    page.goto(server.url + "/")
    page.wait_for_selector("#policy-score option", state="attached")
    page.click("#tab-score")
    page.fill("#question", "What is the capital of Australia?")
    page.fill("#answer", "Sydney is the capital of Australia.")
    page.click("#go")
    page.wait_for_selector("#action:not([hidden])", timeout=120_000)
    forced = backend.score("What is the capital of Australia?", "Sydney is the capital of Australia.")
    probs = [float(x) for x in page.locator("#output .tt-tok").evaluate_all("es => es.map(e => e.dataset.p)")]
    want = [math.exp(lp) for lp, s in zip(forced.logprobs, forced.special) if not s]
    assert probs == pytest.approx(want, abs=1e-4)
    # past bench runs: only folders with a report or metrics, linked and served
    page.wait_for_selector("#runs a")
    links = page.locator("#runs a").evaluate_all("as => as.map(a => a.getAttribute('href'))")
    assert links == ["/runs/2026-11-26-capitals/report.html", "/runs/2026-11-26-capitals/metrics.json"]
    assert "capitals report" in httpx.get(server.url + links[0]).text
    assert httpx.get(server.url + "/runs/../../etc/passwd").status_code == 404
    page.close()


def _final_extension(sse: str) -> dict:
    """The ``tokentrust`` object of the last streamed chunk (the one carrying the whole Annotated)."""
    chunks = [json.loads(line[5:]) for line in sse.splitlines() if line.startswith("data:") and "[DONE]" not in line]
    return next(c["tokentrust"] for c in reversed(chunks) if "trace" in c.get("tokentrust", {}))


def test_replies_carry_the_claims_streamed_or_not(server):
    """What the page draws claims from: ``tokentrust.claims`` in a whole reply and in the last streamed chunk."""
    body = {"model": "m", "messages": [{"role": "user", "content": "What is the capital of Australia?"}],
            "max_tokens": 24, "tokentrust": {"estimators": ["ccp"]}}
    whole = httpx.post(server.url + "/v1/chat/completions", json=body, timeout=120).json()["tokentrust"]
    streamed = _final_extension(httpx.post(server.url + "/v1/chat/completions", json={**body, "stream": True},
                                           timeout=120).text)
    for ext in (whole, streamed):
        text = ext["trace"]["text"]
        assert ext["claims"] and all(text[slice(*c["char_span"])] == c["text"] and c["token_indices"]
                                     and "claim_conditioned_probability" in c["scores"] for c in ext["claims"])
    assert [(c["text"], c["char_span"]) for c in streamed["claims"]] == [(c["text"], c["char_span"]) for c in whole["claims"]]


def test_claim_scores_mark_and_list_the_claims(browser, server):
    page = browser.new_page(viewport={"width": 1100, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.url + "/")
    page.wait_for_selector("#policy-score option", state="attached")
    page.click("details summary")  # the claim-level scores are offered next to the answer scores
    ccp, prob = "claim_conditioned_probability", "claim_probability"
    assert "(ccp)" in page.inner_text("#estimators")
    assert ccp not in page.locator("#policy-score option").all_inner_texts()  # a policy needs a sequence score
    page.check(f'#estimators input[value="{ccp}"]')
    page.check(f'#estimators input[value="{prob}"]')
    assert page.is_hidden("#claims-toggle")
    page.fill("#question", "Tell me about Portugal in two sentences.")
    page.fill("#max-tokens", "48")
    with page.expect_response(lambda r: r.url.endswith("/v1/chat/completions")) as response:
        page.click("#go")
    page.wait_for_selector("#claims:not([hidden])", timeout=120_000)
    ext = _final_extension(response.value.text())
    claims, text = ext["claims"], ext["trace"]["text"]
    assert claims and all(set(c["scores"]) == {ccp, prob} for c in claims)
    # the list: one row per claim of the reply, with its scores
    rows = page.locator("#claims tbody tr")
    assert rows.count() == len(claims)
    for k, c in enumerate(claims):
        cells = rows.nth(k).locator("td").all_inner_texts()
        assert cells[:2] == [str(k + 1), c["text"]]
        assert [float(x) for x in cells[2:4]] == pytest.approx([c["scores"][ccp], c["scores"][prob]], rel=1e-3)
    changers = [ch for s in ext["scores"] if s["estimator"] == ccp for row in s["extras"]["changers"] for ch in row]
    if changers:
        best = max(changers, key=lambda ch: ch["prob"])
        assert f"{best['emitted']}→{best['alternative']} {best['prob']:.2f}" in page.inner_text("#claims")
    # the marks: each claim underlined at exactly its characters, in the colour of its CCP
    runs = page.locator("#output .tt-cl").evaluate_all(
        "es => es.map(e => [e.dataset.claims.split(' '), e.textContent, getComputedStyle(e).borderBottomColor])")
    for k, c in enumerate(claims):
        mine = [(t, colour) for numbers, t, colour in runs if str(k + 1) in numbers]
        assert "".join(t for t, _ in mine) == text[slice(*c["char_span"])]
        assert _rgb(mine[0][1]) == confidence_rgb(c["scores"][ccp])
    assert page.locator("#output .tt-cn").count() == len(claims)
    # hovering a claim shows its scores
    page.locator("#output .tt-cl").first.hover()
    assert page.is_visible("#claim-tip")
    assert f"{ccp} = " in page.inner_text("#claim-tip") and f"{prob} = " in page.inner_text("#claim-tip")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "webui-claims.png"), full_page=True)
    # the toggle hides the marks and shows them again
    style = "e => getComputedStyle(e).borderBottomStyle"
    page.uncheck("#show-claims")
    assert page.locator("#output .tt-cl").first.evaluate(style) == "none"
    assert not page.locator("#output .tt-cn").first.is_visible()
    page.check("#show-claims")
    assert page.locator("#output .tt-cl").first.evaluate(style) == "solid"
    assert page.locator("#output .tt-cn").first.is_visible()
    assert not errors
    page.close()


def test_explain_an_answer_and_click_a_token(browser, server):
    """The Explain tab: /api/explain's attribution drawn as a heatmap (cells = scores) and the prompt shaded for
    the last answer token; clicking another token shows its sources and its sentence."""
    from tokentrust.attribution import Attribution
    from tokentrust.attribution.verbalize import shares
    from tokentrust.render.attribution import importance_rgb

    page = browser.new_page(viewport={"width": 1200, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.url + "/")
    page.wait_for_selector("#explain-method option", state="attached")
    page.click("#tab-explain")
    assert page.is_visible("#explain-box") and page.is_hidden("#answer-panel")
    assert page.input_value("#explain-method") == "occlusion"
    page.fill("#question", "What is the capital of Australia?")
    page.fill("#max-tokens", "8")
    with page.expect_response(lambda r: r.url.endswith("/api/explain")) as response:
        page.click("#go")
    page.wait_for_selector("#explain-panel:not([hidden])", timeout=120_000)
    a = Attribution.model_validate(response.value.json())
    assert a.method == "occlusion" and a.granularity == "word" and len(a.targets) >= 3
    # the heatmap: one row per target, one cell per source, each cell holding its score
    cells = page.locator("#explain-heat tbody tr").evaluate_all(
        "rs => rs.map(r => [...r.querySelectorAll('td')].map(td => Number(td.dataset.score)))")
    assert np.allclose(cells, a.scores)
    tokens = page.locator("#explain-answer .tt-tgt")
    assert tokens.all_inner_texts() == [t.text for t in a.targets]

    def shown(i: int) -> None:  # the prompt shaded for target i, its sentence, its button and row marked
        assert page.inner_text("#explain-sentence") == a.extras["sentences"][i]
        assert page.get_attribute(f'#explain-answer .tt-tgt[data-target="{i}"]', "class") == "tt-tgt active"
        spans = page.locator("#explain-prompt .tt-src")
        got = spans.evaluate_all("es => es.map(e => [Number(e.dataset.source), getComputedStyle(e).backgroundColor])")
        assert sorted({j for j, _ in got}) == list(range(len(a.sources)))
        share = shares(a.scores[i])
        assert all(_rgb(colour) == importance_rgb(share[j]) for j, colour in got)

    shown(len(a.targets) - 1)  # the last target first
    assert page.locator("#explain-prompt .tt-special").first.inner_text() == "<|im_start|>"
    pick = next(i for i, t in enumerate(a.targets) if "Australia" in t.text)
    tokens.nth(pick).click()
    shown(pick)
    assert "'Australia' relied mostly on" in page.inner_text("#explain-sentence")
    page.locator("#explain-heat tbody tr").nth(0).locator("th").click()  # a heatmap row selects its target
    shown(0)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "webui-explain.png"), full_page=True)
    assert not errors
    page.close()
