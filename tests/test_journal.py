"""The event journal: order, time guard, canonical JSON lines, digest, subscribers."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis_budget import examples

from perpsim.numbers import readable
from perpsim.sim.errors import InvalidInput, InvalidState
from perpsim.sim.journal import Event, Journal

D = Decimal
LATER = 30_000_000  # after every event of run()


def run(fill_price: str = "50000.5") -> Journal:
    """A small, fixed sequence of events, as a determinism test would record it."""
    journal = Journal()
    journal.append(1_000, "order.new", order_id=1, qty_contracts=10, price_usd=D("50000.5"))
    journal.append(1_000, "fill", order_id=1, price_usd=D(fill_price), fee_btc=D("0.00001000"))
    journal.append(
        28_800_000, "funding.settled", rate=D("0.0001"), payments=[{"account": "a", "btc": D(0)}]
    )
    return journal


def test_events_are_numbered_from_one_and_queried_by_seq() -> None:
    journal = run()
    assert len(journal) == 3
    assert [e.seq for e in journal] == [1, 2, 3]
    assert [e.type for e in journal.since(1)] == ["fill", "funding.settled"]
    assert journal.since(0) == tuple(journal)
    assert journal.since(3) == ()
    assert journal.since(99) == ()
    assert journal[2].payload["price_usd"] == "50000.5"
    assert journal.last_time_ms == 28_800_000
    assert Journal().last_time_ms is None
    with pytest.raises(InvalidInput, match="no event with seq 4; there are 3"):
        journal[4]
    with pytest.raises(InvalidInput, match="non-negative int seq"):
        journal.since(-1)


def test_canonical_json_line_is_exact() -> None:
    journal = Journal()
    event = journal.append(
        1_700_000_000_000,
        "liquidation.triggered",
        type="isolated",  # payload keys may reuse the parameter names
        mark_usd=D("29750.10"),
        qty_contracts=-300,
        reduce_only=True,
        note=None,
        steps=({"bracket": 2, "mmr": D("0.0050")}, "fund"),
        who="ünï",
    )
    expected = (
        '{"payload":{"mark_usd":"29750.10","note":null,"qty_contracts":-300,"reduce_only":true,'
        '"steps":[{"bracket":2,"mmr":"0.0050"},"fund"],"type":"isolated","who":"\\u00fcn\\u00ef"},'
        '"seq":1,"time_ms":1700000000000,"type":"liquidation.triggered"}'
    )
    assert event.to_json() == expected
    assert journal.to_jsonl() == expected + "\n"
    assert journal.to_jsonl().encode("ascii")  # pure ASCII, so bytes never depend on encoding


def test_to_jsonl_since_and_digest() -> None:
    journal = run()
    lines = journal.to_jsonl().splitlines()
    assert len(lines) == 3
    assert journal.to_jsonl(since=2) == lines[2] + "\n"
    assert journal.to_jsonl(since=3) == ""
    assert json.loads(lines[1])["payload"]["fee_btc"] == "0.00001000"  # exact, not normalised
    assert journal.digest() == hashlib.sha256(journal.to_jsonl().encode()).hexdigest()
    assert Journal().digest() == hashlib.sha256(b"").hexdigest()


def test_digest_is_stable_across_identical_runs_and_sensitive_to_payload() -> None:
    assert run().to_jsonl() == run().to_jsonl()
    assert run().digest() == run().digest()
    assert run().digest() != run(fill_price="50000.6").digest()
    # Same value, different representation: the journal records exactly what it was given.
    assert run().digest() != run(fill_price="50000.50").digest()


def test_times_must_not_go_backwards() -> None:
    journal = run()
    journal.append(28_800_000, "mark.updated")  # equal time is fine
    with pytest.raises(InvalidState, match="earlier than the last event") as err:
        journal.append(28_799_999, "fill", order_id=2)
    assert "seq 4 at 28800000" in str(err.value)
    assert len(journal) == 4
    assert journal.digest() == journal.digest()


@pytest.mark.parametrize(
    ("time_ms", "event_type", "payload", "fragment"),
    [
        (-1, "fill", {}, "time_ms must be a non-negative int, got -1"),
        (1.0, "fill", {}, "time_ms must be a non-negative int, got 1.0"),
        (True, "fill", {}, "got True"),
        (LATER, "", {}, "event type must be dotted lowercase words"),
        (LATER, "Order.New", {}, "got 'Order.New'"),
        (LATER, "order.", {}, "got 'order.'"),
        (LATER, None, {}, "got None"),
        (LATER, "fill", {"price": 1.5}, "payload.price has type float (1.5)"),
        (LATER, "fill", {"price": D("NaN")}, "payload.price must be finite"),
        (LATER, "fill", {"x": {"y": [1, D("Infinity")]}}, "payload.x.y[1] must be finite"),
        (LATER, "fill", {"x": {1: "a"}}, "payload.x has a non-string key 1"),
        (LATER, "fill", {"x": {"a", "b"}}, "payload.x has type set"),
        (LATER, "fill", {"x": object()}, "payload.x has type object"),
    ],
)
def test_bad_appends_are_refused_and_change_nothing(
    time_ms: object, event_type: object, payload: dict, fragment: str
) -> None:
    journal = run()
    before = journal.to_jsonl()
    with pytest.raises(InvalidInput) as err:
        journal.append(time_ms, event_type, **payload)  # type: ignore[arg-type]
    assert fragment in str(err.value)
    assert journal.to_jsonl() == before


def test_payload_is_a_read_only_copy() -> None:
    journal = Journal()
    legs = [{"qty": 1}]
    event = journal.append(5, "fill", legs=legs)
    legs[0]["qty"] = 2
    legs.append({"qty": 3})
    assert event.payload["legs"] == ({"qty": 1},)
    with pytest.raises(TypeError):
        event.payload["legs"] = ()  # type: ignore[index]
    with pytest.raises(TypeError):
        event.payload["legs"][0]["qty"] = 9
    with pytest.raises(AttributeError):
        event.seq = 7  # type: ignore[misc]
    assert (
        journal.to_jsonl() == '{"payload":{"legs":[{"qty":1}]},"seq":1,"time_ms":5,"type":"fill"}\n'
    )


def test_subscribers_see_every_event_in_order_until_unsubscribed() -> None:
    journal = Journal()
    seen_a: list[int] = []
    seen_b: list[str] = []
    first = journal.subscribe(lambda e: seen_a.append(e.seq))
    journal.subscribe(lambda e: seen_b.append(e.type))
    journal.append(1, "order.new")
    journal.append(2, "fill")
    assert journal.unsubscribe(first) is True
    assert journal.unsubscribe(first) is False
    journal.append(3, "order.canceled")
    assert seen_a == [1, 2]
    assert seen_b == ["order.new", "fill", "order.canceled"]
    with pytest.raises(InvalidInput, match="must be callable"):
        journal.subscribe("not a function")  # type: ignore[arg-type]


def test_a_failing_subscriber_is_dropped_and_the_journal_is_intact() -> None:
    journal = Journal()
    seen: list[int] = []

    def broken(event: Event) -> None:
        raise ConnectionError("socket closed")

    journal.subscribe(broken)
    journal.subscribe(lambda e: seen.append(e.seq))
    event = journal.append(1, "order.new")  # returns normally despite the subscriber
    journal.append(2, "fill")
    assert event.seq == 1
    assert seen == [1, 2]
    assert [(seq, cb) for seq, cb, _ in journal.subscriber_errors] == [(1, broken)]
    assert isinstance(journal.subscriber_errors[0][2], ConnectionError)
    assert len(journal) == 2


def test_a_subscriber_may_not_append() -> None:
    journal = Journal()
    journal.subscribe(lambda e: journal.append(e.time_ms, "echo"))
    journal.append(1, "fill")
    journal.append(2, "fill")  # the offender is gone, so this is delivered to nobody
    assert [e.type for e in journal] == ["fill", "fill"]
    (seq, _, exc), *rest = journal.subscriber_errors
    assert (seq, rest) == (1, [])
    assert isinstance(exc, InvalidState)
    assert "must not append" in str(exc)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text()
    | st.decimals(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


def expected_plain(value: object) -> object:
    if isinstance(value, Decimal):
        return readable(value)  # fixed point, 8 decimals at most (perpsim/numbers.py)
    if isinstance(value, list):
        return [expected_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: expected_plain(v) for k, v in value.items()}
    return value


@settings(deadline=None, max_examples=examples(200))
@given(st.dictionaries(st.text(), json_values, max_size=4))
def test_any_json_able_payload_round_trips_through_its_line(payload: dict) -> None:
    journal = Journal()
    line = journal.append(0, "x", **payload).to_json()
    assert line.isascii()
    decoded = json.loads(line)
    assert json.dumps(decoded, sort_keys=True, separators=(",", ":")) == line  # canonical
    assert decoded == {"payload": expected_plain(payload), "seq": 1, "time_ms": 0, "type": "x"}
    assert Journal().append(0, "x", **payload).to_json() == line  # deterministic
