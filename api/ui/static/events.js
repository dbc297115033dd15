// Journal events on the timeline: which filter category each belongs to, and one line saying
// what happened (the event's own numbers, laid out by format.js).
import { fmtPct, fmtPrice, fmtRatio } from "./format.js";

export const CATEGORIES = [
  ["fill", "fills"], ["funding", "funding"], ["liquidation", "liquidations"],
  ["margin", "margin calls"], ["adl", "ADL"], ["insurance", "insurance fund"],
  ["prices", "prices"], ["other", "other"],
];

export function category(ev) {
  const t = ev.type;
  if (t === "order.update") return ev.execution === "TRADE" ? "fill" : "other";
  if (t.startsWith("funding.")) return "funding";
  if (t.startsWith("liquidation.") || t === "book.depth") return "liquidation";
  if (t === "margin.call") return "margin";
  if (t.startsWith("adl.")) return "adl";
  if (t.startsWith("insurance.")) return "insurance";
  if (t === "prices.set" || t === "wake") return "prices";
  return "other";
}

export function summary(ev) {
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
    case "book.depth":
      return `${ev.symbol} book after the engine's ${ev.taker_side}: bids ${ev.bids_quoted} / ` +
        `asks ${ev.asks_quoted} quoted, last ${fmtPrice(ev.last)}, mark ${fmtPrice(ev.mark)}, ` +
        `index ${fmtPrice(ev.index)}`;
    case "crowd.built":
      return `${ev.accounts} traders on ${ev.symbol} (${ev.longs} long), entry ${ev.entry}`;
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

