// The review page (index.html): the low-confidence queue (each wafer next to its lot's stacked map), confirm /
// correct, drift and class counts.
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

async function card(item) {
  const div = el("div", null, {"class": "card", "data-id": item.id});
  const img = el("img", null, {alt: "inspection " + item.id});
  const body = el("div");
  const head = el("div");
  head.append(el("b", "#" + item.id), " predicted ", el("b", item.class, {"class": "pred"}),
    ` (confidence ${fixed(item.confidence, 3)}) lot ${item.lot ?? "-"} wafer ${item.wafer ?? "-"}`);
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
  body.append(head, probs, actions);
  const pictures = el("div", null, {"class": "pictures"});
  pictures.append(img);
  div.append(pictures, body);
  try {
    const r = await api(`v1/inspections/${encodeURIComponent(item.id)}/image.png`);
    img.src = URL.createObjectURL(await r.blob());
  } catch (e) { img.alt = "no picture: " + e.message; }
  if (item.kind === "wafer_map") {
    const fig = await lotFigure(item);
    if (fig) pictures.append(fig);
  }
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

async function load() {
  const token = $("token").value.trim();
  if (!token) { sessionStorage.removeItem(TOKEN_KEY); showHelp(""); return; }
  sessionStorage.setItem(TOKEN_KEY, token);
  $("msg").textContent = "loading...";
  forgetLotMaps();
  try {
    const q = await (await api("v1/inspections?reviewed=false&low_confidence=true&limit=50")).json();
    showPanels();
    $("count").textContent = `(${q.total})`;
    const cards = [];
    for (const item of q.items) cards.push(await card(item));
    $("queue").replaceChildren(...cards);
    $("msg").textContent = q.items.length ? "" : "nothing to review";
    const s = await (await api("v1/stats?by=lot")).json();
    const d = s.drift || {};
    $("drift").textContent = d.status || "-";
    $("drift").className = ["ok", "warning", "alert"].includes(d.status) ? d.status : "";
    $("driftdetail").textContent = d.flagged_lots && d.flagged_lots.length ? "unusual lots: " + d.flagged_lots.join(", ") : "";
    $("counts").replaceChildren(countsTable(s.counts));
  } catch (e) {
    if (e.status === 401 || e.status === 429) showHelp(e.message);  // no usable token: say where one comes from
    else { showPanels(); $("msg").textContent = e.message; }
  }
}

function forget() {
  sessionStorage.removeItem(TOKEN_KEY);
  $("token").value = "";
  $("queue").replaceChildren();
  $("counts").replaceChildren();
  forgetLotMaps();
  showHelp("");
}

document.addEventListener("DOMContentLoaded", () => {
  $("token").value = storedToken();
  $("load").addEventListener("click", load);
  $("forget").addEventListener("click", forget);
  $("token").addEventListener("keydown", (e) => { if (e.key === "Enter") load(); });
  if ($("token").value) load(); else showHelp("");
});
