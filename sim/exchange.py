"""The engine facade: one venue (profile), one market path (scenario), its accounts and clock.

What happens where:
* orders and fills — ``sim/trading.py``; funding — ``sim/funding.py``;
* **liquidation — ``sim/liquidation.py``** (the waterfall); risk numbers — ``sim/risk.py``;
* the event-skipping search for the next interesting instant — ``sim/watch.py``.

Same-instant order is pinned in ``on_instant``: prices → triggers → funding → liquidation,
whichever simpy process reaches the instant first; every stage is idempotent, so a second
process arriving at the same instant changes nothing.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import simpy

from perpsim.sim import cascade, funding, trading, watch
from perpsim.sim.accounts import MARGIN_MODES, POSITION_SIDES, Account, MarginMode, Position
from perpsim.sim.algo import AlgoOrder
from perpsim.sim.book import OrderBook
from perpsim.sim.clock import SimClock
from perpsim.sim.containment import Containment
from perpsim.sim.crowd import Crowd, build_crowd
from perpsim.sim.depth import with_books
from perpsim.sim.errors import (
    InsufficientFunds,
    InvalidInput,
    InvalidPositionSide,
    InvalidPrice,
    InvalidState,
    MarginModeAlreadySet,
    MarginModeChangeRejected,
    PositionModeAlreadySet,
    PositionModeOpenOrders,
    PositionModeOpenPositions,
    ScenarioError,
    UnknownAccount,
)
from perpsim.sim.funding_schedule import FundingSchedule
from perpsim.sim.journal import Event, Journal
from perpsim.sim.ledger import (
    Ledger,
    external_account,
    insurance_account,
    isolated_account,
    spot_account,
    wallet_account,
)
from perpsim.sim.liquidation_price import HedgePrices
from perpsim.sim.margin import check_leverage
from perpsim.sim.market import MarketPricer, PriceTape, lowest_perp_price_usd
from perpsim.sim.money import MAX_PRICE_USD, filtered_price, positive_quantity
from perpsim.sim.orders import Order
from perpsim.sim.profile import Instrument, Profile
from perpsim.sim.risk import mark_value_coin
from perpsim.sim.scenario import Scenario


@dataclass(frozen=True, slots=True)
class Wake:
    """A client's request to stop an advance when the mark crosses a level."""

    symbol: str
    mark_above: Decimal | None = None
    mark_below: Decimal | None = None

    def reached(self, mark: Decimal) -> Decimal | None:
        """The level ``mark`` has reached, if any."""
        if self.mark_above is not None and mark >= self.mark_above:
            return self.mark_above
        if self.mark_below is not None and mark <= self.mark_below:
            return self.mark_below
        return None


@dataclass(slots=True)
class Trade:
    """A public trade print (users' fills, including liquidation-engine fills)."""

    trade_id: int
    symbol: str
    price_usd: Decimal
    qty_contracts: int
    buyer_is_maker: bool
    time_ms: int


@dataclass(slots=True)
class SymbolState:
    """Per-symbol market state that is not a pure function of the tape."""

    last_trade_price: Decimal | None = None
    last_trade_tape: tuple[int, int] = (-1, -1)  # (tape row, tape version) when it printed
    last_funding_rate: Decimal = Decimal(0)
    next_funding_rate: Decimal | None = None  # venues that pay the previous window's rate
    last_funding_ms: int | None = None
    funding_history: list[tuple[int, Decimal]] = field(default_factory=list)
    trades: list[Trade] = field(default_factory=list)


TOKEN_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


# Byte b < 248 maps to TOKEN_CHARS[b % 62] (248 = 4 × 62, so every character is equally
# likely); bytes 248..255 are dropped (rejection sampling, no modulo bias).
_TOKEN_BYTES_KEPT = 4 * len(TOKEN_CHARS)
_TOKEN_TABLE = bytes.maketrans(bytes(range(_TOKEN_BYTES_KEPT)), (TOKEN_CHARS * 4).encode())
_TOKEN_DROP = bytes(range(_TOKEN_BYTES_KEPT, 256))


def random_token(n: int) -> str:
    """``n`` characters from a cryptographic source: API keys and secrets must not follow
    from the seed (two servers with seed 0 would otherwise hand out the same secret).

    One ``secrets.token_bytes`` call per token, mapped through a table, instead of one
    ``secrets.choice`` (a system call) per character: a crowd of 100,000 accounts spent half its
    set-up time here."""
    out = b""
    while len(out) < n:
        out += secrets.token_bytes(n - len(out) + n // 16 + 4).translate(_TOKEN_TABLE, _TOKEN_DROP)
    return out[:n].decode()


class Exchange:
    """A simulated inverse-perpetual venue, deterministic for a (profile, scenario, seed)."""

    def __init__(self, profile: Profile, scenario: Scenario, *, seed: int = 0,
                 start_ms: int | None = None,
                 token_source: Callable[[int], str] = random_token) -> None:
        if scenario.books:  # the scenario's synthetic book changes (finite depth: sim/depth.py)
            profile = with_books(profile, scenario.books, f"scenario {scenario.name!r}")
        self.profile = profile
        self.scenario = scenario
        self.seed = seed
        self.clock = SimClock(scenario.start_ms if start_ms is None else start_ms)
        # The clock's environment (set once with it): ``now_ms`` reads its time directly, as
        # ``SimClock.now_ms`` does — the engine asks for the time dozens of times per event.
        self._env = self.clock.env
        self.start_ms = self.clock.now_ms
        self.ledger = Ledger.from_profile(profile)
        self.journal = Journal()
        self.token_source = token_source  # API credentials only: ids stay deterministic
        self.containment = Containment()
        self.accounts: dict[str, Account] = {}
        self._by_api_key: dict[str, str] = {}
        self.orders: dict[int, Order] = {}
        self.algo_orders: dict[int, AlgoOrder] = {}
        self._ids = {"order": 0, "trade": 0, "account": 0, "seq": 0}
        self.tapes = _tapes(scenario, self.clock.now_ms)
        self.instruments = {i.symbol: i for i in profile.instruments}
        self.pricers: dict[str, MarketPricer] = {}
        self.books: dict[str, OrderBook] = {}
        self.states: dict[str, SymbolState] = {}
        # Each symbol's funding times: its interval, then the scenario's scheduled changes.
        self.funding_schedules = {
            inst.symbol: FundingSchedule.of(profile, inst, scenario.funding_interval_changes)
            for inst in profile.instruments}
        names = set(self.instruments) | {i.pair for i in profile.instruments}
        unknown = {c.symbol for c in scenario.funding_interval_changes} - names
        if unknown:
            raise InvalidInput(f"scenario {scenario.name!r} changes the funding interval of "
                               f"{', '.join(sorted(unknown))}, which {profile.name} does not "
                               "list (name a symbol, or a pair such as BTCUSD)")
        for inst in profile.instruments:
            self.states[inst.symbol] = SymbolState()
            self.books[inst.symbol] = OrderBook(inst)
            tape = self.tapes.get(inst.pair)
            if tape is not None:
                _check_tape_prices(scenario, tape, inst)
                self.pricers[inst.symbol] = MarketPricer(profile, inst, tape,
                                                         self.funding_schedules[inst.symbol])
        self._book_rows: dict[str, tuple[int, int]] = {}
        # Per symbol: the last mark's inputs (key), the mark, and whether the rate mattered at
        # that key's instant (``rate_matters_at`` depends on the time alone).
        self._marks: dict[str, tuple[tuple[object, ...], Decimal, bool]] = {}
        self.lp_cache: dict[tuple[object, ...], tuple[Decimal | None, Decimal | None]] = {}
        self.hedge_lp_cache: dict[tuple[object, ...], HedgePrices] = {}
        self.scaled_instruments: dict[tuple[str, Decimal], Instrument] = {}
        # Risk and wire views at one engine stamp (risk.settled_view).
        self.risk_memo: tuple[tuple[int, int, int], dict[tuple[object, ...], object]] = (
            (-1, -1, -1), {})
        self.watcher = watch.Watcher(self)
        self.depth_watch = cascade.DepthWatch(self)  # finite books only (sim/cascade.py)
        self.wakes: list[Wake] = []
        for coin, amount in sorted(profile.insurance_fund_start.items()):
            if amount > 0:
                self.ledger.post(external_account(coin), insurance_account(coin), coin, amount,
                                 "insurance_fund_start", "profile", self.now_ms)
        self.journal.append(self.now_ms, "exchange.reset", profile=profile.name,
                            scenario=scenario.name, seed=seed, start_ms=self.now_ms)
        funding.start(self)
        self.watcher.start()
        if cascade.finite_books(self):
            self.depth_watch.start()
        self.crowd: Crowd | None = None
        if scenario.crowd is not None:  # seeded traders, through the order path (sim/crowd.py)
            self.crowd = build_crowd(self, scenario.crowd)

    # ---- time --------------------------------------------------------------------------------
    @property
    def now_ms(self) -> int:
        """Current simulated time (epoch ms): ``clock.now_ms``, one property call fewer."""
        return int(self._env.now)

    @property
    def env(self) -> simpy.Environment:
        """The simpy environment that owns time."""
        return self.clock.env

    def advance(self, ms: object) -> list[Event]:
        """Run forward ``ms`` milliseconds; the journal events this produced."""
        if isinstance(ms, bool) or not isinstance(ms, int):
            raise InvalidInput(f"advance needs an integer number of milliseconds, got {ms!r}")
        return self.advance_until(self.now_ms + ms)

    def advance_until(self, t_ms: object, *, wakes: Sequence[Wake] = (),
                      stop_on: Callable[[Event], bool] | None = None) -> list[Event]:
        """Run forward to ``t_ms`` (everything due at or before it happens).

        A client can ask to be woken earlier: when the mark crosses one of ``wakes`` (journal
        event ``wake``) or when an event matching ``stop_on`` is appended, the advance ends at
        that instant, after everything due there has run; ``now`` tells where it stopped.
        """
        self.clock.check_target(t_ms)
        assert isinstance(t_ms, int)
        for wake in wakes:
            self.instrument(wake.symbol)
        first = len(self.journal)

        def stop_if(event: Event) -> None:
            if event.type == "wake" or (stop_on is not None and stop_on(event)):
                self.clock.stop_now()

        self.containment.check()
        self.wakes = list(wakes)
        self.journal.subscribe(stop_if)
        self.watcher.target_ms = t_ms
        try:
            with self.containment.guard("advance", lambda: self.now_ms):
                self.watcher.replan()
                self.clock.advance_until(t_ms)
        finally:
            self.journal.unsubscribe(stop_if)
            self.wakes = []
            self.watcher.target_ms = self.now_ms
        return list(self.journal.since(first))

    def _check_wakes(self) -> None:
        for wake in self.wakes:
            mark = self.mark_price(wake.symbol)
            level = wake.reached(mark)
            if level is not None:
                self.wakes = []
                self.journal.append(self.now_ms, "wake", symbol=wake.symbol, mark=mark,
                                    level=level)
                return

    def on_instant(self, t_ms: int) -> None:
        """Everything due at this instant, in the pinned order (see module docstring)."""
        for symbol in self.pricers:
            self.refresh_book(symbol)
        trading.run_triggers(self)
        funding.settle_due(self, t_ms)
        cascade.check_liquidations(self)  # liquidation.check_all; again while a cascade runs
        self._check_wakes()
        self._read_ahead_window_rates(t_ms)

    def _read_ahead_window_rates(self, t_ms: int) -> None:
        """After a settlement, the window that began here is priced now (the pricer's memo,
        a pure function of the tape): the watcher's scan to the next funding time reads the
        same tape rows within this instant, so they are read from memory once, not twice
        (a year at 1 s spent a fifth of its time fetching rows for these two). Nothing
        visible changes: the settlement at the window's end finds the memo, computed with
        the arguments it will ask with. Scenario tapes whose rate comes from the premiums
        (not a data scenario's recorded rates)."""
        if self.profile.funding.settles != "window_just_ended":
            return
        for symbol, state in self.states.items():
            pricer = self.pricers.get(symbol)
            if state.last_funding_ms != t_ms or pricer is None or pricer.tape.manual:
                continue
            path = self.scenario.paths.get(pricer.tape.pair)
            if path is None or len(path.funding_times_ms):
                continue  # recorded rates settle: the premium window is not computed
            end = self.funding_schedules[symbol].next_time(t_ms)
            if end > self.watcher.target_ms or end > int(pricer.tape.times_ms[-1]):
                continue  # beyond this advance or the tape: nothing to share
            pricer.window_rate(self.funding_schedules[symbol].previous_time(end), end)

    def next_id(self, kind: str) -> int:
        """Next id of a kind (orders, trades, accounts, arrival sequence): deterministic."""
        self._ids[kind] += 1
        return self._ids[kind]

    # ---- market data -------------------------------------------------------------------------
    def instrument(self, symbol: object) -> Instrument:
        """The instrument, or UnknownSymbol."""
        if type(symbol) is str:  # a known symbol: one dict lookup (called per risk read)
            inst = self.instruments.get(symbol)
            if inst is not None:
                return inst
        return self.profile.instrument(symbol)

    def pricer(self, symbol: object) -> MarketPricer:
        """The symbol's pricer; InvalidState if the scenario has no prices for its pair."""
        if type(symbol) is str:  # a known symbol with prices: one dict lookup
            known = self.pricers.get(symbol)
            if known is not None:
                return known
        inst = self.instrument(symbol)
        pricer = self.pricers.get(inst.symbol)
        if pricer is None:
            pairs = ", ".join(sorted(self.tapes)) or "none"
            raise InvalidState(
                f"{inst.symbol} does not trade in scenario {self.scenario.name!r}: it has no "
                f"prices for {inst.pair} (it has: {pairs})"
            )
        return pricer

    def refresh_book(self, symbol: str) -> OrderBook:
        """The symbol's book with its synthetic liquidity centred on the tape's price now."""
        pricer = self.pricer(symbol)
        book = self.books[symbol]
        row = (pricer.tape.row_at(self.now_ms), pricer.tape.version)
        if self._book_rows.get(symbol) != row or book.reference_price is None:
            book.set_reference_price(pricer.reference_at(self.now_ms))
            self._book_rows[symbol] = row
        book.set_now(self.now_ms)
        return book

    def index_price(self, symbol: str) -> Decimal:
        """Index (spot reference) price now."""
        return self.pricer(symbol).tape.index_at(self.now_ms)

    def last_price(self, symbol: str) -> Decimal:
        """Last trade: a user's fill since the tape's current row began, else the tape's price."""
        return self._last_price(symbol, self.pricer(symbol), self.now_ms)

    def _last_price(self, symbol: str, pricer: MarketPricer, now: int) -> Decimal:
        """``last_price`` with the symbol's pricer and the time now already in hand."""
        state = self.states[symbol]
        if self.books[symbol].finite is not None:
            # Finite depth (sim/depth.py): a trade this instant, else the touch of an eaten
            # side (where the next trade would print), else the book's centre again.
            if state.trades and state.trades[-1].time_ms == now:
                return state.trades[-1].price_usd
            touch = self.refresh_book(symbol).depleted_touch()
            return pricer.reference_at(now) if touch is None else touch
        # The tape's (row, version) now: ``tape_position``.
        if state.last_trade_price is not None and state.last_trade_tape == (
                pricer.tape.row_at(now), pricer.tape.version):
            return state.last_trade_price
        return pricer.reference_at(now)

    def tape_position(self, symbol: str) -> tuple[int, int]:
        """(row, version) of the symbol's tape now: changes whenever the scenario price does."""
        tape = self.pricer(symbol).tape
        return tape.row_at(self.now_ms), tape.version

    def mark_funding_rate(self, symbol: str) -> Decimal:
        """The funding rate the mark's P1 / fair-price term uses now: the rate that will be
        paid next where it is already known (previous-window venues), else the last paid."""
        if self.profile.funding.settles == "previous_window" and self.instrument(
                symbol).is_perpetual:
            return funding.upcoming_rate(self, symbol)
        return self.states[symbol].last_funding_rate

    def mark_price(self, symbol: str) -> Decimal:
        """Mark price now, by the profile's method (exact; memoised on all its inputs)."""
        pricer = self.pricer(symbol)
        now = self.now_ms
        rate, last = self.mark_funding_rate(symbol), self._last_price(symbol, pricer, now)
        depth = self.books[symbol].finite
        cached = self._marks.get(symbol)
        # At a funding instant P1 is the index whatever the rate (no time to funding): the
        # mark read before a settlement serves after it. Whether the rate matters depends on
        # the instant alone: the cached answer serves at the cached key's instant.
        matters = (cached[2] if cached is not None and cached[0][1] == now
                   else pricer.rate_matters_at(now))
        key = (symbol, now, pricer.tape.version, rate if matters else None, last,
               None if depth is None else depth.version)
        if cached is not None and cached[0] == key:
            return cached[1]
        shift = None
        if depth is not None:  # the mid of a finite book moves P2's basis average
            step = self.profile.mark.basis_sample_interval_ms
            shift = depth.mid_shift_average(now // step * step, step,
                                            self.profile.mark.basis_samples)
        mark = pricer.mark_at(now, rate, last, basis_shift_usd=shift)
        self._marks[symbol] = (key, mark, matters)
        return mark

    def predicted_funding_rate(self, symbol: str) -> Decimal:
        """The rate the next funding time will settle, as far as known now."""
        return funding.predicted_rate(self, symbol)

    def next_funding_time_ms(self, symbol: str) -> int | None:
        """Next funding time of a perpetual (None for delivery contracts)."""
        if not self.instrument(symbol).is_perpetual:
            return None
        return self.funding_schedules[self.instrument(symbol).symbol].next_time(self.now_ms)

    def set_prices(self, symbol: object, index: object, perp: object | None = None) -> list[Event]:
        """Manual scenarios: move a pair's prices now and run what that triggers."""
        # Validate everything before the tape moves: a rejected move changes nothing. Both
        # prices must pass the price filter, or the book, mark and funding would divide by ~0.
        inst = self.instrument(symbol)
        tape = self.pricer(inst.symbol).tape
        if not tape.manual:
            raise InvalidState(
                f"scenario {self.scenario.name!r} drives the prices; reset with scenario "
                "'manual' to set them by hand"
            )
        index_usd = filtered_price(index, inst.tick_size, "index")
        perp_usd = index_usd if perp is None else filtered_price(perp, inst.tick_size, "perp")
        lowest = lowest_perp_price_usd(inst)
        if perp_usd < lowest:
            raise InvalidPrice(f"{'index' if perp is None else 'perp'} {perp_usd} is below the "
                               f"minimum price {lowest} of the {inst.symbol} tape (the synthetic "
                               f"book's {inst.book.levels} bid levels must stay above 0)")
        first = len(self.journal)
        with self.containment.guard("set_prices", lambda: self.now_ms):
            tape.set(self.now_ms, index_usd, perp_usd)
            self.journal.append(self.now_ms, "prices.set", symbol=inst.symbol, pair=inst.pair,
                                index=index_usd, perp=perp_usd)
            self.on_instant(self.now_ms)
            self.watcher.replan()
        return list(self.journal.since(first))

    # ---- accounts ----------------------------------------------------------------------------
    def create_account(self, balances: Mapping[str, object] | None = None, *, label: str = "",
                       api_key: str | None = None, api_secret: str | None = None,
                       spot_balances: Mapping[str, object] | None = None) -> Account:
        """Open an account with futures ``balances`` and ``spot_balances`` (coin → amount)."""
        amounts = self._amounts(balances, "balances")
        spot_amounts = self._amounts(spot_balances, "spot_balances")
        for what, text in (("api_key", api_key), ("api_secret", api_secret), ("label", label)):
            if text is not None and (not isinstance(text, str) or len(text) > 128):
                raise InvalidInput(f"{what} must be a string of at most 128 characters")
        key = api_key or self._token(64)
        if key in self._by_api_key:
            raise InvalidInput("that api_key is already in use")
        account = Account(
            account_id=str(self.next_id("account")), api_key=key,
            api_secret=api_secret or self._token(64), label=label or "", created_ms=self.now_ms,
        )
        self.accounts[account.account_id] = account
        self._by_api_key[key] = account.account_id
        self.journal.append(self.now_ms, "account.created", account_id=account.account_id,
                            label=account.label)
        for coin, value in amounts.items():
            self.deposit(account.account_id, coin, value)
        for coin, value in spot_amounts.items():
            self.ledger.post(external_account(coin), spot_account(account.account_id, coin),
                             coin, value, "deposit", f"deposit:{account.account_id}",
                             self.now_ms)
            self.journal.append(self.now_ms, "balance.deposit", account_id=account.account_id,
                                coin=coin, amount=value, wallet="spot")
        return account

    def _amounts(self, balances: Mapping[str, object] | None, what: str) -> dict[str, Decimal]:
        if balances is not None and not isinstance(balances, Mapping):
            raise InvalidInput(f"{what} must be an object of coin → amount, got {balances!r}")
        amounts: dict[str, Decimal] = {}
        for coin, amount in (balances or {}).items():
            amounts[coin] = self._coin_amount(coin, amount, f"{what} of {coin}")
        return amounts

    def _coin_amount(self, coin: object, amount: object, what: str) -> Decimal:
        """A positive amount of a known coin on the coin step, or InvalidInput."""
        if coin not in self.ledger.coins:
            raise InvalidInput(f"unknown coin {coin!r}; this venue settles in "
                               f"{', '.join(sorted(self.ledger.coins))}")
        value = positive_quantity(amount, what)
        if self.ledger.quantize(value, "down") != value:
            raise InvalidInput(f"{what} {value} is finer than the coin step "
                               f"{self.profile.rounding.coin_step}")
        return value

    def spot_balance(self, account_id: str, coin: str) -> Decimal:
        """The account's spot wallet in ``coin``."""
        return self.ledger.balance(spot_account(account_id, coin))

    def transfer(self, account_id: str, coin: object, amount: object, *,
                 to_futures: bool) -> None:
        """Move coin between the spot wallet and the futures wallet (Binance's universal
        transfer MAIN ↔ CMFUTURE); futures → spot only up to the available balance."""
        self.account(account_id)
        value = self._coin_amount(coin, amount, "amount")
        assert isinstance(coin, str)
        spot, futures = spot_account(account_id, coin), wallet_account(account_id, coin)
        if to_futures:
            if value > self.ledger.balance(spot):
                raise InsufficientFunds(f"spot wallet holds {self.ledger.balance(spot)} "
                                        f"{coin}, cannot transfer {value}")
            self.ledger.post(spot, futures, coin, value, "transfer", "spot_to_futures",
                             self.now_ms)
        else:
            from perpsim.sim.risk import cross_available

            available = min(cross_available(self, account_id, coin),
                            self.ledger.balance(futures))
            if value > available:
                raise InsufficientFunds(f"futures available balance is {available} {coin}, "
                                        f"cannot transfer {value}")
            self.ledger.post(futures, spot, coin, value, "transfer", "futures_to_spot",
                             self.now_ms)
        self.journal.append(self.now_ms, "balance.transfer", account_id=account_id, coin=coin,
                            amount=value, to="futures" if to_futures else "spot",
                            wallet=self.wallet_balance(account_id, coin),
                            spot=self.spot_balance(account_id, coin))
        self.watcher.replan()

    def _token(self, n: int) -> str:
        return self.token_source(n)

    def account(self, account_id: object) -> Account:
        """The account, or UnknownAccount."""
        account = self.accounts.get(account_id) if isinstance(account_id, str) else None
        if account is None:
            raise UnknownAccount(f"no account {account_id!r}")
        return account

    def account_by_api_key(self, api_key: str) -> Account | None:
        """The account holding ``api_key`` (None if none)."""
        account_id = self._by_api_key.get(api_key)
        return None if account_id is None else self.accounts[account_id]

    def deposit(self, account_id: str, coin: str, amount: Decimal) -> None:
        """Credit coin from outside into the account's wallet."""
        self.ledger.deposit(account_id, coin, amount, f"deposit:{account_id}", self.now_ms)
        self.journal.append(self.now_ms, "balance.deposit", account_id=account_id, coin=coin,
                            amount=amount, wallet=self.wallet_balance(account_id, coin))
        self.watcher.replan()

    def wallet_balance(self, account_id: str, coin: str) -> Decimal:
        """The account's wallet (cross) balance in ``coin``."""
        return self.ledger.balance(wallet_account(account_id, coin))

    def isolated_wallet(self, account_id: str, symbol: str) -> Decimal:
        """The isolated margin held for the account's position on ``symbol`` (a hedge leg:
        pass its ``Position.margin_key``, e.g. ``BTCUSD_PERP.LONG``)."""
        return self.ledger.balance(isolated_account(account_id, symbol))

    # ---- per-symbol settings -------------------------------------------------------------------
    def position(self, account_id: str, symbol: object, side: object = "BOTH") -> Position:
        """The account's position record on ``symbol`` (flat if never traded); ``side`` LONG
        or SHORT names a hedge-mode leg."""
        inst = self.instrument(symbol)
        if side not in POSITION_SIDES:
            raise InvalidPositionSide(f"positionSide must be BOTH, LONG or SHORT, got {side!r}")
        account = self.account(account_id)
        return account.position(inst.symbol, inst.margin_asset,
                                "LONG" if side == "LONG" else "SHORT" if side == "SHORT"
                                else "BOTH")

    def _symbol_positions(self, account_id: str, symbol: object) -> list[Position]:
        """Every record on the symbol (the one-way record first): settings apply to all."""
        first = self.position(account_id, symbol)
        return [first] + [p for p in self.account(account_id).positions_on(first.symbol)
                          if p is not first]

    def set_position_mode(self, account_id: str, dual_side: object) -> Account:
        """Switch one-way ↔ hedge mode (Binance POST /dapi/v1/positionSide/dual): refused
        while the account holds any position (-4068) or open order (-4067); -4059 if already."""
        account = self.account(account_id)
        if not isinstance(dual_side, bool):
            raise InvalidInput(f"dualSidePosition must be true or false, got {dual_side!r}")
        if account.dual_side_position == dual_side:
            raise PositionModeAlreadySet(
                f"the account is already in {'hedge' if dual_side else 'one-way'} mode")
        if account.open_positions():
            raise PositionModeOpenPositions(
                "cannot change the position mode while positions are open: "
                + ", ".join(f"{p.symbol} {p.position_side}" for p in account.open_positions()))
        if any(book.open_orders(account_id) for book in self.books.values()) or any(
                o.is_open and o.account_id == account_id for o in self.algo_orders.values()):
            raise PositionModeOpenOrders(
                "cannot change the position mode while orders are open")
        account.dual_side_position = dual_side
        self.journal.append(self.now_ms, "position_mode.changed", account_id=account_id,
                            dual_side_position=dual_side)
        return account

    def set_leverage(self, account_id: str, symbol: object, leverage: object) -> Position:
        """Set leverage (an integer ≥ 1) within the cap of the position's bracket."""
        records = self._symbol_positions(account_id, symbol)
        pos = records[0]
        if isinstance(leverage, bool) or not isinstance(leverage, int | str | Decimal):
            raise InvalidInput(f"leverage must be a whole number, got {leverage!r}")
        lev = positive_quantity(leverage, "leverage")
        if lev != lev.to_integral_value():
            raise InvalidInput(f"leverage must be a whole number, got {leverage!r}")
        inst = self.instrument(pos.symbol)
        # Hedge mode: one leverage for both legs, capped by the larger leg's bracket.
        value = max((mark_value_coin(self, p) for p in records if p.is_open), default=Decimal(0))
        check_leverage(inst.brackets, value, lev)
        for record in records:
            record.leverage = int(lev)
        self.journal.append(self.now_ms, "leverage.changed", account_id=account_id,
                            symbol=pos.symbol, leverage=pos.leverage)
        self.watcher.replan()
        return pos

    def set_margin_mode(self, account_id: str, symbol: object, mode: object) -> Position:
        """Switch cross ↔ isolated: only with no position and no open orders on the symbol."""
        records = self._symbol_positions(account_id, symbol)
        pos = records[0]
        if mode not in MARGIN_MODES:
            raise InvalidInput(
                f"margin mode must be one of {', '.join(MARGIN_MODES)}, got {mode!r}")
        new_mode: MarginMode = "cross" if mode == "cross" else "isolated"
        if pos.margin_mode == new_mode:
            raise MarginModeAlreadySet(f"{pos.symbol} is already in {new_mode} margin mode")
        if any(p.is_open for p in records) or self.books[pos.symbol].open_orders(account_id):
            raise MarginModeChangeRejected(
                f"cannot change the margin mode of {pos.symbol} while a position or open orders "
                "exist on it"
            )
        for record in records:
            record.margin_mode = new_mode
        self.journal.append(self.now_ms, "margin_mode.changed", account_id=account_id,
                            symbol=pos.symbol, margin_mode=new_mode)
        return pos

    def adjust_isolated_margin(self, account_id: str, symbol: object, amount: object,
                               *, add: bool, position_side: object = "BOTH") -> Decimal:
        """Move coin between the wallet and an isolated position's margin; the new margin."""
        return trading.adjust_isolated_margin(self, account_id, symbol, amount, add=add,
                                              position_side=position_side)


def _check_tape_prices(scenario: Scenario, tape: PriceTape, inst: Instrument) -> None:
    """Every scenario price inside the instrument's price filter [tick, MAX_PRICE_USD]: a price
    of 1e-300 or 1e300 would otherwise fail later, deep inside funding or the mark."""
    high = float(MAX_PRICE_USD)
    for column, low in (("index", inst.tick_size), ("perp", lowest_perp_price_usd(inst))):
        values = getattr(tape, column)
        if not len(values):
            continue
        # Two reductions (NaN propagates through both) instead of four full-tape temporaries;
        # only a failing tape pays for finding its first bad row.
        if float(values.min()) >= float(low) and float(values.max()) <= high:
            continue
        bad = np.flatnonzero(~((values >= float(low)) & (values <= high)))
        if bad.size:
            row = int(bad[0])
            raise ScenarioError(
                f"scenario {scenario.name!r}: {tape.pair} {column} price {values[row]!r} at "
                f"{int(tape.times_ms[row])} ms (row {row + 1}) is outside {inst.symbol}'s price "
                f"filter [{low}, {MAX_PRICE_USD}]")


def _tapes(scenario: Scenario, now_ms: int) -> dict[str, PriceTape]:
    tapes: dict[str, PriceTape] = {}
    for pair, path in scenario.paths.items():
        manual = scenario.mode == "manual"
        times = np.asarray(path.times_ms)
        if manual:
            times = np.minimum(times, now_ms)
        tapes[pair] = PriceTape(pair, times, np.asarray(path.index), np.asarray(path.perp),
                                manual=manual,
                                regular=not manual and path.regular_step_ms is not None)
    return tapes
