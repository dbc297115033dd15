"""The open positions on a symbol as columns, gathered once and kept while they stay the same.

A funding settlement pays every open position; gathering them (every account's positions, the
holders' ledger names and slots) cost more than paying them. Positions on a symbol do not move
between most settlements, so the columns are cached per exchange and symbol. At each
settlement the cached positions' sizes are read again (one array): a resize updates the
sizes, a close drops the row (liquidations: no full gathering). A position that is not in the
rows and opens is reported by ``changed`` — called where a position's size is set
(sim/trading.py, sim/liquidation.py) — and the rows are gathered again; so are they when an
account is added or the ledger forgets a slot. Every position's ledger names and slots are
kept too, so gathering again builds no names.
"""

from __future__ import annotations

import collections
import itertools
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from perpsim.sim.funding_detail import text_digest

if TYPE_CHECKING:
    from perpsim.sim.accounts import Account, Position
    from perpsim.sim.exchange import Exchange


@dataclass(slots=True, eq=False)
class SymbolRows:
    """Row i: ``positions[i]`` of ``accounts[i]``, in account then position order."""

    accounts: list[Account]
    positions: list[Position]
    paying_accounts: list[Account]  # each once
    account_ids: tuple[str, ...]
    position_sides: tuple[str, ...]
    margin_modes: tuple[str, ...]
    qty_contracts: np.ndarray  # int64
    hedge: np.ndarray  # bool: the account has two legs on the symbol (paid one by one)
    holder_names: list[str]  # the isolated margin or the wallet that pays
    wallet_names: list[str]
    isolated_names: list[str]
    holder_slots: np.ndarray  # ledger slots (-1: nothing ever posted there)
    wallet_slots: np.ndarray
    isolated_slots: np.ndarray
    text_sha: Any  # the rows' text columns hashed (FundingDetail.digest continues from it)
    accounts_count: int  # a new account drops the cache
    slot_epoch: int  # the ledger forgot an account: ask for its slots again
    ledger_accounts: int  # the ledger opened accounts: slots -1 may have one now
    position_ids: set[int]  # id() of each row's position
    opened: bool = False  # a position not in the rows opened: gather them again


# A position's ledger names and slots: (wallet, isolated, holder) names, then their slots.
_Names = tuple[str, str, str, int, int, int]


class _ExchangeRows:
    """One exchange's cached tables, and every position's names and slots: a liquidation
    drops a symbol's table, and gathering it again should not rebuild 10,000 names."""

    def __init__(self) -> None:
        self.tables: dict[str, SymbolRows] = {}
        self.names: dict[tuple[str, str, str], _Names] = {}  # (account, margin key, mode)
        self.slot_epoch = 0
        self.ledger_accounts = 0

    def names_of(self, ex: Exchange, coin: str, ids: tuple[str, ...],
                 positions: list[Position]) -> list[_Names]:
        ledger = ex.ledger
        if self.slot_epoch != ledger.slot_epoch:  # a slot died: ask for every slot again
            self.names.clear()
            self.slot_epoch = ledger.slot_epoch
        if self.ledger_accounts != ledger.account_count:  # new accounts: names without
            self.names = {k: v for k, v in self.names.items() if min(v[3:]) >= 0}  # slots
            self.ledger_accounts = ledger.account_count  # may have one now
        keys = [(aid, p.margin_key, p.margin_mode) for aid, p in zip(ids, positions,
                                                                     strict=True)]
        missing = [k for k in dict.fromkeys(keys) if k not in self.names]
        if missing:
            wallets = [f"wallet:{aid}:{coin}" for aid, _, _ in missing]
            isolated = [f"isolated:{aid}:{key}" for aid, key, _ in missing]
            holders = [i if mode == "isolated" else w
                       for (_, _, mode), w, i in zip(missing, wallets, isolated, strict=True)]
            for k, *entry in zip(missing, wallets, isolated, holders,
                                 ledger.slots(wallets).tolist(), ledger.slots(isolated).tolist(),
                                 ledger.slots(holders).tolist(), strict=True):
                self.names[k] = tuple(entry)
        names = self.names
        return [names[k] for k in keys]


_CACHE: weakref.WeakKeyDictionary[Exchange, _ExchangeRows] = weakref.WeakKeyDictionary()


def changed(ex: Exchange, pos: Position) -> None:
    """``pos`` opened, resized or closed. A resize or close is read off the rows' sizes at
    the next settlement; a position that is not in the rows makes them be gathered again."""
    cache = _CACHE.get(ex)
    table = None if cache is None else cache.tables.get(pos.symbol)
    if table is not None and pos.qty_contracts and id(pos) not in table.position_ids:
        table.opened = True


def rows(ex: Exchange, symbol: str, coin: str) -> SymbolRows:
    """The open positions on ``symbol`` (cached; see the module doc)."""
    cache = _CACHE.get(ex)
    if cache is None:
        cache = _CACHE[ex] = _ExchangeRows()
    table = cache.tables.get(symbol)
    if (table is None or table.opened or table.accounts_count != len(ex.accounts)
            or table.slot_epoch != ex.ledger.slot_epoch):
        table = cache.tables[symbol] = _gather(ex, symbol, coin, cache)
        return table
    qty = np.fromiter((p.qty_contracts for p in table.positions), dtype=np.int64,
                      count=len(table.positions))
    if not np.array_equal(qty, table.qty_contracts):
        table = cache.tables[symbol] = _resized(table, qty)
    if table.ledger_accounts != ex.ledger.account_count:
        _fill_missing_slots(ex, table)
    return table


def _resized(table: SymbolRows, qty: np.ndarray) -> SymbolRows:
    """The rows after positions in them resized or closed (liquidations, mostly): the sizes
    replaced and the closed rows dropped, without gathering the rest again."""
    keep = qty != 0
    if keep.all():
        table.qty_contracts = qty
        return table
    kept = keep.tolist()

    def pick(column: list[Any] | tuple[Any, ...]) -> list[Any]:
        return list(itertools.compress(column, kept))

    accounts, ids = pick(table.accounts), tuple(pick(table.account_ids))
    sides, modes = tuple(pick(table.position_sides)), tuple(pick(table.margin_modes))
    positions = pick(table.positions)
    legs = collections.Counter(ids)
    return SymbolRows(
        accounts, positions, list({id(a): a for a in accounts}.values()), ids, sides, modes,
        qty[keep], np.array([legs[aid] > 1 for aid in ids], dtype=bool),
        pick(table.holder_names), pick(table.wallet_names), pick(table.isolated_names),
        table.holder_slots[keep], table.wallet_slots[keep], table.isolated_slots[keep],
        text_digest(ids, sides, modes), table.accounts_count, table.slot_epoch,
        table.ledger_accounts, set(map(id, positions)))


def _fill_missing_slots(ex: Exchange, table: SymbolRows) -> None:
    """The ledger opened accounts since: ask again for the slots it did not have."""
    for column, names in ((table.holder_slots, table.holder_names),
                          (table.wallet_slots, table.wallet_names),
                          (table.isolated_slots, table.isolated_names)):
        missing = np.flatnonzero(column < 0)
        if len(missing):
            column[missing] = ex.ledger.slots([names[i] for i in missing.tolist()])
    table.ledger_accounts = ex.ledger.account_count


def _gather(ex: Exchange, symbol: str, coin: str, cache: _ExchangeRows) -> SymbolRows:
    pairs = [(a, p) for a in ex.accounts.values() for p in a.positions.values()
             if p.symbol == symbol and p.is_open]  # hedge mode: both legs pay or receive
    accounts = [a for a, _ in pairs]
    positions = [p for _, p in pairs]
    ids = tuple(a.account_id for a in accounts)
    legs = collections.Counter(ids)
    names = cache.names_of(ex, coin, ids, positions)
    modes = tuple(p.margin_mode for p in positions)
    table = SymbolRows(
        accounts, positions, list({id(a): a for a in accounts}.values()), ids,
        tuple(p.position_side for p in positions), modes,
        np.fromiter((p.qty_contracts for p in positions), dtype=np.int64, count=len(positions)),
        np.array([legs[aid] > 1 for aid in ids], dtype=bool),
        [n[2] for n in names], [n[0] for n in names], [n[1] for n in names],
        np.array([n[5] for n in names], dtype=np.int64),
        np.array([n[3] for n in names], dtype=np.int64),
        np.array([n[4] for n in names], dtype=np.int64),
        text_digest(ids, tuple(p.position_side for p in positions), modes), len(ex.accounts),
        ex.ledger.slot_epoch, ex.ledger.account_count, set(map(id, positions)))
    return table
