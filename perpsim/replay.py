"""``perpsim replay FILE``: rebuild a recorded run (api/recording.py) on a fresh in-process
market and check that its journal comes out byte for byte the same.

The requests are re-applied in the order they ran, through the same app (routes, signing,
error handling), with the wall clock *mapped*: each wall-clock reading the server made while
handling a request is fed back in the same order, so signature timestamps are re-checked as
they were, listen keys expire as they did and a realtime clock lands on the same instants.
Requests a fault answered without running them are skipped; faults are not decided again
(their control calls are replayed, so downtime windows open on the same simulated instant).
In realtime mode the background clock's advances between requests are replayed as one advance
to the simulated time the next request found.

Exit codes: 0 the journal digest equals the recorded one, 1 it differs (the first differing
event is shown), 2 the file is not a complete, consistent recording.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perpsim.api.recording import BadRecording, Recording, decode_body, load_recording
from perpsim.sim.exchange import TOKEN_CHARS, random_token

EXIT_EQUAL, EXIT_DIFFER, EXIT_BAD_FILE = 0, 1, 2


@dataclass
class ReplayResult:
    """What a replay found."""

    digest: str
    recorded_digest: str
    events: int
    replayed: int = 0
    skipped: int = 0
    status_mismatches: list[str] = field(default_factory=list)
    first_difference: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        """True when the replayed journal is byte-identical to the recorded one."""
        return self.digest == self.recorded_digest


class _WallFeed:
    """The wall clock during a replay: the recorded readings of the request being replayed."""

    def __init__(self, start_ms: int) -> None:
        self.values: list[int] = []
        self.last = start_ms

    def load(self, values: Sequence[int]) -> None:
        self.values = [int(v) for v in values]

    def __call__(self) -> int:
        if self.values:
            self.last = self.values.pop(0)
        return self.last


class _TokenFeed:
    """API credentials during a replay: the ones the recorded request was handed.

    Recordings made before credentials came from a cryptographic source hold no ``tokens``;
    for those the old seeded generator (one per market, from its seed) is reproduced.
    """

    def __init__(self) -> None:
        self.values: list[str] = []
        self.legacy = False
        self.exchange: Any = None
        self._legacy_rng: tuple[Any, random.Random] | None = None

    def load(self, record: dict[str, Any]) -> None:
        self.values = [str(v) for v in record.get("tokens", ())]
        self.legacy = "tokens" not in record

    def __call__(self, n: int) -> str:
        if self.values:
            return self.values.pop(0)
        if not self.legacy:
            return random_token(n)
        ex = self.exchange()
        if self._legacy_rng is None or self._legacy_rng[0] is not ex:
            self._legacy_rng = (ex, random.Random(ex.seed))
        rng = self._legacy_rng[1]
        return "".join(rng.choice(TOKEN_CHARS) for _ in range(n))


def _digest(lines: Sequence[str]) -> str:
    sha = hashlib.sha256()
    for line in lines:
        sha.update(line.encode("ascii"))
        sha.update(b"\n")
    return sha.hexdigest()


def check_consistent(recording: Recording, name: str) -> None:
    """The file's journal must hash to the digest it states (else it was edited or cut)."""
    end = recording.end
    if len(recording.events) != end.get("events"):
        raise BadRecording(f"{name}: the end record counts {end.get('events')} journal events "
                           f"but the file holds {len(recording.events)}")
    if _digest(recording.events) != end.get("journal_digest"):
        raise BadRecording(f"{name}: the journal in the file does not match its recorded digest "
                           "(the file was edited or damaged)")


async def _call(app: Any, record: dict[str, Any]) -> int:
    """One recorded request through the ASGI app; its status."""
    body = decode_body(record)
    headers = [(k.lower().encode("latin-1"), str(v).encode("latin-1"))
               for k, v in record["headers"].items()]
    headers += [(b"host", b"localhost"), (b"content-length", str(len(body)).encode())]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": record["method"], "scheme": "http", "path": record["path"],
             "raw_path": record["path"].encode("utf-8"),
             "query_string": record["query"].encode("latin-1"), "root_path": "",
             "headers": headers, "client": ("127.0.0.1", 0), "server": ("localhost", 80)}
    delivered = False
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(int(message["status"]))

    try:
        await app(scope, receive, send)
    except Exception:  # the app answered 500, as it did when recorded
        return statuses[0] if statuses else 500
    return statuses[0] if statuses else 500


@dataclass
class Rebuilt:
    """A market rebuilt from recorded requests, with the app that replayed them."""

    app: Any
    state: Any
    harness: Any
    result: ReplayResult


def rebuild(recording: Recording, name: str = "recording", *, security: Any = None) -> Rebuilt:
    """Re-apply ``recording``'s requests to a fresh market (served by an app guarded by
    ``security``, default: paths unconfined); the market and how the replay went."""
    from perpsim.api.app import create_app
    from perpsim.api.harness import install_harness
    from perpsim.api.security import IN_PROCESS
    from perpsim.api.state import ServerConfig, ServerState
    from perpsim.sim.errors import PerpsimError

    header = recording.header
    anchor = header.get("anchor")
    feed = _WallFeed(int(anchor[0]) if anchor else 0)
    tokens = _TokenFeed()
    try:
        config = ServerConfig(**header["config"])
        state = ServerState(config, wall_ms=feed)
        state.token_source = tokens
        tokens.exchange = lambda: state.exchange
    except (TypeError, PerpsimError) as exc:
        raise BadRecording(f"{name}: cannot rebuild the recorded market: {exc}") from None
    if anchor:
        state._anchor = (int(anchor[0]), int(anchor[1]))  # realtime: the recorded mapping
    # The recorded requests were checked when they ran; the replay trusts their paths.
    app = create_app(state=state, security=security or IN_PROCESS)
    harness = install_harness(app)
    harness.replay = True
    harness.faults.wall_ms = lambda: feed.last  # faults are not decided again: no reading
    result = ReplayResult("", str(recording.end.get("journal_digest")), 0)
    executed = [r for r in recording.requests if r["executed"]]
    if state.exchange.journal.digest() != header.get("start_digest") and not any(
            r["path"] == "/control/reset" for r in executed):
        result.warnings.append("the recording began on a market that had already changed and "
                               "holds no reset: the replay starts from a fresh one")
    asyncio.run(_replay_requests(app, state, feed, tokens, recording, result))
    ex = state.exchange
    end_now = int(recording.end.get("now_ms") or ex.now_ms)
    if ex.now_ms < end_now:  # realtime: the clock ran on after the last request
        ex.advance_until(end_now)
    result.digest = ex.journal.digest()
    result.events = len(ex.journal.expanded())  # the lines the digest covers
    return Rebuilt(app, state, harness, result)


def replay(recording: Recording, name: str = "recording") -> ReplayResult:
    """Re-apply ``recording`` to a fresh market; the digest it gives and how it compares."""
    check_consistent(recording, name)
    rebuilt = rebuild(recording, name)
    result = rebuilt.result
    if not result.equal:
        result.first_difference = _first_difference(
            recording.events, [e.to_json() for e in rebuilt.state.exchange.journal.expanded()])
    return result


async def _replay_requests(app: Any, state: Any, feed: _WallFeed, tokens: _TokenFeed,
                           recording: Recording, result: ReplayResult) -> None:
    for record in recording.requests:
        if not record["executed"]:
            result.skipped += 1
            continue
        ex = state.exchange
        if ex.now_ms < record["sim_before"]:  # realtime: the background clock moved
            ex.advance_until(int(record["sim_before"]))
        feed.load(record["wall"])
        tokens.load(record)
        status = await _call(app, record)
        result.replayed += 1
        if record.get("app_status") is not None and status != record["app_status"]:
            result.status_mismatches.append(
                f"request {record.get('n')} {record['method']} {record['path']}: recorded "
                f"{record['app_status']}, replayed {status}")


def _first_difference(recorded: Sequence[str], replayed: Sequence[str]) -> str:
    for i, (a, b) in enumerate(zip(recorded, replayed, strict=False)):
        if a != b:
            return f"event {i + 1}: recorded {a[:300]}\n             replayed {b[:300]}"
    if len(recorded) != len(replayed):
        return (f"the recorded journal has {len(recorded)} events, the replay "
                f"{len(replayed)}")
    return "the journals differ"


def run(path: str | Path, *, out: Any = None) -> int:
    """Replay ``path`` and print the outcome; the exit code."""
    out = out or sys.stdout
    name = str(path)
    try:
        recording = load_recording(path)
        result = replay(recording, name)
    except BadRecording as exc:
        print(f"perpsim replay: bad recording: {exc}", file=sys.stderr)
        return EXIT_BAD_FILE
    config = recording.header["config"]
    scenario = config.get("scenario")
    scenario = scenario.get("path") if isinstance(scenario, dict) else scenario
    print(f"perpsim replay: {name}", file=out)
    print(f"  market:   {config.get('profile')} · scenario {scenario} · seed "
          f"{config.get('seed')} · clock {config.get('clock')}", file=out)
    print(f"  requests: {result.replayed} replayed, {result.skipped} skipped (answered by a "
          "fault)", file=out)
    for warning in result.warnings:
        print(f"  warning:  {warning}", file=out)
    for mismatch in result.status_mismatches[:5]:
        print(f"  status:   {mismatch}", file=out)
    print(f"  journal:  {result.events} events", file=out)
    print(f"  digest:   {result.digest}", file=out)
    print(f"  recorded: {result.recorded_digest}", file=out)
    if result.equal:
        print("  EQUAL: the replay reproduces the recorded journal byte for byte", file=out)
        return EXIT_EQUAL
    print(f"  DIFFERENT: first difference at {result.first_difference}", file=out)
    return EXIT_DIFFER


def add_replay_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``replay FILE`` to the ``perpsim`` command line (perpsim/cli.py)."""
    cmd: argparse.ArgumentParser = sub.add_parser(
        "replay", help="replay a recorded run and check its journal digest",
        description="Re-apply a recording (perpsim serve --record FILE, POST /control/record, "
        "or the pytest plugin's --perpsim-record) to a fresh in-process market and compare the "
        "journal digest with the recorded one. Exit 0 equal, 1 different, 2 bad file.")
    cmd.add_argument("file", metavar="FILE", help="the recording (JSON lines)")
    cmd.set_defaults(run=lambda args: run(args.file))
    return cmd


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m perpsim.replay FILE``."""
    parser = argparse.ArgumentParser(prog="perpsim replay")
    parser.add_argument("file", metavar="FILE")
    args = parser.parse_args(argv)
    return run(args.file)


if __name__ == "__main__":
    sys.exit(main())
