// The log viewer: pick a workload, search and page back in time, follow live, pause and resume.
// State lives in the URL hash, so a view can be bookmarked, shared and reloaded.

import * as api from "./api.js";
import { LiveTail } from "./live.js";
import { row } from "./rows.js";

const PAGE = 200; // lines per search page
const FOLLOW_TAIL = 100; // lines a fresh follow starts with
const MAX_ROWS = 5000; // oldest rows leave the page beyond this while following
const MAX_PAUSED = 10000; // lines held while paused before the stream is dropped (and resumed)
const STATS_EVERY_MS = 10000;

const $ = (id) => document.getElementById(id);
const el = {
  form: $("filters"), namespace: $("namespace"), target: $("target"), q: $("q"),
  levels: $("levels"), range: $("range"), customRange: $("custom-range"), from: $("from"), to: $("to"),
  namespaces: $("namespaces"), targets: $("targets"),
  executionChip: $("execution-chip"), executionValue: $("execution-value"), executionClear: $("execution-clear"),
  follow: $("follow"), pause: $("pause"), autoscroll: $("autoscroll"), status: $("status"),
  stats: $("stats"), scroller: $("scroller"), older: $("older"), rows: $("rows"), empty: $("empty"),
  tokenDialog: $("token-dialog"), tokenForm: $("token-form"), token: $("token"), tokenReason: $("token-reason"),
};

const state = {
  execution: "",
  olderCursor: null,
  shown: new Set(), // ids on the page, so an overlapping replay never shows a line twice
  maxId: 0,
  live: null,
  paused: false,
  held: [], // records that arrived while paused
  heldOverflow: false, // the stream was dropped while paused; resume reconnects after maxId
  statsTimer: 0,
  retry: null, // what to run again once a token is given
  workloads: [],
  expectedTop: -1, // where the page last scrolled itself, to tell that from the reader
};

// ---- status line ----

function status(text, isError = false) {
  el.status.textContent = text;
  el.status.classList.toggle("error", isError);
}

// ---- the form and the URL hash ----

function selectedLevels() {
  return [...el.levels.querySelectorAll("input:checked")].map((box) => box.value);
}

function view() {
  return {
    ns: el.namespace.value.trim(),
    target: el.target.value.trim(),
    q: el.q.value.trim(),
    level: selectedLevels().join(","),
    range: el.range.value,
    from: el.from.value,
    to: el.to.value,
    exec: state.execution,
  };
}

function saveHash(follow) {
  const v = view();
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(v)) if (value) params.set(key, value);
  if (follow) params.set("follow", "1");
  history.replaceState(null, "", `#${params.toString()}`);
}

function loadHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  el.namespace.value = params.get("ns") || "";
  el.target.value = params.get("target") || "";
  el.q.value = params.get("q") || "";
  const levels = new Set((params.get("level") || "").split(",").filter(Boolean));
  for (const box of el.levels.querySelectorAll("input")) box.checked = levels.has(box.value);
  el.range.value = params.get("range") || "";
  el.from.value = params.get("from") || "";
  el.to.value = params.get("to") || "";
  setExecution(params.get("exec") || "");
  showCustomRange();
  return { follow: params.get("follow") === "1" };
}

function showCustomRange() {
  el.customRange.hidden = el.range.value !== "custom";
}

function setExecution(id) {
  state.execution = id;
  el.executionValue.textContent = id;
  el.executionChip.hidden = !id;
}

// The filters as API parameters (everything but paging and following).
function filterParams(v) {
  const params = { q: v.q, level: v.level, executionId: v.exec };
  if (v.range === "custom") {
    if (v.from) params.since = new Date(v.from).toISOString();
    if (v.to) params.until = new Date(v.to).toISOString();
  } else if (v.range) {
    params.last = v.range;
  }
  return params;
}

function scope() {
  const v = view();
  const target = api.parseTarget(v.target);
  if (!v.ns || !target) return null;
  return { v, target, path: api.logsPath(v.ns, target), params: filterParams(v) };
}

// ---- rows ----

function remember(record) {
  if (state.shown.has(record.id)) return false;
  state.shown.add(record.id);
  const id = Number(record.id);
  if (id > state.maxId) state.maxId = id;
  return true;
}

function clearRows() {
  el.rows.replaceChildren();
  state.shown.clear();
  state.maxId = 0;
  state.olderCursor = null;
  el.older.hidden = true;
  el.empty.hidden = true;
}

function appendRecords(records) {
  const fragment = document.createDocumentFragment();
  for (const record of records) if (remember(record)) fragment.append(row(record));
  el.rows.append(fragment);
  const excess = el.rows.childElementCount - MAX_ROWS;
  if (excess > 0) {
    for (let i = 0; i < excess; i++) {
      state.shown.delete(el.rows.firstElementChild.dataset.id);
      el.rows.firstElementChild.remove();
    }
    // Lines were let go at the top: paging older from the old cursor would leave a hole.
    state.olderCursor = null;
    el.older.hidden = true;
  }
  el.empty.hidden = el.rows.childElementCount > 0;
  if (el.autoscroll.checked) scrollToBottom();
}

function prependRecords(records) {
  const before = el.scroller.scrollHeight - el.scroller.scrollTop;
  const fragment = document.createDocumentFragment();
  for (const record of records) if (remember(record)) fragment.append(row(record));
  el.rows.prepend(fragment);
  scrollTo(el.scroller.scrollHeight - before); // keep the reader's place
  el.empty.hidden = el.rows.childElementCount > 0;
}

function scrollTo(top) {
  el.scroller.scrollTop = top;
  state.expectedTop = el.scroller.scrollTop;
}

function scrollToBottom() {
  scrollTo(el.scroller.scrollHeight);
}

el.scroller.addEventListener("scroll", () => {
  if (Math.abs(el.scroller.scrollTop - state.expectedTop) < 2) return; // the page's own scroll
  // Reading back up stops the page from jumping away; reaching the bottom again restarts it.
  const atBottom = el.scroller.scrollHeight - el.scroller.scrollTop - el.scroller.clientHeight < 40;
  el.autoscroll.checked = atBottom;
});

// ---- errors and the token ----

function handle(err, again) {
  if (err instanceof api.AuthRequired) {
    askForToken(err.message, again, err instanceof api.Forbidden);
  } else if (err.name !== "AbortError") {
    status(err.message || String(err), true);
  }
}

function askForToken(reason, again, forbidden = false) {
  state.retry = again;
  if (forbidden) el.tokenReason.textContent = `This token may not read that (${reason}).`;
  else if (api.token()) el.tokenReason.textContent = `The server refused the token (${reason}).`;
  else el.tokenReason.textContent = `The server answered 401: ${reason}.`;
  el.token.value = "";
  if (!el.tokenDialog.open) el.tokenDialog.showModal();
  status("waiting for a token", true);
}

el.tokenForm.addEventListener("submit", () => {
  api.setToken(el.token.value.trim());
  const again = state.retry;
  state.retry = null;
  loadWorkloads();
  if (again) again();
});

// ---- workloads for the pickers ----

async function loadWorkloads() {
  let body;
  try {
    body = await api.getJson("/v1/workloads");
  } catch (err) {
    if (err instanceof api.AuthRequired) throw err;
    return; // an older server without the list: the pickers stay free text
  }
  state.workloads = Array.isArray(body) ? body : body.workloads || [];
  const namespaces = [...new Set(state.workloads.map((w) => w.namespace))].sort();
  el.namespaces.replaceChildren(...namespaces.map((ns) => new Option(ns)));
  fillTargets();
}

function fillTargets() {
  const ns = el.namespace.value.trim();
  const options = [];
  for (const w of state.workloads) {
    if (ns && w.namespace !== ns) continue;
    options.push(`${w.kind.toLowerCase()}/${w.name}`);
    for (const pod of w.pods || []) options.push(`pod/${typeof pod === "string" ? pod : pod.name}`);
  }
  el.targets.replaceChildren(...[...new Set(options)].map((t) => new Option(t)));
}

el.namespace.addEventListener("change", fillTargets);

// ---- stats ----

async function refreshStats() {
  const s = scope();
  const path = s && api.statsPath(s.v.ns, s.target);
  if (!path) {
    el.stats.hidden = true;
    return;
  }
  try {
    const stats = await api.getJson(path);
    const show = (id, value) => {
      const dd = $(id);
      dd.textContent = String(value ?? 0);
      dd.classList.toggle("nonzero", Number(value) > 0 && id !== "stat-total" && id !== "stat-pods");
    };
    show("stat-total", stats.total);
    show("stat-truncated", stats.truncatedLines);
    show("stat-dropped", stats.droppedLines);
    show("stat-split", stats.splitLines);
    show("stat-pods", stats.pods);
    $("stat-last").textContent = stats.lastLogAt ? stats.lastLogAt.slice(0, 19).replace("T", " ") : "–";
    el.stats.hidden = false;
  } catch (err) {
    if (!(err instanceof api.AuthRequired)) el.stats.hidden = true;
  }
}

// ---- search and paging ----

async function search() {
  const s = scope();
  if (!s) {
    status("Pick a namespace and a workload (function/NAME, pipeline/NAME or pod/NAME).", true);
    return;
  }
  const wasFollowing = Boolean(state.live);
  stopLive();
  clearRows();
  saveHash(wasFollowing);
  status("searching…");
  try {
    // Newest first, shown oldest at the top: the page ends where a follow would begin.
    const body = await api.getJson(s.path, { ...s.params, order: "desc", limit: PAGE });
    appendRecords(body.records.slice().reverse());
    state.olderCursor = body.nextCursor;
    el.older.hidden = !body.nextCursor;
    el.empty.hidden = body.records.length > 0;
    status(`${body.records.length} line${body.records.length === 1 ? "" : "s"}${body.nextCursor ? ", more before" : ""}`);
    scrollToBottom();
    refreshStats();
    if (wasFollowing) startLive();
  } catch (err) {
    handle(err, search);
  }
}

async function older() {
  const s = scope();
  if (!s || !state.olderCursor) return;
  el.older.disabled = true;
  try {
    const body = await api.getJson(s.path, {
      ...s.params, order: "desc", limit: PAGE, cursor: state.olderCursor,
    });
    prependRecords(body.records.slice().reverse());
    state.olderCursor = body.nextCursor;
    el.older.hidden = !body.nextCursor;
    status(`${el.rows.childElementCount} lines${body.nextCursor ? ", more before" : ", from the first one"}`);
  } catch (err) {
    handle(err, older);
  } finally {
    el.older.disabled = false;
  }
}

// ---- following ----

function onLiveRecord(record) {
  if (state.paused) {
    state.held.push(record);
    if (state.held.length >= MAX_PAUSED && state.live) {
      // Holding more would only grow memory: drop the stream; resume reconnects after the
      // last held line and the server replays the rest.
      state.heldOverflow = true;
      state.live.stop();
    }
    status(`paused, ${state.held.length} new line${state.held.length === 1 ? "" : "s"} waiting`);
    return;
  }
  queueRender(record);
}

let renderQueue = [];
let renderScheduled = false;

// Records arrive one by one; the page is updated once per frame.
function queueRender(record) {
  renderQueue.push(record);
  // A hidden tab runs no animation frames: keep only what the page could show anyway.
  if (renderQueue.length > MAX_ROWS) renderQueue.splice(0, renderQueue.length - MAX_ROWS);
  if (renderScheduled) return;
  renderScheduled = true;
  requestAnimationFrame(() => {
    renderScheduled = false;
    const batch = renderQueue;
    renderQueue = [];
    appendRecords(batch);
  });
}

function onLiveState(what, detail) {
  if (state.paused && what === "live") return;
  if (what === "live") status(detail === "reconnected" ? "live (reconnected, resumed)" : "live");
  else if (what === "reconnecting") status(`reconnecting… ${detail || ""}`, true);
  else if (what === "ended") { status(`stream ended: ${detail}`); setFollowing(false); state.live = null; }
  else if (what === "auth") { setFollowing(false); state.live = null; askForToken(detail, startLive); }
  else if (what === "failed") { status(detail, true); setFollowing(false); state.live = null; }
}

function startLive(resumeAfter) {
  const s = scope();
  if (!s) {
    status("Pick a namespace and a workload first.", true);
    return;
  }
  stopLive();
  const after = resumeAfter || (state.maxId ? String(state.maxId) : "");
  // With lines on the page, continue right after the newest; else start from the last few.
  state.live = new LiveTail({
    path: s.path,
    params: s.params,
    firstParams: after ? {} : { tailLines: FOLLOW_TAIL },
    lastEventId: after,
    onRecord: onLiveRecord,
    onState: onLiveState,
  });
  setFollowing(true);
  saveHash(true);
  el.autoscroll.checked = true;
  scrollToBottom();
  status("connecting…");
  state.live.run();
  refreshStats();
  state.statsTimer = setInterval(refreshStats, STATS_EVERY_MS);
}

function stopLive() {
  if (state.live) state.live.stop();
  state.live = null;
  clearInterval(state.statsTimer);
  state.held = [];
  state.heldOverflow = false;
  setPaused(false);
  setFollowing(false);
}

function setFollowing(on) {
  el.follow.setAttribute("aria-pressed", String(on));
  el.follow.textContent = on ? "Stop following" : "Follow live";
  el.pause.disabled = !on;
}

function setPaused(on) {
  state.paused = on;
  el.pause.setAttribute("aria-pressed", String(on));
  el.pause.textContent = on ? "Resume" : "Pause";
}

function resume() {
  setPaused(false);
  const held = state.held;
  state.held = [];
  if (held.length) appendRecords(held);
  if (state.heldOverflow) {
    state.heldOverflow = false;
    startLive(String(state.maxId));
  } else {
    status("live");
  }
}

// ---- wiring ----

el.form.addEventListener("submit", (event) => {
  event.preventDefault();
  search();
});
el.range.addEventListener("change", showCustomRange);
el.older.addEventListener("click", older);
el.follow.addEventListener("click", () => {
  if (state.live) {
    stopLive();
    saveHash(false);
    status("stopped following");
  } else {
    startLive();
  }
});
el.pause.addEventListener("click", () => {
  if (!state.live && !state.heldOverflow) return;
  if (state.paused) resume();
  else {
    setPaused(true);
    status("paused, 0 new lines waiting");
  }
});
el.autoscroll.addEventListener("change", () => {
  if (el.autoscroll.checked) scrollToBottom();
});
el.rows.addEventListener("click", (event) => {
  const long = event.target.closest(".text.folded, .text.unfolded");
  if (long) {
    long.classList.toggle("folded");
    long.classList.toggle("unfolded");
    return;
  }
  const link = event.target.closest("a.execution");
  if (!link) return;
  event.preventDefault();
  setExecution(link.dataset.execution);
  search();
});
el.executionClear.addEventListener("click", () => {
  setExecution("");
  search();
});

async function start() {
  const { follow } = loadHash();
  try {
    await loadWorkloads();
  } catch (err) {
    handle(err, start);
    return;
  }
  if (!el.namespace.value && state.workloads.length) {
    // Out of the box (e.g. `tailrace up`): open the first workload there is.
    const first = state.workloads[0];
    el.namespace.value = first.namespace;
    el.target.value = `${first.kind.toLowerCase()}/${first.name}`;
    fillTargets();
  }
  if (!scope()) return;
  await search();
  if (follow && !state.live) startLive();
}

start();
