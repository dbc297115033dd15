// How the dashboard writes numbers and times, and two tiny DOM helpers.
// Amounts arrive as strings at the venue's precision (perpsim/numbers.py); these only lay them
// out for reading: prices with thousands separators, coin to the satoshi, rates as percent.

export const el = (id) => document.getElementById(id);

export function text(tag, content, cls) {
  const node = document.createElement(tag);
  if (content !== undefined && content !== null) node.textContent = content;
  if (cls) node.className = cls;
  return node;
}

export function fmtTime(ms) {
  if (ms === null || ms === undefined) return "–";
  return new Date(ms).toISOString().replace("T", " ").slice(0, 19) + "Z";
}

export function fmtPrice(s) {
  if (s === null || s === undefined || s === "") return "–";
  const x = Number(s);
  if (!Number.isFinite(x)) return String(s);
  return x.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
}

export function fmtCoin(s) {
  if (s === null || s === undefined || s === "") return "–";
  const x = Number(s);
  return Number.isFinite(x) ? x.toFixed(8) : String(s);
}

export function fmtPct(s, digits) {
  if (s === null || s === undefined) return "–";
  return (Number(s) * 100).toFixed(digits === undefined ? 4 : digits) + "%";
}

export function fmtRatio(s) {
  // sim/risk.py writes 999 when no margin is left at all
  if (s !== null && s !== undefined && Number(s) >= 999) return "≥ 100% (no margin left)";
  return fmtPct(s, 2);
}

export function fmtDuration(ms) {
  if (ms === null || ms === undefined || ms < 0) return "–";
  const s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400);
  const hms = [Math.floor((s % 86400) / 3600), Math.floor((s % 3600) / 60), s % 60]
    .map((v) => String(v).padStart(2, "0")).join(":");
  return d ? `${d}d ${hms}` : hms;
}
