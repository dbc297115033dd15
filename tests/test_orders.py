"""Order and fill records: properties, harmonic average price, fill bookkeeping."""

from __future__ import annotations

from decimal import Decimal

import pytest

from perpsim.sim.orders import Fill, Order, opposite


def order(side: str = "BUY", qty: int = 3000, **kw: object) -> Order:
    fields: dict[str, object] = {
        "order_id": 1,
        "client_order_id": "c1",
        "account_id": "a",
        "symbol": "BTCUSD",
        "side": side,
        "type": "LIMIT",
        "qty_contracts": qty,
        "price_usd": Decimal("5000"),
        "time_in_force": "GTC",
        "reduce_only": False,
        "created_ms": 0,
        "updated_ms": 0,
        "seq": 1,
    }
    fields.update(kw)
    return Order(**fields)  # type: ignore[arg-type]


def test_defaults_and_sign() -> None:
    buy, sell = order("BUY"), order("SELL")
    assert (buy.sign, sell.sign) == (1, -1)
    assert buy.status == "NEW"
    assert buy.filled_contracts == 0
    assert buy.filled_value_coin == 0
    assert buy.remaining_contracts == 3000
    assert buy.is_open
    assert buy.avg_price_usd(Decimal(1)) is None


def test_avg_price_is_harmonic_bybit_example() -> None:
    # mechanics.md example 5: 1,000 @ 5,000 then 2,000 @ 6,000 (CS 1) average 5,625.
    o = order()
    o.apply_fill(1000, Decimal("5000"), Decimal(1), now_ms=7)
    assert o.status == "PARTIALLY_FILLED"
    assert o.updated_ms == 7
    o.apply_fill(2000, Decimal("6000"), Decimal(1))
    assert o.status == "FILLED"
    assert not o.is_open
    assert o.remaining_contracts == 0
    avg = o.avg_price_usd(Decimal(1))
    assert avg is not None
    assert avg.quantize(Decimal("0.00000001")) == Decimal("5625.00000000")
    # the arithmetic mean would be 5,666.67: the wrong answer for inverse contracts
    assert o.filled_value_coin.quantize(Decimal("1e-20")) == (
        Decimal("0.2") + Decimal(2000) / Decimal(6000)
    ).quantize(Decimal("1e-20"))


def test_avg_price_bybit_example_6() -> None:
    o = order(qty=100)
    o.apply_fill(50, Decimal("10000"), Decimal(1))
    o.apply_fill(50, Decimal("15000"), Decimal(1))
    avg = o.avg_price_usd(Decimal(1))
    assert avg is not None
    assert avg.quantize(Decimal("0.0001")) == Decimal("12000.0000")


@pytest.mark.parametrize("qty", [0, -1, 3001])
def test_apply_fill_refuses_impossible_quantities(qty: int) -> None:
    o = order()
    with pytest.raises(ValueError, match="cannot fill"):
        o.apply_fill(qty, Decimal("5000"), Decimal(1))
    assert (o.filled_contracts, o.status) == (0, "NEW")


def test_apply_fill_refuses_closed_order() -> None:
    o = order(status="CANCELED")
    with pytest.raises(ValueError, match="CANCELED"):
        o.apply_fill(1, Decimal("5000"), Decimal(1))


def test_fill_sides_and_synthetic_flag() -> None:
    f = Fill(1, "a", None, None, Decimal("100.5"), 3, "BUY")
    assert f.maker_side == "SELL"
    assert f.is_synthetic
    g = Fill(1, "a", 2, "b", Decimal("100.5"), 3, "SELL")
    assert g.maker_side == "BUY"
    assert not g.is_synthetic
    assert opposite("BUY") == "SELL"
    with pytest.raises(AttributeError):
        f.qty_contracts = 4  # type: ignore[misc]
