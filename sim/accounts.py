"""Accounts and positions as the engine stores them (balances live in the ledger, not here).

One-way mode: at most one position per symbol per account, signed (+ long, − short).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

MarginMode = Literal["cross", "isolated"]
MARGIN_MODES: tuple[MarginMode, ...] = ("cross", "isolated")

# Binance starts every symbol at 20x cross until the user changes it.
DEFAULT_LEVERAGE = 20


@dataclass(slots=True)
class Position:
    """One account's position on one symbol, with its per-symbol settings."""

    symbol: str
    coin: str
    qty_contracts: int = 0
    entry_price_usd: Decimal | None = None
    leverage: int = DEFAULT_LEVERAGE
    margin_mode: MarginMode = "cross"
    updated_ms: int = 0
    # Liquidation bookkeeping: a margin call is sent once per approach to liquidation.
    margin_call_sent: bool = False

    @property
    def is_open(self) -> bool:
        """True when the position holds contracts."""
        return self.qty_contracts != 0

    @property
    def side(self) -> int:
        """+1 long, −1 short, 0 flat."""
        return (self.qty_contracts > 0) - (self.qty_contracts < 0)


@dataclass(slots=True)
class Account:
    """A user of the venue: credentials, label and per-symbol positions/settings."""

    account_id: str
    api_key: str
    api_secret: str
    label: str
    created_ms: int
    positions: dict[str, Position] = field(default_factory=dict)
    update_ms: int = 0

    def position(self, symbol: str, coin: str) -> Position:
        """The account's position record on ``symbol`` (created flat on first use)."""
        pos = self.positions.get(symbol)
        if pos is None:
            pos = self.positions[symbol] = Position(symbol=symbol, coin=coin)
        return pos

    def open_positions(self) -> list[Position]:
        """Positions holding contracts, in creation order."""
        return [p for p in self.positions.values() if p.is_open]
