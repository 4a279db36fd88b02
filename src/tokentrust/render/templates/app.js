// tokentrust web page: streams answers from /v1/chat/completions and colours each token by confidence;
// when the answer has claims (a claim-level score was chosen), underlines each claim in its confidence colour.
// The colour palettes come from /api/info (tokentrust/render/colors.py PALETTES), so the page, the terminal,
// notebooks and reports draw the same scale. The legend names the colouring score and says whether its scale
// is fixed (a probability) or relative to this answer (render/_view.py ColourKey). Token popovers open on
// hover, click, tap and keyboard (popover.js). The Explain tab asks /api/explain and draws the attribution as
// render/attribution.py does.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { mode: "ask", info: null, tokens: [], ext: null, claims: [], attribution: null, controller: null };
const TOKEN_PROBABILITY = "token_probability";

// ---- colours -----------------------------------------------------------------------------------------
function currentPalette() {
  const pals = state.info && state.info.palettes;
  if (!pals) return { stops: [[0, [190, 190, 190]], [1, [190, 190, 190]]], low: "0", high: "1" };
  return pals[$("palette").value] || pals[state.info.default_palette];
}
// Mirrors render/colors.py confidence_rgb: linear between the palette's stops; NaN/null is grey.
function confidenceRgb(p) {
  if (p === null || p === undefined || Number.isNaN(p)) return [190, 190, 190];
  const stops = currentPalette().stops;
  p = Math.min(1, Math.max(0, p));
  for (let i = 0; i < stops.length - 1; i++) {
    const [x0, c0] = stops[i], [x1, c1] = stops[i + 1];
    if (p <= x1) {
      const f = (p - x0) / (x1 - x0);
      return c0.map((a, k) => Math.round(a + f * (c1[k] - a)));
    }
  }
  return stops[stops.length - 1][1];
}
function hexOf(rgb) {
  return "#" + rgb.map((v) => v.toString(16).padStart(2, "0")).join("");
}
function confidenceColor(p) {
  return hexOf(confidenceRgb(p));
}
// Mirrors render/colors.py readable_on: black or white, whichever has the higher WCAG contrast.
function readableOn(rgb) {
  const lin = (v) => { const c = v / 255; return c <= 0.04045 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4); };
  const y = 0.2126 * lin(rgb[0]) + 0.7152 * lin(rgb[1]) + 0.0722 * lin(rgb[2]);
  return (y + 0.05) / 0.05 >= 1.05 / (y + 0.05) ? "#000000" : "#ffffff";
}
function textColor(p) {
  return readableOn(confidenceRgb(p));
}

// ---- requests ----------------------------------------------------------------------------------------
function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("apikey").value.trim();
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}
function rememberKey() {
  const key = $("apikey").value.trim();
  localStorage.setItem("tt_key", key);
  document.cookie = "tt_key=" + encodeURIComponent(key) + "; path=/; SameSite=Strict";
}
// A request the server refused for want of the right key: the page asks for it instead of showing the API error.
class KeyNeeded extends Error {}
const KEY_MESSAGE = "this server asks for an API key: type it into the API key box at the top";
function keyPrompt(show) {
  $("key-prompt").hidden = !show;
  $("apikey").classList.toggle("needed", show);
  if (show) $("apikey").focus();
}
async function failure(r) {
  const body = await r.json().catch(() => ({}));
  if (r.status === 401) {
    keyPrompt(true);
    return new KeyNeeded($("apikey").value.trim() ? "the API key was not accepted: check it and press Enter" : KEY_MESSAGE);
  }
  return new Error((body.error && body.error.message) || r.statusText);
}
async function getJSON(url, options) {
  const r = await fetch(url, Object.assign({ headers: headers(), signal: state.controller && state.controller.signal }, options || {}));
  if (!r.ok) throw await failure(r);
  keyPrompt(false);
  return r.json();
}
function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "muted";
}
function fmt(x, digits) {
  return x === null || x === undefined || Number.isNaN(x) ? "–" : Number(x).toPrecision(digits || 4);
}

// ---- tokens ------------------------------------------------------------------------------------------
// A streamed token record (tokentrust.trace.TokenRecord) in the shape the page draws.
function tokenView(rec) {
  const top = rec.top_tokens.map((t, k) => ({ token: t, logprob: rec.top_logprobs[k] }));
  const prob = rec.logprob === null ? null : Math.exp(rec.logprob);
  return { index: rec.index, token: rec.token, text: rec.text, special: rec.special, logprob: rec.logprob,
           prob: prob, entropy: rec.entropy === undefined ? null : rec.entropy, top: top };
}

// Token i of a trace (the final answer's Annotated JSON), as the same view.
function traceToken(trace, i) {
  const [start, end] = trace.offsets[i];
  const col = (name) => (trace[name] ? trace[name][i] : null);
  return tokenView({ index: i, token: trace.tokens[i], text: trace.text.slice(start, end), special: trace.special[i],
                     logprob: trace.logprobs[i], top_tokens: trace.top_tokens[i], top_logprobs: trace.top_logprobs[i],
                     entropy: col("entropy") });
}

function cell(text, cls) {
  const c = document.createElement("span");
  c.setAttribute("role", "cell");
  if (cls) c.className = cls;
  c.textContent = text;
  return c;
}
// The popover: probability, entropy, the colouring score's value (filled by recolour) and the alternatives
// as a table (marker, token, probability, bar), as render/html.py draws it.
function tooltip(tok) {
  const tip = document.createElement("span");
  tip.className = "tt-tip";
  tip.setAttribute("role", "tooltip");
  const head = document.createElement("span");
  head.className = "tt-line";
  head.textContent = "p = " + fmt(tok.prob, 3) + " · logprob = " + fmt(tok.logprob, 4) + " · " +
    (tok.entropy === null ? "entropy: not available" : "entropy = " + fmt(tok.entropy, 3) + " nats");
  const score = document.createElement("span");
  score.className = "tt-line tt-score";
  score.hidden = true;
  const table = document.createElement("span");
  table.className = "tt-alts";
  table.setAttribute("role", "table");
  table.setAttribute("aria-label", "alternatives");
  for (const alt of tok.top) {
    const p = Math.exp(alt.logprob);
    const chosen = alt.token === tok.token;
    const row = document.createElement("span");
    row.className = "tt-alt" + (chosen ? " tt-chosen" : "");
    row.setAttribute("role", "row");
    const bar = document.createElement("span");
    bar.className = "tt-bar";
    bar.style.width = Math.max(1, Math.round(p * 60)) + "px";
    const barCell = cell("");
    barCell.append(bar);
    row.append(cell(chosen ? "▸" : ""), cell(JSON.stringify(alt.token)), cell(p.toFixed(3), "tt-num"), barCell);
    table.append(row);
  }
  tip.append(head, score, table);
  return tip;
}

function addToken(tok) {
  state.tokens[tok.index] = tok;
  if (tok.special) return;
  const span = document.createElement("span");
  span.className = "tt-tok";
  span.dataset.index = tok.index;
  span.dataset.p = tok.prob;
  span.tabIndex = 0;
  span.setAttribute("role", "button");
  span.setAttribute("aria-expanded", "false");
  span.append(document.createTextNode(tok.text || tok.token), tooltip(tok));
  paint(span, tok.prob);
  $("output").append(span);
  if (!$("legend").hasChildNodes()) drawLegend($("legend"), probabilityKey());
}

function paint(span, value) {
  span.style.background = confidenceColor(value);
  span.style.color = textColor(value);
  span.dataset.value = value;
}

function scoresAt(ann, level) {
  const out = {};
  for (const s of ann.scores) if (s.level === level) out[s.estimator] = s;
  return out;
}

// Mirrors render/_view.py scaled: probabilities as they are, other scores min-max scaled over the
// finite values not skipped (null = NaN, grey).
function scaled(values, isProbability, skip) {
  if (isProbability) return values.map((v) => (v === null ? NaN : v));
  const finite = values.filter((v, i) => v !== null && !(skip && skip[i]));
  const lo = finite.length ? Math.min(...finite) : 0, hi = finite.length ? Math.max(...finite) : 1;
  const span = hi - lo || 1;
  return values.map((v) => (v === null ? NaN : (v - lo) / span));
}

// Mirrors render/_view.py colour_key: the colouring score and its scale (fixed, or this answer's extremes).
function colourKey(score, values, raw, isProbability, skip) {
  if (isProbability) return { score, fixed: true };
  let lo = -1, hi = -1;
  values.forEach((v, i) => {
    if (v === null || (skip && skip[i])) return;
    if (lo < 0 || v < values[lo]) lo = i;
    if (hi < 0 || v > values[hi]) hi = i;
  });
  if (lo < 0) return { score, fixed: false, low: null };
  return { score, fixed: false, low: values[lo], high: values[hi], lowRaw: raw[lo], highRaw: raw[hi] };
}
function probabilityKey() {
  return { score: TOKEN_PROBABILITY, fixed: true };
}
// "value" and, where it differs, "(raw …)" (render/_view.py value_text).
function pair(value, raw) {
  return raw === null || raw === undefined || raw === value ? fmt(value) : fmt(value) + " (raw " + fmt(raw) + ")";
}
function describeKey(key) {
  const pal = currentPalette();
  if (key.fixed) return "colour: " + key.score + " · fixed scale: a probability, " + pal.low + " = 0 … " + pal.high + " = 1";
  if (key.low === null) return "colour: " + key.score + " · relative to this answer (no finite value to scale)";
  return "colour: " + key.score + " · relative to this answer (not a probability, rescaled): " + pal.low +
    " = lowest here " + pair(key.low, key.lowRaw) + " … " + pal.high + " = highest here " + pair(key.high, key.highRaw);
}
function drawLegend(box, key, what, note) {
  box.innerHTML = "";
  box.dataset.score = key.score;
  box.dataset.fixed = String(key.fixed);
  const grad = document.createElement("span");
  grad.className = "tt-grad";
  grad.style.background = "linear-gradient(90deg," + [0, 0.25, 0.5, 0.75, 1].map(confidenceColor).join(",") + ")";
  const nan = document.createElement("span");
  nan.className = "tt-nan";
  nan.style.background = confidenceColor(NaN);
  nan.textContent = "n/a";
  const text = document.createElement("span");
  text.className = "tt-key";
  text.textContent = (what || "") + describeKey(key) + (note ? " — " + note : "");
  const [low, high] = key.fixed ? ["0", "1"] : ["lowest", "highest"];
  box.append(low, grad, high, nan, text);
  box.hidden = false;
}

// Mirrors render/_view.py token_views: the chosen token score (scaled) when this answer has it, else the
// token probability; the legend says which, and says when the chosen score comes with the next answer.
function colouring(choice) {
  const toks = state.tokens;
  const tokenScores = state.ext ? scoresAt(state.ext, "token") : {};
  const s = tokenScores[choice];
  if (choice === TOKEN_PROBABILITY || !s) {
    const probs = toks.map((t) => t.prob);
    const note = choice !== TOKEN_PROBABILITY && state.ext ? choice + " was not computed for this answer; it will be for the next one" : "";
    return { values: probs, shown: probs, raw: probs, key: probabilityKey(), note };
  }
  const skip = toks.map((t) => t.special);
  return { values: scaled(s.values, s.is_probability, skip), shown: s.values, raw: s.raw,
           key: colourKey(s.estimator, s.values, s.raw, s.is_probability, skip), note: "" };
}

function recolour() {
  if (!state.tokens.length) return;
  const c = colouring($("colour-by").value);
  for (const span of $("output").querySelectorAll(".tt-tok")) {
    const i = Number(span.dataset.index);
    paint(span, c.values[i]);
    const line = span.querySelector(".tt-score");
    line.hidden = c.key.score === TOKEN_PROBABILITY;
    line.textContent = c.key.score + " = " + pair(c.shown[i], c.raw[i]);
  }
  drawLegend($("legend"), c.key, "", c.note);
}

// ---- claims ------------------------------------------------------------------------------------------
// Mirrors render/_view.py claim_views: claims coloured by the first claim-level score, with the
// alternatives that would change them (CCP's "changers"), most probable first.
function claimViews(ext) {
  const claims = ext.claims || [];
  const scores = ext.scores.filter((s) => s.level === "claim");
  const colour = scores[0];
  const raw = claims.map((c) => (colour && c.scores[colour.estimator] !== undefined ? c.scores[colour.estimator] : null));
  const values = scaled(raw, colour ? colour.is_probability : false);
  const source = scores.find((s) => s.extras && s.extras.changers);
  const changers = {};
  if (source) {  // claim k ↔ row j of the score: its claims in order, matched by token span
    let j = 0;
    claims.forEach((c, k) => {
      if (!(source.estimator in c.scores)) return;
      while (j < source.spans.length && source.spans[j].join() !== c.token_indices.join()) j++;
      if (j < source.spans.length) changers[k] = source.extras.changers[j++];
    });
  }
  const rows = {};  // claim k ↔ row j of the colouring score, for its raw values
  if (colour) {
    let j = 0;
    claims.forEach((c, k) => {
      if (!(colour.estimator in c.scores)) return;
      while (j < colour.spans.length && colour.spans[j].join() !== c.token_indices.join()) j++;
      if (j < colour.spans.length) rows[k] = j++;
    });
  }
  state.claimKey = colour ? colourKey(colour.estimator, raw, claims.map((_, k) => (k in rows ? colour.raw[rows[k]] : null)),
                                      colour.is_probability) : null;
  return claims.map((c, k) => ({
    number: k + 1, text: c.text, span: c.char_span, tokens: c.token_indices, value: values[k],
    scores: Object.fromEntries(scores.map((s) => [s.estimator, c.scores[s.estimator]])),
    changers: (changers[k] || []).slice().sort((a, b) => b.prob - a.prob),
  }));
}
// An estimator id as a column header: its shortest alias ("ccp") when it has one (render/_view.py short_name).
function shortName(id) {
  const row = state.info && state.info.estimators.find((e) => e.id === id);
  const aliases = (row && row.aliases) || [];
  return aliases.length ? aliases.reduce((a, b) => (b.length < a.length ? b : a)) : id;
}
function changerText(c, n) {
  return c.changers.slice(0, n || 3).map((ch) => ch.emitted + "→" + ch.alternative + " " + ch.prob.toFixed(2)).join(", ");
}
function claimSummary(c) {
  const lines = ["claim " + c.number + ": " + c.text];
  for (const [id, v] of Object.entries(c.scores)) lines.push(id + " = " + fmt(v));
  if (c.changers.length) lines.push("would change it: " + changerText(c));
  return lines.join("\n");
}

// Cut each token's text where matched claims start and end; claim runs are underlined in the claim's colour.
function markClaims(ext, claims) {
  const { text, offsets } = ext.trace;
  const marked = claims.filter((c) => c.tokens.length);
  const bounds = [...new Set(marked.flatMap((c) => c.span))];
  for (const span of $("output").querySelectorAll(".tt-tok")) {
    const [a, b] = offsets[Number(span.dataset.index)];
    if (a === b) continue;
    const points = [a, ...bounds.filter((x) => x > a && x < b).sort((x, y) => x - y), b];
    const nodes = [];
    for (let k = 0; k + 1 < points.length; k++) {
      const [x, y] = [points[k], points[k + 1]];
      const covering = marked.filter((c) => c.span[0] <= x && y <= c.span[1]);
      if (!covering.length) { nodes.push(document.createTextNode(text.slice(x, y))); continue; }
      const run = document.createElement("span");
      run.className = "tt-cl";
      run.dataset.claims = covering.map((c) => c.number).join(" ");
      run.dataset.value = covering[0].value;
      run.style.borderBottomColor = confidenceColor(covering[0].value);
      run.textContent = text.slice(x, y);
      nodes.push(run);
      for (const c of covering.slice().reverse()) {
        if (c.span[1] !== y) continue;
        const sup = document.createElement("sup");
        sup.className = "tt-cn";
        sup.textContent = c.number;
        nodes.push(sup);
      }
    }
    span.replaceChildren(...nodes, span.querySelector(".tt-tip"));
  }
}

function showClaims(ext) {
  const claims = claimViews(ext);
  state.claims = claims;
  $("claims-toggle").hidden = $("claims").hidden = !claims.length;
  const asked = ext.scores.some((s) => s.level === "claim");
  $("claims-note").hidden = !asked;
  if (!claims.length) { $("claims-note").textContent = "no claims in this answer"; return; }
  markClaims(ext, claims);
  const ids = Object.keys(claims[0].scores);
  const withChangers = claims.some((c) => c.changers.length);
  $("claims").querySelector("caption").textContent = "claims" + (ids.length ? ", coloured by " + ids[0] : "");
  const head = $("claims").querySelector("thead tr");
  head.innerHTML = "";
  for (const h of ["#", "claim", ...ids.map(shortName), ...(withChangers ? ["would change it"] : [])]) {
    const th = document.createElement("th");
    th.textContent = h;
    head.append(th);
  }
  const body = $("claims").querySelector("tbody");
  body.innerHTML = "";
  for (const c of claims) {
    const tr = document.createElement("tr");
    tr.dataset.claim = c.number;
    const cells = [String(c.number), c.text, ...ids.map((id) => fmt(c.scores[id]))];
    if (withChangers) cells.push(changerText(c) || "–");
    for (const cell of cells) {
      const td = document.createElement("td");
      td.textContent = cell;
      tr.append(td);
    }
    tr.firstChild.dataset.value = c.value;
    body.append(tr);
  }
  paintClaims();
  const unmatched = claims.filter((c) => !c.tokens.length).map((c) => "#" + c.number);
  $("claims-note").textContent = "claims that matched no answer token: " + (unmatched.join(", ") || "none");
  toggleClaims();
}

// Claim colours (underlines and the number cells) in the current palette, and their legend.
function paintClaims() {
  for (const run of $("output").querySelectorAll(".tt-cl")) run.style.borderBottomColor = confidenceColor(Number(run.dataset.value));
  for (const td of $("claims").querySelectorAll("tbody td[data-value]")) {
    td.style.background = confidenceColor(Number(td.dataset.value));
    td.style.color = textColor(Number(td.dataset.value));
  }
  if (state.claimKey && state.claims.length) drawLegend($("claims-legend"), state.claimKey, "claims: ");
}

function toggleClaims() {
  $("output").classList.toggle("claims-off", !$("show-claims").checked);
  hideClaimTip();
}

function highlight(numbers) {
  for (const run of $("output").querySelectorAll(".tt-cl")) {
    run.classList.toggle("hot", run.dataset.claims.split(" ").some((n) => numbers.includes(n)));
  }
}
function showClaimTip(run) {
  const numbers = run.dataset.claims.split(" ");
  const tip = $("claim-tip");
  tip.textContent = numbers.map((n) => claimSummary(state.claims[Number(n) - 1])).join("\n\n");
  tip.hidden = false;
  const r = run.getBoundingClientRect();
  tip.style.left = Math.max(4, r.left) + "px";
  tip.style.top = Math.max(4, r.top - tip.offsetHeight - 6) + "px";
  highlight(numbers);
}
function hideClaimTip() {
  $("claim-tip").hidden = true;
  highlight([]);
}
function onClaimHover(event) {
  const run = event.target.closest && event.target.closest(".tt-cl");
  if (run && $("show-claims").checked) showClaimTip(run);
  else hideClaimTip();
}
function onClaimRowHover(event) {
  const row = event.target.closest && event.target.closest("tr[data-claim]");
  highlight(row && $("show-claims").checked ? [row.dataset.claim] : []);
}

function showResult(ext) {
  state.ext = ext;
  state.tokens = ext.trace.tokens.map((_, i) => traceToken(ext.trace, i));
  colourChoices(Object.keys(scoresAt(ext, "token")));
  recolour();
  const body = $("scores").querySelector("tbody");
  body.innerHTML = "";
  for (const [name, s] of Object.entries(scoresAt(ext, "sequence"))) {
    const tr = document.createElement("tr");
    for (const cell of [name, fmt(s.values[0]), fmt(s.raw[0])]) {
      const td = document.createElement("td");
      td.textContent = cell;
      tr.append(td);
    }
    body.append(tr);
  }
  $("scores").hidden = false;
  showClaims(ext);
  showDecision(ext.decision);
}

const CALIBRATED = "calibrated_confidence";
// The decision (render/html.py decision_html): the action and its band, the probability that the answer is
// correct when a calibrator gave it (else the uncalibrated score it was based on), the phrase to show,
// the rationale, the guarantee and the thresholds.
function showDecision(a) {
  const box = $("action");
  if (!a) { box.hidden = true; return; }
  box.className = "action " + a.action;
  box.dataset.action = a.action;
  box.innerHTML = "";
  const tag = document.createElement("b");
  tag.className = "act";
  tag.textContent = a.action + (a.band && a.band !== a.action ? " · " + a.band + " band" : "");
  const phrase = document.createElement("div");
  phrase.className = "phrase";
  phrase.textContent = a.phrase !== undefined ? a.phrase : a.text;
  const p = a.probability !== undefined ? a.probability : a.value;
  const prob = document.createElement("div");
  prob.className = "prob";
  prob.textContent = a.score === CALIBRATED
    ? "probability that the answer is correct: " + fmt(p, 3) + " (calibrated)"
    : a.score + " = " + fmt(p, 3) + " (not calibrated: a score, not the probability of being right)";
  const why = document.createElement("div");
  why.className = "muted";
  const bands = ["answer at ≥ " + a.hedge_below, "hedge below " + a.hedge_below];
  if (a.low_below !== null && a.low_below !== undefined && a.low_below !== a.abstain_below) bands.push("really unsure below " + a.low_below);
  bands.push(a.abstain_below > 0 ? "abstain below " + a.abstain_below : "never abstain");
  why.textContent = bands.join(" · ");
  box.append(tag, phrase, prob);
  if (a.rationale) {
    const r = document.createElement("div");
    r.className = "rationale";
    r.textContent = a.rationale;
    box.append(r);
  }
  const c = a.cascade;
  if (c && (c.deferred || c.note)) {  // serve --defer-to: say whose answer the reply is
    const d = document.createElement("div");
    d.className = "muted cascade";
    d.textContent = c.deferred
      ? "deferred to " + c.large + " (" + c.rule + " " + fmt(c.score, 3) + " below " + fmt(c.threshold, 3) +
        "): the reply is its answer, shown above as the phrase; the coloured tokens are the served model's " +
        "answer, which the scores describe"
      : c.note;
    box.append(d);
  }
  const removed = (a.claims || []).filter((k) => !k.kept);
  if (removed.length) {  // a policy's claim filter cut these claims from the answer
    const r = document.createElement("div");
    r.className = "muted removed-claims";
    r.textContent = "removed " + removed.length + " of " + a.claims.length + " claims: " +
      removed.map((k) => k.text + " (" + fmt(k.value, 3) + ")").join(" | ");
    box.append(r);
  }
  if (a.guaranteed) {
    const g = document.createElement("div");
    g.className = "muted guarantee";
    g.textContent = "guarantee: " + a.guaranteed;
    box.append(g);
  }
  box.append(why);
  box.hidden = false;
}

function reset() {
  state.tokens = [];
  state.ext = null;
  state.claims = [];
  state.attribution = null;
  $("explain-panel").hidden = true;
  $("output").innerHTML = "";
  $("action").hidden = true;
  $("scores").hidden = true;
  $("claims").hidden = $("claims-note").hidden = $("claims-toggle").hidden = $("claims-legend").hidden = true;
  $("legend").innerHTML = "";
  state.claimKey = null;
  hideClaimTip();
}

// ---- requests ----------------------------------------------------------------------------------------
// The request's scores (the ticked ones and the colouring score) and policy changes: only what differs from
// the server's policy is sent, so its calibrator and guarantee stay in force unless the user changes them.
function options() {
  const estimators = [...document.querySelectorAll("#estimators input:checked")].map((i) => i.value);
  const colour = $("colour-by").value;
  if (colour !== TOKEN_PROBABILITY && !estimators.includes(colour)) estimators.push(colour);
  const server = state.info.policy, policy = {};
  if ($("policy-score").value && $("policy-score").value !== server.score) policy.score = $("policy-score").value;
  const hb = $("hedge-below").value, ab = $("abstain-below").value;
  if (hb !== "" && Number(hb) !== server.hedge_below) policy.hedge_below = Number(hb);
  if (ab !== "" && Number(ab) !== server.abstain_below) policy.abstain_below = Number(ab);
  return Object.keys(policy).length ? { estimators, policy } : { estimators };
}

async function ask(question) {
  const body = {
    model: state.info.model,
    messages: [{ role: "user", content: question }],
    max_tokens: Number($("max-tokens").value) || 64,
    temperature: Number($("temperature").value) || 0,
    stream: state.info.can_stream,
    tokentrust: options(),
  };
  if (!body.stream) {  // a backend that cannot stream: the whole answer at once
    const res = await getJSON("/v1/chat/completions", { method: "POST", body: JSON.stringify(body) });
    showAnswer(res.tokentrust);
    return;
  }
  const r = await fetch("/v1/chat/completions", { method: "POST", headers: headers(), body: JSON.stringify(body),
                                                   signal: state.controller.signal });
  if (!r.ok) throw await failure(r);
  keyPrompt(false);
  const reader = r.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") return;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message);
        const ext = chunk.tokentrust;
        if (!ext) continue;
        if (ext.tokens) {
          for (const rec of ext.tokens) addToken(tokenView(rec));
          setStatus("generating… " + state.tokens.length + " tokens");
        } else if (ext.trace) {
          showResult(ext);
        }
      }
    }
  }
}

async function score(question, answer) {
  const body = { prompt: question, answer: answer, tokentrust: options() };
  const res = await getJSON("/api/score", { method: "POST", body: JSON.stringify(body) });
  showAnswer(res.tokentrust);
}

function showAnswer(ann) {
  for (let i = 0; i < ann.trace.tokens.length; i++) addToken(traceToken(ann.trace, i));
  showResult(ann);
}

// ---- explain -----------------------------------------------------------------------------------------
// Mirrors render/attribution.py: shade = share of the positive mass (attribution/verbalize.py shares),
// white → blue (raised the target) or white → orange (lowered it) on a square-root scale.
function shares(row) {
  const finite = row.filter((v) => v !== null && !Number.isNaN(v));
  const mass = finite.filter((v) => v > 0).reduce((a, b) => a + b, 0);
  const scale = mass > 0 ? mass : Math.max(0, ...finite.map(Math.abs));
  return row.map((v) => (v === null || Number.isNaN(v) ? NaN : scale > 0 ? v / scale : 0));
}
function importanceRgb(share) {
  if (Number.isNaN(share)) return [190, 190, 190];
  const end = share >= 0 ? [8, 81, 156] : [166, 54, 3];
  const f = Math.sqrt(Math.min(1, Math.abs(share)));
  return end.map((b) => Math.round(255 + f * (b - 255)));
}
function importanceColor(share) {
  return "#" + importanceRgb(share).map((v) => v.toString(16).padStart(2, "0")).join("");
}
function importanceText(share) {
  const [r, g, b] = importanceRgb(share);
  return 0.299 * r + 0.587 * g + 0.114 * b > 140 ? "#000000" : "#ffffff";
}
function shortText(span, width) {
  let text = span.name || span.text.trim() || span.text.replaceAll("\n", "↵").replaceAll(" ", "·") || "∅";
  return text.length <= width ? text : text.slice(0, width - 1) + "…";
}
// The prompt in reading order as [source index, text] runs (render/attribution.py prompt_runs).
function promptRuns(a) {
  const owner = new Map();
  const pieces = [];
  for (const [j, s] of a.sources.entries()) {
    for (const t of s.tokens) owner.set(t, j);
    const runs = 1 + s.tokens.filter((t, k) => k > 0 && t !== s.tokens[k - 1] + 1).length;
    const parts = runs > 1 ? s.text.split("…") : [s.text];
    if (parts.length !== runs) return a.sources.map((src, i) => [i, src.text]);
    pieces.push(parts);
  }
  const out = [];
  for (const t of [...owner.keys()].sort((x, y) => x - y)) {
    const j = owner.get(t);
    if (owner.get(t - 1) !== j) out.push([j, pieces[j].shift()]);
  }
  return out;
}

function showExplanation(a) {
  state.attribution = a;
  $("explain-head").textContent = a.method + " · " + a.model_id + " · " + a.granularity + "-level sources";
  const answer = $("explain-answer");
  answer.innerHTML = "";
  let pos = 0;
  a.targets.forEach((t, i) => {
    const start = t.text ? a.answer.indexOf(t.text, pos) : -1;
    if (start >= 0) { answer.append(document.createTextNode(a.answer.slice(pos, start))); pos = start + t.text.length; }
    const b = document.createElement("button");
    b.type = "button";
    b.className = "tt-tgt";
    b.dataset.target = i;
    b.textContent = t.text || "∅";
    answer.append(b);
  });
  answer.append(document.createTextNode(a.answer.slice(pos)));
  const head = $("explain-heat").querySelector("thead");
  head.innerHTML = "";
  const hr = document.createElement("tr");
  hr.append(document.createElement("th"));
  for (const s of a.sources) {
    const th = document.createElement("th");
    th.className = "tt-col";
    th.title = s.text;
    th.textContent = shortText(s, 18);
    hr.append(th);
  }
  head.append(hr);
  const body = $("explain-heat").querySelector("tbody");
  body.innerHTML = "";
  a.targets.forEach((t, i) => {
    const tr = document.createElement("tr");
    tr.dataset.target = i;
    const th = document.createElement("th");
    th.className = "tt-row";
    th.textContent = shortText(t, 24);
    tr.append(th);
    const share = shares(a.scores[i]);
    a.scores[i].forEach((v, j) => {
      const td = document.createElement("td");
      td.dataset.score = v;
      td.style.background = importanceColor(share[j]);
      td.style.color = importanceText(share[j]);
      td.title = shortText(t, 30) + " ← " + shortText(a.sources[j], 30) + ": " + fmt(v, 3) + " (share " + share[j].toFixed(2) + ")";
      td.textContent = v === null ? "–" : Number(v).toPrecision(2);
      tr.append(td);
    });
    body.append(tr);
  });
  $("explain-panel").hidden = false;
  selectTarget(a.targets.length - 1);
}

function selectTarget(i) {
  const a = state.attribution;
  if (!a || i < 0 || i >= a.targets.length) return;
  for (const b of $("explain-answer").querySelectorAll(".tt-tgt")) b.classList.toggle("active", Number(b.dataset.target) === i);
  for (const tr of $("explain-heat").querySelectorAll("tbody tr")) tr.classList.toggle("active", Number(tr.dataset.target) === i);
  const sentences = (a.extras && a.extras.sentences) || [];
  $("explain-sentence").textContent = sentences[i] || "";
  const lp = a.target_logprobs[i];
  $("explain-note").textContent = "target " + JSON.stringify(a.targets[i].text) + ": log-prob " + fmt(lp, 4) +
    " (p = " + fmt(Math.exp(lp), 3) + ")";
  const row = a.scores[i], share = shares(row);
  const box = $("explain-prompt");
  box.innerHTML = "";
  for (const [j, text] of promptRuns(a)) {
    const s = a.sources[j];
    if (s.name && s.name !== "template") {
      const tag = document.createElement("span");
      tag.className = "tt-comp";
      tag.textContent = s.name;
      box.append(tag);
    }
    const span = document.createElement("span");
    span.className = "tt-src" + (s.special ? " tt-special" : "");
    span.dataset.source = j;
    span.dataset.share = share[j];
    span.title = shortText(s, 40) + ": score " + fmt(row[j], 3) + ", share " + share[j].toFixed(2);
    span.style.background = importanceColor(share[j]);
    span.style.color = importanceText(share[j]);
    span.textContent = text.replaceAll("\n", "↵\n");
    box.append(span);
  }
}

function onExplainClick(event) {
  const el = event.target.closest && event.target.closest("[data-target]");
  if (el) selectTarget(Number(el.dataset.target));
}

async function explainAnswer(question, answer) {
  const body = { prompt: question, method: $("explain-method").value || "occlusion",
                 granularity: $("explain-granularity").value, max_tokens: Number($("max-tokens").value) || 64 };
  if (answer) body.answer = answer;
  const target = $("explain-target").value.trim();
  if (target) body.target = target;
  showExplanation(await getJSON("/api/explain", { method: "POST", body: JSON.stringify(body) }));
}

async function submit(event) {
  event.preventDefault();
  rememberKey();
  const question = $("question").value.trim();
  if (!question) { setStatus("type a question first", true); return; }
  if (!state.info) {
    try { await loadInfo(); } catch (err) { setStatus(err.message, true); return; }
  }
  reset();
  $("go").disabled = true;
  $("stop").hidden = false;
  state.controller = new AbortController();
  const t0 = performance.now();
  try {
    if (state.mode === "ask") {
      setStatus("waiting for the model…");
      await ask(question);
    } else if (state.mode === "explain") {
      setStatus("explaining…");
      await explainAnswer(question, $("answer").value.trim());
    } else {
      const answer = $("answer").value.trim();
      if (!answer) throw new Error("paste the answer to score");
      setStatus("scoring…");
      await score(question, answer);
    }
    setStatus("done in " + ((performance.now() - t0) / 1000).toFixed(1) + " s");
  } catch (err) {
    if (err.name === "AbortError") {
      const n = state.tokens.filter(Boolean).length;
      setStatus("stopped after " + ((performance.now() - t0) / 1000).toFixed(1) + " s" +
                (state.mode === "ask" ? " (" + n + " tokens, no scores)" : ""));
    } else {
      setStatus(err.message, true);
    }
  } finally {
    $("go").disabled = false;
    $("stop").hidden = true;
    state.controller = null;
  }
}

// Stop: abort the running request (the server stops generating when the connection closes).
function stop() {
  if (state.controller) state.controller.abort();
}

// ---- set-up ------------------------------------------------------------------------------------------
function setMode(mode) {
  state.mode = mode;
  $("tab-ask").classList.toggle("active", mode === "ask");
  $("tab-score").classList.toggle("active", mode === "score");
  $("tab-explain").classList.toggle("active", mode === "explain");
  $("answer-box").hidden = mode === "ask";
  $("answer-label").textContent = mode === "explain" ? "Answer to explain (leave empty: the model answers)" : "Answer to score";
  $("explain-box").hidden = mode !== "explain";
  $("answer-panel").hidden = mode === "explain";
  $("explain-panel").hidden = mode !== "explain" || !state.attribution;
  $("go").textContent = { ask: "Ask", score: "Score", explain: "Explain" }[mode];
}

// The colour-by choices: the token probability, every token-level score the server can give, and any token
// score of this answer; a score not in this answer is asked for with the next one.
function colourChoices(present) {
  const sel = $("colour-by");
  const current = sel.value;
  const offered = state.info ? state.info.estimators.filter((e) => e.level === "token" && e.available).map((e) => e.id) : [];
  const names = [TOKEN_PROBABILITY, ...new Set([...offered, ...(present || [])].filter((n) => n !== TOKEN_PROBABILITY))];
  sel.innerHTML = "";
  for (const name of names) {
    const here = !state.ext || (present || []).includes(name) || name === TOKEN_PROBABILITY;
    sel.append(new Option(here ? name : name + " (next answer)", name));
  }
  sel.value = names.includes(current) ? current : TOKEN_PROBABILITY;
}

const COST_GROUPS = [["trace", "From the answer itself"], ["pass", "One extra model pass"], ["sampling", "Sampling"]];
const LEVEL_TAGS = { sequence: "answer", claim: "claims", token: "tokens" };

function updatePicked() {
  const picked = [...document.querySelectorAll("#estimators input:checked")];
  const slow = picked.filter((i) => i.dataset.cost === "sampling").length;
  $("picked").textContent = "(" + picked.length + " chosen" + (slow ? ", " + slow + " by sampling: slow" : "") + ")";
}

async function loadInfo() {
  const info = await getJSON("/api/info");
  state.info = info;
  $("model").textContent = info.model + (info.backend !== info.model ? " · " + info.backend : "");
  $("max-tokens").max = info.max_tokens;
  $("hedge-below").value = info.policy.hedge_below;
  $("abstain-below").value = info.policy.abstain_below;
  const palSel = $("palette");
  palSel.innerHTML = "";
  for (const name of Object.keys(info.palettes)) palSel.append(new Option(name, name));
  const saved = localStorage.getItem("tt_palette");
  palSel.value = saved && info.palettes[saved] ? saved : info.default_palette;
  const box = $("estimators");
  box.innerHTML = "";
  const policySel = $("policy-score");
  policySel.innerHTML = "";
  if (info.policy.calibrator) {
    policySel.append(new Option("calibrated: " + info.policy.calibrator, info.policy.score));
  }
  for (const [cost, heading] of COST_GROUPS) {
    const rows = info.estimators.filter((e) => e.cost === cost);
    if (!rows.length) continue;
    const group = document.createElement("fieldset");
    group.className = "group";
    group.dataset.cost = cost;
    const legend = document.createElement("legend");
    legend.textContent = heading + " ";
    const hint = document.createElement("span");
    hint.className = "muted cost";
    hint.textContent = "— " + info.cost_hints[cost];
    legend.append(hint);
    group.append(legend);
    for (const level of ["sequence", "claim", "token"]) {
      for (const e of rows.filter((r) => r.level === level)) {
        const label = document.createElement("label");
        label.title = e.description + (e.cost_hint !== "trace only" ? " (" + e.cost_hint + ")" : "");
        if (!e.available) label.className = "off";
        const input = document.createElement("input");
        input.type = "checkbox";
        input.value = e.id;
        input.dataset.level = e.level;
        input.dataset.cost = e.cost;
        input.disabled = !e.available;
        input.checked = info.default_estimators.includes(e.id);
        input.addEventListener("change", updatePicked);
        const aliases = e.aliases && e.aliases.length ? " (" + e.aliases.join(", ") + ")" : "";
        const tag = document.createElement("span");
        tag.className = "tag " + e.level;
        tag.textContent = LEVEL_TAGS[e.level];
        label.append(input, " " + e.id + aliases + " ", tag);
        if (e.cost === "sampling" && e.cost_hint) {
          const c = document.createElement("span");
          c.className = "muted";
          c.textContent = " · " + e.cost_hint;
          label.append(c);
        }
        group.append(label);
      }
    }
    box.append(group);
  }
  for (const e of info.estimators) {
    if (e.level === "sequence" && e.available && e.is_probability) policySel.append(new Option(e.id, e.id));
  }
  policySel.value = info.policy.score;
  updatePicked();
  colourChoices(state.ext ? Object.keys(scoresAt(state.ext, "token")) : []);
  $("tab-score").disabled = !info.can_score;
  const methods = $("explain-method");
  methods.innerHTML = "";
  for (const m of info.attribution_methods || []) {
    const opt = new Option(m.id, m.id);
    opt.disabled = !m.available;
    opt.title = m.description;
    methods.append(opt);
  }
  if ([...methods.options].some((o) => o.value === "occlusion" && !o.disabled)) methods.value = "occlusion";
  $("tab-explain").disabled = !info.can_explain;
}

function td(text, cls) {
  const cell = document.createElement("td");
  cell.textContent = text;
  if (cls) cell.className = cls;
  return cell;
}

async function loadRuns() {
  const box = $("runs");
  try {
    const res = await getJSON("/api/runs");
    if (!res.runs.length) { box.textContent = "no runs with a report under " + res.runs_dir; return; }
    const table = document.createElement("table");
    const head = document.createElement("tr");
    for (const h of ["run", "model", "dataset", "accuracy", "date", ""]) {
      const th = document.createElement("th");
      th.textContent = h;
      head.append(th);
    }
    const thead = document.createElement("thead");
    thead.append(head);
    const body = document.createElement("tbody");
    for (const run of res.runs) {
      const tr = document.createElement("tr");
      tr.dataset.run = run.name;
      const acc = run.accuracy === null || run.accuracy === undefined ? "–"
        : (100 * run.accuracy).toFixed(1) + " %" + (run.n_items ? " of " + run.n_items : "") + (run.level === "claim" ? " claims" : "");
      const links = document.createElement("td");
      for (const [file, url] of Object.entries(run.files)) {
        const a = document.createElement("a");
        a.href = url;
        a.target = "_blank";
        a.textContent = file;
        links.append(a, " ");
      }
      tr.append(td(run.name), td(run.model || "–"), td(run.dataset || "–"), td(acc, "num"),
                td(new Date(run.modified * 1000).toLocaleString()), links);
      body.append(tr);
    }
    table.append(thead, body);
    box.innerHTML = "";
    box.className = "scroll";
    box.append(table);
  } catch (err) {
    box.textContent = err instanceof KeyNeeded ? "enter the API key to see past runs" : err.message;
    box.className = err instanceof KeyNeeded ? "muted" : "error";
  }
}

async function start() {
  $("apikey").value = localStorage.getItem("tt_key") || "";
  rememberKey();
  $("form").addEventListener("submit", submit);
  $("stop").addEventListener("click", stop);
  $("tab-ask").addEventListener("click", () => setMode("ask"));
  $("tab-score").addEventListener("click", () => setMode("score"));
  $("tab-explain").addEventListener("click", () => setMode("explain"));
  $("explain-answer").addEventListener("click", onExplainClick);
  $("explain-heat").addEventListener("click", onExplainClick);
  $("colour-by").addEventListener("change", recolour);
  $("palette").addEventListener("change", () => {
    localStorage.setItem("tt_palette", $("palette").value);
    recolour();
    paintClaims();
  });
  $("show-claims").addEventListener("change", toggleClaims);
  $("output").addEventListener("mouseover", onClaimHover);
  $("output").addEventListener("mouseleave", hideClaimTip);
  $("claims").addEventListener("mouseover", onClaimRowHover);
  $("claims").addEventListener("mouseleave", () => highlight([]));
  $("apikey").addEventListener("change", () => { rememberKey(); start2(); });
  $("apikey").addEventListener("keydown", (e) => { if (e.key === "Enter") { rememberKey(); start2(); } });
  await start2();
}
async function start2() {
  try {
    await loadInfo();
    setStatus("");
  } catch (err) {
    setStatus(err.message, !(err instanceof KeyNeeded));
  }
  await loadRuns();
}
start();
