"""The user data stream's view of each account, kept from the journal alone.

Binance's ACCOUNT_UPDATE carries the wallet and the position *as they stand after* the change.
Most engine events state them in their payload (``order.update`` — including the fills the
venue forces on an account in a liquidation or ADL —, ``funding.payment``,
``balance.transfer``); a few say only what moved (``balance.deposit``: the amount;
``margin.transfer``: the amount and the new isolated margin; ``margin_mode.changed``: the new
mode). :class:`AccountViews` remembers the last stated values so that those frames are
complete too: every change of a futures wallet is journalled with either its new balance or its
exact amount, so the views stay exact.

Everything here runs inside the journal listener: plain bookkeeping and frame building, no
engine reads, no awaits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from perpsim.api.binance_coinm import stream_frames as fr
from perpsim.sim.funding_detail import FundingDetail
from perpsim.sim.inverse import pnl_coin
from perpsim.sim.profile import Instrument

ZERO = Decimal(0)
MarkReader = Callable[[str, int], Decimal | None]  # (symbol, event time ms) → mark or None


@dataclass(slots=True)
class PositionView:
    """Last stated position: contracts, entry, margin mode, isolated wallet (and, for a
    hedge-mode leg, its side)."""

    qty: int = 0
    entry: Decimal | None = None
    margin_mode: str = "cross"
    isolated_wallet: Decimal = ZERO
    realized: Decimal = ZERO  # realised PnL of every fill so far (ACCOUNT_UPDATE ``cr``)
    side: str = "BOTH"


@dataclass(slots=True)
class AccountView:
    """Last stated cross wallet per coin and position per symbol."""

    wallets: dict[str, Decimal] = field(default_factory=dict)
    positions: dict[str, PositionView] = field(default_factory=dict)  # by position_key


def _dec(value: object) -> Decimal:
    return Decimal(str(value))


def _opt_dec(value: object) -> Decimal | None:
    return None if value is None else Decimal(str(value))


class AccountViews:
    """Every account's last stated wallets and positions; turns events into user frames."""

    def __init__(self, instruments: Mapping[str, Instrument],
                 mark_of: MarkReader | None = None) -> None:
        self.instruments = dict(instruments)
        self.accounts: dict[str, AccountView] = {}
        # The mark at an event's instant, when the listener can know it (the hub reads it off
        # the engine while the event is being journalled); None leaves ``up`` out.
        self.mark_of: MarkReader = mark_of or (lambda symbol, time_ms: None)
        self._want_frames = True

    # ---- state -------------------------------------------------------------------------------
    def seed(self, account_id: str, wallets: Mapping[str, Decimal],
             positions: Mapping[str, PositionView]) -> None:
        """Start an account from values read off the engine at a quiescent instant."""
        self.accounts[account_id] = AccountView(dict(wallets), dict(positions))

    def account(self, account_id: str) -> AccountView:
        """The account's view (a new account starts with empty wallets, all flat)."""
        view = self.accounts.get(account_id)
        if view is None:
            view = self.accounts[account_id] = AccountView()
        return view

    def position(self, account_id: str, symbol: str, side: str = "BOTH") -> PositionView:
        """The account's view of one position (``side`` LONG / SHORT: a hedge-mode leg)."""
        positions = self.account(account_id).positions
        key = symbol if side == "BOTH" else f"{symbol}:{side}"
        pos = positions.get(key)
        if pos is None:
            pos = positions[key] = PositionView(side=side)
        return pos

    def _coin(self, key: str) -> str:
        return self.instruments[key.split(":")[0]].margin_asset

    def balance_row(self, account_id: str, coin: str, change: Decimal = ZERO) -> fr.BalanceRow:
        """a.B for ``coin``: wallet = cross + isolated wallets (as walletBalance on REST)."""
        view = self.account(account_id)
        cross = view.wallets.get(coin, ZERO)
        isolated = sum((p.isolated_wallet for s, p in view.positions.items()
                        if self._coin(s) == coin and p.margin_mode == "isolated"), ZERO)
        return fr.BalanceRow(coin, cross + isolated, cross, change)

    def position_row(self, account_id: str, symbol: str, mark: Decimal | None = None,
                     side: str = "BOTH") -> fr.PositionRow:
        """a.P for one position, a hedge-mode leg by ``side`` (``up`` at ``mark``: the event's
        own, or the mark then)."""
        pos = self.position(account_id, symbol, side)
        inst = self.instruments[symbol]
        unrealized = None
        if pos.qty == 0:
            unrealized = ZERO
        elif mark is not None and pos.entry is not None:
            unrealized = pnl_coin(pos.qty, pos.entry, mark, inst.contract_size_usd)
        iso = pos.isolated_wallet if pos.margin_mode == "isolated" else ZERO
        return fr.PositionRow(inst, pos.qty, pos.entry, pos.margin_mode, iso, unrealized,
                              pos.realized, pos.side)

    # ---- events ------------------------------------------------------------------------------
    def apply(self, time_ms: int, kind: str, p: Mapping[str, Any],
              want_frames: bool) -> list[fr.Frame]:
        """Update the views from one event; its frames for the account's user stream."""
        handler = _HANDLERS.get(kind)
        if handler is None or "account_id" not in p:
            return []
        self._want_frames = want_frames  # no mark lookups for frames nobody reads
        frames = handler(self, time_ms, p)
        return frames if want_frames else []

    def _update(self, t: int, aid: str, reason: str, coin: str, symbol: str | None = None, *,
                change: Decimal = ZERO, mark: Decimal | None = None,
                side: str = "BOTH") -> fr.Frame:
        if symbol is not None and mark is None and self._want_frames:
            mark = self.mark_of(symbol, t)
        positions = [] if symbol is None else [self.position_row(aid, symbol, mark, side)]
        return fr.account_update(t, aid, reason, [self.balance_row(aid, coin, change)],
                                 positions)

    def _created(self, t: int, p: Mapping[str, Any]) -> list[fr.Frame]:
        self.account(p["account_id"])
        return []

    def _deposit(self, t: int, p: Mapping[str, Any]) -> list[fr.Frame]:
        if p.get("wallet") == "spot":
            return []  # the spot wallet is not on the futures user stream
        aid, coin, amount = p["account_id"], p["coin"], _dec(p["amount"])
        wallets = self.account(aid).wallets
        wallets[coin] = wallets.get(coin, ZERO) + amount
        return [self._update(t, aid, "DEPOSIT", coin, change=amount)]

    def _transfer(self, t: int, p: Mapping[str, Any]) -> list[fr.Frame]:
        aid, coin, amount = p["account_id"], p["coin"], _dec(p["amount"])
        self.account(aid).wallets[coin] = _dec(p["wallet"])
        into = p["to"] == "futures"
        return [self._update(t, aid, "DEPOSIT" if into else "WITHDRAW", coin,
                             change=amount if into else -amount)]

    def _order(self, t: int, p: Mapping[str, Any]) -> list[fr.Frame]:
        aid, symbol, coin = p["account_id"], p["symbol"], p["coin"]
        self.account(aid).wallets[coin] = _dec(p["wallet"])
        side = p.get("position_side", "BOTH")
        pos = self.position(aid, symbol, side)
        pos.qty, pos.entry = int(p["position_qty"]), _opt_dec(p.get("position_entry"))
        pos.margin_mode, pos.isolated_wallet = p["margin_mode"], _dec(p["isolated_wallet"])
        update = fr.order_trade_update(t, self.instruments[symbol], p)
        if p["execution"] != "TRADE":
            return [update]
        pos.realized += _opt_dec(p.get("realized_pnl")) or ZERO
        # A fill moves the wallet and the position: Binance pushes both, the account first.
        return [self._update(t, aid, "ORDER", coin, symbol, side=side), update]

    def _algo(self, t: int, p: Mapping[str, Any]) -> list[fr.Frame]:
        return [fr.algo_update(t, self.instruments[p["symbol"]], p)]

    def _funding(self, t: int, p: Mapping[str, Any]) -> list[fr.Frame]:
        aid, symbol, coin = p["account_id"], p["symbol"], p["coin"]
        self.account(aid).wallets[coin] = _dec(p["wallet"])
        side = p.get("position_side", "BOTH")
        pos = self.position(aid, symbol, side)
        pos.qty, pos.margin_mode = int(p["position_qty"]), p["margin_mode"]
        pos.isolated_wallet = _dec(p["isolated_wallet"])
        if _dec(p["amount"]) == 0:
            return []  # nothing moved: Binance pushes nothing
        # Binance: a cross funding fee pushes only the balance; an isolated one adds its position.
        isolated = pos.margin_mode == "isolated"
        return [self._update(t, aid, "FUNDING_FEE", coin, symbol if isolated else None,
                             mark=_opt_dec(p.get("mark")), side=side)]

    def settle_funding(self, detail: FundingDetail, skip: frozenset[str]) -> None:
        """A funding settlement's rows, except ``skip``'s, straight into the views (what
        ``_funding`` keeps, without building events or frames: nobody listens to them)."""
        for i, aid in enumerate(detail.account_ids):
            if aid in skip:
                continue
            self.account(aid).wallets[detail.coin] = detail.wallets[i]
            pos = self.position(aid, detail.symbol, detail.position_sides[i])
            pos.qty, pos.margin_mode = int(detail.qty_contracts[i]), detail.margin_modes[i]
            pos.isolated_wallet = detail.isolated_wallets[i]

    def _margin_transfer(self, t: int, p: Mapping[str, Any]) -> list[fr.Frame]:
        aid, symbol, coin = p["account_id"], p["symbol"], p["coin"]
        wallets = self.account(aid).wallets
        wallets[coin] = wallets.get(coin, ZERO) - _dec(p["amount"])  # amount: + add, − remove
        side = p.get("position_side", "BOTH")
        self.position(aid, symbol, side).isolated_wallet = _dec(p["isolated_margin"])
        return [self._update(t, aid, "ISOLATED_MARGIN_TRANSFER", coin, symbol, side=side)]

    def _margin_mode(self, t: int, p: Mapping[str, Any]) -> list[fr.Frame]:
        aid, symbol = p["account_id"], p["symbol"]
        for key, view in self.account(aid).positions.items():
            if key.split(":")[0] == symbol:  # every leg: the margin type is the symbol's
                view.margin_mode = p["margin_mode"]
        self.position(aid, symbol).margin_mode = p["margin_mode"]
        return [self._update(t, aid, "MARGIN_TYPE_CHANGE", self._coin(symbol), symbol)]

    def _leverage(self, t: int, p: Mapping[str, Any]) -> list[fr.Frame]:
        return [fr.account_config_update(t, p["symbol"], int(p["leverage"]))]

    def _margin_call(self, t: int, p: Mapping[str, Any]) -> list[fr.Frame]:
        aid, symbol = p["account_id"], p["symbol"]
        inst = self.instruments[symbol]
        pos = self.position(aid, symbol, p.get("position_side", "BOTH"))
        qty = int(p["qty"])
        unrealized = None
        if pos.entry is not None and qty:
            unrealized = pnl_coin(qty, pos.entry, _dec(p["mark"]), inst.contract_size_usd)
        cross = self.account(aid).wallets.get(inst.margin_asset, ZERO)
        return [fr.margin_call(t, inst, p, cross, pos.isolated_wallet, unrealized)]


_Handler = Callable[[AccountViews, int, Mapping[str, Any]], list[fr.Frame]]
_HANDLERS: dict[str, _Handler] = {
    "account.created": AccountViews._created,
    "balance.deposit": AccountViews._deposit,
    "balance.transfer": AccountViews._transfer,
    "order.update": AccountViews._order,
    "algo.update": AccountViews._algo,
    "funding.payment": AccountViews._funding,
    "margin.transfer": AccountViews._margin_transfer,
    "margin_mode.changed": AccountViews._margin_mode,
    "leverage.changed": AccountViews._leverage,
    "margin.call": AccountViews._margin_call,
}
