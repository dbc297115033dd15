"""The double-entry ledger: named accounts, postings of positive amounts, conservation.

Every coin movement is one posting ``source → destination`` of a positive amount that is already
a multiple of the ledger's coin step: the ledger never rounds, so callers quantise with the
profile's rule (``Ledger.quantize``) where the rounding happens and can be read. Account names
follow the table in docs/design.md and are built only by the helpers below.

The ledger is reached only by the engine, which validates user input with ``sim.money`` first, so
everything wrong that arrives here (bad amount, unknown coin, malformed name, a balance that
would go negative) raises ``LedgerError`` and changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Context, Decimal, Inexact, InvalidOperation, Overflow
from typing import TYPE_CHECKING

import numpy as np

from perpsim.sim.errors import LedgerError
from perpsim.sim.money import MAX_ABS_AMOUNT, SATOSHI, RoundingRule, quantize

if TYPE_CHECKING:
    from perpsim.sim.profile import Profile

_COIN = re.compile(r"[A-Z][A-Z0-9]{1,11}")
_ID = re.compile(r"[^\s:]+")
_SYMBOL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
# Kinds whose balance is real money someone holds; market and external are counterparties.
_PROTECTED = frozenset({"wallet", "spot", "isolated", "insurance", "fees"})
_COIN_NAMED = frozenset({"external", "insurance", "fees", "market"})
# Balances only ever add multiples of the step; a wide context that traps Inexact turns the
# impossible case of a balance outgrowing precision into an error instead of silent rounding.
_EXACT = Context(prec=60, traps=[Inexact, InvalidOperation, Overflow])
# A slotted account's balance in coin steps lives in an int64; beyond this it is "too big" for
# the array path (its postings take the Decimal path), leaving headroom for one batch's sum.
_UNITS_LIMIT = 2**62


# Exact str parts already matched, per pattern: the engine names the same coins, symbols and
# account ids over and over (a liquidation some twenty times), so each is matched once
# (bounded; a str subclass is matched every time, as before).
_WELL_FORMED: dict[re.Pattern[str], set[str]] = {}
_WELL_FORMED_MAX = 1_000_000


def _part(value: object, pattern: re.Pattern[str], what: str) -> str:
    exact = type(value) is str
    if exact and value in _WELL_FORMED.get(pattern, ()):
        return value  # type: ignore[return-value]  # an exact str (no typing.cast call here)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise LedgerError(f"{what} {value!r} is malformed (expected {pattern.pattern})")
    if exact:
        seen = _WELL_FORMED.setdefault(pattern, set())
        if len(seen) >= _WELL_FORMED_MAX:
            seen.clear()
        seen.add(value)
    return value


def external_account(coin: str) -> str:
    """Name of the outside world's account for ``coin`` (minus the net deposits)."""
    return f"external:{_part(coin, _COIN, 'coin')}"


def wallet_account(account_id: str, coin: str) -> str:
    """Name of a user's wallet in ``coin`` (cross margin lives here)."""
    return f"wallet:{_part(account_id, _ID, 'account id')}:{_part(coin, _COIN, 'coin')}"


def spot_account(account_id: str, coin: str) -> str:
    """Name of a user's spot wallet in ``coin`` (held coin, not margin)."""
    return f"spot:{_part(account_id, _ID, 'account id')}:{_part(coin, _COIN, 'coin')}"


def isolated_account(account_id: str, symbol: str) -> str:
    """Name of a user's isolated margin on ``symbol`` (open it with Ledger.open_isolated)."""
    return f"isolated:{_part(account_id, _ID, 'account id')}:{_part(symbol, _SYMBOL, 'symbol')}"


def insurance_account(coin: str) -> str:
    """Name of the insurance fund in ``coin``."""
    return f"insurance:{_part(coin, _COIN, 'coin')}"


def fees_account(coin: str) -> str:
    """Name of the venue's fee income in ``coin``."""
    return f"fees:{_part(coin, _COIN, 'coin')}"


def market_account(coin: str) -> str:
    """Name of the market counterparty in ``coin`` (synthetic liquidity, liquidations, funding)."""
    return f"market:{_part(coin, _COIN, 'coin')}"


@dataclass(slots=True, frozen=True)
class Posting:
    """One immutable movement of ``amount`` of ``coin`` from ``source`` to ``destination``."""

    seq: int
    time_ms: int
    source: str
    destination: str
    coin: str
    amount: Decimal
    reason: str
    ref: str


class BatchPosting:
    """One posting that moves many accounts' amounts against one counterparty at once.

    A funding settlement pays or charges every open position: one record per settlement
    instead of one per position keeps a crowd of 100,000 accounts cheap. ``amounts[i]`` is
    signed: positive, the counterparty paid ``names[i]``; negative, ``names[i]`` paid it. Each
    account's history shows its own leg as an ordinary ``Posting`` carrying this ``seq``.

    A batch posted as integer steps (``Ledger.post_units``) keeps its legs as arrays; the
    names, Decimal amounts and owners are built on first read (history and replay only).
    """

    __slots__ = ("_amounts", "_leg_of", "_names", "_owners", "_slot_accounts", "_slots",
                 "_step", "_units", "coin", "counterparty", "reason", "ref", "seq", "time_ms")

    def __init__(self, seq: int, time_ms: int, counterparty: str, coin: str,
                 names: tuple[str, ...] | None, amounts: tuple[Decimal, ...] | None,
                 reason: str, ref: str, owners: tuple[str | None, ...] | None) -> None:
        self.seq, self.time_ms, self.counterparty, self.coin = seq, time_ms, counterparty, coin
        self.reason, self.ref = reason, ref
        self._names, self._amounts, self._owners = names, amounts, owners
        self._leg_of: dict[str, int] | None = None
        self._slot_accounts: list[_SlotAccount] = []
        self._slots: np.ndarray | None = None
        self._units: np.ndarray | None = None
        self._step = Decimal(1)

    @classmethod
    def _of_units(cls, seq: int, time_ms: int, counterparty: str, coin: str,
                  slot_accounts: list[_SlotAccount], slots: np.ndarray, units: np.ndarray,
                  step: Decimal, reason: str, ref: str) -> BatchPosting:
        batch = cls(seq, time_ms, counterparty, coin, None, None, reason, ref, None)
        batch._slot_accounts, batch._slots, batch._units, batch._step = (
            slot_accounts, slots, units, step)
        return batch

    def _accounts_of_legs(self) -> list[_SlotAccount]:
        assert self._slots is not None
        accounts = self._slot_accounts
        return [accounts[s] for s in self._slots.tolist()]

    @property
    def names(self) -> tuple[str, ...]:
        """Every leg's ledger account, in order."""
        if self._names is None:
            self._names = tuple(acc.name for acc in self._accounts_of_legs())
        return self._names

    @property
    def amounts(self) -> tuple[Decimal, ...]:
        """Every leg's signed amount (positive: the counterparty paid it), in order."""
        if self._amounts is None:
            assert self._units is not None
            step = self._step
            of = {u: (Decimal(u) * step).quantize(step) for u in set(self._units.tolist())}
            self._amounts = tuple(of[u] for u in self._units.tolist())
        return self._amounts

    @property
    def owners(self) -> tuple[str | None, ...]:
        """The user each leg's account belongs to (None: the venue)."""
        if self._owners is None:
            self._owners = tuple(acc.owner for acc in self._accounts_of_legs())
        return self._owners

    @property
    def source(self) -> str:
        """The counterparty (what paid the accounts, net of what they paid it)."""
        return self.counterparty

    @property
    def destination(self) -> str:
        """``*``: many accounts (see ``names`` and ``legs``)."""
        return "*"

    @property
    def amount(self) -> Decimal:
        """What the counterparty paid, net (negative: it received)."""
        return sum(self.amounts, Decimal(0))

    def __repr__(self) -> str:
        return (f"BatchPosting(seq={self.seq}, time_ms={self.time_ms}, "
                f"counterparty={self.counterparty!r}, coin={self.coin!r}, "
                f"reason={self.reason!r}, ref={self.ref!r})")

    def leg(self, i: int) -> Posting:
        """The movement of ``names[i]`` as an ordinary posting (same seq, time and ref)."""
        amount, name = self.amounts[i], self.names[i]
        if amount > 0:
            return Posting(self.seq, self.time_ms, self.counterparty, name, self.coin, amount,
                           self.reason, self.ref)
        return Posting(self.seq, self.time_ms, name, self.counterparty, self.coin, -amount,
                       self.reason, self.ref)

    def legs(self) -> list[Posting]:
        """Every account's movement, in order."""
        return [self.leg(i) for i in range(len(self.names))]

    def index_of(self, name: str) -> int:
        """The leg of account ``name`` (an index built on first use: history reads only)."""
        if self._leg_of is None:
            self._leg_of = {n: i for i, n in enumerate(self.names)}
        return self._leg_of[name]


# An account's history holds its postings, and the batch postings it has a leg in (the
# counterparty's history: (batch, -1), every leg); ``Ledger.history`` turns both into postings.
# A leg's index is found by name when a history is read (rare), so a settlement appends the
# batch itself to each account's history instead of allocating an (batch, i) pair per account.
_HistoryEntry = Posting | BatchPosting | tuple[BatchPosting, int]


def _postings_of(entry: _HistoryEntry, name: str) -> list[Posting]:
    if isinstance(entry, Posting):
        return [entry]
    if isinstance(entry, BatchPosting):
        return [entry.leg(entry.index_of(name))]
    return entry[0].legs()


class _Account:
    """Mutable state of one ledger account (internal; postings are the public record)."""

    __slots__ = ("balance", "coin", "history", "name", "owner", "protected", "touched")

    def __init__(self, name: str, coin: str, owner: str | None, protected: bool, zero: Decimal):
        self.touched = False  # only a slotted account ever has pending steps (_SlotAccount)
        self.name = name
        self.coin = coin
        self.owner = owner
        self.protected = protected
        self.balance = zero
        self.history: list[_HistoryEntry] = []


class _SlotAccount(_Account):
    """An account with a slot in the ledger's arrays (``Ledger.slots``): batches posted as
    integer steps (``Ledger.post_units``) add to ``pending[slot]`` only; reading ``balance``
    folds the pending steps into the exact Decimal first, exactly as adding each batch's
    amount would have (same value, same exponent). Writing ``balance`` (every Decimal
    posting) keeps ``base_units[slot]`` in step, so the arrays always hold the balance."""

    __slots__ = ("_base", "_ledger", "slot")

    def __init__(self, acc: _Account, ledger: Ledger, slot: int) -> None:
        self.name, self.coin, self.owner = acc.name, acc.coin, acc.owner
        self.protected, self.history = acc.protected, acc.history
        self._ledger, self.slot, self.touched = ledger, slot, False
        self.balance = acc.balance

    @property
    def balance(self) -> Decimal:
        if self.touched:  # batches of steps since the last read
            self._ledger._fold(self)
        return self._base

    @balance.setter
    def balance(self, value: Decimal) -> None:  # the value is the whole balance: no pending
        ledger, slot = self._ledger, self.slot
        self._base = value
        if self.touched:
            ledger._pending[slot] = 0
            self.touched = False
        units = int(_EXACT.divide(value, ledger.step))
        if -_UNITS_LIMIT <= units <= _UNITS_LIMIT:
            ledger._base_units[slot] = units
            ledger._too_big.discard(slot)
        else:  # too big for int64: the array path refuses the account, Decimal postings go on
            ledger._base_units[slot] = 0
            ledger._too_big.add(slot)
        ledger._mark_exponent(slot, value)


def _check_tags(reason: object, ref: object, time_ms: object) -> None:
    """A posting's reason, reference and time, as every posting kind needs them."""
    if not isinstance(reason, str) or not reason:
        raise LedgerError(f"a posting needs a non-empty reason, got {reason!r}")
    if not isinstance(ref, str):
        raise LedgerError(f"ref must be a string, got {ref!r}")
    if type(time_ms) is not int or time_ms < 0:
        raise LedgerError(f"time_ms must be a non-negative int, got {time_ms!r}")


class Ledger:
    """Balances of named accounts in a fixed set of coins, changed only by postings."""

    def __init__(self, coins: Iterable[str], step: Decimal = SATOSHI):
        """A ledger for ``coins`` whose amounts are multiples of ``step`` (e.g. 1e-8)."""
        self.coins = frozenset(_part(c, _COIN, "coin") for c in coins)
        if not self.coins:
            raise LedgerError("a ledger needs at least one coin")
        if not isinstance(step, Decimal) or not step.is_finite() or step <= 0:
            raise LedgerError(f"coin step must be a positive Decimal, got {step!r}")
        self.step = step
        self._zero = Decimal(0).quantize(step)
        self._accounts: dict[str, _Account] = {}
        self._owned: dict[str, list[str]] = {}
        self._postings: list[Posting | BatchPosting] = []
        self._created: list[str] = []  # creation order, so a rollback can forget new accounts
        # The array side (``slots``, ``units_at``, ``post_units``): per slot, the balance in
        # steps as base + pending (pending: batches not yet folded into the Decimal balance).
        self._slot_accounts: list[_SlotAccount] = []
        self._coin_code = {c: i for i, c in enumerate(sorted(self.coins))}
        self._base_units = np.zeros(0, dtype=np.int64)
        self._pending = np.zeros(0, dtype=np.int64)
        # Rare slots, as sets: balances too big for int64, and Decimal balances with more
        # places than the step (which the steps alone would not reproduce).
        self._too_big: set[int] = set()
        self._odd_exponent: set[int] = set()
        exponent = step.as_tuple().exponent
        assert isinstance(exponent, int)  # step is finite (checked above)
        self._step_exponent = exponent
        self._alive = np.zeros(0, dtype=bool)  # False once a rollback forgot the account
        self._slot_coin = np.zeros(0, dtype=np.int64)
        self._slot_protected = np.zeros(0, dtype=bool)
        # Bumped when a slot dies (a rollback forgot its account): slots held by callers from
        # before may name a dead slot, so they ask ``slots`` again.
        self.slot_epoch = 0

    @classmethod
    def from_profile(cls, profile: Profile) -> Ledger:
        """A ledger for the profile's margin coins with its ``rounding.coin_step``."""
        coins = {i.margin_asset for i in profile.instruments} | set(profile.insurance_fund_start)
        return cls(sorted(coins), profile.rounding.coin_step)

    def quantize(self, amount: Decimal, rule: RoundingRule) -> Decimal:
        """``amount`` rounded to the ledger's step with ``rule`` (the caller picks the rule)."""
        return quantize(amount, self.step, rule)

    # -- accounts --------------------------------------------------------------------------

    def _parse(self, name: object) -> _Account | None:
        """A new, unstored account for ``name``; None for a well-formed isolated name not yet
        opened (its coin is unknown); LedgerError for anything malformed."""
        if not isinstance(name, str):
            raise LedgerError(f"a ledger account name must be a string, got {name!r}")
        parts = name.split(":")
        kind = parts[0]
        if kind == "isolated" and len(parts) == 3:
            isolated_account(parts[1], parts[2])  # checks both parts
            return None
        owner: str | None
        if kind in _COIN_NAMED and len(parts) == 2:
            coin, owner = parts[1], None
        elif kind in ("wallet", "spot") and len(parts) == 3:
            coin, owner = parts[2], _part(parts[1], _ID, "account id")
        else:
            raise LedgerError(f"malformed ledger account name {name!r} (see docs/design.md)")
        return _Account(name, self._check_coin(coin), owner, kind in _PROTECTED, self._zero)

    def _resolve(self, name: object) -> _Account:
        """The account called ``name``, stored or new (unstored), or LedgerError."""
        acc = self._accounts.get(name) if isinstance(name, str) else None
        acc = acc or self._parse(name)
        if acc is None:
            raise LedgerError(
                f"isolated account {name!r} is not open; call open_isolated(account_id, symbol, "
                "coin) first so the ledger knows its coin"
            )
        return acc

    def _known(self, name: str) -> _Account | None:
        """The stored account ``name``; None if well-formed but never used (LedgerError if not)."""
        acc = self._accounts.get(name)
        if acc is None:
            self._parse(name)
        return acc

    def _check_coin(self, coin: object) -> str:
        if not isinstance(coin, str) or coin not in self.coins:
            known = ", ".join(sorted(self.coins))
            raise LedgerError(f"unknown coin {coin!r}; this ledger holds {known}")
        return coin

    def _store(self, acc: _Account) -> None:
        self._accounts[acc.name] = acc
        self._created.append(acc.name)
        if acc.owner is not None:
            self._owned.setdefault(acc.owner, []).append(acc.name)

    def open_isolated(self, account_id: str, symbol: str, coin: str) -> str:
        """Open (idempotently) the isolated margin account of ``symbol`` in ``coin``; its name."""
        name = isolated_account(account_id, symbol)
        self._check_coin(coin)
        acc = self._accounts.get(name)
        if acc is None:
            self._store(_Account(name, coin, account_id, True, self._zero))
        elif acc.coin != coin:
            raise LedgerError(f"{name} is already open in {acc.coin}; it cannot hold {coin}")
        return name

    # -- postings --------------------------------------------------------------------------

    def post(
        self,
        source: str,
        destination: str,
        coin: str,
        amount: Decimal,
        reason: str,
        ref: str,
        time_ms: int,
    ) -> Posting:
        """Move ``amount`` of ``coin`` from ``source`` to ``destination``, all or nothing."""
        # The dict lookup is the hot path (millions of calls); parsing happens once per name.
        src = self._accounts.get(source) or self._resolve(source)
        dst = self._accounts.get(destination) or self._resolve(destination)
        if src.name == dst.name:
            raise LedgerError(f"a posting needs two different accounts, got {source!r} twice")
        if src.coin != coin or dst.coin != coin:
            wrong = src if src.coin != coin else dst
            raise LedgerError(f"{wrong.name} holds {wrong.coin}; it cannot take a {coin!r} posting")
        if type(amount) is not Decimal:
            raise LedgerError(f"amount must be a Decimal, got {type(amount).__name__} {amount!r}")
        if not amount.is_finite() or amount <= 0 or amount > MAX_ABS_AMOUNT:
            raise LedgerError(f"amount must be positive and finite, got {amount!r}")
        if _EXACT.remainder(amount, self.step):
            raise LedgerError(
                f"amount {amount} is not a multiple of the coin step {self.step}; quantise it "
                "with the profile's rule first (Ledger.quantize)"
            )
        _check_tags(reason, ref, time_ms)
        new_src = _EXACT.subtract(src.balance, amount)
        if src.protected and new_src < 0:
            raise LedgerError(
                f"{src.name} would go negative: balance {src.balance}, posting {amount} {coin} "
                f"({reason})"
            )
        new_dst = _EXACT.add(dst.balance, amount)
        if src.name not in self._accounts:
            self._store(src)
        if dst.name not in self._accounts:
            self._store(dst)
        posting = Posting(
            len(self._postings) + 1,
            time_ms,
            src.name,
            dst.name,
            src.coin,
            amount.quantize(self.step, context=_EXACT),
            reason,
            ref,
        )
        src.balance = new_src
        dst.balance = new_dst
        self._postings.append(posting)
        src.history.append(posting)
        dst.history.append(posting)
        return posting

    def post_batch(self, counterparty: str, coin: str, names: Sequence[str],
                   amounts: Sequence[Decimal], reason: str, ref: str,
                   time_ms: int) -> BatchPosting:
        """Pay ``amounts[i]`` (signed, non-zero) from ``counterparty`` to ``names[i]``, as one
        posting, all or nothing. Each name at most once; none may be the counterparty."""
        cp = self._accounts.get(counterparty) or self._resolve(counterparty)
        if cp.coin != coin:
            raise LedgerError(f"{cp.name} holds {cp.coin}; it cannot take a {coin!r} posting")
        if len(names) != len(amounts):
            raise LedgerError(f"a batch needs one amount per account: {len(names)} accounts, "
                              f"{len(amounts)} amounts")
        _check_tags(reason, ref, time_ms)
        if len(set(names)) != len(names) or counterparty in names:
            raise LedgerError("a batch posting names each account once, never the counterparty")
        for amount in set(amounts):  # few distinct amounts: positions share sizes
            if type(amount) is not Decimal:
                raise LedgerError(f"amount must be a Decimal, got {type(amount).__name__} "
                                  f"{amount!r}")
            if (not amount.is_finite() or amount == 0 or abs(amount) > MAX_ABS_AMOUNT
                    or _EXACT.remainder(amount, self.step)):
                raise LedgerError(f"batch amount {amount!r} must be non-zero, finite and a "
                                  f"multiple of the coin step {self.step}")
        get, add = self._accounts.get, _EXACT.add
        # One pass per account, the hot loop of a settlement: the coin and the protection are
        # checked per account, the balance added exactly (trapping context), nothing else.
        found = [get(name) for name in names]
        fresh: list[_Account] = []  # named for the first time: stored once all is checked
        if None in found:
            for k, name in enumerate(names):
                if found[k] is None:
                    found[k] = self._resolve(name)
                    fresh.append(found[k])  # type: ignore[arg-type]
        checked: list[_Account] = found  # type: ignore[assignment]
        new = [add(acc.balance, amount) for acc, amount in zip(checked, amounts, strict=True)]
        for acc, balance, amount in zip(checked, new, amounts, strict=True):
            if acc.coin != coin:
                raise LedgerError(f"{acc.name} holds {acc.coin}; it cannot take a {coin!r} "
                                  "posting")
            if balance < 0 and acc.protected:
                raise LedgerError(f"{acc.name} would go negative: balance {acc.balance}, "
                                  f"batch posting {amount} {coin} ({reason})")
        net = _EXACT.subtract(self._zero, sum(amounts, self._zero))
        if cp.protected and _EXACT.add(cp.balance, net) < 0:
            raise LedgerError(f"{cp.name} would go negative: balance {cp.balance}, batch "
                              f"posting {net} {coin} ({reason})")
        batch = BatchPosting(len(self._postings) + 1, time_ms, cp.name, coin, tuple(names),
                             tuple(amounts), reason, ref, tuple([acc.owner for acc in checked]))
        for acc in [cp] if cp.name not in self._accounts else []:
            self._store(acc)
        for acc in fresh:
            self._store(acc)
        for acc, balance in zip(checked, new, strict=True):
            acc.balance = balance
            acc.history.append(batch)
        cp.balance = _EXACT.add(cp.balance, net)
        cp.history.append((batch, -1))
        self._postings.append(batch)
        return batch

    # -- the array side: slots and batches of integer steps ----------------------------------

    def slots(self, names: Sequence[str]) -> np.ndarray:
        """The array slot of each ledger account in ``names`` (given on first use, kept for
        good), -1 for a well-formed name nothing was ever posted to. Slots are what
        ``units_at`` and ``post_units`` take; ask again when ``slot_epoch`` changes."""
        out = np.empty(len(names), dtype=np.int64)
        for i, name in enumerate(names):
            acc = self._known(name)
            if acc is None:
                out[i] = -1
            elif isinstance(acc, _SlotAccount):
                out[i] = acc.slot
            else:
                out[i] = self._give_slot(acc)
        return out

    def _give_slot(self, acc: _Account) -> int:
        slot = len(self._slot_accounts)
        if slot == len(self._base_units):  # grow every array by doubling
            size = max(64, 2 * slot)
            for attr in ("_base_units", "_pending", "_alive",
                         "_slot_coin", "_slot_protected"):
                old = getattr(self, attr)
                new = np.zeros(size, dtype=old.dtype)
                new[:slot] = old
                setattr(self, attr, new)
        self._alive[slot] = True
        self._slot_coin[slot] = self._coin_code[acc.coin]
        self._slot_protected[slot] = acc.protected
        slotted = _SlotAccount(acc, self, slot)  # its balance setter fills the arrays
        self._slot_accounts.append(slotted)
        self._accounts[acc.name] = slotted  # same key: the account order is unchanged
        return slot

    def _check_slots(self, slots: np.ndarray) -> np.ndarray:
        slots = np.asarray(slots)
        if slots.dtype.kind not in "iu" or slots.ndim != 1:
            raise LedgerError(f"slots must be a 1-d integer array, got {slots.dtype} "
                              f"{slots.shape}")
        if len(slots) and (slots.min() < 0 or slots.max() >= len(self._slot_accounts)
                           or (self.slot_epoch and not self._alive[slots].all())):
            raise LedgerError("unknown ledger slot: ask Ledger.slots for the names again")
        return slots

    def units_at(self, slots: np.ndarray) -> np.ndarray:
        """Balances of the slotted accounts in coin steps (int64): what ``balance`` returns,
        divided by the step. A slot whose balance is too big for int64 reads 0; see
        ``too_big``."""
        slots = self._check_slots(slots)
        return self._base_units[slots] + self._pending[slots]

    def too_big(self, slots: np.ndarray) -> np.ndarray:
        """True where a slotted account's balance does not fit the arrays (``post_units``
        refuses it; post it with ``post``/``post_batch``)."""
        return self._in(self._check_slots(slots), self._too_big)

    @staticmethod
    def _in(slots: np.ndarray, rare: set[int]) -> np.ndarray:
        if not rare:
            return np.zeros(len(slots), dtype=bool)
        return np.isin(slots, np.fromiter(rare, dtype=np.int64, count=len(rare)))

    def _mark_exponent(self, slot: int, balance: Decimal) -> None:
        if balance.as_tuple().exponent != self._step_exponent:
            self._odd_exponent.add(slot)
        else:
            self._odd_exponent.discard(slot)

    def _fold(self, acc: _SlotAccount) -> None:
        """Add ``acc``'s pending steps to its Decimal balance (the batches' sum, exactly).
        An integer times the step has the step's exponent, and a balance never has a larger
        one (it started from the zero on the step), so the sum keeps the balance's exponent,
        as adding each batch's amount would, and ``_odd_exponent`` stays right."""
        slot, pending = acc.slot, self._pending
        units = int(pending[slot])
        pending[slot] = 0
        acc._base = _EXACT.add(acc._base, _EXACT.multiply(Decimal(units), self.step))
        self._base_units[slot] += units
        acc.touched = False

    def _fold_many(self, accounts: list[_SlotAccount]) -> None:
        """``_fold`` for many accounts: the array reads and writes done once for all."""
        slots = np.fromiter((acc.slot for acc in accounts), dtype=np.int64,
                            count=len(accounts))
        units = self._pending[slots]
        self._pending[slots] = 0
        self._base_units[slots] += units
        add, multiply, step = _EXACT.add, _EXACT.multiply, self.step
        for acc, u in zip(accounts, units.tolist(), strict=True):
            acc._base = add(acc._base, multiply(Decimal(u), step))
            acc.touched = False

    def units_exact(self, slots: np.ndarray) -> np.ndarray:
        """True where ``units_at`` · step, quantised to the step, IS the Decimal ``balance``
        (same exponent too): False for a balance too big for the arrays, or one whose Decimal
        carries more or fewer places than the step (a deposit of "2" never touched since)."""
        slots = self._check_slots(slots)
        return ~(self._in(slots, self._too_big) | self._in(slots, self._odd_exponent))

    def post_units(self, counterparty: str, coin: str, slots: np.ndarray, units: np.ndarray,
                   reason: str, ref: str, time_ms: int) -> BatchPosting:
        """``post_batch`` for slotted accounts with amounts in coin steps: pay ``units[i]``
        steps (signed, non-zero) from ``counterparty`` to the account of ``slots[i]``, as one
        posting, all or nothing. The Decimal balances catch up when read."""
        cp = self._accounts.get(counterparty) or self._resolve(counterparty)
        if cp.coin != coin:
            raise LedgerError(f"{cp.name} holds {cp.coin}; it cannot take a {coin!r} posting")
        slots, units = self._check_slots(slots), np.asarray(units)
        if units.dtype != np.int64 or units.shape != slots.shape:
            raise LedgerError(f"a batch needs one int64 step count per slot: {slots.shape} "
                              f"slots, {units.dtype} {units.shape} units")
        _check_tags(reason, ref, time_ms)
        if (len(slots) > 1 and len(np.unique(slots)) != len(slots)) or (
                isinstance(cp, _SlotAccount) and bool((slots == cp.slot).any())):
            raise LedgerError("a batch posting names each account once, never the counterparty")
        if not len(slots):
            raise LedgerError("a batch posting needs at least one account")
        limit = _UNITS_LIMIT // max(1, len(slots))  # so that the net fits in int64 too
        if not units.all() or int(np.abs(units).max()) > limit:
            raise LedgerError(f"batch step counts must be non-zero and within ±{limit}")
        if (self._slot_coin[slots] != self._coin_code[coin]).any():
            wrong = self._slot_accounts[int(slots[self._slot_coin[slots]
                                                 != self._coin_code[coin]][0])]
            raise LedgerError(f"{wrong.name} holds {wrong.coin}; it cannot take a {coin!r} "
                              "posting")
        if self._in(slots, self._too_big).any():
            raise LedgerError("a balance in the batch is too big for integer steps; post it "
                              "with post_batch")
        after = self._base_units[slots] + self._pending[slots] + units
        short = (after < 0) & self._slot_protected[slots]
        if short.any():
            k = int(np.flatnonzero(short)[0])
            acc = self._slot_accounts[int(slots[k])]
            raise LedgerError(f"{acc.name} would go negative: balance {acc.balance}, batch "
                              f"posting {int(units[k])} steps of {self.step} {coin} ({reason})")
        net = _EXACT.multiply(Decimal(-int(units.sum())), self.step).quantize(
            self.step, context=_EXACT)
        cp_after = _EXACT.add(cp.balance, net)
        if cp.protected and cp_after < 0:
            raise LedgerError(f"{cp.name} would go negative: balance {cp.balance}, batch "
                              f"posting {net} {coin} ({reason})")
        slots, units = slots.copy(), units.copy()  # the record keeps what was posted
        batch = BatchPosting._of_units(len(self._postings) + 1, time_ms, cp.name, coin,
                                       self._slot_accounts, slots, units, self.step, reason, ref)
        if cp.name not in self._accounts:
            self._store(cp)
        self._pending[slots] += units
        for leg in batch._accounts_of_legs():
            leg.history.append(batch)
            leg.touched = True
        cp.balance = cp_after
        cp.history.append((batch, -1))
        self._postings.append(batch)
        return batch

    def deposit(
        self, account_id: str, coin: str, amount: Decimal, ref: str, time_ms: int
    ) -> Posting:
        """Credit a user's wallet from the outside world."""
        wallet = wallet_account(account_id, coin)
        return self.post(external_account(coin), wallet, coin, amount, "deposit", ref, time_ms)

    def withdraw(
        self, account_id: str, coin: str, amount: Decimal, ref: str, time_ms: int
    ) -> Posting:
        """Pay a user's wallet out to the outside world (never below zero)."""
        wallet = wallet_account(account_id, coin)
        return self.post(wallet, external_account(coin), coin, amount, "withdrawal", ref, time_ms)

    @contextmanager
    def transaction(self) -> Iterator[Ledger]:
        """Group postings: if the block raises, every posting made inside it is undone.

        Transactions nest; an inner failure that the outer block catches undoes only the inner
        postings. Undoing replays the postings backwards, so it costs only what was posted.
        """
        mark_postings, mark_created = len(self._postings), len(self._created)
        try:
            yield self
        except BaseException:
            self._rollback(mark_postings, mark_created)
            raise

    def post_many(
        self, items: Iterable[tuple[str, str, str, Decimal, str]], ref: str, time_ms: int
    ) -> list[Posting]:
        """Apply ``(source, destination, coin, amount, reason)`` postings, all or none."""
        with self.transaction():
            return [self.post(s, d, c, a, r, ref, time_ms) for s, d, c, a, r in items]

    def _rollback(self, mark_postings: int, mark_created: int) -> None:
        while len(self._postings) > mark_postings:
            p = self._postings.pop()
            if isinstance(p, BatchPosting) and p._slots is not None:  # posted as steps
                assert p._units is not None
                self._pending[p._slots] -= p._units
                for leg in p._accounts_of_legs():
                    leg.history.pop()
                    leg.touched = True  # folds as a Decimal undo: add, then subtract
                cp = self._accounts[p.counterparty]
                cp.balance = _EXACT.add(cp.balance, _EXACT.multiply(
                    Decimal(int(p._units.sum())), self.step))
                cp.history.pop()
                continue
            if isinstance(p, BatchPosting):
                for name, amount in zip(p.names, p.amounts, strict=True):
                    acc = self._accounts[name]
                    acc.balance = _EXACT.subtract(acc.balance, amount)
                    acc.history.pop()
                cp = self._accounts[p.counterparty]
                cp.balance = _EXACT.add(cp.balance, sum(p.amounts, self._zero))
                cp.history.pop()
                continue
            src, dst = self._accounts[p.source], self._accounts[p.destination]
            src.balance = _EXACT.add(src.balance, p.amount)
            dst.balance = _EXACT.subtract(dst.balance, p.amount)
            src.history.pop()
            dst.history.pop()
        while len(self._created) > mark_created:
            acc = self._accounts.pop(self._created.pop())
            if isinstance(acc, _SlotAccount):
                self._alive[acc.slot] = False
                self.slot_epoch += 1
            if acc.owner is not None:
                owned = self._owned[acc.owner]
                owned.pop()  # created last, so listed last
                if not owned:
                    del self._owned[acc.owner]

    # -- queries ---------------------------------------------------------------------------

    @property
    def postings(self) -> Sequence[Posting | BatchPosting]:
        """Every posting, oldest first (``seq`` n at index n − 1); a live view, do not mutate.
        A ``BatchPosting`` stands for many accounts' legs (``legs()``)."""
        return self._postings

    def history(self, name: str) -> tuple[Posting, ...]:
        """The postings touching ledger account ``name``, oldest first."""
        acc = self._known(name)
        if acc is None:
            return ()
        return tuple(p for entry in acc.history for p in _postings_of(entry, name))

    def history_of(self, account_id: str) -> tuple[Posting, ...]:
        """The postings touching any ledger account of user ``account_id``, oldest first."""
        seen = {(p.seq, p.source, p.destination): p for name in self._owned.get(account_id, ())
                for p in self.history(name)}
        return tuple(seen[k] for k in sorted(seen, key=lambda k: k[0]))

    @property
    def account_count(self) -> int:
        """How many ledger accounts exist (grows as names are first posted to; a rollback
        forgets the newest)."""
        return len(self._accounts)

    def coin_of(self, name: str) -> str:
        """The coin ledger account ``name`` holds (LedgerError for an unopened isolated one)."""
        return self._resolve(name).coin

    def balance(self, name: str) -> Decimal:
        """Balance of ledger account ``name`` (zero if nothing was ever posted to it)."""
        acc = self._known(name)
        return acc.balance if acc else self._zero

    def peek_balances(self, names: Iterable[str]) -> list[Decimal]:
        """Balances of well-formed names the engine built (zero if never used), unchecked: the
        crowd-scale path (``balance`` validates each name, which costs more than the read)."""
        get, zero = self._accounts.get, self._zero
        accounts = [get(n) for n in names]
        touched = [acc for acc in accounts if acc is not None and acc.touched]
        if len(touched) > 8:  # a crowd's balances after a settlement: fold them together
            self._fold_many(list(dict.fromkeys(touched)))  # type: ignore[arg-type]  # each once
        return [acc.balance if acc is not None else zero for acc in accounts]

    def balances(self, prefix: str = "") -> dict[str, Decimal]:
        """Balances of every account whose name starts with ``prefix``, sorted by name."""
        return {
            n: self._accounts[n].balance for n in sorted(self._accounts) if n.startswith(prefix)
        }

    def balances_of(self, account_id: str) -> dict[str, Decimal]:
        """Balances of user ``account_id``'s wallets and isolated margins, sorted by name."""
        return {n: self._accounts[n].balance for n in sorted(self._owned.get(account_id, ()))}

    def total(self, coin: str) -> Decimal:
        """Sum of ``coin`` over every non-external account (recomputed, not cached)."""
        self._check_coin(coin)
        ext = external_account(coin)
        total = self._zero
        for acc in self._accounts.values():
            if acc.coin == coin and acc.name != ext:
                total = _EXACT.add(total, acc.balance)
        return total

    def deposits(self, coin: str) -> Decimal:
        """Net deposits of ``coin``: minus the external account's balance."""
        return _EXACT.subtract(self._zero, self.balance(external_account(coin)))

    def check_conserved(self, replay: bool = False) -> None:
        """Raise LedgerError unless total == deposits for every coin (and, with ``replay``,
        unless replaying every posting from zero reproduces every balance)."""
        for coin in sorted(self.coins):
            total, deposits = self.total(coin), self.deposits(coin)
            if total != deposits:
                raise LedgerError(
                    f"{coin} not conserved: accounts hold {total}, deposits {deposits}"
                )
        if replay:
            rebuilt: dict[str, Decimal] = {}
            for p in (leg for entry in self._postings for leg in (
                    entry.legs() if isinstance(entry, BatchPosting) else (entry,))):
                rebuilt[p.source] = _EXACT.subtract(rebuilt.get(p.source, self._zero), p.amount)
                rebuilt[p.destination] = _EXACT.add(
                    rebuilt.get(p.destination, self._zero), p.amount
                )
            for name, acc in self._accounts.items():
                if rebuilt.get(name, self._zero) != acc.balance:
                    raise LedgerError(
                        f"{name} holds {acc.balance} but its postings sum to "
                        f"{rebuilt.get(name, self._zero)}"
                    )
