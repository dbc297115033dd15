"""Every difference between the venues the hedge trades on, in one place.

The strategy is a plain ccxt client: it chooses the ccxt class by venue (strategy/connect.py)
and otherwise calls ccxt's unified methods. What the unified layer does not make the same —
which account names a transfer takes, how post-only is spelled, which error code means
"duplicate client id", where the isolated margin and the realised PnL are reported, how history
pages — is answered here by a :class:`Venue`, chosen from the ccxt exchange id
(:func:`venue_for`). monitor, execution, runner and resilience call ``venue.xxx(...)`` and read
no venue-specific ``info`` field themselves.

Two venues: :class:`BinanceCoinM` (ccxt ``binancecoinm``; the numbers are read from Binance's
raw strings exactly as they always were, so Binance runs are unchanged) and :class:`BybitInverse`
(ccxt ``bybit`` on a classic account's inverse contracts; ccxt's unified fields wherever they
are right). See docs/bybit-dialect-notes.md §6.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

import ccxt

from perpsim.strategy.mark_pnl import written_pnl
from perpsim.strategy.plan import Tier, dec, ordered_tiers

ZERO = Decimal(0)
MAX_PAGES = 10_000  # a history longer than this many pages is a venue that never ends one

Call = Callable[..., Awaitable[Any]]  # name, *args → a (retried) call on the client


@dataclass(frozen=True)
class PositionView:
    """The position on one symbol as the venue reports it (contracts signed: short < 0).
    ``margin_mode`` is None when the venue did not say (no open position on Binance)."""

    contracts: int = 0
    entry_price_usd: Decimal | None = None
    liquidation_price_usd: Decimal | None = None
    isolated_margin_btc: Decimal = ZERO  # margin held by an isolated position, excl. unrealised
    margin_mode: str | None = None  # "isolated" | "cross"
    leverage: int = 1
    unrealized_pnl_btc: Decimal = ZERO


@dataclass(frozen=True)
class FuturesWallet:
    """The futures (contract) wallet of one coin: the whole wallet (isolated margins
    included), the cross wallet if the venue reports it apart, what can be moved out."""

    wallet_btc: Decimal
    cross_wallet_btc: Decimal | None
    available_btc: Decimal


@dataclass(frozen=True)
class Premium:
    """Mark, index and funding as the venue's funding-rate ticker gives them."""

    mark_usd: Decimal
    index_usd: Decimal
    plan_rate: Decimal  # the rate the plan assumes (Binance: the last settled one)
    predicted_rate: Decimal | None
    next_funding_ms: int | None


@dataclass(frozen=True)
class FillNumbers:
    """One of our trades' numbers (realised PnL None: the venue reports it per order)."""

    contracts: int
    price_usd: Decimal
    fee_btc: Decimal
    realized_pnl_btc: Decimal | None


class Venue(Protocol):
    """What the strategy asks a venue (see module doc)."""

    name: str
    spot_account: str  # ccxt transfer() account names
    futures_account: str
    spot_balance_params: Mapping[str, Any]  # fetch_balance params for the spot wallet
    transient_codes: tuple[str, ...]  # "the request did not (or may not) have run"
    rate_limit_codes: tuple[str, ...]  # "too many requests: wait" (not run)
    reject_codes: tuple[str, ...]  # order rejects that may pass a moment later
    duplicate_id_codes: tuple[str, ...]
    income_is_payments: bool  # funding income rows are the payments one for one (quiet_income)

    async def credentials_set(self, ex: Any) -> None: ...
    def has_code(self, error: BaseException, codes: Iterable[str]) -> bool: ...
    def retry_after_s(self, headers: Mapping[str, Any], wall_ms: int) -> float | None: ...
    def post_only_params(self) -> dict[str, Any]: ...
    def is_post_only_rejection(self, error: Exception) -> bool: ...
    def is_nothing_to_reduce(self, error: Exception) -> bool: ...
    def is_duplicate_id(self, error: BaseException) -> bool: ...
    async def find_order(self, ex: Any, symbol: str, client_id: str) -> dict[str, Any] | None: ...
    async def complete(self, ex: Any, order: dict[str, Any], symbol: str) -> dict[str, Any]: ...
    def filled_contracts(self, order: Mapping[str, Any]) -> int: ...
    async def order_trades(self, ex: Any, symbol: str, order: Mapping[str, Any]
                           ) -> list[dict[str, Any]]: ...
    def fill_numbers(self, trade: Mapping[str, Any]) -> FillNumbers: ...
    def position(self, positions: Iterable[Mapping[str, Any]], symbol: str) -> PositionView: ...
    def positions_at_mark(self, ex: Any, positions: Sequence[Mapping[str, Any]], symbol: str,
                          ticker: Mapping[str, Any], contract_size_usd: Decimal
                          ) -> list[dict[str, Any]] | None: ...
    def stream_position_contracts(self, position: Mapping[str, Any]) -> int | None: ...
    def futures_wallet(self, balance: Mapping[str, Any], coin: str) -> FuturesWallet: ...
    async def position_rows(self, ex: Any, symbol: str) -> list[dict[str, Any]]: ...
    def spot_coin(self, balance: Mapping[str, Any], coin: str) -> Decimal: ...
    def premium(self, ticker: Mapping[str, Any]) -> Premium: ...
    def next_settlement_ms(self, ticker: Mapping[str, Any]) -> int | None: ...
    def stream_mark_index(self, ticker: Mapping[str, Any]) -> tuple[Any, Any]: ...
    def can_stream(self, ex: Any) -> bool: ...
    async def watch_mark(self, ex: Any, symbol: str) -> Mapping[str, Any]: ...
    def tiers(self, rows: Sequence[Mapping[str, Any]]) -> tuple[Tier, ...]: ...
    def order_kind(self, order: Mapping[str, Any]) -> str | None: ...
    async def venue_orders(self, ex: Any, symbol: str, since_ms: int) -> list[dict[str, Any]]: ...
    async def set_margin(self, ex: Any, mode: str, leverage: int, symbol: str) -> None: ...
    async def add_isolated_margin(self, ex: Any, market_id: str, amount_btc: Decimal) -> Any: ...
    async def isolated_margin(self, call: Call, market_id: str) -> Decimal: ...
    async def funding_payments(self, ex: Any, symbol: str, since_ms: int, seen: set[str]
                               ) -> list[tuple[int, Decimal, str]]: ...
    async def realised_and_fees(self, ex: Any, symbol: str, since_ms: int
                                ) -> tuple[Decimal, Decimal]: ...


async def _retried(ex: Any, name: str, *args: Any) -> Any:
    """``ex.<name>(*args)``, through the retrying wrapper's ``call`` when ``ex`` is one
    (strategy/resilience.py), as its ``fetch_*`` calls are."""
    call = getattr(ex, "call", None) if getattr(ex, "inner", None) is not None else None
    return await (call(name, *args) if call is not None else getattr(ex, name)(*args))


def _text_has(error: BaseException, codes: Iterable[str]) -> bool:
    text = str(error)
    return any(code in text for code in codes)


def _header(headers: Mapping[str, Any], name: str) -> str | None:
    """A response header by name, whatever its case (ccxt keeps the server's spelling)."""
    wanted = name.lower()
    for key, value in dict(headers).items():
        if str(key).lower() == wanted:
            return str(value)
    return None


def _retry_after_header(headers: Mapping[str, Any]) -> float | None:
    """HTTP's ``Retry-After`` in seconds (None: absent or not a number)."""
    value = _header(headers, "retry-after")
    try:
        return None if value is None else float(value)
    except ValueError:
        return None


def rows_at_mark(positions: Sequence[Mapping[str, Any]], symbol: str,
                 ticker: Mapping[str, Any], is_open: Callable[[Mapping[str, Any]], bool],
                 at_mark: Callable[[Mapping[str, Any], str], dict[str, Any] | None]
                 ) -> list[dict[str, Any]] | None:
    """``positions_at_mark``'s loop for every venue: rows of other symbols and flat rows
    copied, an open row of ``symbol`` rewritten by ``at_mark(row, mark)`` at the ticker's
    mark; None when there is no mark or a row's digits cannot be proven (``at_mark`` None)."""
    mark = (ticker.get("info") or {}).get("markPrice")
    if mark is None:
        return None
    answer: list[dict[str, Any]] = []
    for pos in positions:
        if pos.get("symbol") != symbol or not is_open(pos):
            answer.append(dict(pos))
            continue
        row = at_mark(pos, str(mark))
        if row is None:
            return None
        answer.append(row)
    return answer


# ---- Binance COIN-M ------------------------------------------------------------------------------
class BinanceCoinM:
    """ccxt ``binancecoinm``: numbers from Binance's raw strings (``info``)."""

    name = "binancecoinm"
    spot_account = "spot"
    futures_account = "inverse"
    # binancecoinm reads the COIN-M account unless the sub-type says spot too (GET /api/v3/account).
    spot_balance_params: Mapping[str, Any] = {"type": "spot", "subType": "spot"}
    transient_codes: tuple[str, ...] = ("-1000", "-1001", "-1006", "-1007", "-1008")
    rate_limit_codes: tuple[str, ...] = ()  # -1003 and 429 are ccxt RateLimitExceeded already
    reject_codes: tuple[str, ...] = ("-2010", "-1015", "-2020", "-4131", "-1008")
    duplicate_id_codes: tuple[str, ...] = ("-4116",)
    page = 1000  # userTrades, income
    income_is_payments = True  # one FUNDING_FEE row per payment (strategy/quiet_income.py)

    async def credentials_set(self, ex: Any) -> None:
        """Nothing to redo: binancecoinm's currencies do not depend on the keys."""

    def has_code(self, error: BaseException, codes: Iterable[str]) -> bool:
        """Binance's codes are negative and of distinct lengths: found in ccxt's text."""
        return _text_has(error, codes)

    def retry_after_s(self, headers: Mapping[str, Any], wall_ms: int) -> float | None:
        """A 429 / 418 says how long in ``Retry-After``."""
        return _retry_after_header(headers)

    def post_only_params(self) -> dict[str, Any]:
        return {"timeInForce": "GTX"}

    def is_post_only_rejection(self, error: Exception) -> bool:
        text = str(error)
        return isinstance(error, ccxt.OrderImmediatelyFillable) or "-5022" in text or (
            "Post Only" in text)

    def is_nothing_to_reduce(self, error: Exception) -> bool:
        return "-2022" in str(error)

    def is_duplicate_id(self, error: BaseException) -> bool:
        return _text_has(error, self.duplicate_id_codes)

    async def find_order(self, ex: Any, symbol: str, client_id: str) -> dict[str, Any] | None:
        try:
            return dict(await ex.fetch_order(None, symbol, {"origClientOrderId": client_id}))
        except ccxt.OrderNotFound:
            return None

    async def complete(self, ex: Any, order: dict[str, Any], symbol: str) -> dict[str, Any]:
        return order  # Binance answers a new order with all of it

    def filled_contracts(self, order: Mapping[str, Any]) -> int:
        info = order.get("info") or {}
        value = info.get("executedQty", order.get("filled"))
        return int(dec(value or 0, "executedQty"))

    async def order_trades(self, ex: Any, symbol: str, order: Mapping[str, Any]
                           ) -> list[dict[str, Any]]:
        """The order's trades (from its creation on, one page)."""
        since = int(order.get("timestamp") or 0) or None
        trades = await ex.fetch_my_trades(symbol, since, self.page)
        return [dict(t) for t in trades if str(t.get("order")) == str(order["id"])]

    def fill_numbers(self, trade: Mapping[str, Any]) -> FillNumbers:
        info = trade.get("info") or {}
        fee = (trade.get("fee") or {}).get("cost")
        return FillNumbers(
            contracts=int(dec(info.get("qty", trade.get("amount")), "qty")),
            price_usd=dec(info.get("price", trade.get("price")), "price"),
            fee_btc=dec(info.get("commission", fee or 0), "commission"),
            realized_pnl_btc=dec(info.get("realizedPnl", 0) or 0, "realizedPnl"))

    def position(self, positions: Iterable[Mapping[str, Any]], symbol: str) -> PositionView:
        info: Mapping[str, Any] = {}
        for pos in positions:
            if pos.get("symbol") == symbol and pos.get("contracts"):
                info = pos.get("info") or {}
        qty = int(dec(info.get("positionAmt", 0), "positionAmt"))
        liq_raw = info.get("liquidationPrice")
        mode = info.get("marginType")
        return PositionView(
            contracts=qty,
            entry_price_usd=dec(info["entryPrice"], "entryPrice") if qty else None,
            liquidation_price_usd=dec(liq_raw, "liquidationPrice")
            if qty and liq_raw is not None else None,
            isolated_margin_btc=dec(info.get("isolatedWallet", 0) or 0, "isolatedWallet")
            if qty else ZERO,
            margin_mode=None if not mode else (
                "cross" if str(mode).lower().startswith("cross") else "isolated"),
            leverage=int(dec(info.get("leverage", 1) or 1, "leverage")),
            unrealized_pnl_btc=dec(info.get("unRealizedProfit", 0) or 0, "unRealizedProfit"))

    def positions_at_mark(self, ex: Any, positions: Sequence[Mapping[str, Any]], symbol: str,
                          ticker: Mapping[str, Any], contract_size_usd: Decimal
                          ) -> list[dict[str, Any]] | None:
        """``positions`` (a positionRisk answer) as the venue would answer it at the mark of
        ``ticker`` (a premiumIndex answer), everything but the mark held: the open row's
        ``unRealizedProfit`` (and ``markPrice``) rewritten in the venue's digits
        (strategy/mark_pnl.py). None when those digits cannot be proven. Only the raw strings
        this venue reads are rewritten (ccxt's unified numbers of the row are left stale)."""
        def at_mark(pos: Mapping[str, Any], mark: str) -> dict[str, Any] | None:
            info = pos.get("info") or {}
            pnl = written_pnl(int(dec(info.get("positionAmt"), "positionAmt")),
                              contract_size_usd, str(info.get("entryPrice")), mark,
                              str(info.get("unRealizedProfit")))
            return None if pnl is None else {
                **pos, "info": {**info, "unRealizedProfit": pnl, "markPrice": mark}}

        return rows_at_mark(positions, symbol, ticker, lambda pos: bool(pos.get("contracts")),
                            at_mark)

    async def position_rows(self, ex: Any, symbol: str) -> list[dict[str, Any]]:
        """The positions of ``symbol`` as ``fetch_positions([symbol])`` gives what this venue
        reads of them: ``symbol``, ``contracts`` (truthy exactly when the row is open) and the
        raw row (``info``), from the request ccxt makes (``GET /dapi/v1/positionRisk``, no
        parameters), without ccxt's parse of every number (which nothing reads: a tenth of a
        stepped dry run's client time). Retried as a ``fetch`` call when the client retries."""
        market_id = ex.market(symbol)["id"]
        rows = await _retried(ex, "dapiPrivateGetPositionRisk", {})
        return [{"symbol": symbol, "contracts": abs(int(dec(row.get("positionAmt", 0) or 0,
                                                            "positionAmt"))),
                 "info": row} for row in rows or [] if row.get("symbol") == market_id]

    def stream_position_contracts(self, position: Mapping[str, Any]) -> int | None:
        info = position.get("info") or {}
        amount = info.get("pa", info.get("positionAmt"))
        return None if amount is None else int(dec(amount, "positionAmt"))

    def futures_wallet(self, balance: Mapping[str, Any], coin: str) -> FuturesWallet:
        for asset in (balance.get("info") or {}).get("assets", []):
            if asset.get("asset") == coin:
                cross = asset.get("crossWalletBalance")
                return FuturesWallet(
                    dec(asset.get("walletBalance", 0), "walletBalance"),
                    None if cross is None else dec(cross, "crossWalletBalance"),
                    dec(asset.get("availableBalance", 0), "availableBalance"))
        return _unified_wallet(balance, coin)

    def spot_coin(self, balance: Mapping[str, Any], coin: str) -> Decimal:
        for row in (balance.get("info") or {}).get("balances", []):
            if row.get("asset") == coin:
                return dec(row.get("free", 0), "free") + dec(row.get("locked", 0), "locked")
        total = (balance.get("total") or {}).get(coin)
        return ZERO if total is None else dec(total, "spot total")

    def premium(self, ticker: Mapping[str, Any]) -> Premium:
        info = ticker.get("info") or {}
        predicted = ticker.get("fundingRate")
        nxt = ticker.get("fundingTimestamp") or ticker.get("nextFundingTimestamp")
        return Premium(
            mark_usd=dec(info.get("markPrice", ticker.get("markPrice")), "markPrice"),
            index_usd=dec(info.get("indexPrice", ticker.get("indexPrice")), "indexPrice"),
            plan_rate=dec(info.get("lastFundingRate", ticker.get("fundingRate") or 0),
                          "fundingRate"),
            predicted_rate=None if predicted is None else dec(predicted, "fundingRate"),
            next_funding_ms=None if nxt is None else int(nxt))

    def next_settlement_ms(self, ticker: Mapping[str, Any]) -> int | None:
        """When funding income is next worth fetching (None: every resync)."""
        nxt = ticker.get("fundingTimestamp") or (ticker.get("info") or {}).get(
            "nextFundingTime")
        return int(nxt) if nxt else None

    def stream_mark_index(self, ticker: Mapping[str, Any]) -> tuple[Any, Any]:
        info = ticker.get("info") or {}
        return (ticker.get("markPrice") or info.get("p"),
                ticker.get("indexPrice") or info.get("i"))

    def can_stream(self, ex: Any) -> bool:
        """A ccxt.pro client (the mark price stream is what the others go with)."""
        return bool((getattr(ex, "has", None) or {}).get("watchMarkPrice"))

    async def watch_mark(self, ex: Any, symbol: str) -> Mapping[str, Any]:
        """The next ``markPriceUpdate`` (mark and index)."""
        answer: Mapping[str, Any] = await ex.watch_mark_price(symbol)
        return answer

    def tiers(self, rows: Sequence[Mapping[str, Any]]) -> tuple[Tier, ...]:
        """``fetch_leverage_tiers()[symbol]``, the exact numbers from Binance's bracket
        strings (``info``; ccxt's unified ones are floats): ``qtyFloor`` / ``qtyCap`` (coin
        value), ``maintMarginRatio``, ``cum``, ``initialLeverage``."""
        tiers = []
        for row in rows:
            info = row.get("info") or {}
            floor = info.get("qtyFloor", info.get("notionalFloor", row.get("minNotional")))
            cap = info.get("qtyCap", info.get("notionalCap", row.get("maxNotional")))
            tiers.append(Tier(
                floor_coin=dec(floor, "tier floor"),
                cap_coin=None if cap is None else dec(cap, "tier cap"),
                mmr=dec(info.get("maintMarginRatio", row.get("maintenanceMarginRate")),
                        "tier MMR"),
                cum_coin=dec(info.get("cum", 0), "tier cum"),
                max_leverage=dec(info.get("initialLeverage", row.get("maxLeverage")),
                                 "tier max leverage")))
        return ordered_tiers(tiers)

    def order_kind(self, order: Mapping[str, Any]) -> str | None:
        """Binance: type LIQUIDATION, client ids ``autoclose-…`` and ``adl_autoclose…``."""
        info = order.get("info") or {}
        kind = str(order.get("type") or info.get("o") or "").lower()
        cid = str(order.get("clientOrderId") or info.get("c") or "")
        if cid.startswith("adl_"):
            return "adl"
        if kind == "liquidation" or cid.startswith("autoclose"):
            return "liquidation"
        return None

    async def venue_orders(self, ex: Any, symbol: str, since_ms: int) -> list[dict[str, Any]]:
        return [dict(o) for o in await ex.fetch_orders(symbol, since_ms, 100)]

    async def set_margin(self, ex: Any, mode: str, leverage: int, symbol: str) -> None:
        with contextlib.suppress(ccxt.MarginModeAlreadySet):
            await ex.set_margin_mode(mode, symbol)
        await ex.set_leverage(leverage, symbol)

    async def add_isolated_margin(self, ex: Any, market_id: str, amount_btc: Decimal) -> Any:
        return await ex.dapiPrivatePostPositionMargin({
            "symbol": market_id, "amount": str(amount_btc), "type": 1})

    async def isolated_margin(self, call: Call, market_id: str) -> Decimal:
        for row in await call("dapiPrivateGetPositionRisk") or []:
            if row.get("symbol") == market_id:
                return Decimal(str(row.get("isolatedWallet") or 0))
        return ZERO

    async def funding_payments(self, ex: Any, symbol: str, since_ms: int, seen: set[str]
                               ) -> list[tuple[int, Decimal, str]]:
        """Income rows since ``since_ms`` not in ``seen`` (which it extends), oldest first."""
        found: list[tuple[int, Decimal, str]] = []
        since = since_ms
        while True:
            rows = await ex.fetch_funding_history(symbol, since, self.page)
            fresh = 0
            for row in sorted(rows, key=lambda r: int(r.get("timestamp") or 0)):
                info = row.get("info") or {}
                tran = str(row.get("id") or info.get("tranId"))
                if tran in seen:
                    continue
                seen.add(tran)
                fresh += 1
                amount = dec(info.get("income", row.get("amount")), "income")
                time_ms = int(row.get("timestamp") or info.get("time") or 0)
                found.append((time_ms, amount, tran))
            if len(rows) < self.page or not fresh:
                break
            since = found[-1][0] + 1
        return found

    async def realised_and_fees(self, ex: Any, symbol: str, since_ms: int
                                ) -> tuple[Decimal, Decimal]:
        """Σ realizedPnl and Σ commission of our trades since ``since_ms``."""
        since, seen = since_ms, set()
        pnl = fees = ZERO
        while True:
            trades = await ex.fetch_my_trades(symbol, since, self.page)
            fresh = [t for t in trades if str(t.get("id")) not in seen]
            for t in fresh:
                seen.add(str(t.get("id")))
                info = t.get("info") or {}
                pnl += dec(info.get("realizedPnl", 0) or 0, "realizedPnl")
                fee = info.get("commission", (t.get("fee") or {}).get("cost") or 0)
                fees += dec(fee or 0, "commission")
            if len(trades) < self.page or not fresh:
                break
            since = max(int(t.get("timestamp") or 0) for t in trades)
        return pnl, fees


def _unified_wallet(balance: Mapping[str, Any], coin: str) -> FuturesWallet:
    total = (balance.get("total") or {}).get(coin)
    free = (balance.get("free") or {}).get(coin)
    return FuturesWallet(dec(total or 0, "total"), None, dec(free or 0, "free"))


# ---- Bybit v5 inverse ----------------------------------------------------------------------------
BYBIT_CATEGORY = "inverse"
BYBIT_POST_ONLY_TAKES = "EC_PostOnlyWillTakeLiquidity"
BYBIT_VENUE_ORDERS = {"CreateByLiq": "liquidation", "CreateByAdl_PassThrough": "adl"}
BYBIT_FILL_TYPES = ("Trade", "BustTrade", "AdlTrade")  # our fills, the venue's on our account
BYBIT_RET_CODE = re.compile(r'"ret_?[cC]ode"\s*:\s*"?(-?\d+)')  # in ccxt's "bybit {body}"


class BybitInverse:
    """ccxt ``bybit``, classic account, inverse contracts: ccxt's unified fields."""

    name = "bybit"
    spot_account = "spot"
    futures_account = "contract"
    spot_balance_params: Mapping[str, Any] = {"type": "spot"}
    # Server-side "try again" answers ccxt raises as a bare ExchangeError: 10000 / 5004 server
    # timeout, 10016 server error (a 5xx carries it too). 10002 (timestamp / recv window) is
    # ccxt's InvalidNonce and 170007 its RequestTimeout: network errors, retried as such.
    transient_codes: tuple[str, ...] = ("10000", "5004", "10016")
    # 10006 too many visits, 10018 IP limit (ccxt: RateLimitExceeded, as HTTP 403), 10429
    # system-level frequency protection (ccxt: a bare ExchangeError).
    rate_limit_codes: tuple[str, ...] = ("10006", "10018", "10429")
    reject_codes: tuple[str, ...] = ()
    duplicate_id_codes: tuple[str, ...] = ("110072",)
    execution_page = 100  # /v5/execution/list: at most 100 a page
    income_is_payments = False  # executions: their own ids and fee fields, read them
    closed_pnl_page = 50  # /v5/position/closed-pnl (perpsim serves at most 50)
    order_page = 50  # /v5/order/history: at most 50

    async def credentials_set(self, ex: Any) -> None:
        """Reload the markets now that the client has keys. Without keys ccxt.bybit skips the
        (private) coin list and takes each coin's precision from a contract's amount step: 1
        for BTCUSD, so ``transfer`` would round 4.976 BTC to 5 and be refused."""
        await ex.load_markets(True)

    def has_code(self, error: BaseException, codes: Iterable[str]) -> bool:
        """The answer's ``retCode`` is one of ``codes`` (read exactly: 10016 is not 110016).
        An error without a retCode in its text (ccxt's own, an HTTP status) has none."""
        found = BYBIT_RET_CODE.search(str(error))
        return found is not None and found.group(1) in codes

    def retry_after_s(self, headers: Mapping[str, Any], wall_ms: int) -> float | None:
        """Until the window ends (``X-Bapi-Limit-Reset-Timestamp``, wall ms) when the budget is
        spent (``X-Bapi-Limit-Status`` 0): Bybit sends no Retry-After, and a request sent
        before the reset counts against the spent budget (and, repeated, gets the IP banned)."""
        after = _retry_after_header(headers)
        if after is not None:
            return after
        left, reset = _header(headers, "X-Bapi-Limit-Status"), _header(
            headers, "X-Bapi-Limit-Reset-Timestamp")
        if left is None or reset is None or not left.isdigit() or int(left) > 0:
            return None
        try:
            return max(0.0, (int(reset) - wall_ms) / 1000)
        except ValueError:
            return None

    def post_only_params(self) -> dict[str, Any]:
        return {"postOnly": True}

    def is_post_only_rejection(self, error: Exception) -> bool:
        return isinstance(error, ccxt.OrderImmediatelyFillable) or (
            BYBIT_POST_ONLY_TAKES in str(error))

    def is_nothing_to_reduce(self, error: Exception) -> bool:
        return "110017" in str(error)

    def is_duplicate_id(self, error: BaseException) -> bool:
        return _text_has(error, self.duplicate_id_codes)

    async def find_order(self, ex: Any, symbol: str, client_id: str) -> dict[str, Any] | None:
        # /v5/order/realtime answers an order asked for by orderLinkId whatever its status;
        # ccxt's fetch_order takes only an orderId.
        found = await ex.fetch_open_orders(symbol, None, None, {"orderLinkId": client_id})
        for order in found:
            if order.get("clientOrderId") == client_id:
                return dict(order)
        return None

    async def complete(self, ex: Any, order: dict[str, Any], symbol: str) -> dict[str, Any]:
        """Bybit answers a new order with its ids only: read the rest. A post-only order that
        would have taken is either refused (the create raised) or, as on Bybit itself,
        accepted and cancelled at once: that is a post-only rejection too."""
        if order.get("status") is None:
            order = dict(await ex.fetch_order(order["id"], symbol))
        info = order.get("info") or {}
        if (order.get("status") == "canceled" and not self.filled_contracts(order)
                and info.get("rejectReason") == BYBIT_POST_ONLY_TAKES):
            raise ccxt.OrderImmediatelyFillable(
                f"{self.name} {BYBIT_POST_ONLY_TAKES}: post-only order {order.get('id')} "
                "cancelled because it would have taken liquidity")
        return order

    def filled_contracts(self, order: Mapping[str, Any]) -> int:
        return int(dec(order.get("filled") or 0, "filled"))

    async def order_trades(self, ex: Any, symbol: str, order: Mapping[str, Any]
                           ) -> list[dict[str, Any]]:
        """The order's executions (``orderId`` filter, every page)."""
        since = int(order.get("timestamp") or 0) or None
        rows = await self._pages(lambda extra: ex.fetch_my_trades(
            symbol, since, self.execution_page, {"orderId": str(order["id"]), **extra}))
        return [t for t in rows if str(t.get("order")) == str(order["id"])]

    def fill_numbers(self, trade: Mapping[str, Any]) -> FillNumbers:
        return FillNumbers(
            contracts=int(dec(trade.get("amount"), "amount")),
            price_usd=dec(trade.get("price"), "price"),
            fee_btc=dec((trade.get("fee") or {}).get("cost") or 0, "fee"),
            realized_pnl_btc=None)  # Bybit reports it per closing order (closed-pnl)

    def position(self, positions: Iterable[Mapping[str, Any]], symbol: str) -> PositionView:
        for pos in positions:
            if pos.get("symbol") != symbol or not pos.get("contracts"):
                continue
            contracts = int(dec(pos["contracts"], "contracts"))
            isolated = str((pos.get("info") or {}).get("tradeMode")) == "1"  # ccxt: None
            liq = pos.get("liquidationPrice")
            entry = pos.get("entryPrice")
            return PositionView(
                contracts=-contracts if pos.get("side") == "short" else contracts,
                entry_price_usd=None if entry is None else dec(entry, "entryPrice"),
                liquidation_price_usd=None if liq is None else dec(liq, "liquidationPrice"),
                # The raw positionBalance (margin excl. unrealised PnL): ccxt's ``collateral``
                # adds the unrealised PnL in, which margin_balance_btc adds once more.
                isolated_margin_btc=dec((pos.get("info") or {}).get("positionBalance") or 0,
                                        "positionBalance") if isolated else ZERO,
                margin_mode="isolated" if isolated else "cross",
                leverage=int(dec(pos.get("leverage") or 1, "leverage")),
                unrealized_pnl_btc=dec(pos.get("unrealizedPnl") or 0, "unrealizedPnl"))
        return PositionView()

    def positions_at_mark(self, ex: Any, positions: Sequence[Mapping[str, Any]], symbol: str,
                          ticker: Mapping[str, Any], contract_size_usd: Decimal
                          ) -> list[dict[str, Any]] | None:
        """``positions`` (a /v5/position/list answer) as the venue would answer it at the
        mark of ``ticker`` (a /v5/market/tickers answer), everything but the mark held: the
        open row's ``unrealisedPnl`` (and ``markPrice``) rewritten in the venue's digits
        (strategy/mark_pnl.py) and parsed again by ccxt, whose collateral adds the PnL in.
        None when those digits cannot be proven."""
        def at_mark(pos: Mapping[str, Any], mark: str) -> dict[str, Any] | None:
            info = pos.get("info") or {}
            entry = info.get("avgPrice", info.get("entryPrice"))
            pnl = written_pnl(self.stream_position_contracts(pos) or 0, contract_size_usd,
                              str(entry), mark, str(info.get("unrealisedPnl")))
            if pnl is None:
                return None
            row = {**info, "unrealisedPnl": pnl, "markPrice": mark}
            return dict(ex.parse_position(row, ex.market(symbol)))

        return rows_at_mark(positions, symbol, ticker,
                            lambda pos: bool(self.stream_position_contracts(pos)), at_mark)

    async def position_rows(self, ex: Any, symbol: str) -> list[dict[str, Any]]:
        """ccxt's ``fetch_positions([symbol])`` (its unified numbers are what this venue
        reads)."""
        return list(await ex.fetch_positions([symbol]))

    def stream_position_contracts(self, position: Mapping[str, Any]) -> int | None:
        contracts = position.get("contracts")
        if contracts is None:
            return None
        qty = int(dec(contracts, "contracts"))
        return -qty if position.get("side") == "short" else qty

    def futures_wallet(self, balance: Mapping[str, Any], coin: str) -> FuturesWallet:
        # ccxt's total is Bybit's walletBalance (isolated margins included), free its
        # availableToWithdraw; the cross wallet is not reported apart.
        return _unified_wallet(balance, coin)

    def spot_coin(self, balance: Mapping[str, Any], coin: str) -> Decimal:
        total = (balance.get("total") or {}).get(coin)
        return ZERO if total is None else dec(total, "spot total")

    def premium(self, ticker: Mapping[str, Any]) -> Premium:
        predicted = ticker.get("fundingRate")
        nxt = ticker.get("fundingTimestamp") or ticker.get("nextFundingTimestamp")
        return Premium(
            mark_usd=dec(ticker.get("markPrice"), "markPrice"),
            index_usd=dec(ticker.get("indexPrice"), "indexPrice"),
            # Bybit's ticker names only the rate the next settlement will use.
            plan_rate=dec(predicted or 0, "fundingRate"),
            predicted_rate=None if predicted is None else dec(predicted, "fundingRate"),
            next_funding_ms=None if nxt is None else int(nxt))

    def next_settlement_ms(self, ticker: Mapping[str, Any]) -> int | None:
        """When funding income is next worth fetching (None: every resync)."""
        nxt = ticker.get("fundingTimestamp")
        return int(nxt) if nxt else None

    def stream_mark_index(self, ticker: Mapping[str, Any]) -> tuple[Any, Any]:
        return ticker.get("markPrice"), ticker.get("indexPrice")

    def can_stream(self, ex: Any) -> bool:
        """A ccxt.pro client: Bybit has no mark-price stream of its own, its ``tickers``
        topic carries the mark and the index."""
        return bool((getattr(ex, "has", None) or {}).get("watchTicker"))

    async def watch_mark(self, ex: Any, symbol: str) -> Mapping[str, Any]:
        """The next ``tickers.<symbol>`` frame (ccxt merges Bybit's deltas into a whole
        ticker: ``markPrice``, ``indexPrice``)."""
        answer: Mapping[str, Any] = await ex.watch_ticker(symbol)
        return answer

    def tiers(self, rows: Sequence[Mapping[str, Any]]) -> tuple[Tier, ...]:
        """Bybit's risk limits as ccxt parses them: value caps in coin (``minNotional`` /
        ``maxNotional``), MMR, max leverage, and ``mmDeduction`` (the cum) from the raw row."""
        return ordered_tiers(Tier(
            floor_coin=dec(row.get("minNotional"), "tier floor"),
            cap_coin=None if row.get("maxNotional") is None
            else dec(row.get("maxNotional"), "tier cap"),
            mmr=dec(row.get("maintenanceMarginRate"), "tier MMR"),
            cum_coin=dec((row.get("info") or {}).get("mmDeduction") or 0, "tier cum"),
            max_leverage=dec(row.get("maxLeverage"), "tier max leverage")) for row in rows)

    def order_kind(self, order: Mapping[str, Any]) -> str | None:
        return BYBIT_VENUE_ORDERS.get(str((order.get("info") or {}).get("createType") or ""))

    async def venue_orders(self, ex: Any, symbol: str, since_ms: int) -> list[dict[str, Any]]:
        return [dict(o) for o in await ex.fetch_closed_orders(symbol, since_ms, self.order_page)]

    async def set_margin(self, ex: Any, mode: str, leverage: int, symbol: str) -> None:
        # Bybit switches the margin mode and sets the leverage in one call; a leverage it
        # already has is refused (110043), which means it is set.
        with contextlib.suppress(ccxt.MarginModeAlreadySet):
            await ex.set_margin_mode(mode, symbol, {"leverage": leverage})
        try:
            await ex.set_leverage(leverage, symbol)
        except ccxt.BadRequest as error:
            if "110043" not in str(error):
                raise

    async def add_isolated_margin(self, ex: Any, market_id: str, amount_btc: Decimal) -> Any:
        return await ex.privatePostV5PositionAddMargin({
            "category": BYBIT_CATEGORY, "symbol": market_id, "margin": str(amount_btc)})

    async def isolated_margin(self, call: Call, market_id: str) -> Decimal:
        answer = await call("privateGetV5PositionList",
                            {"category": BYBIT_CATEGORY, "symbol": market_id})
        for row in ((answer or {}).get("result") or {}).get("list") or []:
            if row.get("symbol") == market_id and str(row.get("tradeMode")) == "1":
                return Decimal(str(row.get("positionBalance") or 0))
        return ZERO

    async def _pages(self, fetch: Callable[[dict[str, Any]], Awaitable[list[Any]]]
                     ) -> list[dict[str, Any]]:
        """Every row of a cursor-paged history (ccxt puts ``nextPageCursor`` in a row's info)."""
        rows: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            page = await fetch({} if cursor is None else {"cursor": cursor})
            rows += [dict(r) for r in page]
            cursor = next((str(r["info"]["nextPageCursor"]) for r in page
                           if (r.get("info") or {}).get("nextPageCursor")), None)
            if not page or not cursor:
                return rows
        raise RuntimeError(f"{self.name}: a history longer than {MAX_PAGES} pages")

    async def funding_payments(self, ex: Any, symbol: str, since_ms: int, seen: set[str]
                               ) -> list[tuple[int, Decimal, str]]:
        """Funding executions since ``since_ms`` not in ``seen`` (which it extends), oldest
        first. Bybit's ``execFee`` (ccxt's amount) is what was PAID: income is its negative."""
        rows = await self._pages(lambda extra: ex.fetch_funding_history(
            symbol, since_ms, self.execution_page, {"limit": self.execution_page, **extra}))
        found: list[tuple[int, Decimal, str]] = []
        for row in sorted(rows, key=lambda r: (int(r.get("timestamp") or 0), str(r.get("id")))):
            tran = str(row.get("id"))
            if tran in seen:
                continue
            seen.add(tran)
            found.append((int(row.get("timestamp") or 0), -dec(row.get("amount"), "execFee"),
                          tran))
        return found

    async def realised_and_fees(self, ex: Any, symbol: str, since_ms: int
                                ) -> tuple[Decimal, Decimal]:
        """Σ realised PnL and Σ fees of our fills (and the venue's on our account) since
        ``since_ms``. Bybit reports realised PnL per closing order, net of that order's fees
        (/v5/position/closed-pnl): those fees are added back."""
        fills: list[dict[str, Any]] = []
        for exec_type in BYBIT_FILL_TYPES:
            fills += await self._pages(self._executions(ex, symbol, since_ms, exec_type))
        unique = {str(t.get("id")): t for t in fills}
        fees = sum((self.fill_numbers(t).fee_btc for t in unique.values()), ZERO)
        closed = await self._closed_pnl(ex, symbol, since_ms)
        closing_fees = sum((self.fill_numbers(t).fee_btc for t in unique.values()
                            if str(t.get("order")) in closed), ZERO)
        return sum(closed.values(), ZERO) + closing_fees, fees

    def _executions(self, ex: Any, symbol: str, since_ms: int, exec_type: str
                    ) -> Callable[[dict[str, Any]], Awaitable[list[Any]]]:
        """One page of our executions of ``exec_type`` (ccxt's fetch_my_trades asks for
        Trade only unless told)."""
        def fetch(extra: dict[str, Any]) -> Awaitable[list[Any]]:
            return ex.fetch_my_trades(symbol, since_ms, self.execution_page,
                                      {"execType": exec_type, **extra})
        return fetch

    async def _closed_pnl(self, ex: Any, symbol: str, since_ms: int) -> dict[str, Decimal]:
        """closedPnl by order id since ``since_ms`` (newest first on the wire, no cursor in
        ccxt's answer: walked back by ``until``)."""
        found: dict[str, Decimal] = {}
        until: int | None = None
        for _ in range(MAX_PAGES):
            params: dict[str, Any] = {"subType": BYBIT_CATEGORY}
            if until is not None:
                params["until"] = until
            rows = await ex.fetch_positions_history([symbol], since_ms, self.closed_pnl_page,
                                                    params)
            fresh = 0
            for row in rows:
                info = row.get("info") or {}
                order_id = str(info.get("orderId"))
                if order_id not in found:
                    found[order_id] = dec(info.get("closedPnl"), "closedPnl")
                    fresh += 1
            if len(rows) < self.closed_pnl_page or not fresh:
                return found
            until = min(int((r.get("info") or {}).get("updatedTime") or 0) for r in rows)
        raise RuntimeError(f"{self.name}: a closed-PnL history longer than {MAX_PAGES} pages")


BINANCE_COINM = BinanceCoinM()
BYBIT_INVERSE = BybitInverse()
VENUES: dict[str, Venue] = {"binancecoinm": BINANCE_COINM, "bybit": BYBIT_INVERSE}


def venue_for(exchange: Any) -> Venue:
    """The venue of a ccxt client (or of a wrapper passing ``id`` through). A client without
    an ``id`` (a test double) is taken for the Binance COIN-M client the strategy began with."""
    name = getattr(exchange, "id", None)
    if name is None:
        return BINANCE_COINM
    if name not in VENUES:
        raise ValueError(f"the hedge trades on {', '.join(VENUES)}, not on ccxt {name!r}")
    return VENUES[name]
