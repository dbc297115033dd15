"""strategy/venue.py: the Bybit adapter's parsing of ccxt.bybit's answers (funding sign,
balances, position fields, risk tiers, venue orders, paging) and its order handling (post-only
refused or accepted-then-cancelled, duplicate ids, unchanged leverage), against hand-made
ccxt-shaped answers; the venue chosen from the ccxt id."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import ccxt
import pytest

from perpsim.strategy.execution import Executor, PostOnlyRejected
from perpsim.strategy.plan import PlanError
from perpsim.strategy.venue import BINANCE_COINM, BYBIT_INVERSE, venue_for

SYMBOL = "BTC/USD:BTC"
D = Decimal


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_the_venue_is_chosen_by_the_ccxt_id() -> None:
    assert venue_for(ccxt.bybit()) is BYBIT_INVERSE
    assert venue_for(ccxt.binancecoinm()) is BINANCE_COINM
    with pytest.raises(ValueError, match="not on ccxt 'kraken'"):
        venue_for(ccxt.kraken())


def test_funding_income_is_execfee_negated_and_every_page_is_read() -> None:
    """ccxt.bybit's funding ``amount`` is Bybit's execFee: what the position PAID."""
    pages = {
        None: [{"id": "funding-9", "timestamp": 1_704_124_800_000, "amount": 2.5e-06,
                "info": {"nextPageCursor": "1"}},
               {"id": "funding-7", "timestamp": 1_704_096_000_000, "amount": -1.66e-06,
                "info": {}}],
        "1": [{"id": "funding-5", "timestamp": 1_704_067_200_000, "amount": -0.00000300,
               "info": {}}],
    }
    asked: list[dict[str, Any]] = []

    class Ex:
        async def fetch_funding_history(self, symbol: str, since: int, limit: int,
                                        params: dict[str, Any]) -> list[dict[str, Any]]:
            asked.append(dict(params))
            return pages[params.get("cursor")]

    seen = {"funding-7"}
    found = run(BYBIT_INVERSE.funding_payments(Ex(), SYMBOL, 0, seen))
    assert found == [(1_704_067_200_000, D("0.000003"), "funding-5"),
                     (1_704_124_800_000, D("-0.0000025"), "funding-9")]
    assert seen == {"funding-5", "funding-7", "funding-9"}
    assert [p.get("cursor") for p in asked] == [None, "1"]
    assert all(p["limit"] == 100 for p in asked)  # Bybit's execution page


def test_balances_come_from_ccxt_totals() -> None:
    contract = {"total": {"BTC": 0.99999084}, "free": {"BTC": 0.98332736},
                "info": {"result": {"list": [{"accountType": "CONTRACT"}]}}}
    wallet = BYBIT_INVERSE.futures_wallet(contract, "BTC")
    assert (wallet.wallet_btc, wallet.cross_wallet_btc, wallet.available_btc) == (
        D("0.99999084"), None, D("0.98332736"))
    assert BYBIT_INVERSE.spot_coin({"total": {"BTC": 0.5}}, "BTC") == D("0.5")
    assert BYBIT_INVERSE.spot_coin({"total": {}}, "BTC") == 0
    assert BYBIT_INVERSE.spot_balance_params == {"type": "spot"}
    assert (BYBIT_INVERSE.spot_account, BYBIT_INVERSE.futures_account) == ("spot", "contract")


def _position(trade_mode: int, **fields: Any) -> dict[str, Any]:
    return {"symbol": SYMBOL, "contracts": 1000.0, "side": "short", "entryPrice": 60011.5,
            # ccxt's collateral is positionBalance + unrealisedPnl (ccxt bybit.parse_position)
            "liquidationPrice": 120023.5, "collateral": 0.02654003, "leverage": 2.0,
            "unrealizedPnl": -0.00012345, "marginMode": None,
            "info": {"tradeMode": trade_mode, "positionBalance": "0.02666348"}, **fields}


def test_an_isolated_short_reads_size_side_entry_liquidation_margin_and_pnl() -> None:
    flat_other = {"symbol": "ETH/USD:ETH", "contracts": 5.0, "side": "long", "info": {}}
    view = BYBIT_INVERSE.position([flat_other, _position(1)], SYMBOL)
    assert view.contracts == -1000
    assert view.entry_price_usd == D("60011.5")
    assert view.liquidation_price_usd == D("120023.5")
    # positionBalance, not ccxt's collateral: the monitor adds the unrealised PnL itself
    assert view.isolated_margin_btc == D("0.02666348")
    assert view.margin_mode == "isolated"
    assert view.leverage == 2
    assert view.unrealized_pnl_btc == D("-0.00012345")


def test_a_cross_position_holds_no_isolated_margin_and_flat_says_nothing() -> None:
    view = BYBIT_INVERSE.position([_position(0, side="long", liquidationPrice=None)], SYMBOL)
    assert (view.contracts, view.margin_mode, view.isolated_margin_btc) == (1000, "cross", 0)
    assert view.liquidation_price_usd is None
    flat = BYBIT_INVERSE.position([_position(1, contracts=0.0)], SYMBOL)
    assert (flat.contracts, flat.margin_mode, flat.entry_price_usd) == (0, None, None)


def test_risk_limits_keep_bybit_mm_deduction_as_the_cum() -> None:
    rows = [{"minNotional": 150.0, "maxNotional": 300.0, "maintenanceMarginRate": 0.01,
             "maxLeverage": 66.66, "info": {"mmDeduction": "0.75"}},
            {"minNotional": 0.0, "maxNotional": 150.0, "maintenanceMarginRate": 0.005,
             "maxLeverage": 100.0, "info": {"mmDeduction": "0"}}]
    first, second = BYBIT_INVERSE.tiers(rows)
    assert (first.floor_coin, first.cap_coin, first.mmr, first.cum_coin) == (
        0, D("150.0"), D("0.005"), 0)
    assert (second.floor_coin, second.cap_coin, second.cum_coin, second.max_leverage) == (
        D("150.0"), None, D("0.75"), D("66.66"))


def test_premium_and_venue_orders() -> None:
    quote = BYBIT_INVERSE.premium({"markPrice": 60012.0, "indexPrice": 60000.0,
                                   "fundingRate": 0.0001, "fundingTimestamp": 1_704_096_000_000,
                                   "info": {}})
    assert (quote.mark_usd, quote.index_usd, quote.plan_rate, quote.predicted_rate,
            quote.next_funding_ms) == (D("60012.0"), D("60000.0"), D("0.0001"),
                                       D("0.0001"), 1_704_096_000_000)
    assert BYBIT_INVERSE.order_kind({"info": {"createType": "CreateByLiq"}}) == "liquidation"
    assert BYBIT_INVERSE.order_kind({"info": {"createType": "CreateByAdl_PassThrough"}}) == "adl"
    assert BYBIT_INVERSE.order_kind({"info": {"createType": "CreateByUser"},
                                     "clientOrderId": "autoclose-1"}) is None


class _Orders:
    """A ccxt.bybit stand-in: create answers ids only, fetch_order the order's state."""

    id = "bybit"

    def __init__(self, status: str, reject: str = "EC_NoError", filled: float = 0.0) -> None:
        self.order = {"id": "7", "clientOrderId": "hedge-t-open-0-0", "status": status,
                      "filled": filled, "amount": 1000.0, "timestamp": 1,
                      "info": {"rejectReason": reject}}
        self.created: list[dict[str, Any]] = []

    def market(self, symbol: str) -> dict[str, Any]:
        return {"id": "BTCUSD", "precision": {"price": 0.5}}

    async def create_order(self, *args: Any) -> dict[str, Any]:
        self.created.append(args[-1])
        return {"id": "7", "clientOrderId": args[-1]["clientOrderId"], "status": None,
                "info": {"orderId": "7"}}

    async def fetch_order(self, order_id: str, symbol: str) -> dict[str, Any]:
        assert order_id == "7"
        return dict(self.order)


def _executor(ex: Any) -> Executor:
    return Executor(ex, clock=None, symbol=SYMBOL, run_tag="t",  # type: ignore[arg-type]
                    max_order_contracts=1000, maker_wait_ms=0, reprice_interval_ms=1)


def test_a_post_only_accepted_then_cancelled_is_a_post_only_rejection() -> None:
    """Real Bybit accepts a PostOnly order that would take and cancels it at once."""
    ex = _Orders("canceled", reject="EC_PostOnlyWillTakeLiquidity")
    executor = _executor(ex)
    with pytest.raises(PostOnlyRejected, match="EC_PostOnlyWillTakeLiquidity"):
        run(executor._submit("hedge-t-open-0-0", "limit", "sell", 1000, D("60000"),
                             BYBIT_INVERSE.post_only_params()))
    assert ex.created[0]["postOnly"] is True


def test_an_id_only_answer_is_completed_by_fetch_order() -> None:
    ex = _Orders("open")
    order = run(_executor(ex)._submit("hedge-t-open-0-0", "limit", "sell", 1000, D("60000"),
                                      {"postOnly": True}))
    assert (order["status"], order["amount"]) == ("open", 1000.0)
    # a cancelled order that filled, or was cancelled for another reason, is not a rejection
    partly = _Orders("canceled", reject="EC_PostOnlyWillTakeLiquidity", filled=10.0)
    assert run(BYBIT_INVERSE.complete(partly, {"id": "7", "status": None}, SYMBOL))[
        "filled"] == 10.0


def test_refusals_are_recognised_by_bybit_codes() -> None:
    refused = ccxt.BadRequest('bybit {"retCode":10001,"retMsg":"EC_PostOnlyWillTakeLiquidity: '
                              'the PostOnly order would take liquidity"}')
    assert BYBIT_INVERSE.is_post_only_rejection(refused)
    assert not BINANCE_COINM.is_post_only_rejection(refused)
    assert BYBIT_INVERSE.is_duplicate_id(ccxt.InvalidOrder('{"retCode":110072}'))
    assert BYBIT_INVERSE.is_nothing_to_reduce(ccxt.InvalidOrder('{"retCode":110017}'))
    assert not BYBIT_INVERSE.is_duplicate_id(ccxt.InvalidOrder('{"code":-4116}'))


def test_unchanged_leverage_is_done_but_other_refusals_are_not() -> None:
    calls: list[tuple[str, Any]] = []

    class Ex:
        def __init__(self, error: Exception) -> None:
            self.error = error

        async def set_margin_mode(self, mode: str, symbol: str, params: dict[str, Any]) -> None:
            calls.append(("mode", (mode, params)))

        async def set_leverage(self, leverage: int, symbol: str) -> None:
            calls.append(("leverage", leverage))
            raise self.error

    run(BYBIT_INVERSE.set_margin(Ex(ccxt.BadRequest('{"retCode":110043}')), "isolated", 2,
                                 SYMBOL))
    assert calls == [("mode", ("isolated", {"leverage": 2})), ("leverage", 2)]
    with pytest.raises(ccxt.BadRequest, match="110013"):
        run(BYBIT_INVERSE.set_margin(Ex(ccxt.BadRequest('{"retCode":110013}')), "isolated", 200,
                                     SYMBOL))


def test_realised_pnl_adds_back_the_fees_closed_pnl_is_net_of() -> None:
    fills = {
        "Trade": [{"id": "1", "order": "10", "amount": 1000.0, "price": 60000.0,
                   "fee": {"cost": 9.16e-06}, "info": {}},
                  {"id": "2", "order": "11", "amount": 1000.0, "price": 59000.0,
                   "fee": {"cost": 3.0e-06}, "info": {}}],
        "BustTrade": [], "AdlTrade": [],
    }

    class Ex:
        async def fetch_my_trades(self, symbol: str, since: int, limit: int,
                                  params: dict[str, Any]) -> list[dict[str, Any]]:
            assert limit == 100
            return fills[params["execType"]]

        async def fetch_positions_history(self, symbols: list[str], since: int, limit: int,
                                          params: dict[str, Any]) -> list[dict[str, Any]]:
            return [{"info": {"orderId": "11", "closedPnl": "0.00028040",
                              "updatedTime": "5"}}]

    pnl, fees = run(BYBIT_INVERSE.realised_and_fees(Ex(), SYMBOL, 0))
    assert fees == D("0.00001216")
    assert pnl == D("0.00028340")  # closedPnl + the closing order's own fee


def test_a_lost_answer_found_cancelled_as_a_taker_is_a_post_only_rejection() -> None:
    """The create timed out; the look-up by orderLinkId finds it accepted then cancelled."""

    class Lost(_Orders):
        async def create_order(self, *args: Any) -> dict[str, Any]:
            raise ccxt.RequestTimeout("timed out")

        async def fetch_open_orders(self, symbol: str, since: None, limit: None,
                                    params: dict[str, Any]) -> list[dict[str, Any]]:
            assert params == {"orderLinkId": "hedge-t-open-0-0"}
            return [dict(self.order)]

    ex = Lost("canceled", reject="EC_PostOnlyWillTakeLiquidity")
    with pytest.raises(PostOnlyRejected):
        run(_executor(ex)._submit("hedge-t-open-0-0", "limit", "sell", 1000, D("60000"),
                                  {"postOnly": True}))


def test_each_venue_reads_its_own_tier_fields_and_none_is_an_error() -> None:
    # Binance: the exact bracket strings in info, not ccxt's floats.
    (tier,) = BINANCE_COINM.tiers([{
        "minNotional": 0.0, "maxNotional": 5.0, "maintenanceMarginRate": 0.004,
        "maxLeverage": 125, "info": {"qtyFloor": "0", "qtyCap": "5",
                                     "maintMarginRatio": "0.004", "cum": "0",
                                     "initialLeverage": "125"}}])
    assert (tier.floor_coin, tier.cap_coin, tier.mmr, tier.max_leverage) == (
        0, None, D("0.004"), 125)
    for venue in (BINANCE_COINM, BYBIT_INVERSE):
        with pytest.raises(PlanError, match="no leverage tiers"):
            venue.tiers([])
