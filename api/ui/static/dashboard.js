// perpsim dashboard: plain JavaScript modules, no build step. Plotly comes from
// /ui/static/plotly.min.js (the copy bundled in the installed plotly package); nothing is loaded
// from the network. format.js writes numbers, events.js the timeline's lines, charts.js the two
// charts, positions.js the accounts table; this module holds the state and talks to the server.
//
// Data flow: GET /ui/api/snapshot gives everything at once; the /ui/events WebSocket streams
// journal events (the timeline) and light ticks (prices, time, funding, insurance fund), and
// each change schedules a fresh snapshot (positions and their price lines move with the mark).
// Controls call the control plane: POST /control/advance and POST /control/prices.
import { refreshCascade } from "./cascade.js";
import { renderFundingChart, renderPriceChart } from "./charts.js";
import { CATEGORIES, category, summary } from "./events.js";
import { el, fmtDuration, fmtPct, fmtPrice, fmtTime, text } from "./format.js";
import { renderPositions } from "./positions.js";

const MAX_TIMELINE = 400;
const MAX_LIVE = 2000;
const REALTIME_HISTORY_MS = 5000; // realtime clock: re-read the candles at most this often

const state = {
  snap: null,
  symbol: null,
  history: null,
  live: [], // [{t, index, mark, last}] seen since the last history read (shocks included)
  timeline: [],
  lastSeq: 0,
  filters: new Set(CATEGORIES.map((c) => c[0])),
  insuranceStart: null,
  lastHistoryAt: 0,
  historyNow: null,
  fundingKey: null,
  ws: null,
  refresh: { timer: null, inflight: false, again: false, history: false },
};

// ---- timeline --------------------------------------------------------------------------------
function addEvents(events) {
  let added = false;
  for (const ev of events) {
    if (ev.seq <= state.lastSeq) continue;
    state.timeline.push(ev);
    state.lastSeq = ev.seq;
    added = true;
  }
  if (state.timeline.length > MAX_TIMELINE) {
    state.timeline.splice(0, state.timeline.length - MAX_TIMELINE);
  }
  if (added) renderTimeline();
  return added;
}
function renderFilters() {
  const box = el("timeline-filters");
  box.replaceChildren();
  for (const [key, label] of CATEGORIES) {
    const lab = document.createElement("label");
    const box2 = document.createElement("input");
    box2.type = "checkbox";
    box2.checked = state.filters.has(key);
    box2.dataset.category = key;
    box2.addEventListener("change", () => {
      if (box2.checked) state.filters.add(key); else state.filters.delete(key);
      renderTimeline();
    });
    lab.append(box2, document.createTextNode(label));
    box.append(lab);
  }
}
function renderTimeline() {
  const list = el("timeline");
  const items = [];
  for (let i = state.timeline.length - 1; i >= 0; i--) {
    const ev = state.timeline[i];
    const cat = category(ev);
    if (!state.filters.has(cat)) continue;
    const li = document.createElement("li");
    li.className = `ev ev-${cat}`;
    li.dataset.type = ev.type;
    li.dataset.seq = ev.seq;
    li.append(text("span", fmtTime(ev.time), "t"), text("span", ev.type, "type"),
      text("span", ev.account_id ? `#${ev.account_id}` : "", "who"),
      text("span", summary(ev), "what"));
    items.push(li);
  }
  if (!items.length) items.push(text("li", "no events yet", "empty"));
  list.replaceChildren(...items);
}

// ---- snapshot rendering ------------------------------------------------------------------------
function applySnapshot(snap) {
  const fresh = !state.snap || snap.last_seq < state.lastSeq;
  state.snap = snap;
  if (!state.symbol || !(state.symbol in snap.symbols)) state.symbol = snap.default_symbol;
  // The snapshot's events, then any streamed ones it does not hold yet.
  const newer = fresh ? [] : state.timeline.filter((ev) => ev.seq > snap.last_seq);
  state.timeline = snap.events.slice();
  state.lastSeq = snap.last_seq;
  addEvents(newer);
  renderTimeline();
  if (snap.history) {
    state.history = snap.history;
    state.historyNow = snap.now;
    state.live = state.live.filter((p) => p.t >= snap.now);
  }
  if (state.insuranceStart === null) state.insuranceStart = snap.insurance_fund;
  addLivePoint(snap);
  renderHeader(snap);
  renderSymbols(snap);
  renderControls(snap);
  renderFunding(snap);
  renderInsurance(snap);
  renderPositions(snap);
  renderChart();
  refreshCascade(state.symbol, snap.last_seq);
}
function renderChart() {
  renderPriceChart(state);
}
function addLivePoint(market) {
  const row = market.symbols[state.symbol];
  if (!row) return;
  const point = { t: market.now, index: row.index, mark: row.mark, last: row.last };
  const prev = state.live[state.live.length - 1];
  if (prev && prev.t === point.t && prev.index === point.index && prev.mark === point.mark &&
      prev.last === point.last) return;
  state.live.push(point);
  if (state.live.length > MAX_LIVE) state.live.splice(0, state.live.length - MAX_LIVE);
}
function renderHeader(market) {
  el("sim-time").textContent = fmtTime(market.now);
  el("clock-mode").textContent = market.clock + (market.clock === "realtime" ?
    ` ×${market.speed}` : "");
  el("scenario-name").textContent = market.scenario;
  el("profile-name").textContent = market.profile;
  const row = market.symbols[state.symbol];
  const prices = el("price-now");
  prices.replaceChildren();
  if (row) {
    for (const kind of ["index", "mark", "last"]) {
      prices.append(document.createTextNode(` ${kind} `), text("b", fmtPrice(row[kind])));
    }
    prices.append(document.createTextNode(" USD"));
  }
}
function renderSymbols(snap) {
  const select = el("symbol-select");
  const names = Object.keys(snap.symbols);
  if (select.options.length !== names.length ||
      names.some((n, i) => select.options[i].value !== n)) {
    select.replaceChildren(...names.map((n) => {
      const opt = text("option", n);
      opt.value = n;
      return opt;
    }));
  }
  select.value = state.symbol;
}
function renderControls(snap) {
  const stepped = snap.clock === "stepped";
  el("advance-controls").hidden = !stepped;
  el("advance-disabled").hidden = stepped;
  el("shock-controls").hidden = !snap.manual;
  el("shock-disabled").hidden = snap.manual;
  const row = snap.symbols[state.symbol];
  el("shock-price").placeholder = row ? `index ${row.index}` : "index price";
}
function renderFunding(market) {
  const row = market.symbols[state.symbol];
  if (!row) return;
  const next = row.next_funding_time;
  el("funding-countdown").textContent = next === null ? "no funding" :
    fmtDuration(next - market.now);
  el("funding-next").textContent = next === null ? "–" : fmtTime(next);
  el("funding-rate").textContent = fmtPct(row.funding_rate);
  el("funding-last").textContent = fmtPct(row.last_funding_rate);
  const history = (state.snap && state.snap.symbols[state.symbol] &&
    state.snap.symbols[state.symbol].funding_history) || [];
  el("funding-empty").hidden = history.length > 0;
  el("funding-chart").hidden = history.length === 0;
  const key = `${state.symbol}:${history.length}:${history.length ? history[0].time : ""}:` +
    `${history.length ? history[history.length - 1].time : ""}`;
  if (!history.length || key === state.fundingKey) return;
  state.fundingKey = key;
  renderFundingChart(history);
}
function renderInsurance(market) {
  const fund = market.insurance_fund || {};
  const rows = Object.entries(fund).map(([coin, amount]) => text("div", `${amount} ${coin}`));
  el("insurance-fund").replaceChildren(...(rows.length ? rows : [text("div", "–")]));
  const start = state.insuranceStart || {};
  const changes = Object.entries(fund).map(([coin, amount]) => {
    const delta = Number(amount) - Number(start[coin] || 0);
    return `${delta >= 0 ? "+" : ""}${delta.toFixed(8)} ${coin}`;
  });
  el("insurance-change").textContent = changes.length ?
    `since this page opened: ${changes.join(", ")}` : "";
}

// ---- refreshing ------------------------------------------------------------------------------
function scheduleRefresh(withHistory) {
  const r = state.refresh;
  if (withHistory) r.history = true;
  if (r.inflight) { r.again = true; return; }
  if (r.timer === null) r.timer = setTimeout(runRefresh, 120);
}
async function runRefresh() {
  const r = state.refresh;
  r.timer = null;
  r.inflight = true;
  const realtime = state.snap && state.snap.clock === "realtime";
  const wantHistory = r.history && (!realtime ||
    Date.now() - state.lastHistoryAt >= REALTIME_HISTORY_MS);
  if (wantHistory) r.history = false;
  try {
    const query = wantHistory ? `symbol=${encodeURIComponent(state.symbol || "")}` :
      "history=false";
    const response = await fetch(`/ui/api/snapshot?${query}`, { cache: "no-store" });
    if (response.ok) {
      if (wantHistory) state.lastHistoryAt = Date.now();
      applySnapshot(await response.json());
    } else {
      // A broken market (GET /control/health) says what broke and where: show it.
      const data = await response.json().catch(() => ({}));
      if (data.error === "market_broken") setMessage(data.message, false);
    }
  } catch (err) {
    console.warn("snapshot failed", err);
  } finally {
    r.inflight = false;
    if (r.again || r.history) {
      r.again = false;
      scheduleRefresh(false);
    }
  }
}
async function fullRefresh() {
  state.refresh.history = true;
  state.lastHistoryAt = 0;
  scheduleRefresh(true);
}

// ---- the event socket ------------------------------------------------------------------------
function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/ui/events`);
  state.ws = ws;
  ws.onopen = () => {
    el("ws-status").textContent = "live";
    el("ws-status").className = "pill live";
    fullRefresh();
  };
  ws.onmessage = (msg) => {
    const data = JSON.parse(msg.data);
    if (data.type === "events") {
      if (addEvents(data.events)) scheduleRefresh(false);
    } else if (data.type === "tick") {
      onTick(data);
    } else if (data.type === "reset") {
      state.timeline = [];
      state.lastSeq = 0;
      state.live = [];
      state.insuranceStart = null;
      state.snap = null;
      renderTimeline();
      fullRefresh();
    } else if (data.type === "resync") {
      fullRefresh();
    }
  };
  ws.onclose = () => {
    el("ws-status").textContent = "offline";
    el("ws-status").className = "pill offline";
    setTimeout(connect, 1000);
  };
}
function onTick(market) {
  if (!state.snap) return;
  const moved = market.now !== state.snap.now;
  renderHeader(market);
  addLivePoint(market);
  renderFunding(market);
  renderInsurance(market);
  if (moved || market.now !== state.historyNow) scheduleRefresh(true);
  else renderChart();
}

// ---- controls --------------------------------------------------------------------------------
function setMessage(msg, ok) {
  const node = el("control-msg");
  node.textContent = msg;
  node.className = "msg " + (ok ? "ok" : "error");
}
async function control(path, body) {
  const buttons = document.querySelectorAll("#controls-card button");
  buttons.forEach((b) => { b.disabled = true; });
  try {
    const response = await fetch(`/control/${path}`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    const data = await response.json();
    if (!response.ok) {
      setMessage(data.message || data.error || `HTTP ${response.status}`, false);
      return null;
    }
    const events = data.events || [];
    const liquidations = events.filter((e) => e.type === "liquidation.takeover").length;
    setMessage(`now ${fmtTime(data.now)}: ${events.length} ` +
      `event${events.length === 1 ? "" : "s"}` +
      (liquidations ? `, ${liquidations} liquidation(s)` : ""), true);
    addEvents(events);
    fullRefresh();
    return data;
  } catch (err) {
    setMessage(String(err), false);
    return null;
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
}
function tickDecimals() {
  const row = state.snap && state.snap.symbols[state.symbol];
  const tick = row ? row.tick_size : "0.1";
  return tick.includes(".") ? tick.split(".")[1].replace(/0+$/, "").length : 0;
}
function applyShock() {
  const index = el("shock-price").value.trim();
  const perp = el("shock-perp").value.trim();
  if (!index) {
    setMessage("type an index price first", false);
    return;
  }
  const body = { symbol: state.symbol, index };
  if (perp) body.perp = perp;
  control("prices", body);
}
function wireControls() {
  document.querySelectorAll("button.advance").forEach((b) => {
    b.addEventListener("click", () => control("advance", { ms: Number(b.dataset.ms) }));
  });
  el("advance-custom").addEventListener("click", () => {
    const minutes = Math.round(Number(el("advance-minutes").value));
    if (!(minutes > 0)) {
      setMessage("minutes must be a positive whole number", false);
      return;
    }
    control("advance", { ms: minutes * 60000 });
  });
  el("advance-funding").addEventListener("click", () => {
    const row = state.snap && state.snap.symbols[state.symbol];
    if (!row || row.next_funding_time === null) {
      setMessage(`${state.symbol} has no funding`, false);
      return;
    }
    control("advance", { until: row.next_funding_time });
  });
  el("shock-apply").addEventListener("click", applyShock);
  el("shock-price").addEventListener("keydown", (e) => {
    if (e.key === "Enter") applyShock();
  });
  document.querySelectorAll("button.shock").forEach((b) => {
    b.addEventListener("click", () => {
      const row = state.snap && state.snap.symbols[state.symbol];
      if (!row) return;
      const price = Number(row.index) * (1 + Number(b.dataset.pct) / 100);
      el("shock-price").value = price.toFixed(tickDecimals());
      el("shock-perp").value = "";
      applyShock();
    });
  });
  el("symbol-select").addEventListener("change", (e) => {
    state.symbol = e.target.value;
    state.live = [];
    if (state.snap) addLivePoint(state.snap);
    fullRefresh();
  });
}

renderFilters();
renderTimeline();
wireControls();
connect();
