"""The hedge plan: how many contracts to short, what that locks, what could go wrong.

Pure: everything comes in as arguments (the ccxt market dict from ``load_markets``, the
leverage tiers from ``fetch_leverage_tiers``, prices and the funding rate), nothing is fetched.
The inverse arithmetic is a small client-side copy of the venue's published formulas
(docs/mechanics.md §0, §2, §5): the strategy must not import ``sim``, and a live venue would not
share its engine with us anyway.

Conventions: N = |Q|·CS is the position's face value in USD; its value in coin at price P is
N/P; s = +1 long, −1 short; W is the margin backing the position (isolated: the isolated
wallet; cross: the futures wallet). Binance's isolated liquidation price (MM at LP, bracket
re-solved) solves W + s·N·(1/EP − 1/LP) = N/LP·MMR − cum.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any

from perpsim.numbers import readable
from perpsim.strategy.record import HedgeConfig

_CTX = decimal.Context(prec=40, rounding=decimal.ROUND_HALF_EVEN)
_OUT = decimal.Context(prec=28, rounding=decimal.ROUND_HALF_EVEN)
SATOSHI = Decimal("0.00000001")
HUNDRED = Decimal(100)
# The collateral may fall short of the full hedge by the opening fee: shorting this much less
# is accepted (with a note) rather than refused. Anything larger is a planning error.
FEE_SHORTFALL_TOLERANCE = Decimal("0.005")
DEFAULT_TAKER_RATE = Decimal("0.0005")


class PlanError(ValueError):
    """The configuration cannot be turned into a hedge on this market (reasons in the text)."""


def dec(value: object, what: str = "value") -> Decimal:
    """A finite Decimal from a ccxt number or string (floats go through ``str``)."""
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, bool) or value is None:
        raise PlanError(f"{what} is missing")
    elif isinstance(value, int | float | str):
        try:
            result = Decimal(str(value))
        except decimal.InvalidOperation:
            raise PlanError(f"{what} is not a number: {value!r}") from None
    else:
        raise PlanError(f"{what} is not a number: {value!r}")
    if not result.is_finite():
        raise PlanError(f"{what} is not finite: {value!r}")
    return result


# ---- leverage tiers ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Tier:
    """One leverage bracket by position value in coin: [floor, cap), MMR, cum, max leverage."""

    floor_coin: Decimal
    cap_coin: Decimal | None
    mmr: Decimal
    cum_coin: Decimal
    max_leverage: Decimal


def ordered_tiers(tiers: Iterable[Tier]) -> tuple[Tier, ...]:
    """A venue's tiers (each venue reads its own fields: strategy/venue.py ``tiers``) by
    floor, the last one open-ended as on the venue (its published cap is only a display
    value)."""
    found = sorted(tiers, key=lambda t: t.floor_coin)
    if not found:
        raise PlanError("the market has no leverage tiers")
    last = found[-1]
    found[-1] = Tier(last.floor_coin, None, last.mmr, last.cum_coin, last.max_leverage)
    return tuple(found)


def tier_for(tiers: Sequence[Tier], value_coin: Decimal) -> Tier:
    """The tier whose [floor, cap) holds a position value in coin."""
    chosen = tiers[0]
    for tier in tiers:
        if tier.floor_coin <= value_coin:
            chosen = tier
    return chosen


# ---- inverse arithmetic ------------------------------------------------------------------------
def coin_value(contracts: int, contract_size_usd: Decimal, price_usd: Decimal) -> Decimal:
    """|Q|·CS / P: what the position is worth in coin at a price."""
    return _CTX.divide(abs(contracts) * contract_size_usd, price_usd)


def liquidation_price(contracts: int, entry_usd: Decimal, contract_size_usd: Decimal,
                      margin_coin: Decimal, tiers: Sequence[Tier]) -> Decimal | None:
    """Binance-style liquidation price (MM at LP, bracket re-solved); None if it cannot be
    liquidated (a short whose margin covers its value); Decimal('Infinity') for a long that is
    liquidatable at any price."""
    if contracts == 0:
        return None
    side = 1 if contracts > 0 else -1
    n = abs(contracts) * contract_size_usd
    ctx = _CTX
    n_ep = ctx.divide(n, entry_usd)
    order = list(tiers) if side > 0 else list(reversed(tiers))
    for tier in order:
        lo, hi = tier.floor_coin, (None if tier is tiers[-1] else tier.cap_coin)
        if side > 0:
            # liquidated when W + N/EP − v ≤ v·MMR − cum (v = N/P rises as the price falls)
            root = ctx.divide(margin_coin + n_ep + tier.cum_coin, 1 + tier.mmr)
            v = max(lo, root)
            if hi is None or v < hi:
                return Decimal("Infinity") if v <= 0 else ctx.divide(n, v)
        else:
            # liquidated when W − N/EP + v ≤ v·MMR − cum, i.e. v ≤ root
            root = ctx.divide(n_ep - margin_coin - tier.cum_coin, 1 - tier.mmr)
            if hi is not None and root >= hi:
                return ctx.divide(n, hi)
            if root >= lo and root > 0:
                return ctx.divide(n, root)
    return None


def margin_for_liquidation_price(contracts: int, entry_usd: Decimal, contract_size_usd: Decimal,
                                 target_lp_usd: Decimal, tiers: Sequence[Tier]) -> Decimal:
    """The margin W that puts the liquidation price exactly at ``target_lp_usd``:
    W = N/LP·MMR − cum − s·N·(1/EP − 1/LP), with the tier of the value at LP."""
    side = 1 if contracts > 0 else -1
    n = abs(contracts) * contract_size_usd
    v = _CTX.divide(n, target_lp_usd)
    tier = tier_for(tiers, v)
    pnl = side * (_CTX.divide(n, entry_usd) - v)
    return v * tier.mmr - tier.cum_coin - pnl


def distance_pct(liq_usd: Decimal | None, mark_usd: Decimal) -> Decimal | None:
    """|LP − mark| / mark in percent (None when there is no liquidation price)."""
    if liq_usd is None:
        return None
    if not liq_usd.is_finite():
        return Decimal(0)
    return _CTX.divide(abs(liq_usd - mark_usd) * HUNDRED, mark_usd)


def harmonic_average(fills: Sequence[tuple[int, Decimal]]) -> Decimal | None:
    """Average entry of inverse fills (contracts, price): Σ|Q| / Σ(|Q|/P)."""
    qty = sum(abs(q) for q, _ in fills)
    if not qty:
        return None
    exact = qty / sum((Fraction(abs(q)) / Fraction(p) for q, p in fills), Fraction(0))
    # Rounded once, to 28 significant digits: 50 @ 10,000 + 50 @ 15,000 gives 12000 exactly.
    value = _OUT.divide(Decimal(exact.numerator), Decimal(exact.denominator))
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value


def fmt(value: Decimal | None, places: int = 2) -> str:
    """A human number with thousands separators (``—`` for None)."""
    if value is None:
        return "—"
    return f"{value.quantize(Decimal(1).scaleb(-places), rounding=decimal.ROUND_HALF_EVEN):,}"


# ---- the plan ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class HedgePlan:
    """What the runner will do and what it means, as numbers and in plain words."""

    symbol: str  # ccxt unified symbol
    market_id: str
    coin: str
    contract_size_usd: Decimal
    index_usd: Decimal
    mark_usd: Decimal
    spot_btc: Decimal  # all the coin held
    collateral_btc: Decimal  # deposited as futures margin
    hedge_ratio: Decimal
    leverage: int
    margin_mode: str
    contracts_wanted: int  # round(spot × price × ratio / CS)
    contracts: int  # what will be shorted (≤ wanted when the collateral only covers less)
    usd_locked: Decimal  # contracts × CS
    value_btc: Decimal  # N / index
    initial_margin_btc: Decimal
    fee_estimate_btc: Decimal  # opening as taker, the worst case
    margin_needed_btc: Decimal
    position_margin_btc: Decimal  # margin backing the position (liquidation estimate)
    tier: Tier
    liquidation_price_usd: Decimal | None
    liquidation_distance_pct: Decimal | None
    funding_rate: Decimal
    fundings_per_day: int
    funding_per_day_btc: Decimal  # + received by the short
    notes: tuple[str, ...] = ()
    errors: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """No planning error."""
        return not self.errors

    @property
    def funding_per_day_usd(self) -> Decimal:
        """Expected funding per day in USD at the index."""
        return self.funding_per_day_btc * self.index_usd

    @property
    def spot_left_btc(self) -> Decimal:
        """Coin that stays in the spot wallet (the top-up reserve)."""
        return self.spot_btc - self.collateral_btc

    def check(self) -> HedgePlan:
        """The plan itself, or PlanError with every reason."""
        if self.errors:
            raise PlanError("; ".join(self.errors))
        return self

    def explain(self) -> list[str]:
        """A few plain-English lines: what is locked, the liquidation risk, the funding."""
        c = self.coin
        lines = [
            f"You hold {fmt(self.spot_btc, 4)} {c} worth {fmt(self.spot_btc * self.index_usd)} "
            f"USD at the index {fmt(self.index_usd)}.",
            f"Short {self.contracts:,} {self.market_id} contracts of "
            f"{fmt(self.contract_size_usd, 0)} USD each = {fmt(self.usd_locked)} USD locked "
            f"({fmt(self.hedge_ratio * HUNDRED, 0)}% hedge), {self.margin_mode} margin at "
            f"{self.leverage}x.",
            f"{fmt(self.collateral_btc, 4)} {c} goes to the futures wallet as collateral; "
            f"{fmt(self.spot_left_btc, 4)} {c} stays in spot"
            + (" as the top-up reserve." if self.spot_left_btc > 0 else "."),
        ]
        if self.liquidation_price_usd is None:
            lines.append(
                f"Liquidation: none. A {self.leverage}x short backed by its own value in coin "
                "cannot be liquidated — as the price rises its coin margin shrinks exactly as "
                "fast as the loss grows, and as it falls the gain keeps pace.")
        else:
            lines.append(
                f"Estimated liquidation price {fmt(self.liquidation_price_usd)} USD, "
                f"{fmt(self.liquidation_price_usd / self.mark_usd, 2)}× the mark "
                f"{fmt(self.mark_usd)} (MMR {fmt(self.tier.mmr * HUNDRED, 2)}%).")
        direction = "receive" if self.funding_per_day_btc >= 0 else "pay"
        lines.append(
            f"At the current funding rate {fmt(self.funding_rate * HUNDRED, 4)}% per interval "
            f"({self.fundings_per_day} a day) the short would {direction} about "
            f"{fmt(abs(self.funding_per_day_btc), 6)} {c} "
            f"({fmt(abs(self.funding_per_day_usd))} USD) per day.")
        lines.append(f"Margin needed {fmt(self.margin_needed_btc, 6)} {c} "
                     f"(initial {fmt(self.initial_margin_btc, 6)} + fee "
                     f"{fmt(self.fee_estimate_btc, 6)}) of {fmt(self.collateral_btc, 6)} "
                     f"{c} collateral.")
        lines.extend(self.notes)
        lines.extend(f"ERROR: {e}" for e in self.errors)
        return lines

    def as_dict(self) -> dict[str, Any]:
        """The plan as JSON-friendly numbers (Decimals as strings) plus its explanation."""
        def s(value: Decimal | None) -> str | None:
            return None if value is None else readable(value)

        return {
            "symbol": self.symbol, "market_id": self.market_id, "coin": self.coin,
            "contract_size_usd": s(self.contract_size_usd), "index_usd": s(self.index_usd),
            "mark_usd": s(self.mark_usd), "spot_btc": s(self.spot_btc),
            "collateral_btc": s(self.collateral_btc), "spot_left_btc": s(self.spot_left_btc),
            "hedge_ratio": s(self.hedge_ratio), "leverage": self.leverage,
            "margin_mode": self.margin_mode, "contracts_wanted": self.contracts_wanted,
            "contracts": self.contracts, "usd_locked": s(self.usd_locked),
            "value_btc": s(self.value_btc), "initial_margin_btc": s(self.initial_margin_btc),
            "fee_estimate_btc": s(self.fee_estimate_btc),
            "margin_needed_btc": s(self.margin_needed_btc),
            "position_margin_btc": s(self.position_margin_btc),
            "maint_margin_rate": s(self.tier.mmr),
            "liquidation_price_usd": s(self.liquidation_price_usd),
            "liquidation_distance_pct": s(self.liquidation_distance_pct),
            "funding_rate": s(self.funding_rate), "fundings_per_day": self.fundings_per_day,
            "funding_per_day_btc": s(self.funding_per_day_btc),
            "funding_per_day_usd": s(self.funding_per_day_usd),
            "notes": list(self.notes), "errors": list(self.errors),
            "explain": self.explain(),
        }


def _limit(market: Mapping[str, Any], *keys: str) -> Decimal | None:
    node: Any = market.get("limits") or {}
    for key in keys:
        node = (node or {}).get(key)
    return None if node is None else dec(node, ".".join(keys))


def make_plan(config: HedgeConfig, market: Mapping[str, Any], tiers: Sequence[Tier], *,
              index_usd: Decimal, mark_usd: Decimal | None = None,
              funding_rate: Decimal = Decimal(0), fundings_per_day: int = 3) -> HedgePlan:
    """Plan the hedge of ``config.spot_btc`` on ``market`` at ``index_usd`` (see module doc).

    Errors are collected, not raised: call ``.check()`` to raise PlanError with all of them.
    """
    mark = index_usd if mark_usd is None else mark_usd
    cs = dec(market.get("contractSize") or 1, "contractSize")
    errors: list[str] = []
    notes: list[str] = []
    spot, ratio = config.spot_btc, config.hedge_ratio
    collateral = spot if config.collateral_btc is None else config.collateral_btc
    lev = config.leverage
    if spot <= 0:
        errors.append(f"spot holdings must be positive, got {spot}")
    if ratio <= 0:
        errors.append(f"the hedge ratio must be positive, got {ratio}")
    if collateral <= 0 or collateral > spot:
        errors.append(f"collateral must be more than 0 and at most the spot holdings {spot}, "
                      f"got {collateral}")
    if lev < 1:
        errors.append(f"leverage must be at least 1, got {lev}")
    lev = max(lev, 1)
    taker = dec(market.get("taker") or DEFAULT_TAKER_RATE, "taker fee")
    wanted = int((spot * index_usd * ratio / cs).to_integral_value(decimal.ROUND_HALF_EVEN))
    # The most the collateral can margin at this leverage, fee of a taker fill included.
    # The venue margins a sell at its own price: when the perp trades under the index the
    # orders go in nearer the mark, and need more coin per contract.
    margin_price = min(index_usd, mark)
    per_contract = cs / margin_price * (Decimal(1) / lev + taker)
    affordable = int(max(collateral, Decimal(0)) / per_contract) if margin_price > 0 else 0
    contracts = wanted
    if affordable < wanted:
        if affordable >= wanted * (1 - FEE_SHORTFALL_TOLERANCE):
            contracts = affordable
            notes.append(f"Shorting {affordable:,} rather than {wanted:,} contracts so the "
                         f"collateral also pays the opening fee.")
        else:
            need = wanted * per_contract
            least = _min_leverage(wanted, cs, margin_price, collateral, taker)
            fix = f"raise the collateral or the leverage (to at least {least}x)" if least else \
                "raise the collateral"
            errors.append(f"collateral {collateral} cannot margin {wanted:,} contracts at "
                          f"{lev}x: it needs {need:.8f} (initial margin plus fee); {fix}")
    amount_min = _limit(market, "amount", "min")
    amount_max = _limit(market, "amount", "max")
    if amount_min is not None and contracts < amount_min:
        errors.append(f"the hedge is {contracts} contracts, below the market minimum "
                      f"{amount_min} (contract size {cs} USD)")
    if amount_max is not None and contracts > amount_max:
        errors.append(f"the hedge is {contracts:,} contracts, above the market maximum "
                      f"{amount_max:,}")
    value = coin_value(contracts, cs, index_usd)
    tier = tier_for(tiers, value)
    if lev > tier.max_leverage:
        cap = "∞" if tier.cap_coin is None else f"{tier.cap_coin}"
        errors.append(f"leverage {lev}x exceeds the {tier.max_leverage}x cap of the bracket "
                      f"[{tier.floor_coin}, {cap}) {market.get('settle') or 'coin'} that a "
                      f"position of {value:.4f} falls in")
    im = (value / lev).quantize(SATOSHI, rounding=decimal.ROUND_UP)
    fee = (value * taker).quantize(SATOSHI, rounding=decimal.ROUND_UP)
    # Isolated: the venue moves the initial margin into the position, the rest of the
    # collateral waits in the futures wallet (first source of top-ups). Cross: all of it.
    margin = im if config.margin_mode == "isolated" else max(collateral - fee, Decimal(0))
    liq = liquidation_price(-contracts, index_usd, cs, margin, tiers) if contracts > 0 else None
    funding_day = value * funding_rate * fundings_per_day
    return HedgePlan(
        symbol=str(market.get("symbol")), market_id=str(market.get("id")),
        coin=str(market.get("settle") or market.get("base") or "BTC"), contract_size_usd=cs,
        index_usd=index_usd, mark_usd=mark, spot_btc=spot, collateral_btc=collateral,
        hedge_ratio=ratio, leverage=lev, margin_mode=config.margin_mode,
        contracts_wanted=wanted, contracts=contracts, usd_locked=contracts * cs,
        value_btc=value, initial_margin_btc=im, fee_estimate_btc=fee,
        margin_needed_btc=im + fee, position_margin_btc=margin, tier=tier,
        liquidation_price_usd=liq, liquidation_distance_pct=distance_pct(liq, mark),
        funding_rate=funding_rate, fundings_per_day=fundings_per_day,
        funding_per_day_btc=funding_day, notes=tuple(notes), errors=tuple(errors),
    )


def _min_leverage(contracts: int, cs: Decimal, price: Decimal, collateral: Decimal,
                  taker: Decimal) -> int:
    """The smallest whole leverage at which ``collateral`` margins ``contracts`` (≥ 1)."""
    value = coin_value(contracts, cs, price)
    spare = collateral - value * taker
    if spare <= 0:
        return 0
    return max(1, int((value / spare).to_integral_value(decimal.ROUND_CEILING)))
