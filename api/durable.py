"""The durable request log of ``perpsim serve --state-dir DIR`` (docs/security.md).

The engine is deterministic, so the exchange's whole state is a function of its start config
and the requests it ran (with the wall-clock readings and credentials each one drew: exactly
what a recording holds, api/recording.py). The log keeps those lines in SQLite
(``DIR/perpsim-state.sqlite3``, WAL, synchronous FULL), one committed row per request, written
*before* the request's answer is sent (api/harness.py holds it back): whatever a client saw
acknowledged survives ``kill -9``. A restart with the same directory replays the log
(perpsim/replay.py) into a fresh market and goes on logging.

``POST /control/snapshot {"path": P}`` exports the log plus the journal as a complete
recording (``perpsim replay P`` checks it; ``perpsim serve --restore P`` starts from it).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from perpsim.api.recording import (
    BadRecording,
    Recorder,
    Recording,
    check_request,
    header_record,
    install_taps,
    json_line,
)
from perpsim.api.security import confined_path
from perpsim.api.state import ServerState
from perpsim.sim.errors import InvalidInput, InvalidState

DB_NAME = "perpsim-state.sqlite3"


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")  # a committed request survives a power cut too
    db.execute("CREATE TABLE IF NOT EXISTS log (n INTEGER PRIMARY KEY, line TEXT NOT NULL)")
    return db


def stored_recording(state_dir: str | Path) -> Recording | None:
    """The log in ``state_dir`` as a Recording without journal or end (None if it is empty)."""
    path = Path(state_dir) / DB_NAME
    if not path.exists():
        return None
    try:
        db = _connect(path)
        try:
            lines = [row[0] for row in db.execute("SELECT line FROM log ORDER BY n")]
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise BadRecording(f"{path}: not a readable perpsim state ({exc})") from None
    if not lines:
        return None
    records = [json.loads(line) for line in lines]
    header = records[0]
    if header.get("kind") != "header":
        raise BadRecording(f"{path}: the state log does not start with a header")
    for number, record in enumerate(records[1:], 2):
        check_request(record, str(path), number)
    return Recording(header, records[1:], [], {})


class DurableLog(Recorder):
    """The request log in SQLite (module doc); a Recorder whose sink is a table."""

    def __init__(self, state_dir: str | Path, state: ServerState,
                 seed_with: Recording | None = None) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / DB_NAME
        self.state = state
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            self._db: sqlite3.Connection | None = _connect(self.path)
        except (OSError, sqlite3.Error) as exc:
            raise InvalidInput(f"cannot keep state in {str(self.state_dir)!r}: {exc}") from None
        self.requests = int(self._db.execute("SELECT COUNT(*) FROM log").fetchone()[0])
        if self.requests == 0:
            if seed_with is not None:  # --restore FILE into a new state directory
                self._write(seed_with.header)
                for record in seed_with.requests:
                    self._write(record)
                self.requests = len(seed_with.requests)
            else:
                self._write(header_record(state))
        else:
            self.requests -= 1  # the header is not a request
        install_taps(state)

    def _open(self) -> None:  # the connection is opened in __init__
        return

    def _write(self, record: dict[str, Any]) -> None:
        if self._db is None:
            raise InvalidState("the state log is closed")
        self._db.execute("INSERT INTO log (line) VALUES (?)", (json_line(record).rstrip("\n"),))

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def close(self) -> None:
        """Close the database (the log stays on disk for the next start)."""
        self._close()

    def export(self, path: Path) -> dict[str, Any]:
        """Write the log, the journal and an end record to ``path``: a complete recording."""
        if self._db is None:
            raise InvalidState("the state log is closed")
        ex = self.state.exchange
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("w", encoding="ascii") as out:
                for (line,) in self._db.execute("SELECT line FROM log ORDER BY n"):
                    out.write(line + "\n")
                for event in ex.journal.expanded():  # as to_jsonl: the digest's lines
                    out.write(json_line({"kind": "event", "event": json.loads(event.to_json())}))
                end = {"kind": "end", "requests": self.requests,
                       "events": len(ex.journal.expanded()),
                       "now_ms": ex.now_ms, "journal_digest": ex.journal.digest()}
                out.write(json_line(end))
        except OSError as exc:
            raise InvalidInput(f"cannot write the snapshot: {exc.strerror}") from None
        return {k: v for k, v in end.items() if k != "kind"}


# ---- control plane ---------------------------------------------------------------------------
class SnapshotBody(BaseModel):
    """POST /control/snapshot: where to write the snapshot (inside the data directory)."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(min_length=1, max_length=4096)


router = APIRouter(prefix="/control", tags=["control"])


@router.post("/snapshot")
async def snapshot(body: SnapshotBody, request: Request) -> dict[str, Any]:
    """Export the exchange's state as a recording file (needs ``--state-dir``)."""
    harness = request.app.state.perpsim_harness
    log: DurableLog | None = harness.durable
    if log is None:
        raise InvalidState("snapshots need the durable request log: start perpsim serve "
                           "with --state-dir DIR")
    path = confined_path(request.app.state.perpsim_security, body.path, "snapshot path")
    async with harness.lock():  # between two requests, never inside one
        summary = log.export(path)
    return {"path": body.path, **summary}
