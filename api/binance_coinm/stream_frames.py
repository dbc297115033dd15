"""Binance COIN-M WebSocket frames, built from journal payloads and REST-shaped readings.

Pure serialisation: every function takes values the engine already computed — an event's
payload, or a row the REST serialisers (api/binance_coinm/market_wire.py) produced at a
quiescent instant — and writes them the way Binance's streams do: numbers as strings in the
same formats as the REST answers (account_wire / market_wire), times as epoch-ms integers.
Nothing here reads the engine.

User data (COIN-M user data stream): ORDER_TRADE_UPDATE, ACCOUNT_UPDATE, ALGO_UPDATE,
MARGIN_CALL, ACCOUNT_CONFIG_UPDATE, listenKeyExpired. Market streams: depthUpdate,
markPriceUpdate, indexPriceUpdate, kline, continuous_kline, markPrice_kline, indexPrice_kline,
24hrMiniTicker, 24hrTicker, trade, aggTrade, forceOrder.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from perpsim.api.binance_coinm.account_wire import coin, price
from perpsim.sim.profile import Instrument

Frame = dict[str, Any]
ZERO = Decimal(0)


def _d(value: object) -> Decimal | None:
    """A payload number (the journal writes Decimals as fixed-point text: perpsim/numbers.py)."""
    return None if value is None else Decimal(str(value))


def _alias(account_id: str) -> str:
    return f"perpsim{account_id}"  # the accountAlias /dapi/v1/balance shows


# ---- user data stream ----------------------------------------------------------------------


def order_trade_update(time_ms: int, inst: Instrument, p: Mapping[str, Any]) -> Frame:
    """ORDER_TRADE_UPDATE from an ``order.update`` payload (one execution of a user order).

    Fills the venue forces on an account come as orders of type LIQUIDATION (client id
    ``autoclose-…``) or ADL (``adl_autoclose-…``); Binance's stream knows no ADL order type
    and reports both as LIQUIDATION, the client id telling them apart.
    """
    fill = p["execution"] == "TRADE"
    order_type = "LIQUIDATION" if p["order_type"] == "ADL" else p["order_type"]
    o: Frame = {
        "s": p["symbol"], "c": p["client_order_id"], "S": p["side"], "o": order_type,
        "f": p["time_in_force"], "q": str(p["qty"]), "p": price(_d(p.get("price")), inst),
        "ap": price(_d(p.get("avg_price")), inst), "sp": "0", "x": p["execution"],
        "X": p["status"], "i": p["order_id"], "l": str(p.get("last_qty") or 0),
        "z": str(p["filled"]), "L": price(_d(p.get("last_price")), inst), "ma": p["coin"],
    }
    if fill:  # Binance pushes the commission only with a fill
        o["N"], o["n"] = p["coin"], coin(_d(p["commission"]))
    o.update({
        "T": time_ms, "t": p.get("trade_id") or 0,
        "rp": coin(_d(p.get("realized_pnl")) or ZERO), "b": "0", "a": "0",
        "m": bool(p.get("maker", False)), "R": bool(p["reduce_only"]), "wt": "CONTRACT_PRICE",
        "ot": order_type, "ps": p.get("position_side", "BOTH"), "cp": False, "pP": False,
        "si": 0, "ss": 0, "pm": "NONE",
    })
    return {"e": "ORDER_TRADE_UPDATE", "E": time_ms, "T": time_ms,
            "i": _alias(p["account_id"]), "o": o}


@dataclass(frozen=True, slots=True)
class BalanceRow:
    """One a.B entry: wallet balance (cross + isolated wallets), cross wallet, change."""

    asset: str
    wallet: Decimal
    cross_wallet: Decimal
    change: Decimal = ZERO


@dataclass(frozen=True, slots=True)
class PositionRow:
    """One a.P entry: the position as it stands after the event."""

    inst: Instrument
    qty: int
    entry: Decimal | None
    margin_mode: str
    isolated_wallet: Decimal
    unrealized: Decimal | None = None  # None: no mark known at the event (``up`` left out)
    realized: Decimal = ZERO  # accumulated realised PnL of the symbol (``cr``)
    side: str = "BOTH"  # positionSide: LONG / SHORT for a hedge-mode leg


def account_update(time_ms: int, account_id: str, reason: str, balances: Sequence[BalanceRow],
                   positions: Sequence[PositionRow]) -> Frame:
    """ACCOUNT_UPDATE with reason ``a.m`` and the balances / positions it concerns."""
    rows_b = [{"a": b.asset, "wb": coin(b.wallet), "cw": coin(b.cross_wallet),
               "bc": coin(b.change)} for b in balances]
    rows_p = []
    for pos in positions:
        # Binance's COIN-M row: s, pa, ep, cr, up, mt, iw, ps.
        row: Frame = {"s": pos.inst.symbol, "pa": str(pos.qty),
                      "ep": coin(pos.entry) if pos.qty and pos.entry is not None else "0.0",
                      "cr": coin(pos.realized)}
        if pos.qty == 0:
            row["up"] = coin(ZERO)
        elif pos.unrealized is not None:
            row["up"] = coin(pos.unrealized)
        row.update({"mt": pos.margin_mode, "iw": coin(pos.isolated_wallet), "ps": pos.side})
        rows_p.append(row)
    return {"e": "ACCOUNT_UPDATE", "E": time_ms, "T": time_ms, "i": _alias(account_id),
            "a": {"m": reason, "B": rows_b, "P": rows_p}}


def algo_update(time_ms: int, inst: Instrument, p: Mapping[str, Any]) -> Frame:
    """ALGO_UPDATE from an ``algo.update`` payload (a conditional order changed status)."""
    order_id = p.get("order_id")
    o: Frame = {
        "caid": p["client_algo_id"], "aid": p["algo_id"], "at": "CONDITIONAL",
        "o": p["algo_type"], "s": p["symbol"], "S": p["side"],
        "ps": p.get("position_side", "BOTH"), "f": "GTC",
        "q": str(p["qty"]), "X": p["status"], "ai": "" if order_id is None else str(order_id),
        "tp": price(_d(p["trigger_price"]), inst), "p": price(_d(p.get("price")), inst),
        "wt": p["working_type"], "pm": "NONE", "cp": bool(p["close_position"]), "pP": False,
        "R": bool(p["reduce_only"]), "tt": time_ms if p["status"] == "TRIGGERED" else 0,
        "gtd": 0,
    }
    if p.get("reason"):
        o["rm"] = p["reason"]
    return {"e": "ALGO_UPDATE", "T": time_ms, "E": time_ms, "o": o}


def margin_call(time_ms: int, inst: Instrument, p: Mapping[str, Any],
                cross_wallet: Decimal | None, isolated_wallet: Decimal | None,
                unrealized: Decimal | None) -> Frame:
    """MARGIN_CALL from a ``margin.call`` payload (plus what the stream knows of the wallet)."""
    isolated = p["margin_mode"] == "isolated"
    row: Frame = {"s": p["symbol"], "ps": p.get("position_side", "BOTH"), "pa": str(p["qty"]),
                  "mt": "ISOLATED" if isolated else "CROSSED",
                  "iw": coin(isolated_wallet if isolated and isolated_wallet is not None
                             else ZERO),
                  "mp": coin(_d(p["mark"]))}
    if unrealized is not None:
        row["up"] = coin(unrealized)
    row["mm"] = coin(_d(p["maint_margin"]))
    frame: Frame = {"e": "MARGIN_CALL", "E": time_ms, "i": _alias(p["account_id"])}
    if cross_wallet is not None:
        frame["cw"] = coin(cross_wallet)
    frame["p"] = [row]
    return frame


def account_config_update(time_ms: int, symbol: str, leverage: int) -> Frame:
    """ACCOUNT_CONFIG_UPDATE for a leverage change."""
    return {"e": "ACCOUNT_CONFIG_UPDATE", "E": time_ms, "T": time_ms,
            "ac": {"s": symbol, "l": leverage}}


def listen_key_expired(time_ms: int, listen_key: str) -> Frame:
    """listenKeyExpired: the key behind this connection is gone (expired, closed or reset)."""
    return {"e": "listenKeyExpired", "E": time_ms, "listenKey": listen_key}


# ---- market streams (from market_wire's REST rows) ------------------------------------------


def book_diff(old: Mapping[str, str], side: Sequence[Sequence[str]]) -> tuple[dict[str, str],
                                                                             list[list[str]]]:
    """One side of a REST depth body as {price: qty}, and its changes since ``old``
    (absolute quantities; "0" deletes a level)."""
    new = {row[0]: row[1] for row in side}
    changes = [[p, q] for p, q in new.items() if old.get(p) != q]
    changes += [[p, "0"] for p in old if p not in new]
    return new, changes


def depth_update(time_ms: int, inst: Instrument, first_id: int, final_id: int,
                 previous_id: int, bids: list[list[str]], asks: list[list[str]]) -> Frame:
    """depthUpdate: U/u/pu on the REST lastUpdateId counter; b/a absolute quantities."""
    return {"e": "depthUpdate", "E": time_ms, "T": time_ms, "s": inst.symbol, "ps": inst.pair,
            "U": first_id, "u": final_id, "pu": previous_id, "b": bids, "a": asks}


def mark_price_update(row: Mapping[str, Any]) -> Frame:
    """markPriceUpdate from a ``premiumIndex`` row (delivery contracts: r "" and T 0)."""
    return {"e": "markPriceUpdate", "E": row["time"], "s": row["symbol"],
            "p": row["markPrice"], "i": row["indexPrice"], "P": row["estimatedSettlePrice"],
            "r": row["lastFundingRate"], "T": row["nextFundingTime"]}


def index_price_update(time_ms: int, pair: str, index_price: str) -> Frame:
    """indexPriceUpdate (``<pair>@indexPrice``) from a ``premiumIndex`` row's index."""
    return {"e": "indexPriceUpdate", "E": time_ms, "i": pair, "p": index_price}


@dataclass(frozen=True, slots=True)
class KlineBar:
    """One REST kline row (market_wire.kline_row) and what the stream adds to it."""

    row: Sequence[Any]
    interval: str
    first_trade_id: int  # −1 when the bar has no print (and for mark / index bars)
    last_trade_id: int
    closed: bool


def _k(bar: KlineBar, symbol: str | None) -> Frame:
    r = bar.row
    k: Frame = {"t": r[0], "T": r[6]}
    if symbol is not None:
        k["s"] = symbol
    k.update({"i": bar.interval, "f": bar.first_trade_id, "L": bar.last_trade_id, "o": r[1],
              "c": r[4], "h": r[2], "l": r[3], "v": r[5], "n": r[8], "x": bar.closed,
              "q": r[7], "V": r[9], "Q": r[10], "B": "0"})
    return k


def kline(time_ms: int, inst: Instrument, bar: KlineBar) -> Frame:
    """kline (``<symbol>@kline_<interval>``): last-price bar, ``v`` contracts, ``q`` coin."""
    return {"e": "kline", "E": time_ms, "s": inst.symbol, "k": _k(bar, inst.symbol)}


def continuous_kline(time_ms: int, inst: Instrument, bar: KlineBar) -> Frame:
    """continuous_kline (``<pair>_<contracttype>@continuousKline_<interval>``)."""
    return {"e": "continuous_kline", "E": time_ms, "ps": inst.pair, "ct": inst.contract_type,
            "k": _k(bar, None)}


def mark_price_kline(time_ms: int, inst: Instrument, bar: KlineBar) -> Frame:
    """markPrice_kline (``<symbol>@markPriceKline_<interval>``)."""
    return {"e": "markPrice_kline", "E": time_ms, "ps": inst.pair, "k": _k(bar, inst.symbol)}


def index_price_kline(time_ms: int, inst: Instrument, bar: KlineBar) -> Frame:
    """indexPrice_kline (``<pair>@indexPriceKline_<interval>``; ``k.s`` is "0", as Binance)."""
    return {"e": "indexPrice_kline", "E": time_ms, "ps": inst.pair, "k": _k(bar, "0")}


def mini_ticker(time_ms: int, row: Mapping[str, Any]) -> Frame:
    """24hrMiniTicker from a ``ticker/24hr`` row: ``v`` contracts, ``q`` coin (COIN-M)."""
    return {"e": "24hrMiniTicker", "E": time_ms, "s": row["symbol"], "ps": row["pair"],
            "c": row["lastPrice"], "o": row["openPrice"], "h": row["highPrice"],
            "l": row["lowPrice"], "v": row["volume"], "q": row["baseVolume"]}


def ticker(time_ms: int, row: Mapping[str, Any]) -> Frame:
    """24hrTicker from a ``ticker/24hr`` row."""
    return {"e": "24hrTicker", "E": time_ms, "s": row["symbol"], "ps": row["pair"],
            "p": row["priceChange"], "P": row["priceChangePercent"],
            "w": row["weightedAvgPrice"], "c": row["lastPrice"], "Q": row["lastQty"],
            "o": row["openPrice"], "h": row["highPrice"], "l": row["lowPrice"],
            "v": row["volume"], "q": row["baseVolume"], "O": row["openTime"],
            "C": row["closeTime"], "F": row["firstId"], "L": row["lastId"], "n": row["count"]}


def trade(time_ms: int, inst: Instrument, row: Mapping[str, Any]) -> Frame:
    """trade from a ``/trades`` row."""
    return {"e": "trade", "E": time_ms, "T": row["time"], "s": inst.symbol, "t": row["id"],
            "p": row["price"], "q": row["qty"], "X": "MARKET", "m": row["isBuyerMaker"]}


def agg_trade(time_ms: int, inst: Instrument, row: Mapping[str, Any]) -> Frame:
    """aggTrade from an ``/aggTrades`` row."""
    return {"e": "aggTrade", "E": time_ms, "a": row["a"], "s": inst.symbol, "p": row["p"],
            "q": row["q"], "f": row["f"], "l": row["l"], "T": row["T"], "m": row["m"]}


def force_order(time_ms: int, inst: Instrument, p: Mapping[str, Any]) -> Frame:
    """forceOrder from a ``liquidation.order`` payload (the liquidation engine's order):
    price = the bankruptcy price it was taken over at (the fill average for a step-down)."""
    qty = str(p["qty"])
    limit = _d(p.get("bankruptcy_price")) or _d(p.get("avg_price"))
    return {"e": "forceOrder", "E": time_ms, "o": {
        "s": inst.symbol, "ps": inst.pair, "S": p["side"], "o": "LIMIT", "f": "IOC",
        "q": qty, "p": price(limit, inst), "ap": price(_d(p.get("avg_price")), inst),
        "X": "FILLED", "l": qty, "z": qty, "T": time_ms}}
