// The review page (index.html): the review queue (unknown patterns first, then the trust layer's reviews, then
// low confidence; paged, filtered by lot, class, decision and dates), each card with its decision badge,
// prediction set and unknown score, the wafer next to its lot's stacked map and the model's explanation
// (lazy-loaded), confirm / correct; drift (statistic, threshold, class-mix changes, unknown rate) and class counts.
// Served from /static/ because the page's CSP allows no inline script. Everything that comes from the API
// is put in the page as text (textContent, element attributes), never parsed as HTML.
"use strict";

const TOKEN_KEY = "adrcs_token";
const $ = (id) => document.getElementById(id);

// The token lives in sessionStorage (this tab only, gone when it closes). Older pages kept it in
// localStorage (every tab, forever): move such a token here once and delete it there.
function storedToken() {
  let token = sessionStorage.getItem(TOKEN_KEY) || "";
  try {
    const old = localStorage.getItem(TOKEN_KEY);
    if (old !== null) {
      if (!token && old) { token = old; sessionStorage.setItem(TOKEN_KEY, old); }
      localStorage.removeItem(TOKEN_KEY);
    }
  } catch (e) { /* storage disabled: nothing to migrate */ }
  return token;
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, options = {}) {
  const headers = Object.assign({"Authorization": "Bearer " + $("token").value.trim()}, options.headers || {});
  const r = await fetch(path, Object.assign({}, options, {headers}));
  if (!r.ok) {
    let detail = r.statusText;
    try { detail = (await r.json()).detail; } catch (e) { /* not JSON */ }
    throw new ApiError(r.status, r.status + ": " + detail);
  }
  return r;
}

// a new element with text content and attributes (never HTML)
function el(tag, text, attrs = {}) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

function showHelp(error) {
  $("help").hidden = false;
  $("panels").hidden = true;
  $("helperror").textContent = error || "";
}

function showPanels() {
  $("help").hidden = true;
  $("panels").hidden = false;
}

function fixed(x, digits) { return typeof x === "number" ? x.toFixed(digits) : "-"; }

// A lot's stacked failure-rate map and summary, fetched once per lot and page load: {url, maps, summary}.
const lotMaps = new Map();

function lotMap(lot) {
  if (!lotMaps.has(lot)) {
    const path = `v1/lots/${encodeURIComponent(lot)}`;
    lotMaps.set(lot, (async () => {
      const r = await api(path + "/stacked.png");
      const maps = r.headers.get("X-Wafer-Maps");
      const url = URL.createObjectURL(await r.blob());
      const summary = (await (await api(path + "?limit=1")).json()).summary;
      return {url, maps, summary};
    })());
  }
  return lotMaps.get(lot);
}

function forgetLotMaps() {
  for (const p of lotMaps.values()) p.then((m) => URL.revokeObjectURL(m.url), () => {});
  lotMaps.clear();
}

// the stacked map of the item's lot (a figure), or null when the inspection has no lot
async function lotFigure(item) {
  if (item.lot === null || item.lot === undefined || item.lot === "") return null;
  const fig = el("figure", null, {"class": "lotmap"});
  const img = el("img", null, {alt: "stacked map of lot " + item.lot});
  const caption = el("figcaption", "lot " + item.lot);
  fig.append(img, caption);
  try {
    const m = await lotMap(item.lot);
    img.src = m.url;
    const s = m.summary || {};
    caption.textContent = `lot ${item.lot}: failure rate over ${m.maps ?? "?"} wafer maps` +
      (typeof s.yield_mean === "number" ? `, mean yield ${fixed(s.yield_mean, 3)}` : "") +
      (s.flagged ? `, ${s.flagged} low-confidence` : "");
  } catch (e) { img.alt = "no lot map: " + e.message; }
  return fig;
}

// Blob URLs of the cards on screen (inspection pictures, explanations), revoked when the queue is redrawn.
let cardUrls = [];

function blobUrl(blob) {
  const url = URL.createObjectURL(blob);
  cardUrls.push(url);
  return url;
}

function forgetCardUrls() {
  for (const u of cardUrls) URL.revokeObjectURL(u);
  cardUrls = [];
}

// the decision badge: the class (decided), "review" or "unknown"; inspections stored before the trust layer
// have no decision and show their predicted class, greyed
function decisionBadge(item) {
  const d = item.decision;
  if (d === null || d === undefined || d === "") {
    return el("span", item.class, {"class": "badge none", title: "stored before the trust layer: no decision"});
  }
  const kind = d === "unknown" ? "unknown" : d === "review" ? "review" : "decided";
  return el("span", d, {"class": "badge " + kind, title: kind === "decided" ? "decided class" : "needs a look: " + d});
}

function trustLine(item) {
  const line = el("div", null, {"class": "trust"});
  const set = item.set === null || item.set === undefined ? "-" : (item.set || "(empty)");
  line.append("prediction set: ", el("span", set, {"class": "set"}), " | unknown score: ",
    el("span", fixed(item.unknown_score, 2), {"class": "uscore"}));
  return line;
}

// The explanation (class activation map) of a card, fetched when the card scrolls into view.
const explainQueue = new Map();  // element -> inspection id
const explainObserver = ("IntersectionObserver" in window) ? new IntersectionObserver((entries) => {
  for (const e of entries) {
    if (!e.isIntersecting || !explainQueue.has(e.target)) continue;
    const id = explainQueue.get(e.target);
    explainQueue.delete(e.target);
    explainObserver.unobserve(e.target);
    loadExplanation(e.target, id);
  }
}, {rootMargin: "200px"}) : null;

async function loadExplanation(fig, id) {
  const img = fig.querySelector("img");
  const caption = fig.querySelector("figcaption");
  try {
    const r = await api(`v1/inspections/${encodeURIComponent(id)}/explanation.png`);
    img.src = blobUrl(await r.blob());
    caption.textContent = "where the model looks (" + (r.headers.get("X-Model-Version") || "current model") + ")";
  } catch (e) {
    img.remove();
    caption.textContent = "no explanation: " + e.message;
  }
}

function explanationFigure(item) {
  const fig = el("figure", null, {"class": "explain"});
  fig.append(el("img", null, {alt: "explanation of inspection " + item.id, loading: "lazy"}),
    el("figcaption", "explanation loads when shown"));
  if (explainObserver) { explainQueue.set(fig, item.id); explainObserver.observe(fig); }
  else loadExplanation(fig, item.id);
  return fig;
}

async function card(item) {
  const div = el("div", null, {"class": "card", "data-id": item.id});
  const img = el("img", null, {alt: "inspection " + item.id});
  const body = el("div");
  const head = el("div");
  head.append(el("b", "#" + item.id), " ", decisionBadge(item), " predicted ", el("b", item.class, {"class": "pred"}),
    ` (confidence ${fixed(item.confidence, 3)}) lot ${item.lot ?? "-"} wafer ${item.wafer ?? "-"}`);
  if (typeof item.suggest_rank === "number") {  // order=suggest: its place by label value
    head.append(` label value #${item.suggest_rank} (${fixed(item.suggest_score, 3)})`);
  }
  const probs = el("div", null, {"class": "probs"});
  const ranked = Object.entries(item.probabilities || {}).sort((a, b) => b[1] - a[1]);
  ranked.slice(0, 4).forEach(([c, p], i) => {
    if (i) probs.append(el("br"));
    const bar = el("span", null, {"class": "bar"});
    bar.style.width = Math.round(Math.max(0, Math.min(1, Number(p) || 0)) * 80) + "px";  // CSSOM: allowed by CSP
    probs.append(c, bar, fixed(p, 3));
  });
  const actions = el("div", null, {"class": "actions"});
  const confirm = el("button", "Confirm", {"class": "confirm"});
  const select = el("select", null, {"class": "label"});
  for (const [c] of ranked) select.append(new Option(c, c));
  const correct = el("button", "Correct", {"class": "correct"});
  const status = el("span", null, {"class": "status"});
  actions.append(confirm, select, correct, status);
  body.append(head, trustLine(item), probs, actions);
  const pictures = el("div", null, {"class": "pictures"});
  pictures.append(img);
  div.append(pictures, body);
  try {
    const r = await api(`v1/inspections/${encodeURIComponent(item.id)}/image.png`);
    img.src = blobUrl(await r.blob());
  } catch (e) { img.alt = "no picture: " + e.message; }
  if (item.kind === "wafer_map") {
    const fig = await lotFigure(item);
    if (fig) pictures.append(fig);
  }
  pictures.append(explanationFigure(item));
  select.value = item.class;
  const done = async (action) => {
    const label = action === "confirm" ? null : select.value;
    try {
      await api(`v1/inspections/${encodeURIComponent(item.id)}/review`, {method: "POST",
        headers: {"Content-Type": "application/json"}, body: JSON.stringify({action, label})});
      status.textContent = action === "confirm" ? "confirmed" : "corrected to " + label;
      div.classList.add("reviewed");
      div.querySelectorAll("button").forEach((b) => { b.disabled = true; });
    } catch (e) { status.textContent = e.message; }
  };
  confirm.addEventListener("click", () => done("confirm"));
  correct.addEventListener("click", () => done("correct"));
  return div;
}

function countsTable(counts) {
  const lots = new Map();
  const classes = new Set();
  for (const r of counts || []) {
    const lot = r.lot ?? "-";
    if (!lots.has(lot)) lots.set(lot, new Map());
    lots.get(lot).set(r.predicted, r.count);
    classes.add(r.predicted);
  }
  const cols = [...classes].sort();
  const table = el("table");
  const header = el("tr");
  header.append(el("th", "lot"), ...cols.map((c) => el("th", c)));
  table.append(header);
  for (const [lot, row] of lots) {
    const tr = el("tr");
    tr.append(el("td", lot), ...cols.map((c) => el("td", row.get(c) ?? "")));
    table.append(tr);
  }
  return table;
}

function pct(x) { return typeof x === "number" ? (100 * x).toFixed(1) + " %" : "-"; }

// the drift panel: the class-shift statistic against its threshold, the classes whose share moved most, and the
// unknown rate against the reference (GET /v1/stats: drift)
function showDrift(d) {
  $("drift").textContent = d.status || "-";
  $("drift").className = ["ok", "warning", "alert"].includes(d.status) ? d.status : "";
  const st = d.statistic;
  if (!st) $("driftstat").textContent = d.detail || `too few recent inspections (${d.window ?? 0})`;
  else if (st.threshold_on === "p_value") {
    $("driftstat").textContent = `class mix: chi-square ${fixed(st.value, 1)}, p = ${fixed(st.p_value, 4)} ` +
      `(alert below ${st.threshold}, warning below ${st.warn_threshold})` + (st.alert ? ": ALERT" : "");
  } else {
    $("driftstat").textContent = `class mix: PSI ${fixed(st.value, 3)} (alert at ${st.threshold}, warning at ` +
      `${st.warn_threshold})` + (st.alert ? ": ALERT" : "");
  }
  const changes = d.changes || [];
  if (changes.length) {
    const table = el("table");
    const header = el("tr");
    header.append(el("th", "class"), el("th", "reference"), el("th", "recent"), el("th", "change"));
    table.append(header);
    for (const c of changes) {
      const tr = el("tr");
      tr.append(el("td", c.class), el("td", pct(c.reference)), el("td", pct(c.recent)),
        el("td", (c.delta > 0 ? "+" : "") + pct(c.delta)));
      table.append(tr);
    }
    $("driftchanges").replaceChildren(el("div", "what changed (share of predictions):"), table);
  } else $("driftchanges").replaceChildren();
  const u = d.unknown_rate || {};
  if (typeof u.recent === "number") {
    $("driftunknown").textContent = `unknown patterns: ${pct(u.recent)} of the last ${u.n} vs ${pct(u.reference)} ` +
      (u.reference_source === "reference" ? "on validation" : "expected (false-alarm rate)") +
      (typeof u.p_value === "number" ? `, p = ${fixed(u.p_value, 4)} (alert below ${u.threshold})` : "") +
      (u.alert ? ": ALERT" : "");
    $("driftunknown").className = "drift " + (u.alert ? "alert" : u.status === "warning" ? "warning" : "");
  } else {
    $("driftunknown").textContent = u.detail ? "unknown patterns: " + u.detail : "";
    $("driftunknown").className = "drift";
  }
  $("driftdetail").textContent = d.flagged_lots && d.flagged_lots.length ? "unusual lots: " + d.flagged_lots.join(", ") : "";
}

// The queue's filters and page: GET /v1/inspections?queue=true&lot=&cls=&decision=&order=&since=&until=&limit=&offset=
// (order=suggest: ranked by label value, only the newest `ranked` pending inspections)
const PAGE_SIZE = 25;
const view = {offset: 0, total: 0};

function dayStart(value, plusDays = 0) {  // "YYYY-MM-DD" (a date input) -> ISO time at 00:00 UTC
  const [y, m, d] = value.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, d + plusDays)).toISOString();
}

function queuePath() {
  const q = new URLSearchParams({queue: "true", limit: String(PAGE_SIZE), offset: String(view.offset)});
  for (const [key, id] of [["lot", "f-lot"], ["cls", "f-cls"], ["decision", "f-decision"], ["order", "f-order"]]) {
    const v = $(id).value.trim();
    if (v) q.set(key, v);
  }
  if ($("f-since").value) q.set("since", dayStart($("f-since").value));
  if ($("f-until").value) q.set("until", dayStart($("f-until").value, 1));  // the whole "to" day
  return "v1/inspections?" + q.toString();
}

async function loadQueue() {
  $("msg").textContent = "loading...";
  const q = await (await api(queuePath())).json();
  view.total = q.total;
  $("count").textContent = `(${q.total})`;
  forgetCardUrls();
  explainQueue.clear();
  if (explainObserver) explainObserver.disconnect();
  const cards = [];
  for (const item of q.items) cards.push(await card(item));
  $("queue").replaceChildren(...cards);
  const first = q.items.length ? view.offset + 1 : 0;
  const end = typeof q.ranked === "number" ? Math.min(q.total, q.ranked) : q.total;  // suggest: a bounded pool
  $("pageinfo").textContent = `${first}-${view.offset + q.items.length} of ${end}` +
    (end < q.total ? ` ranked (newest of ${q.total})` : "");
  $("prev").disabled = view.offset <= 0;
  $("next").disabled = view.offset + q.items.length >= end;
  $("msg").textContent = q.items.length ? "" : "nothing to review";
}

async function loadClasses() {
  const c = await (await api("v1/classes")).json();
  const names = [...new Set((c.classes || []).map((x) => x.name))].sort();
  $("classlist").replaceChildren(...names.map((n) => el("option", null, {value: n})));
  const keep = $("f-decision").value;
  const fixedOptions = [...$("f-decision").options].slice(0, 3);
  $("f-decision").replaceChildren(...fixedOptions, ...names.map((n) => new Option(n, n)));
  $("f-decision").value = keep;
}

async function guarded(work) {
  try { await work(); } catch (e) {
    if (e.status === 401 || e.status === 429) showHelp(e.message);  // no usable token: say where one comes from
    else { showPanels(); $("msg").textContent = e.message; }
  }
}

async function load() {
  const token = $("token").value.trim();
  if (!token) { sessionStorage.removeItem(TOKEN_KEY); showHelp(""); return; }
  sessionStorage.setItem(TOKEN_KEY, token);
  $("msg").textContent = "loading...";
  forgetLotMaps();
  await guarded(async () => {
    await loadQueue();
    showPanels();
    await loadClasses();
    const s = await (await api("v1/stats?by=lot")).json();
    showDrift(s.drift || {});
    $("counts").replaceChildren(countsTable(s.counts));
  });
}

function page(step) {
  view.offset = Math.max(0, view.offset + step * PAGE_SIZE);
  guarded(loadQueue);
}

function forget() {
  sessionStorage.removeItem(TOKEN_KEY);
  $("token").value = "";
  $("queue").replaceChildren();
  $("counts").replaceChildren();
  forgetLotMaps();
  forgetCardUrls();
  showHelp("");
}

document.addEventListener("DOMContentLoaded", () => {
  $("token").value = storedToken();
  $("load").addEventListener("click", load);
  $("forget").addEventListener("click", forget);
  $("token").addEventListener("keydown", (e) => { if (e.key === "Enter") load(); });
  $("filters").addEventListener("submit", (e) => { e.preventDefault(); view.offset = 0; guarded(loadQueue); });
  $("clear").addEventListener("click", () => { $("filters").reset(); view.offset = 0; guarded(loadQueue); });
  $("prev").addEventListener("click", () => page(-1));
  $("next").addEventListener("click", () => page(1));
  if ($("token").value) load(); else showHelp("");
});
