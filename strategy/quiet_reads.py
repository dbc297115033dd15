"""Reads whose answer cannot have changed since the last one: reuse it instead of asking again.

The monitor rebuilds its state over REST at every decision. One of those reads, the futures
account (wallet, cross wallet, available balance), only moves when money moves: a fill, a fee, a
transfer, a margin change, a funding payment, a liquidation — or, in cross margin, the mark.
After a wait in which the venue reported nothing on our account, with no cross position open and
no funding time passed, the previous answer is still the answer, and re-reading it only costs a
request (a fifth of a stepped dry run's requests were such re-reads).

The position read is reused the same way: after such a wait an isolated position's contracts,
entry, isolated margin, leverage and liquidation price are what they were (each moves only with
an event on the account, or with the funding rate, which changes only at a funding time). What
moves is its unrealised PnL, with the mark — which the client reads at every decision anyway
(the premium index): it is computed from it in the venue's own digits, as a client watching the
mark stream would (strategy/mark_pnl.py), and the position is read afresh whenever those digits
cannot be proven.

The futures balance is reused after a funding time too, when the venue reported nothing on
the account but funding payments into isolated margin (no cross position open): an isolated
position's funding is booked to its isolated margin, never to the cross wallet, and what the
client reads of the balance — the cross wallet and the available balance, which follows from
the cross wallet, cross positions and open orders alone — is then as read. Each payment's event
names the cross wallet after it, checked equal to the one read (else the balance is read):
the wallet total, which adds the isolated margins, does change, and the client does not use it
while the venue reports the cross wallet apart (Binance; on a venue that does not, the balance
is read after every funding time).

A resting order of ours is not re-read after a wait without an event on the account either
(every fill, cancel or expiry of it would be one): the executor's re-price checks then only read
the book, which moves by itself.

This needs a venue that reports everything that happens to the account during a wait, and an
account nobody else touches: a stepped perpsim dry run (``SteppedClock(sole_actor=True)``,
whose advance returns every journal event of the account). Live, a deposit or another client
could move the account unseen, so nothing is reused there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from perpsim.strategy.quiet_income import PAYMENT

if TYPE_CHECKING:
    from perpsim.strategy.clock import WaitResult
    from perpsim.strategy.monitor import MonitorState


def no_account_event(waited: WaitResult) -> bool:
    """Whether the venue reported no event on the account during ``waited`` (a wake level is
    not one). With a sole-actor clock, nothing of ours — an order, a fill, a transfer — changed
    then."""
    return all(e.get("type") == "wake" for e in waited.events)


def order_unchanged(waited: WaitResult, *, sole_actor: bool) -> bool:
    """Whether a resting order of ours is still as we last read it after ``waited``: nobody
    else acts on the account (``sole_actor``) and the venue reported no event on it."""
    return sole_actor and no_account_event(waited)


def quiet_wait(waited: WaitResult, state: MonitorState | None) -> bool:
    """Whether nothing that moves the futures account can have happened during ``waited``:
    the venue reported no event on the account (a wake level is not one), no funding time
    passed, and no cross position is open (its unrealised PnL moves the available balance)."""
    if state is None or not no_account_event(waited):
        return False
    if state.position_contracts and state.margin_mode != "isolated":
        return False
    return state.next_funding_ms is None or waited.now_ms < state.next_funding_ms


def funding_left_cross_wallet(waited: WaitResult, state: MonitorState | None, *, coin: str,
                              cross_wallet_btc: Decimal | None) -> bool:
    """Whether the account's only events during ``waited`` were funding payments in ``coin``
    into isolated margin, each leaving the cross wallet at ``cross_wallet_btc`` (the one the
    balance read last reported; None: the venue does not report it apart), with no cross
    position open — so the cross wallet and the available balance are as read (module doc)."""
    if state is None or cross_wallet_btc is None:
        return False
    if state.position_contracts and state.margin_mode != "isolated":
        return False
    for event in waited.events:
        kind = event.get("type")
        if kind == "wake":
            continue
        if (kind != PAYMENT or event.get("margin_mode") != "isolated"
                or event.get("coin") != coin):
            return False
        try:
            wallet = Decimal(str(event["wallet"]))
        except (KeyError, ArithmeticError, ValueError):
            return False
        if wallet != cross_wallet_btc:
            return False
    return True


@dataclass
class QuietRead:
    """One read's last answer, reused once after a quiet wait (then read afresh again)."""

    answer: Any = None
    quiet: bool = False  # only a quiet wait happened since ``answer`` was read
    reused: bool = False  # the latest read() gave the last answer back without asking

    def after_wait(self, waited: WaitResult, state: MonitorState | None, *,
                   sole_actor: bool, coin: str | None = None,
                   cross_wallet_btc: Decimal | None = None) -> None:
        """Note the wait that just ended (``sole_actor``: the clock says nobody else acts).
        The futures balance passes its ``coin`` and the cross wallet it last read: a wait
        past a funding time may then leave it as read (:func:`funding_left_cross_wallet`)."""
        self.quiet = sole_actor and (quiet_wait(waited, state) or (
            coin is not None and funding_left_cross_wallet(
                waited, state, coin=coin, cross_wallet_btc=cross_wallet_btc)))

    def changed(self) -> None:
        """Something we did moved the account: read it afresh next time."""
        self.quiet = False

    async def read(self, fetch: Callable[[], Awaitable[Any]]) -> Any:
        """The last answer if it cannot have changed, else ``await fetch()``."""
        self.reused = self.quiet and self.answer is not None
        if not self.reused:
            self.answer = await fetch()
        self.quiet = False  # anything may happen before the next wait
        return self.answer
