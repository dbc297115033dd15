"""Accounts and positions as the engine stores them (balances live in the ledger, not here).

One-way mode (Binance ``positionSide`` BOTH, Bybit position_idx 0): at most one position per
symbol per account, signed (+ long, − short). Hedge mode (Binance dual-side positions, Bybit
two-way mode, position_idx 1 / 2): a LONG and a SHORT position per symbol, each never crossing
zero. Leverage and margin mode stay per symbol, shared by its positions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from perpsim.sim.errors import InvalidPositionSide

MarginMode = Literal["cross", "isolated"]
MARGIN_MODES: tuple[MarginMode, ...] = ("cross", "isolated")
PositionSide = Literal["BOTH", "LONG", "SHORT"]
POSITION_SIDES: tuple[PositionSide, ...] = ("BOTH", "LONG", "SHORT")
# Bybit's position_idx for the same three: 0 one-way, 1 buy side, 2 sell side of two-way mode.
BYBIT_POSITION_IDX: dict[PositionSide, int] = {"BOTH": 0, "LONG": 1, "SHORT": 2}


def side_of_position_idx(position_idx: object) -> PositionSide:
    """The engine's position side for Bybit's ``positionIdx`` (0, 1 or 2), for a Bybit dialect."""
    for side, idx in BYBIT_POSITION_IDX.items():
        if position_idx == idx and not isinstance(position_idx, bool):
            return side
    raise InvalidPositionSide(f"positionIdx must be 0 (one-way), 1 (buy side) or 2 (sell side) "
                              f"of two-way mode, got {position_idx!r}")


def position_key(symbol: str, side: PositionSide = "BOTH") -> str:
    """Key of a position in ``Account.positions``: the symbol, plus the side in hedge mode."""
    return symbol if side == "BOTH" else f"{symbol}:{side}"

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
    position_side: PositionSide = "BOTH"

    @property
    def margin_key(self) -> str:
        """What names its isolated margin in the ledger: the symbol, or symbol.SIDE in hedge
        mode (Binance keeps a LONG and a SHORT isolated wallet)."""
        if self.position_side == "BOTH":
            return self.symbol
        return f"{self.symbol}.{self.position_side}"

    @property
    def leg_sign(self) -> int:
        """+1 for a LONG leg, −1 for a SHORT leg, 0 for a one-way position."""
        return {"BOTH": 0, "LONG": 1, "SHORT": -1}[self.position_side]

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
    dual_side_position: bool = False  # hedge mode (Binance dualSidePosition)

    def position(self, symbol: str, coin: str, side: PositionSide = "BOTH") -> Position:
        """The account's position record on ``symbol`` and ``side`` (created flat on first
        use, with the symbol's leverage and margin mode)."""
        key = position_key(symbol, side)
        pos = self.positions.get(key)
        if pos is None:
            sibling = next(iter(self.positions_on(symbol)), None)
            pos = self.positions[key] = Position(symbol=symbol, coin=coin, position_side=side)
            if sibling is not None:
                pos.leverage, pos.margin_mode = sibling.leverage, sibling.margin_mode
        return pos

    def positions_on(self, symbol: str) -> list[Position]:
        """Every position record on ``symbol`` (one-way and hedge legs), in creation order."""
        return [p for p in self.positions.values() if p.symbol == symbol]

    def sides(self) -> tuple[PositionSide, ...]:
        """The position sides this account trades: BOTH, or LONG and SHORT in hedge mode."""
        return ("LONG", "SHORT") if self.dual_side_position else ("BOTH",)

    def open_positions(self) -> list[Position]:
        """Positions holding contracts, in creation order."""
        return [p for p in self.positions.values() if p.is_open]
