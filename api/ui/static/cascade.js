// The cascade view: liquidation volume per minute against price (last, mark, index at each
// liquidation the engine worked into a finite book), the book's bid and ask depth, the
// insurance fund and ADL fills. Data: GET /ui/api/cascade (api/ui/cascade.py), the engine's
// journal; nothing here computes a number, it only lays them out.
import { el, fmtCoin, fmtTime } from "./format.js";

const CONFIG = { displaylogo: false, responsive: true };
const LAYOUT = {
  margin: { l: 60, r: 60, t: 10, b: 40 }, hovermode: "x unified",
  legend: { orientation: "h", y: -0.25 }, xaxis: { type: "date" },
};
let pending = false;
let shownSeq = -1;

// The book.depth records, then the finite book now (so the refill since the last one shows).
function pointsToNow(data) {
  const points = data.points.slice();
  const last = points.length ? points[points.length - 1].time : -Infinity;
  if (data.finite !== null && points.length && data.now > last) {
    points.push({ time: data.now, ...data.finite });
  }
  return points;
}

function priceTraces(data, points) {
  const t = points.map((p) => p.time);
  const line = (key, color, dash) => ({
    x: t, y: points.map((p) => Number(p[key])), name: key, mode: "lines+markers",
    line: { color, dash, shape: "hv" }, marker: { size: 4 }, yaxis: "y2",
  });
  // Each bar spans its minute: centred half a bucket after the bucket's start.
  const mid = data.buckets.map((b) => b + data.bucket_ms / 2);
  const width = data.bucket_ms * 0.9;
  return [
    { x: mid, y: data.liquidated_coin.map(Number), type: "bar", width,
      name: `liquidated per minute (${data.coin})`, marker: { color: "#b91c1c" } },
    { x: mid, y: data.adl_contracts.map(Number), type: "bar", width, visible: "legendonly",
      name: "ADL contracts per minute", marker: { color: "#6d28d9" } },
    line("index", "#94a3b8", "solid"), line("mark", "#d97706", "dash"),
    line("last", "#2563eb", "solid"),
  ];
}

function render(data) {
  const empty = !data.buckets.length && !data.points.length;
  el("cascade-empty").hidden = !empty;
  const book = data.finite;
  el("cascade-book").textContent = book === null ? "stateless book (infinite depth)" :
    `finite book: bids ${book.bids_quoted} / asks ${book.asks_quoted} contracts quoted of ` +
    `${book.levels * book.contracts_per_level}, refilling ${book.refill_contracts_per_s}/s`;
  el("cascade-summary").textContent = `${data.liquidations} liquidations of ${data.accounts} ` +
    `accounts · ${data.adl.length} ADL fills` +
    (data.fund.length ? ` · fund ${fmtCoin(data.fund[data.fund.length - 1].insurance_fund)}` +
      ` ${data.coin} at ${fmtTime(data.fund[data.fund.length - 1].time)}` : "");
  if (empty) return;
  const points = pointsToNow(data);
  Plotly.react("cascade-chart", priceTraces(data, points), {
    ...LAYOUT, barmode: "group", yaxis: { title: { text: data.coin } },
    yaxis2: { title: { text: "USD" }, overlaying: "y", side: "right", showgrid: false },
  }, CONFIG);
  const t = points.map((p) => p.time);
  Plotly.react("cascade-depth", [
    { x: t, y: points.map((p) => p.bids_quoted), name: "bids quoted", mode: "lines",
      line: { color: "#047857", shape: "hv" } },
    { x: t, y: points.map((p) => p.asks_quoted), name: "asks quoted", mode: "lines",
      line: { color: "#b45309", shape: "hv" } },
    { x: data.fund.map((f) => f.time), y: data.fund.map((f) => Number(f.insurance_fund)),
      name: `insurance fund (${data.coin})`, mode: "lines", yaxis: "y2",
      line: { color: "#6d28d9", shape: "hv" } },
    { x: data.adl.map((a) => a.time), y: data.adl.map(() => 0), name: "ADL fill",
      mode: "markers", yaxis: "y2", marker: { color: "#b91c1c", symbol: "x", size: 9 },
      text: data.adl.map((a) => `#${a.account_id} ${a.qty} at ${a.price}`) },
  ], {
    ...LAYOUT, yaxis: { title: { text: "contracts" } },
    yaxis2: { title: { text: data.coin }, overlaying: "y", side: "right", showgrid: false },
  }, CONFIG);
}

// Called after each snapshot: fetch again only when the journal grew (one request at a time).
export async function refreshCascade(symbol, lastSeq) {
  if (pending || lastSeq === shownSeq || !el("cascade-chart")) return;
  pending = true;
  try {
    const query = symbol ? `?symbol=${encodeURIComponent(symbol)}` : "";
    const response = await fetch(`/ui/api/cascade${query}`, { cache: "no-store" });
    if (response.ok) {
      render(await response.json());
      shownSeq = lastSeq;
    }
  } catch (err) {
    console.warn("cascade view failed", err);
  } finally {
    pending = false;
  }
}
