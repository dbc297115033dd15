"""Shared set-up of the lessons: a manual Binance COIN-M venue, accounts, orders, journal look-ups.

Every lesson starts at 2024-01-01T00:01Z on the manual scenario (BTCUSD 60,000, index = perp),
one minute after a funding instant so nothing settles until 08:00. With the perp on the index
and no funding rate settled yet, the mark (median of P1, P2 and the last price) equals the
index, so the prices a lesson sets are the marks the engine judges positions by.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from perpsim.sim import trading
from perpsim.sim.exchange import Exchange
from perpsim.sim.journal import Event, expand
from perpsim.sim.profile import Profile, load_profile
from perpsim.sim.scenario import MANUAL_START_MS, load_scenario

BTC = "BTCUSD_PERP"
COIN = "BTC"
T0_MS = MANUAL_START_MS  # 2024-01-01T00:00:00Z
SECOND_MS = 1_000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS


def venue(profile: Profile | None = None) -> Exchange:
    """A fresh manual venue (binance_coinm unless told), one minute after 00:00 UTC."""
    prof = load_profile("binance_coinm") if profile is None else profile
    ex = Exchange(prof, load_scenario("manual", start_ms=T0_MS), seed=0, start_ms=T0_MS)
    ex.advance(MINUTE_MS)
    return ex


def account(ex: Exchange, futures_btc: str | Decimal, *, label: str, mode: str = "cross",
            leverage: int = 20, spot_btc: str | Decimal | None = None) -> str:
    """A new account with ``futures_btc`` in its futures wallet, margin mode and leverage set."""
    spot = None if spot_btc is None else {COIN: spot_btc}
    account_id = ex.create_account({COIN: futures_btc}, label=label,
                                   spot_balances=spot).account_id
    if mode != ex.position(account_id, BTC).margin_mode:
        ex.set_margin_mode(account_id, BTC, mode)
    ex.set_leverage(account_id, BTC, leverage)
    return account_id


def market(ex: Exchange, account_id: str, side: str, qty: int) -> Event:
    """A market order; its (single) TRADE journal event."""
    first = len(ex.journal)
    trading.place_order(ex, account_id, BTC, side, "MARKET", qty)
    return [e for e in ex.journal.since(first)
            if e.type == "order.update" and e.payload["execution"] == "TRADE"][-1]


def step_to(ex: Exchange, price: Decimal | int | str, *, perp: Decimal | int | str | None = None,
            wait_ms: int = SECOND_MS) -> list[Event]:
    """Let ``wait_ms`` pass, then set the index (and the perp, default = index)."""
    events = ex.advance(wait_ms) if wait_ms else []
    return events + ex.set_prices(BTC, str(price), None if perp is None else str(perp))


def of_type(events: Iterable[Event], *types: str, **match: Any) -> list[Event]:
    """The events of the given types whose payload matches ``match`` (key = value); a funding
    settlement's per-account payments included (``sim.journal.expand``)."""
    owner = match.get("account_id")
    return [e for e in expand(events, owner if isinstance(owner, str) else None)
            if e.type in types and all(e.payload.get(k) == v for k, v in match.items())]


def journal(ex: Exchange, *types: str, **match: Any) -> list[Event]:
    """The whole journal's events of the given types (see ``of_type``)."""
    return of_type(ex.journal, *types, **match)


def geometric_path(start: int, stop: int, step: Decimal) -> list[Decimal]:
    """Prices from ``start`` towards ``stop`` (excluded) multiplying by (1 ± step), to 0.1 USD."""
    up = stop > start
    factor = 1 + step if up else 1 - step
    prices, price = [], Decimal(start)
    while (price < stop) if up else (price > stop):
        prices.append(price.quantize(Decimal("0.1")))
        price *= factor
    return prices
