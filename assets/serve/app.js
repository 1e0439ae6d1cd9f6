// seqcalc serve: the pages. Plain DOM and hand-drawn SVG charts; no libraries, no network
// beyond this server.
"use strict";

const main = document.getElementById("main");

// ---------- helpers ----------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const SVG = "http://www.w3.org/2000/svg";
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  for (const c of children) if (c) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

async function api(path, opts) {
  const res = await fetch(path, Object.assign({ headers: { "Content-Type": "application/json" } }, opts || {}));
  let body = null;
  try { body = await res.json(); } catch (e) { body = null; }
  if (!res.ok) throw new Error((body && body.error) || `${res.status} ${res.statusText}`);
  return body;
}

const post = (path, body) => api(path, { method: "POST", body: JSON.stringify(body || {}) });
const fmt = (x, d = 4) => (x === null || x === undefined || Number.isNaN(x) ? "–" : Number(x).toFixed(d));
const runUrl = (n) => "/runs/" + encodeURIComponent(n);
const runApi = (n) => "/api/runs/" + encodeURIComponent(n);
const badge = (st) => h("span", { class: "badge " + st, "data-status": st }, st);
const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777"];

// ---------- charts ----------

// A line chart: series [{name, color, points: [[x, y], ...]}]; y in [ymin, ymax] when given.
function lineChart(title, series, opt) {
  opt = opt || {};
  const W = 520, H = 250, L = 50, R = 12, T = 10, B = 34;
  const pts = series.flatMap((se) => se.points).filter((p) => Number.isFinite(p[1]));
  const box = h("div", { class: "chart card", "data-chart": title });
  box.append(h("div", { class: "title" }, title));
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title });
  box.append(svg);
  if (!pts.length) {
    svg.append(s("text", { x: W / 2, y: H / 2, "text-anchor": "middle", fill: "#9ca3af", "font-size": 13 }, "no points yet"));
    return box;
  }
  let x0 = Math.min(...pts.map((p) => p[0])), x1 = Math.max(...pts.map((p) => p[0]));
  let y0 = opt.ymin !== undefined ? opt.ymin : Math.min(...pts.map((p) => p[1]));
  let y1 = opt.ymax !== undefined ? opt.ymax : Math.max(...pts.map((p) => p[1]));
  if (x1 === x0) { x0 -= 1; x1 += 1; }
  if (y1 === y0) { const d = y0 === 0 ? 0.5 : Math.abs(y0) * 0.5; y0 -= d; y1 += d; }
  if (opt.ymin === undefined) {
    const pad = (y1 - y0) * 0.06;
    y0 = y0 >= 0 ? Math.max(0, y0 - pad) : y0 - pad;
    y1 += pad;
  }
  const X = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const Y = (y) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  for (let i = 0; i <= 4; i++) {
    const v = y0 + ((y1 - y0) * i) / 4, y = Y(v);
    svg.append(s("line", { x1: L, x2: W - R, y1: y, y2: y, stroke: "#eef0f3" }));
    svg.append(s("text", { x: L - 6, y: y + 4, "text-anchor": "end", "font-size": 11, fill: "#6b7280" }, Math.max(Math.abs(y0), Math.abs(y1)) < 0.01 ? v.toExponential(1) : fmt(v, Math.abs(y1 - y0) < 0.5 ? 3 : 2)));
  }
  // Whole-number ticks (epochs and steps are counts).
  const xstep = Math.max(1, Math.ceil((x1 - x0) / 6));
  for (let v = Math.ceil(x0); v <= x1; v += xstep) {
    const x = X(v);
    svg.append(s("line", { x1: x, x2: x, y1: H - B, y2: H - B + 4, stroke: "#9ca3af" }));
    svg.append(s("text", { x, y: H - B + 16, "text-anchor": "middle", "font-size": 11, fill: "#6b7280" }, Math.round(v)));
  }
  svg.append(s("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, stroke: "#9ca3af" }));
  svg.append(s("text", { x: (L + W - R) / 2, y: H - 4, "text-anchor": "middle", "font-size": 11, fill: "#6b7280" }, opt.xlabel || "epoch"));
  for (const se of series) {
    const p = se.points.filter((q) => Number.isFinite(q[1]));
    if (!p.length) continue;
    const d = p.map((q, i) => (i ? "L" : "M") + X(q[0]).toFixed(1) + " " + Y(q[1]).toFixed(1)).join(" ");
    svg.append(s("path", { d, fill: "none", stroke: se.color, "stroke-width": 2, "data-series": se.name, "data-points": p.length }));
    if (p.length < 60) for (const q of p) svg.append(s("circle", { cx: X(q[0]), cy: Y(q[1]), r: 2.5, fill: se.color }));
  }
  box.append(h("div", { class: "legend" }, series.map((se) => {
    const i = h("i"); i.style.background = se.color;
    return h("span", {}, i, se.name);
  })));
  return box;
}

function curveCharts(history, unit) {
  const xs = (f) => history.map((r) => [r.epoch, f(r)]);
  const xlabel = unit === "steps" ? "step" : "epoch";
  return h("div", { class: "charts", id: "charts" },
    lineChart("Loss", [
      { name: "training loss", color: COLORS[0], points: xs((r) => r.train_loss) },
      { name: "validation loss", color: COLORS[1], points: xs((r) => r.val_loss) },
    ], { xlabel }),
    lineChart("Accuracy", [
      { name: "training per-character", color: COLORS[0], points: xs((r) => r.train_char_acc) },
      { name: "validation per-character", color: COLORS[1], points: xs((r) => r.val_char_acc) },
      { name: "validation exact match", color: COLORS[2], points: xs((r) => r.val_exact) },
    ], { xlabel, ymin: 0, ymax: 1 }),
    ...(history.some((r) => r.lr != null) ? [lineChart("Learning rate", [
      { name: "learning rate", color: COLORS[3], points: history.filter((r) => r.lr != null).map((r) => [r.epoch, r.lr]) },
    ], { xlabel })] : []),
  );
}

// ---------- runs page ----------

async function runsPage() {
  const params = new URLSearchParams(location.search);
  const chosen = new Set((params.get("compare") || "").split(",").filter(Boolean));
  let sortKey = null, sortDir = 1, runs = [];
  const tableBox = h("div", { class: "card" });
  const overlay = h("div", { id: "overlay" });
  const err = h("div");
  const compareBtn = h("button", { class: "primary", id: "compare", onclick: () => drawOverlay() }, "Overlay selected");
  main.replaceChildren(h("h1", {}, "Runs"), err,
    h("div", { class: "row" }, compareBtn, h("span", { class: "muted" }, "Select runs to overlay their curves.")),
    h("br"), tableBox, overlay);
  const cols = [
    ["", null], ["name", "name"], ["kind", "kind"], ["task", "task"], ["model", "model"],
    ["status", "status"], ["progress", "progress"], ["best exact", "best_exact"], ["evaluations", null],
  ];
  function render() {
    const sorted = runs.slice();
    if (sortKey) sorted.sort((a, b) => {
      const x = a[sortKey], y = b[sortKey];
      return (x === y ? 0 : x === null ? -1 : y === null ? 1 : x < y ? -1 : 1) * sortDir;
    });
    const head = h("tr", {}, cols.map(([label, key]) => h("th", {
      class: (key ? "sortable " : "") + (key === sortKey ? (sortDir > 0 ? "sorted-asc" : "sorted-desc") : "") +
        (key === "progress" || key === "best_exact" ? " num" : ""),
      onclick: key ? () => { sortDir = sortKey === key ? -sortDir : 1; sortKey = key; render(); } : null,
    }, label)));
    const rows = sorted.map((r) => h("tr", { "data-run": r.name },
      h("td", {}, h("input", { type: "checkbox", checked: chosen.has(r.name), "data-select": r.name,
        onchange: (e) => { e.target.checked ? chosen.add(r.name) : chosen.delete(r.name); } })),
      h("td", {}, h("a", { href: runUrl(r.name) }, r.name)),
      h("td", {}, r.kind), h("td", {}, r.task), h("td", {}, r.model),
      h("td", {}, badge(r.status)),
      h("td", { class: "num" }, `${r.progress} ${r.unit}`),
      h("td", { class: "num" }, fmt(r.best_exact)),
      h("td", {}, r.evals.map((f) => h("a", { href: runApi(r.name) + "/files/" + encodeURIComponent(f) }, f, " "))),
    ));
    tableBox.replaceChildren(runs.length
      ? h("table", { id: "runs" }, h("thead", {}, head), h("tbody", {}, rows))
      : h("p", { class: "muted" }, "No runs yet. Start one on the ", h("a", { href: "/train" }, "Train"), " page, or with `seqcalc train`."));
  }
  async function drawOverlay() {
    const names = [...chosen];
    if (!names.length) { overlay.replaceChildren(h("div", { class: "notice" }, "Select one or more runs first.")); return; }
    history.replaceState(null, "", "/?compare=" + names.map(encodeURIComponent).join(","));
    try {
      const ds = await Promise.all(names.map((n) => api(runApi(n))));
      const ser = (f) => ds.map((d, i) => ({ name: d.name, color: COLORS[i % COLORS.length], points: d.history.map((r) => [r.epoch, f(r)]) }));
      overlay.replaceChildren(h("h2", {}, "Overlay: " + names.join(", ")), h("div", { class: "charts", id: "overlay-charts" },
        lineChart("Validation exact match", ser((r) => r.val_exact), { ymin: 0, ymax: 1 }),
        lineChart("Validation loss", ser((r) => r.val_loss)),
        lineChart("Training loss", ser((r) => r.train_loss)),
        lineChart("Validation per-character accuracy", ser((r) => r.val_char_acc), { ymin: 0, ymax: 1 })));
    } catch (e) { overlay.replaceChildren(h("div", { class: "error" }, e.message)); }
  }
  async function load() {
    try { runs = await api("/api/runs"); err.replaceChildren(); render(); }
    catch (e) { err.replaceChildren(h("div", { class: "error" }, e.message)); }
  }
  await load();
  if (chosen.size) drawOverlay();
  setInterval(load, 5000);
}

// ---------- one run ----------

async function runPage(name) {
  let d;
  try { d = await api(runApi(name)); }
  catch (e) { main.replaceChildren(h("h1", {}, name), h("div", { class: "error" }, e.message)); return; }
  const status = h("span", { id: "status" });
  const msg = h("div", { id: "run-msg" });
  const stopBtn = h("button", { id: "stop", onclick: async () => {
    try { await post(runApi(name) + "/stop"); } catch (e) { msg.replaceChildren(h("div", { class: "error" }, e.message)); }
  } }, "Stop");
  const resumeBtn = h("button", { id: "resume", onclick: async () => {
    msg.replaceChildren();
    const more = epochsIn.value ? { epochs: Number(epochsIn.value) } : {};
    try { await post(runApi(name) + "/resume", more); } catch (e) { msg.replaceChildren(h("div", { class: "error" }, e.message)); }
  } }, "Resume");
  const epochsIn = h("input", { type: "number", min: 1, placeholder: "epochs", id: "resume-epochs", size: 6 });
  const bar = h("div"), progressText = h("span", { class: "muted", id: "progress" });
  const charts = h("div");
  const samples = h("div", { id: "samples" });
  const lines = h("div");
  main.replaceChildren(
    h("h1", {}, name, " ", status),
    h("div", { class: "muted" }, `${d.kind} · ${d.task} · ${d.model}`),
    h("div", { class: "card" },
      h("div", { class: "row" }, stopBtn, resumeBtn, epochsIn,
        h("a", { href: "/play?run=" + encodeURIComponent(name) }, "Ask it questions →")),
      h("div", { class: "progress" }, bar), progressText, msg),
    charts,
    h("h2", {}, "Sample questions"), samples,
    lines,
    evaluations(d),
    h("h2", {}, "Config"), h("pre", { id: "config" }, JSON.stringify(d.config, null, 2)),
    h("h2", {}, "Manifest"), h("pre", {}, d.manifest ? JSON.stringify(d.manifest, null, 2) : "no manifest yet (written when training returns)"),
  );
  let hist = d.history;
  function show(st, live) {
    status.replaceChildren(badge(st));
    const active = st === "training" || st === "stopping" || st === "starting";
    stopBtn.disabled = !active || st === "stopping";
    resumeBtn.disabled = active;
    if (live && live.error) msg.replaceChildren(h("div", { class: "error" }, live.error));
    if (live && live.examples) {
      const frac = live.epochs ? ((live.epoch - 1) + live.done / live.examples) / live.epochs : 0;
      bar.style.width = Math.max(0, Math.min(100, frac * 100)).toFixed(1) + "%";
      progressText.textContent = `epoch ${live.epoch} of ${live.epochs} · ${live.done}/${live.examples} examples` +
        (live.examples_per_sec ? ` · ${Math.round(live.examples_per_sec)} examples/s` : "");
    } else if (hist.length) {
      bar.style.width = st === "finished" ? "100%" : bar.style.width;
      progressText.textContent = `${hist[hist.length - 1].epoch} ${d.unit} on record`;
    }
    if (live && live.samples && live.samples.length) {
      samples.replaceChildren(sampleTable(live.samples, `Validation questions after epoch ${live.epoch}.`));
    } else if (!samples.firstChild && !active) {
      samples.append(h("p", { class: "muted" }, "…"));
      api(runApi(name) + "/samples").then((rows) => {
        if (samples.querySelector("#sample-table")) return;
        samples.replaceChildren(rows.length ? sampleTable(rows, "Fresh questions answered by the kept weights.")
          : h("p", { class: "muted" }, "Sample questions appear here after each epoch while this server trains the run."));
      }).catch((e) => samples.replaceChildren(h("div", { class: "error" }, e.message)));
    } else if (!samples.firstChild) {
      samples.append(h("p", { class: "muted" }, "Sample questions appear here after each epoch while this server trains the run."));
    }
    if (live && live.lines && live.lines.length) lines.replaceChildren(h("h2", {}, "Output"), h("pre", { id: "lines" }, live.lines.join("\n")));
  }
  function drawCharts() { charts.replaceChildren(curveCharts(hist, d.unit)); }
  drawCharts();
  show(d.status, d.live);
  const es = new EventSource(runApi(name) + "/events");
  es.addEventListener("update", (ev) => {
    const u = JSON.parse(ev.data);
    if (u.history) { hist = u.history; drawCharts(); }
    show(u.status, u.live);
  });
}

function sampleTable(rows, caption) {
  return h("div", {}, h("p", { class: "muted" }, caption), h("table", { id: "sample-table" },
    h("thead", {}, h("tr", {}, h("th", {}, "question"), h("th", {}, "expected"), h("th", {}, "predicted"), h("th", {}, ""))),
    h("tbody", {}, rows.map((q) => h("tr", { class: q.correct ? "right" : "wrong" },
      h("td", { class: "mono" }, q.question), h("td", { class: "mono" }, q.target),
      h("td", { class: "mono" }, q.prediction),
      h("td", { class: q.correct ? "ok" : "bad" }, q.correct ? "✓" : "✗"))))));
}

function evaluations(d) {
  const own = ["curves.svg", "curves.png", "config.json", "manifest.json", "history.json", "history.csv"];
  const extra = d.files.filter((f) => !own.includes(f));
  const links = d.files.map((f) => h("a", { href: runApi(d.name) + "/files/" + encodeURIComponent(f) }, f, "  "));
  const imgs = extra.filter((f) => f.endsWith(".svg") || f.endsWith(".png"))
    .map((f) => h("img", { class: "eval", src: runApi(d.name) + "/files/" + encodeURIComponent(f), alt: f }));
  return h("div", {}, h("h2", {}, "Evaluations and files"),
    extra.length ? null : h("p", { class: "muted" }, "No evaluations on record (seqcalc eval, lengths and compare write them)."),
    h("div", {}, imgs), h("p", {}, links));
}

// ---------- playground ----------

async function playPage() {
  const params = new URLSearchParams(location.search);
  let runs = [];
  try { runs = await api("/api/runs"); } catch (e) { main.replaceChildren(h("div", { class: "error" }, e.message)); return; }
  const sel = h("select", { id: "play-run" }, runs.map((r) => h("option", { value: r.name, selected: r.name === params.get("run") }, `${r.name} (${r.task}, ${r.model})`)));
  const q = h("input", { id: "question", size: 30, placeholder: "12+345", autocomplete: "off" });
  const out = h("div", { id: "answer-box" });
  const ask = async (e) => {
    if (e) e.preventDefault();
    out.replaceChildren(h("p", { class: "muted" }, "…"));
    try { out.replaceChildren(reply(await post(runApi(sel.value) + "/answer", { question: q.value }))); }
    catch (err) { out.replaceChildren(h("div", { class: "error", id: "answer-error" }, err.message)); }
  };
  const hint = async () => {
    try { const d = await api(runApi(sel.value)); q.placeholder = d.example; } catch (e) { /* the list may be stale */ }
  };
  sel.addEventListener("change", hint);
  main.replaceChildren(h("h1", {}, "Playground"),
    runs.length ? h("form", { class: "card row", onsubmit: ask }, h("label", {}, "Run ", sel), q, h("button", { class: "primary", type: "submit", id: "ask" }, "Ask"))
      : h("p", { class: "muted" }, "No runs yet: train one first."),
    out);
  if (runs.length) hint();
}

function reply(r) {
  const box = h("div", { class: "card", id: "answer" });
  box.append(h("div", { class: "muted" }, r.question, " ="));
  box.append(h("div", { class: "answer" }, r.output === "" ? '"" (empty answer)' : r.output, " ",
    r.correct === true ? h("span", { class: "ok" }, "✓") : r.correct === false ? h("span", { class: "bad" }, "✗") : null));
  if (r.confidence !== undefined) box.append(h("div", {}, "confidence ", h("b", { id: "confidence" }, fmt(r.confidence, 3)), h("span", { class: "muted" }, " (product of the per-character probabilities)")));
  if (r.value !== undefined) box.append(h("div", {}, "regression output ", fmt(r.value, 3)));
  if (r.steps && r.steps.length) {
    box.append(h("h2", {}, "Per character, in the order the model wrote them" + (r.reversed_output ? " (it writes the answer backwards)" : "")));
    box.append(h("div", { class: "steps", id: "steps" }, r.steps.map((st) => {
      const el = h("div", { class: "step" }, h("b", {}, st.symbol === " " ? "␣" : st.symbol), h("small", {}, fmt(st.p, 3)));
      el.style.background = `rgba(37,99,235,${(0.08 + 0.35 * st.p).toFixed(2)})`;
      return el;
    })));
  }
  if (r.work) box.append(h("h2", {}, "Work"), h("pre", {}, r.work));
  if (r.attention) {
    const a = r.attention;
    box.append(h("h2", {}, "Attention: where each written symbol looked in the question"));
    const head = h("tr", {}, h("th", {}, ""), a.columns.map((c) => h("th", {}, c)), h("th", { class: "muted" }, "pad"));
    const rows = a.rows.map(([sym, w, pad]) => h("tr", {}, h("th", {}, sym === " " ? "␣" : sym),
      [...w, pad].map((x) => { const td = h("td", { title: fmt(x, 3) }); td.style.background = `rgba(220,38,38,${Math.min(1, x).toFixed(3)})`; return td; })));
    box.append(h("table", { class: "heat", id: "heatmap" }, h("thead", {}, head), h("tbody", {}, rows)));
  } else if (r.attention_note) box.append(h("p", { class: "muted" }, r.attention_note));
  return box;
}

// ---------- train ----------

async function trainPage() {
  let exps = [], st = { slots: 0, running: [] };
  try { [exps, st] = await Promise.all([api("/api/experiments"), api("/api/trainings")]); }
  catch (e) { main.replaceChildren(h("div", { class: "error" }, e.message)); return; }
  const field = (label, el) => h("label", {}, label, el);
  const num = (id, ph, min) => h("input", { type: "number", id, name: id, placeholder: ph, min: min === undefined ? 1 : min });
  const choice = (id, opts) => h("select", { id, name: id }, h("option", { value: "" }, "(default)"), opts.map((o) => h("option", { value: o }, o)));
  const f = {
    name: h("input", { id: "name", name: "name", placeholder: "e.g. add3-gru" }),
    experiment: h("select", { id: "experiment", name: "experiment" }, h("option", { value: "" }, "none: Keras addition defaults"),
      exps.map((e) => h("option", { value: e.name }, `${e.name} (${e.kind}, ${e.expected_time})`))),
    quick: h("input", { type: "checkbox", id: "quick", name: "quick" }),
    task: choice("task", ["arithmetic", "expression", "pq-system"]),
    digits: num("digits", "3"), op: choice("op", ["+", "-"]),
    arch: choice("arch", ["repeat-seq2seq", "transformer"]), cell: choice("cell", ["lstm", "gru", "simplernn"]),
    layers: num("layers", "1"), hidden: num("hidden", "128"), decoder: choice("decoder", ["repeat", "teacher-forced"]),
    attention: h("input", { type: "checkbox", id: "attention", name: "attention" }),
    size: num("size", "50000"), batch_size: num("batch_size", "128"), epochs: num("epochs", "100"),
    steps: num("steps", "(step runs)"), lr: h("input", { type: "number", id: "lr", name: "lr", step: "any", placeholder: "0.001" }),
    seed: num("seed", "42", 0),
  };
  const msg = h("div", { id: "train-msg" });
  const slots = h("p", { class: "muted", id: "slots" }, `${st.running.length} of ${st.slots} training slots busy (one training per core)` +
    (st.running.length ? ": " + st.running.join(", ") : ""));
  const submit = async (e) => {
    e.preventDefault();
    const body = {};
    for (const [k, el] of Object.entries(f)) {
      if (el.type === "checkbox") { if (el.checked) body[k] = true; }
      else if (el.value !== "") body[k] = el.type === "number" ? Number(el.value) : el.value;
    }
    msg.replaceChildren(h("p", { class: "muted" }, "starting…"));
    try { const r = await post("/api/train", body); location.href = runUrl(r.name); }
    catch (err) { msg.replaceChildren(h("div", { class: "error" }, err.message)); }
  };
  main.replaceChildren(h("h1", {}, "Train"), slots,
    h("form", { class: "card", id: "train-form", onsubmit: submit },
      h("div", { class: "form-grid" },
        field("run name", f.name), field("built-in experiment", f.experiment), h("label", { class: "check" }, f.quick, "quick (tiny version)"),
        field("task", f.task), field("digits", f.digits), field("operation", f.op),
        field("architecture", f.arch), field("cell", f.cell), field("layers", f.layers), field("hidden units", f.hidden),
        field("decoder", f.decoder), h("label", { class: "check" }, f.attention, "attention"),
        field("training size (questions)", f.size), field("batch size", f.batch_size), field("epochs", f.epochs),
        field("steps", f.steps), field("learning rate", f.lr), field("seed", f.seed)),
      h("p", { class: "muted" }, "Empty fields keep the experiment's (or the Keras addition example's) value; each knob is `seqcalc train`'s flag of the same name."),
      h("button", { class: "primary", type: "submit", id: "train" }, "Train")),
    msg);
}

// ---------- routing ----------

(function route() {
  const p = location.pathname;
  const nav = (id) => { const a = document.getElementById(id); if (a) a.classList.add("active"); };
  if (p.startsWith("/runs/")) { nav("nav-runs"); runPage(decodeURIComponent(p.slice(6))); }
  else if (p === "/play") { nav("nav-play"); playPage(); }
  else if (p === "/train") { nav("nav-train"); trainPage(); }
  else { nav("nav-runs"); runsPage(); }
})();
