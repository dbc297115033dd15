// perpsim dashboard: plain JavaScript, no build step. Plotly comes from /ui/static/plotly.min.js
// (the copy bundled in the installed plotly package); nothing is loaded from the network.
//
// Data flow: GET /ui/api/snapshot gives everything at once; the /ui/events WebSocket streams
// journal events (the timeline) and light ticks (prices, time, funding, insurance fund), and
// each change schedules a fresh snapshot (positions and their price lines move with the mark).
// Controls call the control plane: POST /control/advance and POST /control/prices.
"use strict";

(function () {
  const MAX_TIMELINE = 400;
  const MAX_LIVE = 2000;
  const REALTIME_HISTORY_MS = 5000; // realtime clock: re-read the candles at most this often
  const PRICE_COLORS = { index: "#64748b", mark: "#f59e0b", last: "#2563eb" };
  const LINE_STYLE = {
    entry: { color: "#2563eb", dash: "dash", label: "entry" },
    liquidation: { color: "#ea580c", dash: "dash", label: "liq" },
    bankruptcy: { color: "#b91c1c", dash: "dot", label: "bankr" },
  };
  const ACCOUNT_COLORS = ["#2563eb", "#16a34a", "#9333ea", "#db2777", "#0891b2", "#ca8a04",
    "#4f46e5", "#dc2626"];
  const CATEGORIES = [
    ["fill", "fills"], ["funding", "funding"], ["liquidation", "liquidations"],
    ["margin", "margin calls"], ["adl", "ADL"], ["insurance", "insurance fund"],
    ["prices", "prices"], ["other", "other"],
  ];

  const el = (id) => document.getElementById(id);
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

  // ---- formatting ------------------------------------------------------------------------------
  function fmtTime(ms) {
    if (ms === null || ms === undefined) return "–";
    return new Date(ms).toISOString().replace("T", " ").slice(0, 19) + "Z";
  }
  function fmtPrice(s) {
    if (s === null || s === undefined || s === "") return "–";
    const x = Number(s);
    if (!Number.isFinite(x)) return String(s);
    return x.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  }
  function fmtCoin(s) {
    if (s === null || s === undefined || s === "") return "–";
    const x = Number(s);
    return Number.isFinite(x) ? x.toFixed(8) : String(s);
  }
  function fmtRatio(s) {
    // sim/risk.py writes 999 when no margin is left at all
    if (s !== null && s !== undefined && Number(s) >= 999) return "≥ 100% (no margin left)";
    return fmtPct(s, 2);
  }
  function fmtPct(s, digits) {
    if (s === null || s === undefined) return "–";
    return (Number(s) * 100).toFixed(digits === undefined ? 4 : digits) + "%";
  }
  function fmtDuration(ms) {
    if (ms === null || ms === undefined || ms < 0) return "–";
    const s = Math.floor(ms / 1000);
    const d = Math.floor(s / 86400);
    const hms = [Math.floor((s % 86400) / 3600), Math.floor((s % 3600) / 60), s % 60]
      .map((v) => String(v).padStart(2, "0")).join(":");
    return d ? `${d}d ${hms}` : hms;
  }
  function accountColor(id) {
    const n = Number(id);
    return ACCOUNT_COLORS[(Number.isFinite(n) ? n - 1 : 0) % ACCOUNT_COLORS.length];
  }
  function text(tag, content, cls) {
    const node = document.createElement(tag);
    if (content !== undefined && content !== null) node.textContent = content;
    if (cls) node.className = cls;
    return node;
  }

  // ---- events: categories and one-line summaries -------------------------------------------------
  function category(ev) {
    const t = ev.type;
    if (t === "order.update") return ev.execution === "TRADE" ? "fill" : "other";
    if (t.startsWith("funding.")) return "funding";
    if (t.startsWith("liquidation.")) return "liquidation";
    if (t === "margin.call") return "margin";
    if (t.startsWith("adl.")) return "adl";
    if (t.startsWith("insurance.")) return "insurance";
    if (t === "prices.set" || t === "wake") return "prices";
    return "other";
  }
  function summary(ev) {
    switch (ev.type) {
      case "order.update":
        if (ev.execution === "TRADE") {
          return `${ev.side} ${ev.last_qty} ${ev.symbol} @ ${fmtPrice(ev.last_price)} ` +
            `(${ev.order_type}) → position ${ev.position_qty}, fee ${ev.commission}`;
        }
        return `${ev.execution} ${ev.side} ${ev.qty} ${ev.symbol} ${ev.order_type} ` +
          `${ev.price ? "@ " + fmtPrice(ev.price) : ""} (${ev.status})`;
      case "funding.settled":
        return `${ev.symbol} rate ${fmtPct(ev.rate)} at mark ${fmtPrice(ev.mark)}: ` +
          `${ev.positions} positions, paid ${ev.paid}, received ${ev.received} ${ev.coin}`;
      case "funding.payment":
        return `${ev.amount} ${ev.coin} on ${ev.position_qty} ${ev.symbol} at ` +
          `rate ${fmtPct(ev.rate)}`;
      case "liquidation.triggered":
        return `${ev.margin_mode} ${ev.coin}: ` + (ev.positions || [])
          .map((p) => `${p.qty !== undefined ? p.qty : ""} ${p.symbol || ""}`.trim()).join(", ");
      case "liquidation.takeover":
        return `${ev.qty} ${ev.symbol} taken over at bankruptcy ${fmtPrice(ev.bankruptcy_price)}` +
          ` (entry ${fmtPrice(ev.entry)}, mark ${fmtPrice(ev.mark)}), loss ${ev.loss}`;
      case "liquidation.order":
        return `${ev.kind} ${ev.side} ${ev.qty} ${ev.symbol} avg ${fmtPrice(ev.avg_price)}` +
          (ev.insurance_delta !== undefined ? `, insurance ${ev.insurance_delta}` : "");
      case "liquidation.completed":
        return `insurance fund ${ev.insurance_fund}`;
      case "liquidation.cured":
        return `cured at step ${ev.step}`;
      case "margin.call":
        return `${ev.symbol} margin ratio ${fmtRatio(ev.margin_ratio)} at mark ` +
          `${fmtPrice(ev.mark)}, liquidation ${fmtPrice(ev.liquidation_price)}`;
      case "adl.ranking":
        return `${ev.symbol}: ${(ev.ranking || []).length} candidates at ` +
          `${fmtPrice(ev.bankruptcy_price)}`;
      case "adl.fill":
        return `${ev.qty} ${ev.symbol} closed at ${fmtPrice(ev.price)}, realised ` +
          `${ev.realized_pnl} (counterparty of #${ev.counterparty_of})`;
      case "insurance.cover":
        return `${ev.amount} ${ev.coin} for ${ev.reason}: fund paid ${ev.fund_paid}, ` +
          `socialised ${ev.socialised}`;
      case "prices.set":
        return `${ev.symbol} index ${fmtPrice(ev.index)}, perp ${fmtPrice(ev.perp)}`;
      case "wake":
        return `${ev.symbol} mark ${fmtPrice(ev.mark)} reached ${fmtPrice(ev.level)}`;
      case "account.created":
        return ev.label ? `label ${ev.label}` : "";
      case "balance.deposit":
        return `${ev.amount} ${ev.coin}` +
          (ev.wallet === "spot" ? " to the spot wallet" : `, wallet ${ev.wallet}`);
      default: {
        const rest = Object.entries(ev)
          .filter(([k]) => !["type", "time", "seq", "account_id"].includes(k))
          .map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`);
        return rest.join(" ");
      }
    }
  }

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
    Plotly.react("funding-chart", [{
      type: "bar", x: history.map((h) => h.time), y: history.map((h) => Number(h.rate) * 100),
      marker: { color: history.map((h) => (Number(h.rate) >= 0 ? "#7c3aed" : "#db2777")) },
      hovertemplate: "%{x}<br>%{y:.4f}%<extra></extra>",
    }], {
      margin: { l: 46, r: 8, t: 6, b: 40 }, height: 160,
      xaxis: { type: "date" }, yaxis: { title: { text: "rate %" }, zeroline: true },
    }, { displayModeBar: false, responsive: true });
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
  function ratioCell(ratio) {
    const td = document.createElement("td");
    if (ratio === null || ratio === undefined) {
      td.textContent = "–";
      return td;
    }
    const r = Number(ratio);
    const span = text("span", null, "ratio" + (r >= 0.8 ? " danger" : r >= 0.5 ? " warn" : ""));
    const bar = text("span", null, "bar");
    const fill = document.createElement("span");
    fill.style.width = `${Math.min(100, Math.max(0, r * 100))}%`;
    bar.append(fill);
    span.append(bar, document.createTextNode(fmtRatio(ratio)));
    td.append(span);
    return td;
  }
  function renderPositions(snap) {
    const body = el("positions-body");
    const rows = [];
    for (const acct of snap.accounts) {
      const wallet = Object.entries(acct.balances).filter(([, v]) => Number(v) !== 0)
        .map(([c, v]) => `${fmtCoin(v)} ${c}`).join(" ") || "0";
      const who = () => {
        const td = document.createElement("td");
        const sw = text("span", null, "swatch");
        sw.style.background = accountColor(acct.account_id);
        td.append(sw, document.createTextNode(`#${acct.account_id}` +
          (acct.label ? ` ${acct.label}` : "")));
        return td;
      };
      if (!acct.positions.length) {
        const tr = document.createElement("tr");
        tr.dataset.account = acct.account_id;
        tr.append(who(), text("td", "–"), text("td", "flat", "flat"));
        for (let i = 0; i < 8; i++) tr.append(text("td", i === 0 ? "" : "–"));
        tr.append(text("td", wallet));
        rows.push(tr);
        continue;
      }
      for (const p of acct.positions) {
        const tr = document.createElement("tr");
        tr.dataset.account = acct.account_id;
        tr.dataset.symbol = p.symbol;
        // Hedge mode: a LONG and a SHORT row per symbol, the side named after the symbol.
        const hedged = p.position_side && p.position_side !== "BOTH";
        if (hedged) tr.dataset.side = p.position_side;
        tr.append(who(), text("td", hedged ? `${p.symbol} ${p.position_side}` : p.symbol),
          text("td", String(p.contracts), p.contracts > 0 ? "long" : "short"),
          text("td", p.margin_mode), text("td", `${p.leverage}x`),
          text("td", fmtPrice(p.entry_price)), text("td", fmtPrice(p.mark_price), "mark"),
          text("td", fmtPrice(p.liquidation_price), "liq"),
          text("td", fmtPrice(p.bankruptcy_price), "bankruptcy"),
          ratioCell(p.margin_ratio), text("td", fmtCoin(p.unrealized_pnl)), text("td", wallet));
        rows.push(tr);
      }
    }
    if (!rows.length) {
      const tr = document.createElement("tr");
      const td = text("td", "no accounts yet: POST /control/accounts creates one");
      td.colSpan = 12;
      tr.append(td);
      rows.push(tr);
    }
    body.replaceChildren(...rows);
    el("accounts-note").textContent = snap.accounts_total > snap.accounts.length ?
      `showing ${snap.accounts.length} of ${snap.accounts_total} accounts` : "";
  }

  // ---- the price chart -------------------------------------------------------------------------
  function chartSeries() {
    const out = { t: [], index: [], mark: [], last: [] };
    const h = state.history && state.history.symbol === state.symbol ? state.history : null;
    const liveFrom = state.live.length ? state.live[0].t : Infinity;
    if (h) {
      const now = state.historyNow;
      for (let i = 0; i < h.close_time.length; i++) {
        const t = Math.min(h.close_time[i], now);
        if (t >= liveFrom) break;
        out.t.push(t);
        for (const k of ["index", "mark", "last"]) out[k].push(Number(h[k][i]));
      }
    }
    for (const p of state.live) {
      out.t.push(p.t);
      for (const k of ["index", "mark", "last"]) out[k].push(Number(p[k]));
    }
    return out;
  }
  function eventMarkers() {
    const fills = { x: [], y: [], text: [], symbol: [] };
    const liqs = { x: [], y: [], text: [] };
    for (const ev of state.timeline) {
      if (ev.symbol !== state.symbol) continue;
      if (ev.type === "order.update" && ev.execution === "TRADE") {
        fills.x.push(ev.time);
        fills.y.push(Number(ev.last_price));
        fills.text.push(`#${ev.account_id} ${ev.side} ${ev.last_qty}`);
        fills.symbol.push(ev.side === "BUY" ? "triangle-up" : "triangle-down");
      } else if (ev.type === "liquidation.takeover") {
        liqs.x.push(ev.time);
        liqs.y.push(Number(ev.bankruptcy_price));
        liqs.text.push(`#${ev.account_id} liquidated ${ev.qty}`);
      } else if (ev.type === "adl.fill") {
        liqs.x.push(ev.time);
        liqs.y.push(Number(ev.price));
        liqs.text.push(`#${ev.account_id} ADL ${ev.qty}`);
      }
    }
    return [
      { name: "fills", type: "scatter", mode: "markers", x: fills.x, y: fills.y, text: fills.text,
        marker: { symbol: fills.symbol, size: 11, color: "#0f172a" },
        hovertemplate: "%{text} @ %{y}<extra></extra>" },
      { name: "liquidations", type: "scatter", mode: "markers", x: liqs.x, y: liqs.y,
        text: liqs.text, marker: { symbol: "x", size: 13, color: "#dc2626" },
        hovertemplate: "%{text} @ %{y}<extra></extra>" },
    ];
  }
  function priceLines(series) {
    const shapes = [];
    const annotations = [];
    if (!state.snap) return { shapes, annotations };
    for (const acct of state.snap.accounts) {
      for (const p of acct.positions) {
        if (p.symbol !== state.symbol) continue;
        for (const kind of ["entry", "liquidation", "bankruptcy"]) {
          const value = p[`${kind}_price`];
          if (value === null || value === undefined) continue;
          const style = LINE_STYLE[kind];
          const y = Number(value);
          shapes.push({ type: "line", xref: "paper", x0: 0, x1: 1, yref: "y", y0: y, y1: y,
            line: { color: style.color, dash: style.dash, width: 1.5 } });
          annotations.push({ xref: "paper", x: 1, xanchor: "left", yref: "y", y,
            text: `#${acct.account_id} ${style.label} ${fmtPrice(value)}`, showarrow: false,
            font: { size: 11, color: style.color } });
        }
      }
    }
    spreadLabels(annotations, series);
    return { shapes, annotations };
  }
  function spreadLabels(annotations, series) {
    // Labels of nearby lines would print over each other: shift each one a line lower
    // than its neighbour above when they are closer than ~4% of the visible price range.
    const ys = annotations.map((a) => a.y).concat(series.index, series.mark, series.last);
    const range = Math.max(...ys) - Math.min(...ys) || 1;
    annotations.sort((a, b) => b.y - a.y);
    let shift = 0;
    for (let i = 1; i < annotations.length; i++) {
      shift = annotations[i - 1].y - annotations[i].y < range * 0.04 ? shift - 13 : 0;
      annotations[i].yshift = shift;
    }
  }
  function renderChart() {
    const s = chartSeries();
    // mark last, so it is drawn on top: it is the price the risk numbers use
    const traces = ["index", "last", "mark"].map((k) => ({
      name: k, type: "scatter", mode: s.t.length < 40 ? "lines+markers" : "lines",
      x: s.t, y: s[k], marker: { size: 5 },
      line: { color: PRICE_COLORS[k], width: k === "mark" ? 2.5 : 1.5, shape: "hv" },
    }));
    const lines = priceLines(s);
    Plotly.react("chart", traces.concat(eventMarkers()), {
      margin: { l: 64, r: 150, t: 10, b: 40 },
      xaxis: { type: "date", title: { text: "simulated time (UTC)" } },
      yaxis: { title: { text: `${state.symbol} (USD)` }, tickformat: ",.1f" },
      legend: { orientation: "h", y: 1.08, x: 0 },
      shapes: lines.shapes, annotations: lines.annotations, hovermode: "closest",
    }, { displaylogo: false, responsive: true });
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
})();
