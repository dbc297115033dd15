// The accounts table: one row per open position (or one "flat" row per account without one),
// with the margin ratio as a bar. Units are in the column headers (dashboard.html); coin
// amounts also carry their coin, since an account can hold several.
import { el, fmtCoin, fmtPrice, fmtRatio, text } from "./format.js";

const ACCOUNT_COLORS = ["#2563eb", "#16a34a", "#9333ea", "#db2777", "#0891b2", "#ca8a04",
  "#4f46e5", "#dc2626"];
const COLUMNS = 12;

function accountColor(id) {
  const n = Number(id);
  return ACCOUNT_COLORS[(Number.isFinite(n) ? n - 1 : 0) % ACCOUNT_COLORS.length];
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

export function renderPositions(snap) {
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
      for (let i = 0; i < COLUMNS - 4; i++) tr.append(text("td", i === 0 ? "" : "–"));
      tr.append(text("td", wallet));
      rows.push(tr);
      continue;
    }
    for (const p of acct.positions) {
      const coin = (snap.symbols[p.symbol] || {}).coin || "";
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
        ratioCell(p.margin_ratio), text("td", `${fmtCoin(p.unrealized_pnl)} ${coin}`.trim()),
        text("td", wallet));
      rows.push(tr);
    }
  }
  if (!rows.length) {
    const tr = document.createElement("tr");
    const td = text("td", "no accounts yet: POST /control/accounts creates one");
    td.colSpan = COLUMNS;
    tr.append(td);
    rows.push(tr);
  }
  body.replaceChildren(...rows);
  el("accounts-note").textContent = snap.accounts_total > snap.accounts.length ?
    `showing ${snap.accounts.length} of ${snap.accounts_total} accounts` : "";
}
