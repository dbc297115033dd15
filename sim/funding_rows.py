"""The open positions on a symbol as columns, gathered once and kept until a position changes.

A funding settlement pays every open position; gathering them (every account's positions, the
holders' ledger names and slots) cost more than paying them. Positions on a symbol do not move
between most settlements, so the columns are cached per exchange and symbol, and dropped by
``changed`` — called where a position's size changes (sim/trading.py, sim/liquidation.py).
As a guard against a size set anywhere else, ``rows`` also compares the cached positions' sizes
(one array read) and regathers if one moved; a flat record that opens is seen only through
``changed``, hence the hooks.
"""

from __future__ import annotations

import collections
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


_CACHE: weakref.WeakKeyDictionary[Exchange, dict[str, SymbolRows]] = (
    weakref.WeakKeyDictionary())


def changed(ex: Exchange, symbol: str) -> None:
    """A position on ``symbol`` opened, resized or closed: gather its rows again."""
    cached = _CACHE.get(ex)
    if cached is not None:
        cached.pop(symbol, None)


def rows(ex: Exchange, symbol: str, coin: str) -> SymbolRows:
    """The open positions on ``symbol`` (cached; see the module doc)."""
    per_symbol = _CACHE.setdefault(ex, {})
    cached = per_symbol.get(symbol)
    if cached is not None and _still_valid(ex, cached):
        return cached
    per_symbol[symbol] = fresh = _gather(ex, symbol, coin)
    return fresh


def refresh_slots(ex: Exchange, table: SymbolRows) -> None:
    """Ask the ledger for the slots again (after a posting opened an account)."""
    ledger = ex.ledger
    table.holder_slots = ledger.slots(table.holder_names)
    table.wallet_slots = ledger.slots(table.wallet_names)
    table.isolated_slots = ledger.slots(table.isolated_names)
    table.slot_epoch = ledger.slot_epoch


def _still_valid(ex: Exchange, table: SymbolRows) -> bool:
    if table.accounts_count != len(ex.accounts) or table.slot_epoch != ex.ledger.slot_epoch:
        return False
    qty = np.fromiter((p.qty_contracts for p in table.positions), dtype=np.int64,
                      count=len(table.positions))
    return bool(np.array_equal(qty, table.qty_contracts))


def _gather(ex: Exchange, symbol: str, coin: str) -> SymbolRows:
    pairs = [(a, p) for a in ex.accounts.values() for p in a.positions.values()
             if p.symbol == symbol and p.is_open]  # hedge mode: both legs pay or receive
    accounts = [a for a, _ in pairs]
    positions = [p for _, p in pairs]
    ids = tuple(a.account_id for a in accounts)
    legs = collections.Counter(ids)
    wallet_names = [f"wallet:{aid}:{coin}" for aid in ids]
    isolated_names = [f"isolated:{aid}:{p.margin_key}" for aid, p in zip(ids, positions,
                                                                          strict=True)]
    holder_names = [i_name if p.margin_mode == "isolated" else w_name
                    for p, w_name, i_name in zip(positions, wallet_names, isolated_names,
                                                 strict=True)]
    table = SymbolRows(
        accounts, positions, list({id(a): a for a in accounts}.values()), ids,
        tuple(p.position_side for p in positions), tuple(p.margin_mode for p in positions),
        np.fromiter((p.qty_contracts for p in positions), dtype=np.int64, count=len(positions)),
        np.array([legs[aid] > 1 for aid in ids], dtype=bool),
        holder_names, wallet_names, isolated_names, np.empty(0, np.int64),
        np.empty(0, np.int64), np.empty(0, np.int64), None, len(ex.accounts), 0)
    table.text_sha = text_digest(table.account_ids, table.position_sides, table.margin_modes)
    refresh_slots(ex, table)
    return table
