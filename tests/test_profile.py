"""Exchange profiles: the bundled files carry mechanics.md's numbers; bad files fail clearly."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from perpsim.sim.errors import ProfileError, UnknownSymbol
from perpsim.sim.profile import PROFILE_DIR, Profile, bundled_profiles, load_profile

D = Decimal
BUNDLED = ("binance_coinm", "binance_coinm_2024", "bitmex_xbtusd", "bybit_inverse")


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def _raw(name: str) -> dict[str, Any]:
    return json.loads((PROFILE_DIR / f"{name}.json").read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------
# Bundled profiles load and carry the numbers of mechanics.md
# ---------------------------------------------------------------------------------------------


def test_bundled_profiles_are_the_three_venues() -> None:
    # Three venues, plus Binance's dated variant for replays before 2025-09-18.
    assert bundled_profiles() == BUNDLED


def test_binance_2024_differs_only_in_the_mark_basis_window() -> None:
    """Binance moved Price 2 of the mark from a 2.5-minute basis average (30 samples every 5 s)
    to a 30-second one (30 samples, once a second) on 2025-09-18 (venue-sources.md 3)."""
    now, then = load_profile("binance_coinm"), load_profile("binance_coinm_2024")
    assert (now.mark.basis_samples, now.mark.basis_sample_interval_ms) == (30, 1000)
    assert (then.mark.basis_samples, then.mark.basis_sample_interval_ms) == (30, 5000)
    same = {"name": "x", "description": "", "mark": now.mark}
    assert now.model_copy(update=same) == then.model_copy(update=same)


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_profile_loads_by_name_and_by_path(name: str) -> None:
    by_name = load_profile(name)
    assert isinstance(by_name, Profile)
    assert by_name.name == name
    assert by_name.description  # guessed parameters are explained there
    assert load_profile(PROFILE_DIR / f"{name}.json") == by_name
    assert load_profile(str(PROFILE_DIR / f"{name}.json")) == by_name


@pytest.mark.parametrize("name", BUNDLED)
def test_every_margin_asset_has_an_insurance_fund(name: str) -> None:
    profile = load_profile(name)
    for inst in profile.instruments:
        assert profile.insurance_fund_start[inst.margin_asset] > 0


@pytest.mark.parametrize(
    ("name", "symbol", "contract_usd", "tick", "lot", "maker", "taker", "hours", "style"),
    [
        (
            "binance_coinm",
            "BTCUSD_PERP",
            "100",
            "0.1",
            1,
            "0.0002",
            "0.0005",
            (0, 8, 16),
            "mm_at_liquidation_price",
        ),
        (
            "binance_coinm",
            "ETHUSD_PERP",
            "10",
            "0.01",
            1,
            "0.0002",
            "0.0005",
            (0, 8, 16),
            "mm_at_liquidation_price",
        ),
        ("bybit_inverse", "BTCUSD", "1", "0.5", 1, "0.0002", "0.00055", (0, 8, 16), "mm_at_entry"),
        (
            "bitmex_xbtusd",
            "XBTUSD",
            "1",
            "0.5",
            1,
            "-0.00025",
            "0.00075",
            (4, 12, 20),
            "mm_at_entry",
        ),
    ],
)
def test_instrument_table_of_mechanics_section_1(
    name: str,
    symbol: str,
    contract_usd: str,
    tick: str,
    lot: int,
    maker: str,
    taker: str,
    hours: tuple[int, ...],
    style: str,
) -> None:
    profile = load_profile(name)
    inst = profile.instrument(symbol)
    assert inst.contract_size_usd == D(contract_usd)
    assert inst.tick_size == D(tick)
    assert inst.lot_size == lot
    assert profile.fees.maker_rate == D(maker)
    assert profile.fees.taker_rate == D(taker)
    assert profile.funding.times_utc_hours == hours
    assert profile.liquidation.style == style


BINANCE_BTC_TABLE = [
    # floor BTC, max leverage, MMR, cum by cum_n = floor_n·(MMR_n − MMR_n−1) + cum_n−1
    ("0", "125", "0.004", "0"),
    ("5", "100", "0.005", "0.005"),
    ("10", "50", "0.01", "0.055"),
    ("20", "20", "0.025", "0.355"),
    ("50", "10", "0.05", "1.605"),
    ("100", "5", "0.10", "6.605"),
    ("200", "4", "0.125", "11.605"),
    ("400", "3", "0.15", "21.605"),
    ("1000", "2", "0.25", "121.605"),
]


@pytest.mark.parametrize("symbol", ["BTCUSD_PERP", "BTCUSD_240329"])
def test_binance_btcusd_brackets_are_the_section_2_table(symbol: str) -> None:
    brackets = load_profile("binance_coinm").instrument(symbol).brackets
    got = [(b.floor_coin, b.max_leverage, b.mmr, b.cum_coin) for b in brackets]
    assert got == [tuple(D(x) for x in row) for row in BINANCE_BTC_TABLE]
    assert [b.bracket for b in brackets] == list(range(1, 10))
    caps = [b.cap_coin for b in brackets]
    assert caps == [b.floor_coin for b in brackets[1:]] + [None]


def test_binance_cum_at_floor_50_follows_the_deduction_rule() -> None:
    btc = load_profile("binance_coinm").instrument("BTCUSD_PERP")
    at_50 = next(b for b in btc.brackets if b.floor_coin == 50)
    assert at_50.cum_coin == D("1.605") == D(50) * (D("0.05") - D("0.025")) + D("0.355")
    # The published check uses the older floors (previous cum 0.56): same formula, 1.81 BTC.
    assert D(50) * (D("0.05") - D("0.025")) + D("0.56") == D("1.81")


def test_binance_instruments_and_venue_parameters() -> None:
    p = load_profile("binance_coinm")
    assert p.symbols == ("BTCUSD_PERP", "ETHUSD_PERP", "BTCUSD_240329")
    btc = p.instrument("BTCUSD_PERP")
    assert btc.is_perpetual
    assert btc.delivery_date_ms is None
    assert btc.margin_asset == "BTC"
    assert btc.impact_margin_usd == 200
    assert btc.impact_notional_usd == D(25_000)
    assert btc.book.half_spread_ticks == 1
    eth = p.instrument("ETHUSD_PERP")
    assert (eth.base_asset, eth.margin_asset) == ("ETH", "ETH")
    assert eth.brackets[0].floor_coin == 0
    assert eth.brackets[0].max_leverage == 100
    quarter = p.instrument("BTCUSD_240329")
    assert quarter.contract_type == "CURRENT_QUARTER"
    assert not quarter.is_perpetual
    assert quarter.delivery_date_ms == 1_711_699_200_000
    assert quarter.delivery_date_ms == _ms(datetime(2024, 3, 29, 8, tzinfo=UTC))
    assert set(p.insurance_fund_start) == {"BTC", "ETH"}

    f = p.funding
    assert (f.interest_rate, f.clamp) == (D("0.0001"), D("0.0005"))
    assert (f.premium_sample_interval_ms, f.averaging, f.settles) == (
        5000,
        "weighted",
        "window_just_ended",
    )
    assert f.interval_ms == 8 * 3_600_000
    assert (p.mark.method, p.mark.basis_samples, p.mark.basis_sample_interval_ms) == (
        "median3",
        30,
        1000,
    )
    liq = p.liquidation
    assert not liq.include_exit_fee_in_mm
    assert not liq.include_funding_in_mm
    assert liq.partial
    assert liq.adl_ranking == "binance"
    assert p.bracket_cum == "deduction"
    assert p.rounding.coin_step == D("0.00000001")


def test_bybit_risk_tiers_and_parameters() -> None:
    p = load_profile("bybit_inverse")
    btc = p.instrument("BTCUSD")
    first, second = btc.brackets[0], btc.brackets[1]
    assert (first.floor_coin, first.cap_coin, first.mmr, first.max_leverage) == (
        0,
        150,
        D("0.005"),
        100,
    )
    assert (second.floor_coin, second.cap_coin, second.mmr) == (150, 300, D("0.01"))
    assert second.max_leverage == D("66.66")  # IM 1.5 %, as Bybit shows it
    assert second.cum_coin == D("0.75")  # mmDeduction
    for b in btc.brackets:  # IM = MMR + 0.5 % on every tier
        assert abs(1 / b.max_leverage - (b.mmr + D("0.005"))) < D("0.0001")
    assert btc.funding_cap == D("0.005")
    assert p.funding.premium_sample_interval_ms == 60_000
    assert (p.funding.averaging, p.funding.settles) == ("weighted", "window_just_ended")
    assert (p.mark.method, p.mark.basis_samples, p.mark.basis_sample_interval_ms) == (
        "median3",
        300,
        1000,
    )
    assert p.liquidation.bankruptcy_price_rounding == "tick_conservative"


def test_bitmex_risk_limit_steps_and_parameters() -> None:
    p = load_profile("bitmex_xbtusd")
    xbt = p.instrument("XBTUSD")
    assert p.bracket_cum == "none"
    assert len(xbt.brackets) == 11  # base + 10 steps
    for k, b in enumerate(xbt.brackets):
        assert b.floor_coin == (0 if k == 0 else 200 + 150 * (k - 1))
        assert b.mmr == D("0.005") * (k + 1)
        assert abs(1 / b.max_leverage - (D("0.01") + D("0.005") * k)) < D("0.0001")
        assert b.cum_coin == 0
    assert p.fees.max_maker_rebate >= -p.fees.maker_rate
    assert xbt.funding_cap == D("0.00375")
    assert p.funding.times_utc_hours == (4, 12, 20)
    assert (p.funding.averaging, p.funding.settles) == ("plain", "previous_window")
    assert p.funding.premium_sample_interval_ms == 60_000
    assert p.mark.method == "fair_price"
    assert p.liquidation.include_exit_fee_in_mm
    assert p.liquidation.include_funding_in_mm
    assert p.liquidation.adl_ranking == "bitmex"
    assert p.rounding.contract_value_floor


def test_profiles_are_immutable() -> None:
    p = load_profile("binance_coinm")
    with pytest.raises(ValidationError):
        p.fees.maker_rate = D(0)


# ---------------------------------------------------------------------------------------------
# Funding schedule
# ---------------------------------------------------------------------------------------------

DAY = datetime(2024, 1, 1, tzinfo=UTC)
MS = timedelta(milliseconds=1)


@pytest.mark.parametrize(
    ("name", "now", "expected"),
    [
        ("binance_coinm", DAY, DAY + timedelta(hours=8)),  # at a funding time: the next one
        ("binance_coinm", DAY + timedelta(hours=8) - MS, DAY + timedelta(hours=8)),
        ("binance_coinm", DAY + timedelta(hours=8), DAY + timedelta(hours=16)),
        ("binance_coinm", DAY + timedelta(hours=8) + MS, DAY + timedelta(hours=16)),
        ("binance_coinm", DAY + timedelta(hours=16), DAY + timedelta(hours=24)),
        ("binance_coinm", DAY + timedelta(hours=24) - MS, DAY + timedelta(hours=24)),
        ("bybit_inverse", DAY + timedelta(hours=3), DAY + timedelta(hours=8)),
        ("bitmex_xbtusd", DAY, DAY + timedelta(hours=4)),
        ("bitmex_xbtusd", DAY + timedelta(hours=4) - MS, DAY + timedelta(hours=4)),
        ("bitmex_xbtusd", DAY + timedelta(hours=4), DAY + timedelta(hours=12)),
        ("bitmex_xbtusd", DAY + timedelta(hours=4) + MS, DAY + timedelta(hours=12)),
        ("bitmex_xbtusd", DAY + timedelta(hours=20), DAY + timedelta(hours=28)),
        ("bitmex_xbtusd", DAY + timedelta(hours=20) + MS, DAY + timedelta(hours=28)),
        ("bitmex_xbtusd", DAY - MS, DAY + timedelta(hours=4)),
    ],
)
def test_next_funding_time_is_strictly_after_now(
    name: str, now: datetime, expected: datetime
) -> None:
    funding = load_profile(name).funding
    assert funding.next_funding_time_ms(_ms(now)) == _ms(expected)


# ---------------------------------------------------------------------------------------------
# Symbols
# ---------------------------------------------------------------------------------------------


def test_unknown_symbol_names_the_known_ones() -> None:
    p = load_profile("binance_coinm")
    with pytest.raises(UnknownSymbol) as info:
        p.instrument("BTCUSDT")
    message = str(info.value)
    assert "BTCUSDT" in message
    for symbol in ("BTCUSD_PERP", "ETHUSD_PERP", "BTCUSD_240329"):
        assert symbol in message


def test_symbol_lookup_is_exact() -> None:
    p = load_profile("bitmex_xbtusd")
    assert p.instrument("XBTUSD").symbol == "XBTUSD"
    with pytest.raises(UnknownSymbol):
        p.instrument("xbtusd")


# ---------------------------------------------------------------------------------------------
# Malformed files: one ProfileError naming the file, the field and the problem
# ---------------------------------------------------------------------------------------------

Mutation = Callable[[dict[str, Any]], None]


def _key(part: str) -> str | int:
    return int(part) if part.isdigit() else part


def _set(dotted: str, value: object) -> Mutation:
    """Set the value at a dotted path ("instruments.0.tick_size") of the profile."""

    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = (_key(p) for p in dotted.split("."))
        node: Any = doc
        for part in parents:
            node = node[part]
        node[last] = value

    return mutate


def _drop(dotted: str) -> Mutation:
    """Remove the key at a dotted path."""

    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = (_key(p) for p in dotted.split("."))
        node: Any = doc
        for part in parents:
            node = node[part]
        del node[last]

    return mutate


def _swap_brackets(doc: dict[str, Any]) -> None:
    brackets = doc["instruments"][0]["brackets"]
    brackets[1], brackets[2] = brackets[2], brackets[1]


def _duplicate_symbol(doc: dict[str, Any]) -> None:
    doc["instruments"].append(copy.deepcopy(doc["instruments"][0]))


BAD_PROFILES: list[Any] = [
    pytest.param(
        _swap_brackets,
        ["instruments[0].brackets[2].floor_coin", "BTCUSD_PERP", "not sorted"],
        id="unsorted-brackets",
    ),
    pytest.param(
        _set("instruments.0.brackets.1.cap_coin", "8"),
        ["instruments[0].brackets[1].cap_coin", "gap", "10"],
        id="gap-between-brackets",
    ),
    pytest.param(
        _set("instruments.0.brackets.1.cap_coin", "12"),
        ["instruments[0].brackets[1].cap_coin", "overlaps"],
        id="overlapping-brackets",
    ),
    pytest.param(
        _set("instruments.0.brackets.0.floor_coin", "1"),
        ["instruments[0].brackets[0].floor_coin", "floor_coin 0"],
        id="first-bracket-not-at-zero",
    ),
    pytest.param(
        _set("instruments.0.brackets.8.cap_coin", "5000"),
        ["instruments[0].brackets[8].cap_coin", "last bracket"],
        id="last-bracket-bounded",
    ),
    pytest.param(
        _set("instruments.0.brackets.0.mmr", "0.009"),
        ["instruments[0].brackets[0].mmr", "initial margin rate"],
        id="mmr-above-initial-margin",
    ),
    pytest.param(
        _set("fees.maker_rate", "-0.0001"),
        ["fees.maker_rate", "-0.0001", "max_maker_rebate"],
        id="rebate-beyond-max-maker-rebate",
    ),
    pytest.param(
        _set("colour", "blue"),
        ["field colour", "unknown field"],
        id="unknown-top-level-field",
    ),
    pytest.param(
        _set("fees.maker_fee", "0.0002"),
        ["fees.maker_fee", "unknown field", "maker_rate"],
        id="unknown-nested-field",
    ),
    pytest.param(
        _drop("funding"),
        ["field funding", "missing"],
        id="missing-section",
    ),
    pytest.param(
        _drop("instruments.1.tick_size"),
        ["instruments[1].tick_size", "ETHUSD_PERP", "missing"],
        id="missing-nested-field",
    ),
    pytest.param(
        _set("instruments.0.brackets.4.cum_coin", "1.81"),
        ["instruments[0].brackets[4].cum_coin", "1.81", "inconsistent", "1.605"],
        id="inconsistent-cum",
    ),
    pytest.param(
        _set("fees.taker_rate", "lots"),
        ["fees.taker_rate", "decimal", "'lots'"],
        id="string-where-decimal-expected",
    ),
    pytest.param(
        _set("instruments.0.book.levels", "20"),
        ["instruments[0].book.levels", "integer", "'20'"],
        id="string-where-integer-expected",
    ),
    pytest.param(
        _set("instruments.0.lot_size", 1.5),
        ["instruments[0].lot_size", "integer"],
        id="fraction-where-integer-expected",
    ),
    pytest.param(
        _set("liquidation.partial", "yes"),
        ["liquidation.partial", "boolean"],
        id="string-where-boolean-expected",
    ),
    pytest.param(
        _set("fees.maker_rate", True),
        ["fees.maker_rate", "decimal"],
        id="boolean-where-decimal-expected",
    ),
    pytest.param(
        _set("fees.taker_rate", "NaN"),
        ["fees.taker_rate", "finite", "'NaN'"],
        id="nan-string",
    ),
    pytest.param(
        _set("fees.taker_rate", "Infinity"),
        ["fees.taker_rate", "finite", "'Infinity'"],
        id="infinity-string",
    ),
    pytest.param(
        _set("instruments.0.brackets.3.mmr", "-inf"),
        ["instruments[0].brackets[3].mmr", "finite"],
        id="negative-infinity-string",
    ),
    pytest.param(
        _set("insurance_fund_start.BTC", "sNaN"),
        ["insurance_fund_start.BTC", "finite"],
        id="signalling-nan-string",
    ),
    pytest.param(
        _set("instruments.0.delivery_date_ms", 1_711_699_200_000),
        ["instruments[0].delivery_date_ms", "BTCUSD_PERP", "PERPETUAL has no delivery date"],
        id="perpetual-with-delivery-date",
    ),
    pytest.param(
        _set("instruments.2.delivery_date_ms", None),
        ["instruments[2].delivery_date_ms", "BTCUSD_240329", "needs a delivery date"],
        id="quarterly-without-delivery-date",
    ),
    pytest.param(
        _set("funding.times_utc_hours", [0, 8, 17]),
        ["funding.times_utc_hours", "unevenly spaced", "8 h"],
        id="unevenly-spaced-funding-times",
    ),
    pytest.param(
        _set("funding.times_utc_hours", [0, 5, 10, 15, 20]),
        ["funding.times_utc_hours", "equal intervals"],
        id="funding-times-not-dividing-the-day",
    ),
    pytest.param(
        _set("funding.times_utc_hours", [8, 0, 16]),
        ["funding.times_utc_hours", "increasing"],
        id="unsorted-funding-times",
    ),
    pytest.param(
        _set("funding.premium_sample_interval_ms", 7000),
        ["funding.premium_sample_interval_ms", "divide"],
        id="sample-interval-not-dividing-funding-interval",
    ),
    pytest.param(
        _set("instruments.0.tick_size", "0.05"),
        ["instruments[0].tick_size", "price_precision"],
        id="tick-finer-than-price-precision",
    ),
    pytest.param(
        _set("instruments.0.min_qty", 2_000_000),
        ["instruments[0].min_qty", "max_qty"],
        id="min-qty-above-max-qty",
    ),
    pytest.param(
        _duplicate_symbol,
        ["instruments[3].symbol", "duplicate", "BTCUSD_PERP"],
        id="duplicate-symbol",
    ),
    pytest.param(
        _drop("insurance_fund_start.ETH"),
        ["insurance_fund_start", "ETH", "ETHUSD_PERP"],
        id="no-insurance-fund-for-margin-asset",
    ),
    pytest.param(
        _set("insurance_fund_start.BTC", "-1"),
        ["insurance_fund_start.BTC", "negative"],
        id="negative-insurance-fund",
    ),
    pytest.param(
        _set("liquidation.style", "mm_somewhere"),
        ["liquidation.style", "mm_at_entry"],
        id="unknown-choice",
    ),
]


@pytest.mark.parametrize(("mutate", "fragments"), BAD_PROFILES)
def test_malformed_profile_fails_with_one_clear_error(
    tmp_path: Path, mutate: Mutation, fragments: list[str]
) -> None:
    doc = _raw("binance_coinm")
    mutate(doc)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert "more)" not in message  # the mutation caused exactly one problem
    assert info.value.__suppress_context__  # one error, not a chained pydantic traceback


def test_bitmex_profile_refuses_a_nonzero_cum(tmp_path: Path) -> None:
    doc = _raw("bitmex_xbtusd")
    doc["instruments"][0]["brackets"][1]["cum_coin"] = "0.5"
    path = tmp_path / "bitmex.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(ProfileError, match=r"brackets\[1\]\.cum_coin.*'none'.*gives 0"):
        load_profile(path)


BAD_TEXTS: list[Any] = [
    pytest.param('{"name": "x",', ["not valid JSON", "line 1"], id="truncated-json"),
    pytest.param("name = 'x'\n", ["not valid JSON", "line 1 column 1"], id="toml-not-json"),
    pytest.param("", ["not valid JSON"], id="empty-file"),
    pytest.param("[1, 2]", ["JSON object", "array"], id="array-not-object"),
    pytest.param('"binance"', ["JSON object", "string"], id="string-not-object"),
    pytest.param("42", ["JSON object", "number"], id="number-not-object"),
    pytest.param("null", ["JSON object", "null"], id="null-not-object"),
    pytest.param('{"name": "a", "name": "b"}', ["duplicate key 'name'"], id="duplicate-key"),
]


@pytest.mark.parametrize(("text", "fragments"), BAD_TEXTS)
def test_unparseable_profile_fails_with_one_clear_error(
    tmp_path: Path, text: str, fragments: list[str]
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_bare_non_finite_json_number_is_refused(tmp_path: Path, token: str) -> None:
    text = (PROFILE_DIR / "binance_coinm.json").read_text(encoding="utf-8")
    assert '"taker_rate": "0.0005"' in text
    path = tmp_path / "bad.json"
    path.write_text(text.replace('"taker_rate": "0.0005"', f'"taker_rate": {token}'), "utf-8")
    with pytest.raises(ProfileError, match=token.lstrip("-")) as info:
        load_profile(path)
    assert str(path) in str(info.value)


def test_json_numbers_for_decimals_are_read_exactly(tmp_path: Path) -> None:
    text = (PROFILE_DIR / "binance_coinm.json").read_text(encoding="utf-8")
    path = tmp_path / "numbers.json"
    path.write_text(text.replace('"taker_rate": "0.0005"', '"taker_rate": 0.0005'), "utf-8")
    assert load_profile(path).fees.taker_rate == D("0.0005")  # not 0.000500000000000000010...


def test_unknown_profile_name_lists_the_bundled_ones() -> None:
    with pytest.raises(ProfileError) as info:
        load_profile("binance_usdm")
    message = str(info.value)
    assert "unknown profile 'binance_usdm'" in message
    for name in BUNDLED:
        assert name in message


def test_missing_profile_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"
    with pytest.raises(ProfileError, match="no such profile file") as info:
        load_profile(path)
    assert str(path) in str(info.value)


def test_edited_copy_of_a_bundled_profile_loads(tmp_path: Path) -> None:
    doc = _raw("bybit_inverse")
    doc["fees"]["taker_rate"] = "0.00075"  # Bybit's older taker fee
    path = tmp_path / "bybit_old_fees.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    assert load_profile(path).fees.taker_rate == D("0.00075")
