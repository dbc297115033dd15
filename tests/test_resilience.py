"""strategy/resilience.py against a scripted fake client: which errors are retried and how, an
order is never sent twice, non-idempotent calls are verified, Retry-After and maintenance are
waited out once for everyone, a failed user stream renews its listen key. (The same client on
the real wire, under every fault kind: tests/test_fault_survival.py.)"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import ccxt
import pytest

from perpsim.strategy.resilience import ResilientExchange, RetryPolicy, classify, resilient
from perpsim.strategy.venue import BINANCE_COINM, BYBIT_INVERSE

SYMBOL = "BTC/USD:BTC"


class Fake:
    """A ccxt-like async client; ``fail[name]`` lists what the next calls raise, each as
    (exception, ran): ``ran`` says whether the call took effect before the error."""

    def __init__(self) -> None:
        self.fail: dict[str, list[tuple[Exception, bool]]] = {}
        self.calls: list[str] = []
        self.orders: dict[str, dict[str, Any]] = {}
        self.spot = Decimal(5)
        self.last_response_headers: dict[str, str] = {}
        self.options: dict[str, Any] = {"inverse": {"listenKey": "k", "lastAuthenticatedTime": 9}}
        self.apiKey = ""

    def _step(self, name: str, effect: Any) -> Any:
        self.calls.append(name)
        script = self.fail.get(name) or []
        if script:
            error, ran = script.pop(0)
            if ran:
                effect()
            raise error
        return effect()

    async def create_order(self, symbol: str, type: str, side: str, amount: Any, price: Any,
                           params: dict[str, Any]) -> dict[str, Any]:
        cid = params["clientOrderId"]

        def place() -> dict[str, Any]:
            self.orders[cid] = {"id": str(len(self.orders) + 1), "clientOrderId": cid,
                                "status": "closed"}
            return self.orders[cid]

        return dict(self._step("create_order", place))

    async def fetch_order(self, id: Any, symbol: str, params: dict[str, Any]) -> dict[str, Any]:
        def find() -> dict[str, Any]:
            if params["origClientOrderId"] not in self.orders:
                raise ccxt.OrderNotFound("binancecoinm -2013 Order does not exist.")
            return self.orders[params["origClientOrderId"]]

        return dict(self._step("fetch_order", find))

    async def fetch_time(self) -> int:
        await asyncio.sleep(0)  # a network round trip: concurrent calls fail together
        return int(self._step("fetch_time", lambda: 1))

    async def fetch_balance(self, params: dict[str, Any]) -> dict[str, Any]:
        return dict(self._step("fetch_balance", lambda: {"total": {"BTC": str(self.spot)}}))

    async def transfer(self, code: str, amount: float, source: str, target: str,
                       params: dict[str, Any]) -> dict[str, Any]:
        def move() -> dict[str, Any]:
            self.spot -= Decimal(str(amount))
            return {"id": "t1"}

        return dict(self._step("transfer", move))

    async def watch_orders(self, symbol: str) -> list[Any]:
        return list(self._step("watch_orders", lambda: []))


def client(fake: Fake, **policy: Any) -> tuple[ResilientExchange, list[float]]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    return ResilientExchange(fake, RetryPolicy(**policy), sleep=sleep), slept


def test_errors_are_classified_by_what_they_say_about_execution() -> None:
    assert classify(ccxt.OnMaintenance("System is under maintenance.")) == "outage"
    assert classify(ccxt.DDoSProtection("429")) == "rate"
    assert classify(ccxt.RateLimitExceeded("-1003")) == "rate"
    assert classify(ccxt.RequestTimeout("timed out")) == "unknown"
    assert classify(ccxt.ExchangeNotAvailable("502 Bad Gateway")) == "unknown"
    assert classify(ccxt.OperationFailed('{"code":-1001}')) == "answered"
    assert classify(ccxt.ExchangeError('{"code":-1007}')) == "answered"
    assert classify(ccxt.InvalidOrder('{"code":-2010}')) == "reject"
    assert classify(ccxt.InvalidOrder('{"code":-5022}')) is None  # post-only: the caller's
    assert classify(ccxt.InsufficientFunds('{"code":-2019}')) is None


def bybit_error(cls: type[Exception], code: int) -> Exception:
    """What ccxt.bybit raises for an answer with ``code`` (its "bybit {body}" text)."""
    return cls(f'bybit {{"retCode":{code},"retMsg":"m","result":{{}},"time":1}}')


def test_bybit_codes_are_classified_as_binances_are() -> None:
    assert classify(bybit_error(ccxt.RateLimitExceeded, 10006), BYBIT_INVERSE) == "rate"
    assert classify(bybit_error(ccxt.ExchangeError, 10429), BYBIT_INVERSE) == "rate"
    assert classify(ccxt.RateLimitExceeded("bybit POST /v5/order/create 403 Forbidden "
                                           "access too frequent"), BYBIT_INVERSE) == "rate"
    assert classify(bybit_error(ccxt.ExchangeError, 10016), BYBIT_INVERSE) == "answered"
    assert classify(bybit_error(ccxt.ExchangeError, 10000), BYBIT_INVERSE) == "answered"
    assert classify(bybit_error(ccxt.InvalidNonce, 10002), BYBIT_INVERSE) == "unknown"
    # Read exactly: a six-digit code holding a transient one is a real error.
    assert classify(bybit_error(ccxt.ExchangeError, 110016), BYBIT_INVERSE) is None
    assert classify(bybit_error(ccxt.InsufficientFunds, 110007), BYBIT_INVERSE) is None


def test_bybit_says_how_long_to_wait_by_its_reset_stamp() -> None:
    spent = {"x-bapi-limit": "40", "X-Bapi-Limit-Status": "0",
             "X-Bapi-Limit-Reset-Timestamp": "1800000001500"}
    assert BYBIT_INVERSE.retry_after_s(spent, 1_800_000_000_000) == 1.5
    assert BYBIT_INVERSE.retry_after_s(spent, 1_800_000_002_000) == 0.0
    assert BYBIT_INVERSE.retry_after_s({**spent, "X-Bapi-Limit-Status": "3"},
                                       1_800_000_000_000) is None  # budget left
    assert BYBIT_INVERSE.retry_after_s({}, 0) is None
    assert BYBIT_INVERSE.retry_after_s({"Retry-After": "7"}, 0) == 7.0
    assert BINANCE_COINM.retry_after_s({"retry-after": "3"}, 0) == 3.0


def test_reads_are_retried_with_seeded_backoff() -> None:
    fake = Fake()
    fake.fail["fetch_time"] = [(ccxt.ExchangeNotAvailable("502"), False)] * 3
    ex, slept = client(fake, seed=4)
    assert asyncio.run(ex.fetch_time()) == 1
    assert fake.calls == ["fetch_time"] * 4
    fake2 = Fake()
    fake2.fail["fetch_time"] = [(ccxt.ExchangeNotAvailable("502"), False)] * 3
    again, slept2 = client(fake2, seed=4)
    asyncio.run(again.fetch_time())
    assert slept == slept2  # same seed, same delays
    assert all(0 < s <= 2.0 for s in slept)


def test_a_real_error_is_not_retried_and_the_budget_is_bounded() -> None:
    fake = Fake()
    fake.fail["fetch_time"] = [(ccxt.BadSymbol("-1121"), False)]
    ex, _ = client(fake)
    with pytest.raises(ccxt.BadSymbol):
        asyncio.run(ex.fetch_time())
    fake.fail["fetch_time"] = [(ccxt.RequestTimeout("t"), False)] * 10
    ex, _ = client(fake, attempts=3)
    with pytest.raises(ccxt.RequestTimeout):
        asyncio.run(ex.fetch_time())


def test_an_order_that_ran_before_the_error_is_found_not_sent_again() -> None:
    fake = Fake()
    fake.fail["create_order"] = [(ccxt.RequestTimeout("timed out"), True)]
    ex, _ = client(fake)
    order = asyncio.run(ex.create_order(SYMBOL, "market", "sell", 10, None,
                                        {"clientOrderId": "c-1"}))
    assert order["clientOrderId"] == "c-1"
    assert fake.calls.count("create_order") == 1
    assert ex.stats.found_after_error == 1


def test_an_order_that_did_not_run_is_sent_again_with_the_same_id() -> None:
    fake = Fake()
    fake.fail["create_order"] = [(ccxt.OperationFailed('{"code":-1001}'), False),
                                 (ccxt.InvalidOrder('{"code":-2010}'), False)]
    ex, _ = client(fake)
    asyncio.run(ex.create_order(SYMBOL, "market", "sell", 10, None, {}))
    assert fake.calls.count("create_order") == 3
    (cid,) = fake.orders  # one order, under the id the wrapper made up
    assert cid.startswith("rs-0-")


def test_after_a_timeout_the_lookup_waits_for_a_request_still_running() -> None:
    fake = Fake()
    fake.fail["create_order"] = [(ccxt.RequestTimeout("timed out"), False)]
    # The venue executes the timed-out request late: after the first look-up.
    fake.fail["fetch_order"] = [(ccxt.OrderNotFound("-2013"), False)]
    original = fake.fetch_order

    async def late(id: Any, symbol: str, params: dict[str, Any]) -> dict[str, Any]:
        if fake.calls.count("fetch_order") == 1:
            fake.orders[params["origClientOrderId"]] = {"id": "7", "status": "closed",
                                                        "clientOrderId": "c-2"}
        return await original(id, symbol, params)

    fake.fetch_order = late  # type: ignore[method-assign]
    ex, slept = client(fake)
    order = asyncio.run(ex.create_order(SYMBOL, "limit", "buy", 1, 50_000,
                                        {"clientOrderId": "c-2"}))
    assert order["id"] == "7"
    assert fake.calls.count("create_order") == 1
    assert slept == [0.2]


def test_a_transfer_that_happened_is_not_repeated() -> None:
    fake = Fake()
    fake.fail["transfer"] = [(ccxt.ExchangeNotAvailable("502"), True)]
    ex, _ = client(fake)
    result = asyncio.run(ex.transfer("BTC", 1.5, "spot", "inverse"))
    assert result["verified"] is True
    assert fake.spot == Decimal("3.5")  # moved once
    fake.fail["transfer"] = [(ccxt.ExchangeNotAvailable("502"), False)]
    asyncio.run(ex.transfer("BTC", 0.5, "spot", "inverse"))
    assert fake.spot == Decimal(3)  # did not happen: sent again, once


def test_retry_after_holds_every_call_and_maintenance_lets_time_pass_once() -> None:
    fake = Fake()
    fake.last_response_headers = {"Retry-After": "3"}
    fake.fail["fetch_time"] = [(ccxt.DDoSProtection("429"), False)]
    ex, slept = client(fake)
    asyncio.run(ex.fetch_time())
    assert slept[0] > 2.9  # Retry-After: 3 s (less the microseconds already gone)
    fake.fail["fetch_time"] = [(ccxt.OnMaintenance("maintenance"), False)] * 3
    passed: list[int] = []

    async def pass_time(attempt: int) -> None:
        passed.append(attempt)
        await asyncio.sleep(0.01)

    ex = ResilientExchange(fake, RetryPolicy(), pass_time=pass_time)

    async def three() -> list[int]:
        return list(await asyncio.gather(ex.fetch_time(), ex.fetch_time(), ex.fetch_time()))

    assert asyncio.run(three()) == [1, 1, 1]
    assert passed == [0]  # three calls failed in the same outage: time passed once


def test_a_failed_user_stream_renews_the_listen_key_and_the_wrapper_is_transparent() -> None:
    fake = Fake()
    fake.fail["watch_orders"] = [(ccxt.NetworkError("closed 1001"), False)]
    ex = resilient(fake)
    assert resilient(ex) is ex
    with pytest.raises(ccxt.NetworkError):
        asyncio.run(ex.watch_orders(SYMBOL))
    assert fake.options["inverse"]["lastAuthenticatedTime"] == 0
    ex.apiKey = "key"  # attributes go to the client
    assert fake.apiKey == "key"
    assert ex.inner is fake
    assert ex.options is fake.options


@pytest.mark.parametrize(("ccxt_id", "status", "body", "answer_headers"), [
    ("binancecoinm", 429, '{"code":-1003,"msg":"Too many requests"}', {"Retry-After": "7"}),
    ("bybit", 200, '{"retCode":10006,"retMsg":"Too many visits!","result":{}}',
     {"X-Bapi-Limit-Status": "0", "X-Bapi-Limit-Reset-Timestamp": "1800000007000"}),
])
def test_a_rate_limit_is_waited_by_its_own_answers_headers(
        ccxt_id: str, status: int, body: str, answer_headers: dict[str, str]) -> None:
    # ccxt keeps only the LATEST answer's headers, shared by concurrent calls: by the time a
    # rate-limit error is handled, another call's answer (no reset in it) may have replaced them.
    import ccxt.async_support as ccxt_async

    async def scenario() -> list[float]:
        ex = getattr(ccxt_async, ccxt_id)()
        slept: list[float] = []

        async def sleep(seconds: float) -> None:
            slept.append(seconds)

        rex = ResilientExchange(ex, RetryPolicy(base_s=0.001, cap_s=0.001), sleep=sleep,
                                wall_ms=lambda: 1_800_000_000_000)
        try:
            ex.handle_errors(status, "", "https://x/api", "GET", answer_headers, body,
                             ex.parse_json(body), {}, None)
            ex.handle_http_status_code(status, "", "https://x/api", "GET", body)
        except Exception as error:  # the error ccxt raises for this answer
            ex.last_response_headers = {"Content-Type": "application/json"}  # another answer's
            await rex._wait_rate(1, error)
        finally:
            await ex.close()
        return slept

    slept = asyncio.run(scenario())
    assert len(slept) == 1
    assert slept[0] > 6.9  # 7 s: from the error's own answer
