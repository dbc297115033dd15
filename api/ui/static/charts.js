// The two plotly charts: index / mark / last with fills, liquidations and each account's price
// lines, and the funding rates settled so far.
//
// A fresh market has one price at one instant: left to itself plotly would zoom to a
// millisecond and a dollar around it (23:59:59.999 … 00:00:00.001). The axes therefore span at
// least the market's first hours and a fraction of a percent of its price, and the three
// prices, which often coincide, are drawn so each stays visible on top of the others.
import { fmtPrice } from "./format.js";

const HOUR_MS = 3_600_000;
const MIN_WINDOW_MS = 2 * HOUR_MS; // the first screen shows the market's first two hours
const MIN_PRICE_SPAN = 0.004; // … and ±0.2 % of the price before it has moved
const FUNDING_INTERVAL_MS = 8 * HOUR_MS; // a bar's width when only one has settled
// Drawn in this order, so the mark (the price the risk numbers use) lies on top: a wide pale
// band for the index, a thin solid line for the last trade, a dashed line for the mark.
const PRICE_STYLE = {
  index: { color: "#94a3b8", width: 7, dash: "solid", opacity: 0.55, marker: "square",
    size: 13 },
  last: { color: "#2563eb", width: 1.8, dash: "solid", opacity: 1, marker: "circle", size: 8 },
  mark: { color: "#d97706", width: 2.6, dash: "dash", opacity: 1, marker: "diamond", size: 6 },
};
const LINE_STYLE = {
  entry: { color: "#2563eb", dash: "dash", label: "entry" },
  liquidation: { color: "#ea580c", dash: "dash", label: "liq" },
  bankruptcy: { color: "#b91c1c", dash: "dot", label: "bankr" },
};
const DATE_HOVER = "%Y-%m-%d %H:%M:%S UTC";

export function timeWindow(times, now) {
  const first = times.length ? Math.min(times[0], now) : now;
  const last = Math.max(times.length ? times[times.length - 1] : now, now);
  const span = Math.max(last - first, MIN_WINDOW_MS);
  const pad = span * 0.02;
  return [first - pad, first + span + pad];
}

export function priceRange(values) {
  const ys = values.filter((y) => Number.isFinite(y));
  if (!ys.length) return null;
  let lo = Math.min(...ys);
  let hi = Math.max(...ys);
  const mid = (lo + hi) / 2;
  const minSpan = Math.abs(mid) * MIN_PRICE_SPAN || 1;
  if (hi - lo < minSpan) {
    lo = mid - minSpan / 2;
    hi = mid + minSpan / 2;
  }
  const pad = (hi - lo) * 0.06;
  return [lo - pad, hi + pad];
}

function chartSeries(state) {
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

function eventMarkers(state) {
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
      hovertemplate: `%{text} @ %{y:,.2f} USD<br>%{x|${DATE_HOVER}}<extra></extra>` },
    { name: "liquidations", type: "scatter", mode: "markers", x: liqs.x, y: liqs.y,
      text: liqs.text, marker: { symbol: "x", size: 13, color: "#dc2626" },
      hovertemplate: `%{text} @ %{y:,.2f} USD<br>%{x|${DATE_HOVER}}<extra></extra>` },
  ];
}

function priceLines(state) {
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
  return { shapes, annotations };
}

function spreadLabels(annotations, yRange) {
  // Labels of nearby lines would print over each other: shift each one a line lower
  // than its neighbour above when they are closer than ~4% of the visible price range.
  const range = yRange ? yRange[1] - yRange[0] : 1;
  annotations.sort((a, b) => b.y - a.y);
  let shift = 0;
  for (let i = 1; i < annotations.length; i++) {
    shift = annotations[i - 1].y - annotations[i].y < range * 0.04 ? shift - 13 : 0;
    annotations[i].yshift = shift;
  }
}

export function renderPriceChart(state) {
  const s = chartSeries(state);
  const few = s.t.length < 40;
  const traces = ["index", "last", "mark"].map((k) => {
    const style = PRICE_STYLE[k];
    return {
      name: k, type: "scatter", mode: few ? "lines+markers" : "lines", x: s.t, y: s[k],
      opacity: style.opacity,
      marker: { size: style.size, symbol: style.marker, color: style.color },
      line: { color: style.color, width: style.width, dash: style.dash, shape: "hv" },
      hovertemplate: `${k} %{y:,.2f} USD<br>%{x|${DATE_HOVER}}<extra></extra>`,
    };
  });
  const lines = priceLines(state);
  const now = state.snap ? state.snap.now : (s.t.length ? s.t[s.t.length - 1] : Date.now());
  const yRange = priceRange(s.index.concat(s.mark, s.last, lines.annotations.map((a) => a.y)));
  spreadLabels(lines.annotations, yRange);
  Plotly.react("chart", traces.concat(eventMarkers(state)), {
    margin: { l: 70, r: 150, t: 10, b: 44 },
    xaxis: { type: "date", title: { text: "simulated time (UTC)" },
      range: timeWindow(s.t, now), hoverformat: DATE_HOVER },
    yaxis: { title: { text: `${state.symbol} price (USD)` }, tickformat: ",.1f",
      ...(yRange ? { range: yRange } : {}) },
    legend: { orientation: "h", y: 1.08, x: 0 },
    shapes: lines.shapes, annotations: lines.annotations, hovermode: "closest",
  }, { displaylogo: false, responsive: true });
}

export function renderFundingChart(history) {
  const times = history.map((h) => h.time);
  const gaps = times.slice(1).map((t, i) => t - times[i]).filter((g) => g > 0);
  const interval = gaps.length ? Math.min(...gaps) : FUNDING_INTERVAL_MS;
  Plotly.react("funding-chart", [{
    type: "bar", x: times, y: history.map((h) => Number(h.rate) * 100), width: interval * 0.6,
    marker: { color: history.map((h) => (Number(h.rate) >= 0 ? "#7c3aed" : "#db2777")) },
    hovertemplate: "%{x|%Y-%m-%d %H:%M UTC}<br>%{y:.4f}%<extra></extra>",
  }], {
    margin: { l: 52, r: 8, t: 6, b: 40 }, height: 160,
    xaxis: { type: "date", tickformat: "%b %-d\n%H:%M", nticks: 5,
      range: [times[0] - interval, times[times.length - 1] + interval] },
    yaxis: { title: { text: "rate (%)" }, zeroline: true, ticksuffix: "%" },
  }, { displayModeBar: false, responsive: true });
}
