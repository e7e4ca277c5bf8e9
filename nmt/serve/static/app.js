// The attention page: asks POST /translate for the best translation with its attention, then draws
// the source and target tokens and a heatmap (rows: target, columns: source). Hovering a target token
// lights the source tokens by the weight it gives them; hovering a source token lights the target
// tokens by the weight each gives it. Word-level weights come merged by the server (source pieces
// summed, target pieces averaged), so the page never re-implements that rule. "Begins with" sends a
// target prefix; clicking a target token puts the translation up to it there (interactive translation).
"use strict";

// Viridis, sampled at five points; the heatmap interpolates between them.
const RAMP = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];

const $ = (id) => document.getElementById(id);
let current = null;  // the best hypothesis of the last answer

function colour(w) {
  const x = Math.min(Math.max(w, 0), 1) * (RAMP.length - 1);
  const i = Math.min(Math.floor(x), RAMP.length - 2);
  const f = x - i;
  const rgb = RAMP[i].map((c, k) => Math.round(c + f * (RAMP[i + 1][k] - c)));
  return `rgb(${rgb.join(",")})`;
}

function element(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

// { src, tgt, weights } at the chosen level: weights[t][s].
function view(hyp) {
  if ($("level-word").checked) {
    const w = hyp.word_attention;
    return { src: w.src_words, tgt: w.tgt_words, weights: w.weights };
  }
  return { src: hyp.src_pieces, tgt: hyp.tgt_pieces, weights: hyp.attention };
}

function clearHighlight() {
  document.querySelectorAll(".focus, .cross, .col-focus").forEach((el) =>
    el.classList.remove("focus", "cross", "col-focus"));
  document.querySelectorAll("[data-side]").forEach((el) => el.style.setProperty("--w", 0));
}

// Light the other side by the weights of target row t or source column s.
function highlight(side, i, v) {
  clearHighlight();
  const others = side === "tgt" ? "src" : "tgt";
  document.querySelectorAll(`[data-side="${side}"][data-i="${i}"]`).forEach((el) => el.classList.add("focus"));
  document.querySelectorAll(`[data-side="${others}"]`).forEach((el) => {
    const j = Number(el.dataset.i);
    el.style.setProperty("--w", side === "tgt" ? v.weights[i][j] : v.weights[j][i]);
  });
  if (side === "tgt") {
    $("heatmap").rows[i + 1].classList.add("focus");
  } else {
    document.querySelectorAll(`#heatmap td.cell[data-s="${i}"]`).forEach((el) => el.classList.add("col-focus"));
  }
}

function addHover(el, side, i, v) {
  el.dataset.side = side;
  el.dataset.i = i;
  el.tabIndex = 0;
  el.addEventListener("mouseenter", () => highlight(side, i, v));
  el.addEventListener("focus", () => highlight(side, i, v));
}

// The translation's text up to target token i: SentencePiece pieces joined with "▁" as the space,
// words joined by spaces; the end-of-sentence token is left out.
// A trailing space marks the last word as whole (the server then starts a new word after it): always
// at word level; at subword level when the next piece starts a word or the translation ends there.
function textUpTo(v, i) {
  const tokens = v.tgt.slice(0, i + 1).filter((t) => t !== "</s>");
  const wordLevel = $("level-word").checked;
  const joined = wordLevel ? tokens.join(" ") : tokens.join("").replaceAll("\u2581", " ");
  const next = v.tgt[i + 1];
  const wholeWord = wordLevel || next === undefined || next === "</s>" || next.startsWith("\u2581");
  const text = joined.trim();
  return text && wholeWord ? `${text} ` : text;
}

function drawTokens(v) {
  for (const side of ["src", "tgt"]) {
    const box = $(`${side}-tokens`);
    box.replaceChildren();
    v[side].forEach((text, i) => {
      const el = element("span", "tok", text);
      addHover(el, side, i, v);
      if (side === "tgt") {
        el.addEventListener("click", () => {
          $("prefix").value = textUpTo(v, i);
          $("prefix").focus();
        });
      }
      box.append(el);
    });
  }
}

function drawHeatmap(v) {
  const table = $("heatmap");
  table.replaceChildren();
  const head = table.insertRow();
  head.append(element("th"));
  v.src.forEach((text, s) => {
    const th = element("th", "src", text);
    th.scope = "col";
    addHover(th, "src", s, v);
    head.append(th);
  });
  v.tgt.forEach((text, t) => {
    const row = table.insertRow();
    const th = element("th", "tgt", text);
    th.scope = "row";
    addHover(th, "tgt", t, v);
    row.append(th);
    v.weights[t].forEach((w, s) => {
      const cell = row.insertCell();
      cell.className = "cell";
      cell.dataset.t = t;
      cell.dataset.s = s;
      cell.style.background = colour(w);
      cell.title = `${text} → ${v.src[s]}: ${w.toFixed(3)}`;
      cell.addEventListener("mouseenter", () => {
        highlight("tgt", t, v);
        cell.classList.add("cross");
        document.querySelectorAll(`[data-side="src"][data-i="${s}"]`).forEach((el) => el.classList.add("focus"));
      });
    });
  });
}

function draw() {
  if (!current || !current.attention) {
    // An answer without attention (a text of zero-width or control characters only) must not
    // leave the previous sentence's tokens and heatmap on the page.
    for (const id of ["src-tokens", "tgt-tokens", "heatmap"]) $(id).replaceChildren();
    return;
  }
  const v = view(current);
  drawTokens(v);
  drawHeatmap(v);
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

async function translate() {
  const text = $("source").value;
  if (!text.trim()) {
    showError("Type a sentence to translate.");
    return;
  }
  const button = $("translate");
  button.disabled = true;
  document.body.dataset.state = "busy";
  showError("");
  const started = performance.now();
  const prefix = $("prefix").value.trimStart();  // a trailing space is kept: it ends a whole word
  const request = { text, beam_size: Number($("beam").value), return_attention: true };
  if (prefix.trim()) request.prefix = prefix;
  try {
    const answer = await fetch("/translate", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(request),
    });
    const body = await answer.json();
    if (!answer.ok) throw new Error(body.detail || `the server answered ${answer.status}`);
    current = body.translations[0][0];
    const ms = Math.round(performance.now() - started);
    $("translation").textContent = current.text;
    $("result-meta").textContent =
      `score ${current.score.toFixed(3)} · beam ${body.beam_size} · ${current.tgt_pieces.length} target and ` +
      `${current.src_pieces.length} source pieces${prefix.trim() ? " · begins with the given start" : ""} · ${ms} ms`;
    $("result").hidden = false;
    draw();
    document.body.dataset.state = "done";
  } catch (err) {
    showError(String(err.message || err));
    document.body.dataset.state = "error";
  } finally {
    button.disabled = false;
  }
}

function describe(info) {
  const millions = (info.parameters / 1e6).toFixed(1);
  const parts = [
    info.direction.replace("-", " → "),
    `${info.attention} attention`,
    `${info.decoder_style} decoder`,
    `${info.bidirectional_encoder ? "bidirectional " : ""}${info.rnn_type.toUpperCase()} encoder`,
    `${millions} M parameters`,
  ];
  for (const b of info.bleu) {
    const settings = [
      b.length_penalty === 1 ? "" : `, length penalty ${b.length_penalty}`,
      b.coverage_penalty ? `, coverage penalty ${b.coverage_penalty}` : "",
      b.no_repeat_ngram_size ? `, no repeated ${b.no_repeat_ngram_size}-grams` : "",
    ].join("");
    parts.push(`BLEU ${b.bleu.toFixed(1)} on ${b.test_set} (beam ${b.beam_size}${settings})`);
  }
  return `${info.checkpoint}: ${parts.join(" · ")}`;
}

async function init() {
  $("translate").addEventListener("click", translate);
  for (const id of ["source", "prefix"]) {
    $(id).addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey || id === "prefix")) translate();
    });
  }
  $("heatmap").addEventListener("mouseleave", clearHighlight);
  document.querySelectorAll('input[name="level"]').forEach((el) => el.addEventListener("change", draw));
  try {
    const info = await (await fetch("/model")).json();
    $("model-info").textContent = describe(info);
    $("source-label").textContent = `Source (${info.direction.split("-")[0]})`;
    $("source").maxLength = info.limits.max_text_chars;
    $("prefix").maxLength = info.limits.max_text_chars;
    $("beam").max = info.limits.max_beam_size;
    $("beam").value = Math.min(info.default_beam_size, info.limits.max_beam_size);
  } catch (err) {
    $("model-info").textContent = `cannot describe the model: ${err}`;
  }
  document.body.dataset.state = "ready";
}

init();
