// tokentrust web page: streams answers from /v1/chat/completions and colours each token by confidence.
// The colour scale mirrors tokentrust/render/colors.py (ColorBrewer RdYlGn ends, fixed on [0, 1]).
"use strict";

const STOPS = [[0.0, [215, 48, 39]], [0.5, [254, 224, 139]], [1.0, [26, 152, 80]]];

function confidenceRgb(p) {
  if (p === null || p === undefined || Number.isNaN(p)) return [190, 190, 190];
  p = Math.min(1, Math.max(0, p));
  for (let i = 0; i < STOPS.length - 1; i++) {
    const [x0, c0] = STOPS[i], [x1, c1] = STOPS[i + 1];
    if (p <= x1) {
      const f = (p - x0) / (x1 - x0);
      return c0.map((a, k) => Math.round(a + f * (c1[k] - a)));
    }
  }
  return STOPS[STOPS.length - 1][1];
}
function confidenceColor(p) {
  return "#" + confidenceRgb(p).map((v) => v.toString(16).padStart(2, "0")).join("");
}
function textColor(p) {
  const [r, g, b] = confidenceRgb(p);
  return 0.299 * r + 0.587 * g + 0.114 * b > 140 ? "#000000" : "#ffffff";
}

const $ = (id) => document.getElementById(id);
const state = { mode: "ask", info: null, tokens: [], ext: null };

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
async function getJSON(url, options) {
  const r = await fetch(url, Object.assign({ headers: headers() }, options || {}));
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error((body.error && body.error.message) || r.statusText);
  return body;
}
function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "muted";
}
function fmt(x, digits) {
  return x === null || x === undefined ? "–" : Number(x).toPrecision(digits || 4);
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

function tooltip(tok) {
  const tip = document.createElement("span");
  tip.className = "tt-tip";
  const lines = ["p = " + fmt(tok.prob, 3) + "   logprob = " + fmt(tok.logprob, 4)];
  lines.push(tok.entropy === null ? "entropy: not available" : "entropy = " + fmt(tok.entropy, 3) + " nats");
  tip.textContent = lines.join("\n") + "\n";
  for (const alt of tok.top) {
    const p = Math.exp(alt.logprob);
    const row = document.createElement("span");
    row.className = "alt" + (alt.token === tok.token ? " chosen" : "");
    const bar = document.createElement("span");
    bar.className = "w";
    bar.style.width = Math.max(1, Math.round(p * 60)) + "px";
    const label = document.createElement("span");
    label.textContent = (alt.token === tok.token ? "▸ " : "  ") + JSON.stringify(alt.token).padEnd(16) + " " + p.toFixed(3);
    row.append(bar, label);
    tip.append(row);
  }
  return tip;
}

function addToken(tok) {
  state.tokens[tok.index] = tok;
  if (tok.special) return;
  const span = document.createElement("span");
  span.className = "tt-tok";
  span.dataset.index = tok.index;
  span.dataset.p = tok.prob;
  span.append(document.createTextNode(tok.text || tok.token), tooltip(tok));
  paint(span, tok.prob);
  $("output").append(span);
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

// Mirrors render/_view.py color_values: probabilities as they are, other token scores min-max scaled.
function colourValues(choice) {
  const toks = state.tokens;
  const ext = state.ext;
  const tokenScores = ext ? scoresAt(ext, "token") : {};
  if (!ext || choice === "token_probability" || !tokenScores[choice]) return toks.map((t) => t.prob);
  const s = tokenScores[choice];
  if (s.is_probability) return s.values;
  const finite = s.values.filter((v, i) => v !== null && !toks[i].special);
  const lo = finite.length ? Math.min(...finite) : 0, hi = finite.length ? Math.max(...finite) : 1;
  const span = hi - lo || 1;
  return s.values.map((v) => (v === null ? NaN : (v - lo) / span));
}

function recolour() {
  const values = colourValues($("colour-by").value);
  for (const span of $("output").querySelectorAll(".tt-tok")) paint(span, values[Number(span.dataset.index)]);
}

function showResult(ext) {
  state.ext = ext;
  state.tokens = ext.trace.tokens.map((_, i) => traceToken(ext.trace, i));
  const sel = $("colour-by");
  const current = sel.value;
  sel.innerHTML = "";
  const tokenScores = scoresAt(ext, "token");
  const names = ["token_probability", ...Object.keys(tokenScores).filter((k) => k !== "token_probability")];
  for (const name of names) sel.append(new Option(name, name));
  sel.value = names.includes(current) ? current : "token_probability";
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
  const a = ext.decision;
  const box = $("action");
  box.className = "action " + a.action;
  box.innerHTML = "";
  const tag = document.createElement("b");
  tag.textContent = a.action;
  const why = document.createElement("div");
  why.className = "muted";
  why.textContent = a.score + " = " + fmt(a.value, 3) + " (hedge below " + a.hedge_below + ", abstain below " + a.abstain_below + ")";
  box.append(tag, document.createTextNode(a.text), why);
  box.hidden = false;
}

function reset() {
  state.tokens = [];
  state.ext = null;
  $("output").innerHTML = "";
  $("action").hidden = true;
  $("scores").hidden = true;
}

// ---- requests ----------------------------------------------------------------------------------------
function options() {
  const estimators = [...document.querySelectorAll("#estimators input:checked")].map((i) => i.value);
  const policy = { score: $("policy-score").value };
  const hb = $("hedge-below").value, ab = $("abstain-below").value;
  if (hb !== "") policy.hedge_below = Number(hb);
  if (ab !== "") policy.abstain_below = Number(ab);
  return { estimators, policy };
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
  const r = await fetch("/v1/chat/completions", { method: "POST", headers: headers(), body: JSON.stringify(body) });
  if (!r.ok) {
    const err = await r.json().catch(() => ({}));
    throw new Error((err.error && err.error.message) || r.statusText);
  }
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

async function submit(event) {
  event.preventDefault();
  rememberKey();
  const question = $("question").value.trim();
  if (!question) { setStatus("type a question first", true); return; }
  reset();
  $("go").disabled = true;
  const t0 = performance.now();
  try {
    if (state.mode === "ask") {
      setStatus("waiting for the model…");
      await ask(question);
    } else {
      const answer = $("answer").value.trim();
      if (!answer) throw new Error("paste the answer to score");
      setStatus("scoring…");
      await score(question, answer);
    }
    setStatus("done in " + ((performance.now() - t0) / 1000).toFixed(1) + " s");
  } catch (err) {
    setStatus(err.message, true);
  } finally {
    $("go").disabled = false;
  }
}

// ---- set-up ------------------------------------------------------------------------------------------
function setMode(mode) {
  state.mode = mode;
  $("tab-ask").classList.toggle("active", mode === "ask");
  $("tab-score").classList.toggle("active", mode === "score");
  $("answer-box").hidden = mode !== "score";
  $("go").textContent = mode === "ask" ? "Ask" : "Score";
}

async function loadInfo() {
  const info = await getJSON("/api/info");
  state.info = info;
  $("model").textContent = info.model + (info.backend !== info.model ? " · " + info.backend : "");
  $("max-tokens").max = info.max_tokens;
  $("hedge-below").value = info.policy.hedge_below;
  $("abstain-below").value = info.policy.abstain_below;
  const box = $("estimators");
  box.innerHTML = "";
  const policySel = $("policy-score");
  policySel.innerHTML = "";
  for (const e of info.estimators) {
    if (e.level !== "sequence") continue;
    const label = document.createElement("label");
    label.title = e.description;
    if (!e.available) label.className = "off";
    const input = document.createElement("input");
    input.type = "checkbox";
    input.value = e.id;
    input.disabled = !e.available;
    input.checked = info.default_estimators.includes(e.id);
    label.append(input, " " + e.id);
    box.append(label);
    if (e.available && e.is_probability) policySel.append(new Option(e.id, e.id));
  }
  policySel.value = info.policy.score;
  if (!info.can_score) $("tab-score").disabled = true;
}

async function loadRuns() {
  const box = $("runs");
  try {
    const res = await getJSON("/api/runs");
    if (!res.runs.length) { box.textContent = "no runs with a report under " + res.runs_dir; return; }
    const table = document.createElement("table");
    for (const run of res.runs) {
      const tr = document.createElement("tr");
      const name = document.createElement("td");
      name.textContent = run.name;
      const when = document.createElement("td");
      when.textContent = new Date(run.modified * 1000).toLocaleString();
      const links = document.createElement("td");
      for (const [file, url] of Object.entries(run.files)) {
        const a = document.createElement("a");
        a.href = url;
        a.target = "_blank";
        a.textContent = file;
        links.append(a, " ");
      }
      tr.append(name, when, links);
      table.append(tr);
    }
    box.innerHTML = "";
    box.className = "";
    box.append(table);
  } catch (err) {
    box.textContent = err.message;
    box.className = "error";
  }
}

async function start() {
  $("apikey").value = localStorage.getItem("tt_key") || "";
  rememberKey();
  $("form").addEventListener("submit", submit);
  $("tab-ask").addEventListener("click", () => setMode("ask"));
  $("tab-score").addEventListener("click", () => setMode("score"));
  $("colour-by").addEventListener("change", recolour);
  $("apikey").addEventListener("change", () => { rememberKey(); start2(); });
  await start2();
}
async function start2() {
  try {
    await loadInfo();
    setStatus("");
  } catch (err) {
    setStatus(err.message, true);
  }
  await loadRuns();
}
start();
