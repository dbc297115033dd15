"""The per-account rows of one funding settlement, kept beside its single journal record.

A settlement used to journal one ``funding.payment`` event per position; at crowd scale that
was most of its cost. Now the engine journals one ``funding.settled`` record whose ``detail`` is
this table (columns, not objects) and whose payload carries the table's digest, so the journal's
digest still covers every payment. ``events`` turns rows back into the ``funding.payment``
events consumers read (the income history, the user streams, Bybit's executions,
``/control/journal?account_id=``), with the record's seq, on demand and only for the accounts
asked about.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np

from perpsim.sim.journal import Event, make_event


def text_digest(account_ids: tuple[str, ...], position_sides: tuple[str, ...],
                margin_modes: tuple[str, ...]) -> Any:
    """A SHA-256 fed the rows' text columns: where ``FundingDetail.digest`` starts."""
    sha = hashlib.sha256()
    for column in (account_ids, position_sides, margin_modes):
        sha.update("\x1f".join(column).encode("utf-8"))
        sha.update(b"\x1e")
    return sha


@dataclass(slots=True, eq=False)
class FundingDetail:
    """Row i: ``account_ids[i]``'s position on ``symbol`` and what it received (``units[i]``
    coin steps; negative: paid), with its wallet and isolated margin right after."""

    symbol: str
    coin: str
    rate: Decimal
    mark: Decimal
    step: Decimal
    account_ids: tuple[str, ...]
    position_sides: tuple[str, ...]
    margin_modes: tuple[str, ...]
    qty_contracts: np.ndarray  # int64
    units: np.ndarray  # int64, coin steps
    wallet_units: np.ndarray  # int64, coin steps, after the row's payment
    isolated_units: np.ndarray  # int64, coin steps
    # Rows whose balances after are kept as the ledger's Decimals (paid one by one, or not
    # exactly steps · step): row → (wallet, isolated margin).
    exact: dict[int, tuple[Decimal, Decimal]] = field(default_factory=dict)
    # ``text_digest`` of the three text columns, when the caller already has it (the
    # settlement's cached rows): ``digest`` continues from a copy instead of rehashing them.
    text_sha: Any = field(default=None, repr=False)
    _rows_of: dict[str, list[int]] | None = field(default=None, repr=False)
    _wallets: tuple[tuple[Decimal, ...], tuple[Decimal, ...]] | None = field(default=None,
                                                                              repr=False)

    def __len__(self) -> int:
        return len(self.account_ids)

    def digest(self) -> str:
        """SHA-256 of the rows: accounts, sides, modes, sizes and amounts (the balances after
        follow from the amounts and the ledger before, which the journal already pins)."""
        sha = (text_digest(self.account_ids, self.position_sides, self.margin_modes)
               if self.text_sha is None else self.text_sha.copy())
        sha.update(np.ascontiguousarray(self.qty_contracts, dtype="<i8").tobytes())
        sha.update(np.ascontiguousarray(self.units, dtype="<i8").tobytes())
        return sha.hexdigest()

    def amount(self, i: int) -> Decimal:
        """Row i's payment in coin (negative: it paid), on the step grid."""
        return self._coin(int(self.units[i]))

    def _coin(self, units: int) -> Decimal:
        return (Decimal(units) * self.step).quantize(self.step)

    def wallet(self, i: int) -> Decimal:
        """Row i's wallet right after its payment."""
        kept = self.exact.get(i)
        return kept[0] if kept is not None else self._coin(int(self.wallet_units[i]))

    def isolated_wallet(self, i: int) -> Decimal:
        """Row i's isolated margin right after its payment (zero for a cross position)."""
        kept = self.exact.get(i)
        return kept[1] if kept is not None else self._coin(int(self.isolated_units[i]))

    def _all_wallets(self) -> tuple[tuple[Decimal, ...], tuple[Decimal, ...]]:
        if self._wallets is None:  # built on first read (a query, not the settlement)
            rows = range(len(self))
            self._wallets = (tuple(self.wallet(i) for i in rows),
                             tuple(self.isolated_wallet(i) for i in rows))
        return self._wallets

    @property
    def wallets(self) -> tuple[Decimal, ...]:
        """Every row's wallet after."""
        return self._all_wallets()[0]

    @property
    def isolated_wallets(self) -> tuple[Decimal, ...]:
        """Every row's isolated margin after."""
        return self._all_wallets()[1]

    def rows_of(self, account_id: str) -> list[int]:
        """The rows of ``account_id`` (an index built on first use)."""
        if self._rows_of is None:
            index: dict[str, list[int]] = {}
            for i, aid in enumerate(self.account_ids):
                index.setdefault(aid, []).append(i)
            self._rows_of = index
        return self._rows_of.get(account_id, [])

    def payload(self, i: int) -> dict[str, object]:
        """Row i as the ``funding.payment`` event payload it replaces."""
        return {"account_id": self.account_ids[i], "symbol": self.symbol, "rate": self.rate,
                "mark": self.mark, "position_qty": int(self.qty_contracts[i]),
                "amount": self.amount(i), "coin": self.coin, "margin_mode": self.margin_modes[i],
                "wallet": self.wallet(i), "isolated_wallet": self.isolated_wallet(i),
                "position_side": self.position_sides[i]}

    def events(self, parent: Event, account_id: str | None = None) -> list[Event]:
        """The ``funding.payment`` events of the rows (``account_id``'s only, if given)."""
        rows = range(len(self)) if account_id is None else self.rows_of(account_id)
        return [make_event(parent.seq, parent.time_ms, "funding.payment", self.payload(i))
                for i in rows]
