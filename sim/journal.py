"""The event journal: every state change of the venue, in order, with sim time and a payload.

Events are numbered from 1 without gaps and their times never go backwards. Payloads are made
JSON-able and read-only when appended (Decimal → fixed-point text by perpsim/numbers.py: exact
to the satoshi, never an exponent, a quotient's tail rounded to 8 decimals; tuples → lists on
output, mappings → read-only mappings with string keys); floats are refused because money never
travels as a float here. The canonical JSON line of an event has sorted keys and no spaces and
is pure ASCII, so the same run gives the same bytes and the same ``digest()``.

Subscribers are called synchronously, in subscription order, right after an event is stored.
A subscriber that raises is unsubscribed and its error kept in ``subscriber_errors``; the
event stays appended, the other subscribers still receive it, and ``append`` returns normally:
a broken WebSocket pump must never interrupt (and so corrupt) the engine mid-change.
Subscribers must not append to the journal themselves (that would deliver events out of order).
"""

from __future__ import annotations

import decimal
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Protocol, cast

from perpsim.numbers import SHOWN_PLACES, readable
from perpsim.sim.errors import InvalidInput, InvalidState

_TYPE = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*")

Subscriber = Callable[["Event"], object]

# Event type names already found well-formed: the pattern is matched once per name, not once
# per event (bounded: a caller inventing names cannot grow it without limit).
_CHECKED_TYPES: set[str] = set()
_CHECKED_TYPES_MAX = 4096


def is_event_type(name: str) -> bool:
    """True for a well-formed event type name: dotted lower-case words (``funding.payment``)."""
    return bool(_TYPE.fullmatch(name))


def _freeze(value: object, where: str) -> object:
    """A read-only, JSON-able copy of ``value``; InvalidInput naming the offending path.

    Every event passes its payload through here, so the common shapes (exact str, int, bool,
    None, Decimal, dict, list, tuple) take :func:`_freeze_known`, which builds no path text;
    anything else (a subclass, another Mapping, a refused value) makes it give up, and the
    whole value goes through :func:`_freeze_checked`, the reference, which freezes it the
    same way or raises naming the offending path (tests/test_journal_freeze.py)."""
    try:
        return _freeze_known(value)
    except _Unusual:
        return _freeze_checked(value, where)


class _Unusual(Exception):
    """Raised by the fast path on anything it does not handle itself."""


# Rounding a long tail to SHOWN_PLACES: quantize is exact whatever the precision, as long as
# the rounded coefficient fits it; this context's precision holds every value it is used for.
_TEXT_CONTEXT = decimal.Context(prec=60, rounding=decimal.ROUND_HALF_EVEN,
                                traps=[decimal.InvalidOperation])
_GRID = Decimal(1).scaleb(-SHOWN_PLACES)
# The texts of recent values with a tail longer than the grid, by value (bounded).
_LONG_TEXTS: dict[Decimal, str] = {}
_LONG_TEXTS_MAX = 4096


def _decimal_text(value: Decimal) -> str:
    """``readable(value)`` for a finite Decimal, without its tuple of digits or a fresh local
    context. On a grid of at most 8 decimals (ledger amounts, prices) ``format(value, "f")``
    writes exactly −exponent decimals (none for exponent ≥ 0), so the count after the point
    is the test ``readable`` makes on the exponent; a longer tail (a quotient) is rounded
    half-even to 8 places and stripped of its zeros as ``readable`` does, in a context whose
    precision holds the result (``readable`` widens its own to the same end)."""
    # str() writes the same plain text as format "f" whenever it writes no exponent (an
    # exponent ≤ 0 and at least 6 leading zeros at most: every amount and price), in a third
    # of the time; the rest (1E+2, 1E-8) goes through format.
    text = str(value)
    if "E" in text:
        text = format(value, "f")
    point = text.find(".")
    if point < 0 or len(text) - point - 1 <= SHOWN_PLACES:
        return text
    # A long tail's text depends on its value alone (rounded to the grid, zeros stripped, a
    # rounded zero unsigned), so equal values share it: one liquidation writes its mark and
    # its liquidation and bankruptcy prices into several events.
    known = _LONG_TEXTS.get(value)
    if known is not None:
        return known
    if value.adjusted() + SHOWN_PLACES + 2 > _TEXT_CONTEXT.prec:
        return readable(value)
    text = format(value.quantize(_GRID, context=_TEXT_CONTEXT), "f").rstrip("0").rstrip(".")
    if text == "-0":
        text = "0"
    if len(_LONG_TEXTS) >= _LONG_TEXTS_MAX:
        _LONG_TEXTS.clear()
    _LONG_TEXTS[value] = text
    return text


def _freeze_known(value: object) -> object:
    # Scalars are tested inline in the containers' loops: a call per item costs more than the
    # test. The order of the checks does not matter: the exact types are disjoint.
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is Decimal:
        if not value.is_finite():  # type: ignore[attr-defined]
            raise _Unusual
        return _decimal_text(value)  # type: ignore[arg-type]
    if kind is dict or kind is MappingProxyType:
        out: dict[str, object] = {}
        # No typing.cast in this loop: a call (and a generic alias built) per value.
        for key, item in value.items():  # type: ignore[attr-defined]
            if type(key) is not str:
                raise _Unusual
            k = type(item)
            if k is str or k is int or k is bool or item is None:
                out[key] = item
            elif k is Decimal and item.is_finite():
                out[key] = _decimal_text(item)
            else:
                out[key] = _freeze_known(item)
        return MappingProxyType(out)
    if kind is list or kind is tuple:
        return tuple([_freeze_known(item) for item in value])  # type: ignore[attr-defined]
    raise _Unusual


def _freeze_own(payload: dict[str, object]) -> object:
    """``_freeze(payload, "payload")`` of a dict no one else holds (``append``'s keyword
    arguments): its values are replaced by their frozen forms in place and the dict itself is
    wrapped, instead of being copied item by item. Its keys are str (Python's rule for keyword
    arguments) and stay the same objects, as the reference keeps them. On anything unusual the
    reference freezes it, the values replaced so far being exact str it keeps as they are
    (``_decimal_text`` is ``readable``'s text): the same result, or the same error."""
    try:
        for key, item in payload.items():
            k = type(item)
            if k is str or k is int or k is bool or item is None:
                continue
            if k is Decimal and item.is_finite():  # type: ignore[attr-defined]
                payload[key] = _decimal_text(item)  # type: ignore[arg-type]
            else:
                payload[key] = _freeze_known(item)
        return MappingProxyType(payload)
    except _Unusual:
        return _freeze_checked(payload, "payload")


def _freeze_checked(value: object, where: str) -> object:
    """A read-only, JSON-able copy of ``value``; InvalidInput naming the offending path."""
    # Exact-type tests first (every event passes a dozen values through here, and isinstance
    # against an ABC such as Mapping costs more than the rest); subclasses take isinstance.
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None \
            or isinstance(value, str | bool | int):
        # bool is an int subclass; numpy integers are not ints, so they are refused below.
        return value
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise InvalidInput(f"{where} must be finite, got {value!r}")
        # Ledger amounts and prices are on a grid of at most 8 decimals and stay exact;
        # quotients (averages, liquidation prices) are written as a venue shows them.
        return readable(value)
    if kind is dict or isinstance(value, Mapping):
        out: dict[str, object] = {}
        for key, item in cast(Mapping[object, object], value).items():
            if not isinstance(key, str):
                raise InvalidInput(f"{where} has a non-string key {key!r}")
            out[key] = _freeze_checked(item, f"{where}.{key}")
        return MappingProxyType(out)
    if kind is tuple or kind is list or isinstance(value, list | tuple):
        return tuple(_freeze_checked(item, f"{where}[{i}]")
                     for i, item in enumerate(cast(list[object], value)))
    raise InvalidInput(
        f"{where} has type {type(value).__name__} ({value!r}); use str, int, bool, None, "
        "Decimal, or lists and mappings of them"
    )


def _plain(value: object) -> object:
    # json cannot serialise the read-only mappings _freeze makes; everything else it can.
    if isinstance(value, MappingProxyType):
        return dict(value)
    raise TypeError(f"not JSON-able: {value!r}")  # unreachable for frozen payloads


class Detail(Protocol):
    """Per-account rows one aggregated record stands for (e.g. a funding settlement's payments).

    A crowd-scale engine writes one record per settlement instead of one event per position;
    the rows stay queryable as the per-account events they replace (``expand``)."""

    def events(self, parent: Event, account_id: str | None = None) -> list[Event]:
        """The per-account events of ``parent`` (only ``account_id``'s if given), in order."""
        ...


@dataclass(slots=True, frozen=True)
class Event:
    """One journal entry: ``seq`` from 1, sim ``time_ms``, dotted ``type``, read-only payload.

    ``detail``: the per-account rows an aggregated record stands for (None for most events);
    the payload carries a digest of them, so the journal's digest covers them too."""

    seq: int
    time_ms: int
    type: str
    payload: Mapping[str, Any]
    detail: Detail | None = None

    def to_json(self) -> str:
        """The canonical JSON line (sorted keys, no spaces, ASCII, no trailing newline)."""
        record = {
            "payload": self.payload,
            "seq": self.seq,
            "time_ms": self.time_ms,
            "type": self.type,
        }
        return json.dumps(record, sort_keys=True, separators=(",", ":"), default=_plain)


def make_event(seq: int, time_ms: int, event_type: str, payload: Mapping[str, object]) -> Event:
    """An event with a frozen copy of ``payload`` (for the per-account views of a ``Detail``)."""
    return Event(seq, time_ms, event_type, cast(Mapping[str, Any], _freeze(payload, "payload")))


def expand(events: Iterable[Event], account_id: str | None = None) -> Iterator[Event]:
    """``events`` with each aggregated record preceded by the per-account events it stands for
    (only ``account_id``'s if given; they carry the record's seq), as they were journalled
    one by one before settlements were aggregated."""
    for event in events:
        if event.detail is not None:
            yield from event.detail.events(event, account_id)
        yield event


class Journal:
    """The append-only, ordered list of events of one engine run."""

    def __init__(self) -> None:
        """An empty journal; the first event gets seq 1."""
        self._events: list[Event] = []
        self._subscribers: list[Subscriber] = []
        self._delivering = False
        self.subscriber_errors: list[tuple[int, Subscriber, Exception]] = []

    def append(self, time_ms: int, event_type: str, /, **payload: object) -> Event:
        """Store an event at ``time_ms`` (not before the last one) and tell the subscribers."""
        # The keyword arguments are a dict of this call's own: frozen in place (_freeze_own).
        return self._append(time_ms, event_type, None, payload, True)

    def append_detailed(self, time_ms: int, event_type: str, detail: Detail | None,
                        payload: Mapping[str, object]) -> Event:
        """``append`` with the per-account rows an aggregated record stands for (``Detail``)."""
        return self._append(time_ms, event_type, detail, payload, False)

    def _append(self, time_ms: int, event_type: str, detail: Detail | None,
                payload: Mapping[str, object], own: bool) -> Event:
        """Check, freeze (in place when ``own``: a dict no one else holds), store, deliver."""
        if self._delivering:
            raise InvalidState("a journal subscriber must not append events")
        if type(time_ms) is not int or time_ms < 0:
            raise InvalidInput(f"time_ms must be a non-negative int, got {time_ms!r}")
        if type(event_type) is not str or event_type not in _CHECKED_TYPES:
            if not isinstance(event_type, str) or not _TYPE.fullmatch(event_type):
                raise InvalidInput(
                    f"event type must be dotted lowercase words like 'order.new', "
                    f"got {event_type!r}"
                )
            if type(event_type) is str and len(_CHECKED_TYPES) < _CHECKED_TYPES_MAX:
                _CHECKED_TYPES.add(event_type)  # an engine uses a few dozen types
        if self._events and time_ms < self._events[-1].time_ms:
            raise InvalidState(
                f"event {event_type!r} at time_ms {time_ms} is earlier than the last event "
                f"(seq {self._events[-1].seq} at {self._events[-1].time_ms}); events must be "
                "appended in time order"
            )
        frozen: Any = _freeze_own(payload) if own else _freeze(  # type: ignore[arg-type]
            payload, "payload")
        event = Event(len(self._events) + 1, time_ms, event_type, frozen, detail)
        self._events.append(event)
        if self._subscribers:
            self._deliver(event)
        return event

    def _deliver(self, event: Event) -> None:
        self._delivering = True
        try:
            for callback in tuple(self._subscribers):  # a callback may unsubscribe itself
                try:
                    callback(event)
                except Exception as exc:
                    self.unsubscribe(callback)
                    self.subscriber_errors.append((event.seq, callback, exc))
        finally:
            self._delivering = False

    def subscribe(self, callback: Subscriber) -> Subscriber:
        """Call ``callback(event)`` for every event appended from now on; returns ``callback``."""
        if not callable(callback):
            raise InvalidInput(f"a subscriber must be callable, got {callback!r}")
        self._subscribers.append(callback)
        return callback

    def unsubscribe(self, callback: Subscriber) -> bool:
        """Stop calling ``callback``; False if it was not subscribed."""
        try:
            self._subscribers.remove(callback)
        except ValueError:
            return False
        return True

    def __len__(self) -> int:
        """Number of events (also the seq of the last one)."""
        return len(self._events)

    def __iter__(self) -> Iterator[Event]:
        """Events in order, oldest first."""
        return iter(self._events)

    def __getitem__(self, seq: int) -> Event:
        """The event numbered ``seq`` (from 1)."""
        if type(seq) is not int or not 1 <= seq <= len(self._events):
            raise InvalidInput(f"no event with seq {seq!r}; there are {len(self._events)}")
        return self._events[seq - 1]

    @property
    def last_time_ms(self) -> int | None:
        """Time of the last event, or None while the journal is empty."""
        return self._events[-1].time_ms if self._events else None

    def since(self, seq: int) -> tuple[Event, ...]:
        """The events numbered after ``seq`` (``since(0)`` is every event)."""
        if type(seq) is not int or seq < 0:
            raise InvalidInput(f"since() needs a non-negative int seq, got {seq!r}")
        return tuple(self._events[seq:])

    def expanded(self, since: int = 0, account_id: str | None = None) -> list[Event]:
        """``since(since)`` with aggregated records' per-account events (see ``expand``)."""
        return list(expand(self.since(since), account_id))

    def to_jsonl(self, since: int = 0) -> str:
        """The events after ``since`` as canonical JSON lines, each ending in a newline; an
        aggregated record's per-account events are written out before it (``expand``), so the
        export reads as it did when each was journalled on its own."""
        return "".join(event.to_json() + "\n" for event in expand(self.since(since)))

    def digest(self) -> str:
        """SHA-256 hex of ``to_jsonl()``: equal for byte-identical journals."""
        sha = hashlib.sha256()
        for event in expand(self._events):
            sha.update(event.to_json().encode("ascii"))
            sha.update(b"\n")
        return sha.hexdigest()
