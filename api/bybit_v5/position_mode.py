"""Bybit's position modes on the engine's: ``positionIdx`` and ``switch-mode``'s ``mode``.

One-way mode (``mode`` 0) is the engine's BOTH position, ``positionIdx`` 0; hedge mode
(``mode`` 3, "both sides") is the engine's hedge mode, ``positionIdx`` 1 the buy side (the LONG
leg) and 2 the sell side (the SHORT leg). The engine keeps the mode per account (Binance's
``dualSidePosition``); Bybit's switch-mode names a symbol or a coin, which perpsim checks and
then applies to the account.

Bybit takes ``reduceOnly`` in hedge mode (a Sell on the buy side closes it); the engine
(Binance's rule) refuses it there because the leg already says it. So the dialect checks a
reduce-only order closes its leg (110017 otherwise) and hands the engine the leg alone; the
order row shows ``reduceOnly`` true for every closing hedge order (account_wire.closes_leg).
"""

from __future__ import annotations

from perpsim.sim.accounts import Account, PositionSide, side_of_position_idx
from perpsim.sim.errors import InvalidInput, ReduceOnlyRejected

ONE_WAY, BOTH_SIDES = "0", "3"
MODES = (ONE_WAY, BOTH_SIDES)


def _index(position_idx: str | None, account: Account) -> PositionSide:
    """The position side ``positionIdx`` names, if it fits the account's mode (10001 if not,
    as Bybit's "position idx not match position mode")."""
    if position_idx is None:
        position_idx = "0"
    if position_idx not in ("0", "1", "2"):
        raise InvalidInput(f"positionIdx must be 0, 1 or 2, got {position_idx!r}")
    side = side_of_position_idx(int(position_idx))
    if account.dual_side_position and side == "BOTH":
        raise InvalidInput("position idx not match position mode: the account is in hedge "
                           "mode, send positionIdx 1 (buy side) or 2 (sell side)")
    if not account.dual_side_position and side != "BOTH":
        raise InvalidInput(f"position idx not match position mode: positionIdx {position_idx} "
                           "needs hedge mode (switch-mode 3); this account is one-way (0)")
    return side


def position_side(position_idx: str | None, account: Account) -> PositionSide:
    """The leg ``positionIdx`` names (add-margin, position lookups)."""
    return _index(position_idx, account)


def order_leg(position_idx: str | None, account: Account, side: str,
              reduce_only: bool) -> tuple[PositionSide, bool]:
    """``(position side, reduce_only)`` to place an order with: in hedge mode the leg, and
    reduce-only dropped once it is checked to close that leg."""
    leg = _index(position_idx, account)
    if leg == "BOTH":
        return leg, reduce_only
    if reduce_only and (side == "BUY") == (leg == "LONG"):
        raise ReduceOnlyRejected(f"reduce-only {side} on positionIdx {position_idx} would open "
                                 f"the {leg} leg, not reduce it")
    return leg, False
