"""Which market the hedge trades: the venue's inverse perpetual of the coin held, from its own
market list (ccxt ``load_markets``), so every venue profile works: Binance lists it as
BTCUSD_PERP, Bybit as BTCUSD, BitMEX as XBTUSD, and all are ``BTC/USD:BTC`` to ccxt."""

from __future__ import annotations

from typing import Any

from perpsim.strategy.plan import PlanError


def hedge_market(ex: Any, coin: str, symbol: str | None = None) -> dict[str, Any]:
    """The ccxt market to short: ``symbol`` (unified or venue id) if given, else the one active
    inverse perpetual whose base is ``coin`` (PlanError naming what the venue lists if none)."""
    if symbol is not None:
        try:
            return dict(ex.market(symbol))
        except Exception as exc:  # ccxt.BadSymbol: say what there is instead
            raise PlanError(f"the venue lists no market {symbol!r} "
                            f"(it lists {', '.join(sorted(ex.markets))})") from exc
    found = sorted((m for m in ex.markets.values()
                    if m.get("swap") and m.get("inverse") and m.get("base") == coin
                    and m.get("active") is not False),
                   key=lambda m: str(m["symbol"]))
    if not found:
        raise PlanError(f"the venue lists no inverse perpetual of {coin} "
                        f"(it lists {', '.join(sorted(ex.markets)) or 'nothing'})")
    # several (e.g. USD- and EUR-quoted): the USD one, as the hedge is sized in USD
    usd = [m for m in found if m.get("quote") == "USD"]
    return dict((usd or found)[0])
