/* attnmt's explainer view: attention's five steps with the model's own numbers.
   AttnExplain.render(container, data, options) draws the output of attnmt.explain.numbers
   (POST /explain, or embedded by `attnmt explain --html`). Every number shown comes
   from the model; the page only lays them out (and adds rows of products to show a sum).
   options: {step, onMask(position), onZeroHead(layer, head)}: with the callbacks, clicking
   a source token or a head's button asks for a re-decode under that intervention. */
"use strict";
(function () {
  const el = (tag, attrs = {}, ...kids) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "on") Object.entries(v).forEach(([ev, f]) => e.addEventListener(ev, f));
      else if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else e.setAttribute(k, v);
    }
    kids.forEach((c) => c != null && e.append(c));
    return e;
  };
  const fmt = (x) => (x === null ? "−∞" : Math.abs(x) >= 100 ? x.toFixed(0) : x.toFixed(3));
  const maxAbs = (rows) => Math.max(1e-12, ...rows.flat().filter((x) => x !== null).map(Math.abs));

  function diverging(x, scale) {          // blue (negative) - white - red (positive)
    const a = Math.max(-1, Math.min(1, x / scale));
    const c = Math.round(255 * (1 - Math.abs(a)));
    return a >= 0 ? `rgb(255,${c},${c})` : `rgb(${c},${c},255)`;
  }

  /* One vector as a colour strip; hovering shows the dimension and its value. */
  function strip(values, scale, label, cls = "") {
    const w = Math.max(1, Math.min(4, Math.floor(520 / values.length)));
    const c = el("canvas", { class: "strip " + cls, width: values.length * w, height: 14 });
    const g = c.getContext("2d");
    values.forEach((v, i) => { g.fillStyle = diverging(v, scale); g.fillRect(i * w, 0, w, 14); });
    const info = el("span", { class: "strip-value" });
    c.addEventListener("mousemove", (ev) => {
      const i = Math.min(values.length - 1, Math.floor(ev.offsetX / w));
      info.textContent = `dim ${i}: ${fmt(values[i])}`;
    });
    c.addEventListener("mouseleave", () => { info.textContent = ""; });
    return el("div", { class: "strip-row" }, el("span", { class: "strip-label", text: label }),
              c, info);
  }

  function bars(labels, values, { signed = false, chosen = -1, masked = [], cls = "" } = {}) {
    const scale = maxAbs([values]);
    const box = el("div", { class: "bars " + cls });
    labels.forEach((lab, i) => {
      const v = values[i];
      const width = v === null ? 0 : (100 * Math.abs(v)) / scale;
      const bar = el("span", { class: "bar" + (signed && v < 0 ? " neg" : ""),
                               style: `width:${width.toFixed(1)}%` });
      box.append(el("div", { class: "bar-row" + (i === chosen ? " chosen" : "") +
                                     (masked.includes(i) ? " masked" : ""),
                             "data-i": i },
                    el("span", { class: "bar-label", text: lab }),
                    el("span", { class: "bar-track" }, bar),
                    el("span", { class: "bar-value", text: v === null ? "−∞ (masked)" : fmt(v) })));
    });
    return box;
  }

  const section = (n, title, ...kids) =>
    el("section", { class: "step-box", "data-step": n },
       el("h3", {}, el("span", { class: "num", text: String(n) }), " " + title), ...kids);
  const note = (text) => el("p", { class: "muted", text });

  function rnnSteps(d, t) {
    const s = d.steps[t], src = d.src_tokens, mask = d.masked;
    const stateScale = maxAbs(d.states), out = [];
    out.push(section(1, "Encoder hidden states h̄ₛ (one per source token)",
      ...src.map((tok, i) => strip(d.states[i], stateScale, tok, mask.includes(i) ? "masked" : "")),
      d.scorer === "dot" ? note("dot attention compares the query with these states directly")
        : el("div", {}, note(`keys the scorer compares with (${d.scorer === "general"
              ? "W_a h̄ₛ" : "W_k h̄ₛ, computed once per sentence"}):`),
             ...src.map((tok, i) => strip(d.keys[i], maxAbs(d.keys), tok)))));
    const q = d.scorer === "additive" ? "sₜ₋₁ (the decoder's previous state)" : "hₜ (the decoder's state)";
    const parts = [note(d.formula), strip(s.query, maxAbs([s.query]), "query " + q.split(" ")[0])];
    if (s.projected_query) {
      parts.push(strip(s.projected_query, maxAbs([s.projected_query]), "W_q · query"));
      parts.push(note("tanh(W_q · query + key) for each source token, then the dot product with v_a:"));
      src.forEach((tok, i) => parts.push(strip(s.hidden[i], 1, tok)));
      parts.push(strip(s.v_a, maxAbs([s.v_a]), "v_a"));
    }
    parts.push(bars(src, s.scores, { signed: true, masked: mask, cls: "scores" }));
    out.push(section(2, `Score every source token against the query ${q}`, ...parts));
    const sum = s.weights.reduce((a, b) => a + b, 0);
    out.push(section(3, "Softmax: scores become weights",
      bars(src, s.weights, { masked: mask, cls: "weights" }),
      note(`the weights sum to ${sum.toFixed(4)}` + (mask.length ? "; masked tokens get exactly 0" : ""))));
    const contrib = src.map((_, i) => d.states[i].map((x) => x * s.weights[i]));
    const scale = maxAbs([s.context]);
    out.push(section(4, "Context vector cₜ = Σₛ aₜ(s) h̄ₛ",
      note("each token's contribution aₜ(s) · h̄ₛ; their sum is the context vector"),
      ...src.map((tok, i) => strip(contrib[i], scale, `${tok} × ${fmt(s.weights[i])}`)),
      strip(s.context, scale, "= cₜ", "context")));
    out.push(section(5, "Combine and predict: h̃ₜ = tanh(W_c [cₜ; hₜ]), p = softmax(W_s h̃ₜ)",
      strip(s.decoder_state, maxAbs([s.decoder_state]), "hₜ"),
      strip(s.combined, maxAbs([s.combined]), "h̃ₜ"), topk(s)));
    return out;
  }

  function topk(s) {
    const labels = s.top.map(([w]) => w), probs = s.top.map(([, p]) => p);
    return el("div", {}, bars(labels, probs, { chosen: labels.indexOf(s.chosen), cls: "top" }),
              note(`greedy search writes "${s.chosen}" (p = ${s.probability.toFixed(3)})`));
  }

  function fixedSteps(d, t) {
    const s = d.steps[t], same = d.steps.every((x) => x.context.every((v, i) => v === s.context[i]));
    return [
      section(1, "The encoder's final state: the one context vector c",
        strip(s.context, maxAbs([s.context]), "c"),
        note(`every output word receives this same vector (${same ? "identical" : "differs"} at ` +
             `all ${d.steps.length} steps): the whole sentence must fit into ` +
             `${s.context.length} numbers`)),
      section("2–4", "No scores, no weights, no fresh context",
        note("this model cannot look back at the source tokens: that is the bottleneck attention removes")),
      section(5, "Predict the next word from the decoder state", topk(s))];
  }

  function transformerSteps(d, t, ui, opts) {
    const kv = d.layers_kv[ui.layer], out = [];
    let a, keys, values, labels;
    if (ui.kind === "encoder") {
      const e = d.encoder_layers[ui.layer], p = ui.position;
      a = { query: e.query.map((h) => h[p]), scores: e.scores.map((h) => h[p]),
            weights: e.weights.map((h) => h[p]), heads: e.heads.map((h) => h[p]),
            output: e.output[p], allowed: e.allowed };
      keys = e.keys; values = e.values; labels = d.src_tokens;
    } else {
      a = d.steps[t].layers[ui.layer][ui.kind];
      keys = kv[ui.kind].keys; values = kv[ui.kind].values;
      labels = ui.kind === "cross" ? d.src_tokens : ["<s>", ...d.tgt_tokens].slice(0, t + 1);
    }
    const n = a.scores[0].length, dk = a.query[0].length;
    const heads = ui.head < 0 ? a.query.map((_, h) => h) : [ui.head];
    out.push(section(1, "Keys and values: the projected states attended over",
      note(`${labels.length} positions × ${a.query.length} heads of d_k = ${dk}`),
      ...heads.map((h) => el("div", { class: "head" }, el("b", { text: `head ${h + 1} keys` }),
        ...labels.slice(0, n).map((tok, i) => strip(keys[h][i], maxAbs(keys[h]), tok))))));
    out.push(section(2, "Scores QKᵀ/√d_k, with the mask", note(d.formula),
      ...heads.map((h) => el("div", { class: "head" }, el("b", { text: `head ${h + 1}` }),
        strip(a.query[h], maxAbs([a.query[h]]), "query"),
        bars(labels.slice(0, n), a.scores[h].map((x, i) => (a.allowed[i] ? x : null)),
             { signed: true, masked: a.allowed.map((ok, i) => (ok ? -1 : i)), cls: "scores" })))));
    out.push(section(3, "Softmax per head",
      ...heads.map((h) => el("div", { class: "head" }, el("b", { text: `head ${h + 1}` }),
        headButton(d, ui, h, opts),
        bars(labels.slice(0, n), a.weights[h], { cls: "weights" })))));
    out.push(section(4, "Each head's weighted sum of V, then the heads joined and projected (W_O)",
      ...heads.map((h) => el("div", { class: "head" },
        ...labels.slice(0, n).map((tok, i) => strip(values[h][i].map((x) => x * a.weights[h][i]),
                                                   maxAbs([a.heads[h]]), `${tok} × ${fmt(a.weights[h][i])}`)),
        strip(a.heads[h], maxAbs([a.heads[h]]), `= head ${h + 1}`, "context"))),
      strip(a.heads.flat(), maxAbs(a.heads), "[head₁; …; head_h]"),
      strip(a.output, maxAbs([a.output]), "· W_O =")));
    if (ui.kind !== "encoder") out.push(section(5, "Predict the next word", topk(d.steps[t])));
    return out;
  }

  function headButton(d, ui, h, opts) {
    if (ui.kind !== "cross" || !opts.onZeroHead) return null;
    const off = d.zeroed_heads.some(([l, x]) => l === ui.layer && x === h);
    return el("button", { class: "zero-head", "data-layer": ui.layer, "data-head": h,
                          text: off ? "head silenced (restore)" : "silence this head",
                          on: { click: () => opts.onZeroHead(ui.layer, h) } });
  }

  function tokens(list, cls, opts) {
    return el("div", { class: "tokens" }, ...list.map((tok, i) =>
      el("span", { class: `tok ${cls}` + (opts.active === i ? " active" : "") +
                            ((opts.masked || []).includes(i) ? " masked" : ""),
                   "data-i": i, text: tok, title: opts.title || "",
                   on: opts.click ? { click: () => opts.click(i) } : {} })));
  }

  function controls(d, ui, redraw) {
    const box = el("div", { class: "explain-controls" });
    if (d.family !== "transformer") return box;
    const kind = el("select", { id: "ex-kind", on: { change: (e) => { ui.kind = e.target.value; redraw(); } } });
    [["cross", "cross-attention (decoder → source)"], ["self", "decoder self-attention"],
     ["encoder", "encoder self-attention"]].forEach(([v, t]) => kind.add(new Option(t, v, false, ui.kind === v)));
    const layer = el("select", { id: "ex-layer", on: { change: (e) => { ui.layer = +e.target.value; redraw(); } } });
    d.layers_kv.forEach((_, l) => layer.add(new Option(`layer ${l + 1}`, l, false, ui.layer === l)));
    const head = el("select", { id: "ex-head", on: { change: (e) => { ui.head = +e.target.value; redraw(); } } });
    head.add(new Option("all heads", -1, false, ui.head === -1));
    d.steps[0].layers[0].cross.query.forEach((_, h) => head.add(new Option(`head ${h + 1}`, h, false, ui.head === h)));
    box.append(kind, layer, head);
    if (ui.kind === "encoder") {
      const pos = el("select", { id: "ex-position", on: { change: (e) => { ui.position = +e.target.value; redraw(); } } });
      d.src_tokens.forEach((tok, i) => pos.add(new Option(`query: ${tok}`, i, false, ui.position === i)));
      box.append(pos);
    }
    return box;
  }

  const METHOD_NAMES = { attention: "attention", input_x_gradient: "input × gradient",
                         integrated_gradients: "integrated gradients",
                         masking: "masking: Δ log p when the token leaves the attention" };

  /* Attention beside the attributions at output word t: a row of bars per method. */
  function attributionSection(d, t, opts) {
    const a = d.attribution;
    if (!a) {
      return opts.onAttribution ? el("section", { class: "step-box", id: "ex-attribution" },
        el("button", { id: "ex-attribute", text: "Compare attention with gradient attributions",
                       on: { click: opts.onAttribution } }),
        note("input × gradient and integrated gradients on the source embeddings, and the " +
             "exact effect of masking each source token, for this translation")) : null;
    }
    const rows = Object.entries(a.methods).map(([m, scores]) => el("div", { class: "method", "data-method": m },
      el("b", { text: METHOD_NAMES[m] }), bars(a.src_tokens, scores[t], { signed: m !== "attention" })));
    const agree = Object.entries(a.agreement).map(([pair, x]) => {
      const r = x.spearman[t];
      return el("li", { text: `${pair.split("~").map((m) => METHOD_NAMES[m].split(":")[0]).join(" ~ ")}: ` +
        `Spearman ${r === null ? "–" : r.toFixed(2)} here, ${x.mean === null ? "–" : x.mean.toFixed(2)} ` +
        `over the sentence; same top token for ${Math.round(100 * x.top1)}% of the words` });
    });
    return el("section", { class: "step-box", id: "ex-attribution" },
      el("h3", {}, el("span", { class: "num", text: "A" }), " Attention beside attribution"),
      note("the model without interventions, forced to write this translation; the methods " +
           "are compared by the rank of their magnitudes"), ...rows, el("ul", {}, ...agree));
  }

  function render(container, d, opts = {}) {
    const ui = { step: Math.min(opts.step || 0, d.steps.length - 1), kind: "cross", layer: 0,
                 head: 0, position: 0, ...(container._explainUI || {}) };
    ui.step = Math.min(ui.step, d.steps.length - 1);
    container._explainUI = ui;
    const redraw = () => {
      container.innerHTML = "";
      const t = ui.step;
      const nav = el("div", { class: "explain-nav" },
        el("button", { id: "ex-prev", text: "◀ previous word", on: { click: () => { ui.step = Math.max(0, t - 1); redraw(); } } }),
        el("span", { id: "ex-position-label", text: `output word ${t + 1} of ${d.steps.length}: "${d.tgt_tokens[t]}"` }),
        el("button", { id: "ex-next", text: "next word ▶", on: { click: () => { ui.step = Math.min(d.steps.length - 1, t + 1); redraw(); } } }));
      const body = d.family === "transformer" ? transformerSteps(d, t, ui, opts)
        : d.family === "fixed-context" ? fixedSteps(d, t) : rnnSteps(d, t);
      container.append(
        el("div", { class: "explain-head" },
          el("div", { class: "muted", text: `${d.family} · ${d.scorer || "no attention"} · ${d.formula}` }),
          el("div", { class: "muted", text: "source" + (opts.onMask && d.family !== "fixed-context"
             ? " (click a token to mask it out of the decoder's attention and decode again)" : "") }),
          tokens(d.src_tokens, "ex-src", { masked: d.masked, click: d.family !== "fixed-context" && opts.onMask }),
          el("div", { class: "muted", text: "translation (click a word to explain it)" }),
          tokens(d.tgt_tokens, "ex-tgt", { active: t, click: (i) => { ui.step = i; redraw(); } }),
          nav, controls(d, ui, redraw)),
        ...body, attributionSection(d, t, opts));
    };
    redraw();
  }

  function heatmap(src, tgt, W) {
    const blue = (w) => `rgb(${Math.round(255 - 200 * w)},${Math.round(255 - 140 * w)},255)`;
    return el("table", { class: "heatmap" },
      el("tr", {}, el("th"), ...src.map((tok) => el("th", { class: "col", text: tok }))),
      ...tgt.map((tok, t) => el("tr", {}, el("th", { class: "row", text: tok }),
        ...src.map((s, i) => el("td", { class: "cell", "data-t": t, "data-s": i,
                                         title: `${tok} → ${s}: ${fmt(W[t][i])}`,
                                         style: `background:${blue(W[t][i])}` })))));
  }

  /* The training timeline: one frame per kept checkpoint, chosen with a slider. */
  function timeline(container, d) {
    const frame = el("div", { id: "tl-frame" });
    const label = el("span", { id: "tl-step" });
    const draw = (i) => {
      const f = d.frames[i], v = f.valid || {};
      label.textContent = `update ${f.step} (${i + 1} of ${d.frames.length})`;
      frame.innerHTML = "";
      frame.append(el("div", { id: "tl-translation", class: "tl-translation",
                               text: f.translation || "(empty translation)" }),
        el("div", { class: "muted", text: Object.keys(v).length ? "validation at this update: " +
          Object.entries(v).map(([k, x]) => `${k} ${typeof x === "number" ? x.toFixed(2) : x}`).join(", ")
          : "the weights before training" }),
        heatmap(d.src_tokens, f.tgt_tokens, f.weights));
    };
    const slider = el("input", { type: "range", id: "tl-slider", min: 0, max: d.frames.length - 1,
                                 value: d.frames.length - 1,
                                 on: { input: (e) => draw(+e.target.value) } });
    container.innerHTML = "";
    container.append(el("div", { class: "explain-nav" }, el("span", { text: "training" }), slider,
                        label), frame);
    draw(d.frames.length - 1);
  }

  /* Every run of a study on the same sentence, side by side; any run's steps below. */
  function study(container, d) {
    const detail = el("div", { id: "study-detail" });
    const cards = el("div", { class: "study-cards" }, ...Object.entries(d.runs).map(([name, r]) =>
      el("div", { class: "study-card", "data-run": name },
        el("h3", { text: name }),
        el("div", { class: "muted", text: `${r.family} · ${r.scorer || "no attention"}` }),
        el("div", { class: "tl-translation", text: r.translation }),
        r.alignment ? heatmap(r.src_tokens, r.tgt_tokens, r.alignment)
          : note("no attention: every output word gets the same context vector"),
        el("button", { class: "study-open", text: "explain step by step",
                       on: { click: () => { detail._explainUI = null; render(detail, r, {});
                                             detail.scrollIntoView(); } } }))));
    container.innerHTML = "";
    container.append(cards, detail);
  }

  window.AttnExplain = { render, timeline, study };
})();
