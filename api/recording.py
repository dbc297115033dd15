"""Record a run: every incoming request and the journal, to a JSON-lines file that
``perpsim replay FILE`` (perpsim/replay.py) re-applies to a fresh market.

File format (one JSON object per line, ``kind`` first):

* ``header``: format name and version, the market's config (profile, scenario, seed, start,
  clock, speed), the realtime clock's anchor, and the journal's length and digest when the
  recording began.
* ``request`` (one per HTTP request, in the order they *ran*; the harness serialises requests
  while recording): method, path, raw query, body, the headers that matter (API key, content
  type), every wall-clock reading the server made while handling it (``wall``: the replay feeds
  them back, so timestamp checks, listen keys and the realtime clock see the same times and
  signatures are re-checked as they were), the API credentials it generated (``tokens``: they
  come from a cryptographic source, so the replay hands out the recorded ones), simulated
  time before it ran (``sim_before``), the status sent, the application's own status, and
  ``executed``: false when a fault answered without running it (the replay skips those).
* ``event``: the journal at the end, one event per line, in its canonical form.
* ``end``: request and event counts, simulated time, and the journal digest.

Not recorded: WebSocket traffic (streams only read the market) and the control calls of the
recorder itself. ``POST /control/record {"path": P}`` starts a recording (409 while one runs),
``POST /control/record {"stop": true}`` ends it, ``GET /control/record`` tells its status.
"""

from __future__ import annotations

import base64
import contextvars
import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from perpsim.api.dialects import signed_headers
from perpsim.api.security import confined_path
from perpsim.api.state import ServerState
from perpsim.sim.errors import InvalidInput, InvalidState

FORMAT = "perpsim-recording"
VERSION = 1
RECORDED_HEADERS = (*signed_headers(), "content-type")  # every dialect's (api/dialects.py)
# Paths never recorded: the recorder's own control calls, health, and the API docs.
UNRECORDED = ("/control/record", "/control/snapshot", "/control/health", "/docs", "/redoc",
              "/openapi.json")

# The records of the request running in this context (one per active recorder: a recording to
# a file and the durable log may both be running). The taps below append what they see to each.
_active: contextvars.ContextVar[tuple[dict[str, Any], ...]] = contextvars.ContextVar(
    "perpsim_recorded_request", default=())


def install_taps(state: ServerState) -> None:
    """Route the server's wall-clock readings and credential draws through taps that copy them
    into the records of the running request (once per state; no cost when nothing records)."""
    if getattr(state, "_perpsim_taps", False):
        return
    wall, tokens = state.wall_ms, state.token_source

    def read_wall() -> int:
        value = wall()
        for record in _active.get():
            record["wall"].append(value)
        return value

    def new_token(n: int) -> str:
        value = tokens(n)
        for record in _active.get():
            record["tokens"].append(value)
        return value

    state.wall_ms, state.token_source = read_wall, new_token
    state._perpsim_taps = True  # type: ignore[attr-defined]


def json_line(record: dict[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=True) + "\n"


def encode_body(body: bytes) -> dict[str, str]:
    """A body as text when it is UTF-8 (always, for ccxt), else base64."""
    try:
        return {"body": body.decode("utf-8")}
    except UnicodeDecodeError:
        return {"body_b64": base64.b64encode(body).decode("ascii")}


def decode_body(record: dict[str, Any]) -> bytes:
    """The bytes :func:`encode_body` stored."""
    if "body_b64" in record:
        return base64.b64decode(record["body_b64"])
    return str(record.get("body", "")).encode("utf-8")


def is_recorded(path: str) -> bool:
    """True for the requests a recording keeps."""
    return not path.startswith(UNRECORDED)


class Recorder:
    """An open recording of one server to a JSON-lines file (see module doc)."""

    def __init__(self, path: str | Path, state: ServerState) -> None:
        self.path = Path(path)
        self.state = state
        self.requests = 0
        self._open()
        self._write(header_record(state))
        install_taps(state)

    # the sink: a file here, SQLite in api/durable.py
    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file: TextIO | None = self.path.open("w", encoding="ascii")
        except OSError as exc:
            raise InvalidInput(f"cannot record to {str(self.path)!r}: {exc.strerror}") from None

    def _write(self, record: dict[str, Any]) -> None:
        if self._file is None:
            raise InvalidState("the recording is closed")
        self._file.write(json_line(record))
        self._file.flush()

    def _close(self) -> None:
        assert self._file is not None
        self._file.close()
        self._file = None

    @contextmanager
    def request(self, method: str, path: str, query: str, headers: dict[str, str],
                body: bytes) -> Iterator[dict[str, Any]]:
        """Record one request that runs now; the caller fills in ``status`` / ``app_status``."""
        record: dict[str, Any] = {
            "kind": "request", "n": self.requests + 1, "method": method, "path": path,
            "query": query, "headers": headers, **encode_body(body), "wall": [],
            "sim_before": self.state.exchange.now_ms, "executed": True,
            "status": None, "app_status": None, "tokens": []}
        token = _active.set((*_active.get(), record))
        try:
            yield record
        finally:
            _active.reset(token)
            self.requests += 1
            self._write(record)

    def skipped(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes,
                status: int, fault: str) -> None:
        """Record a request a fault answered without running it."""
        self.requests += 1
        self._write({"kind": "request", "n": self.requests, "method": method, "path": path,
                     "query": query, "headers": headers, **encode_body(body), "wall": [],
                     "sim_before": self.state.exchange.now_ms, "executed": False,
                     "status": status, "app_status": None, "fault": fault})

    def stop(self) -> dict[str, Any]:
        """Write the journal and the end record, close; the summary."""
        summary = self.write_end()
        self._close()
        return {"path": str(self.path), **summary}

    def write_end(self) -> dict[str, Any]:
        """Write the journal and the end record (the summary, without ``kind``)."""
        ex = self.state.exchange
        for event in ex.journal.expanded():  # as to_jsonl: the digest's lines
            self._write({"kind": "event", "event": json.loads(event.to_json())})
        summary = end_record(self.state, self.requests)
        self._write(summary)
        return {k: v for k, v in summary.items() if k != "kind"}


def header_record(state: ServerState) -> dict[str, Any]:
    """A recording's first line: the market's config and where it stood."""
    ex = state.exchange
    anchor = getattr(state, "_anchor", None)
    return {"kind": "header", "format": FORMAT, "version": VERSION,
            "config": dataclasses.asdict(state.config),
            "anchor": list(anchor) if anchor is not None else None,
            "start_events": len(ex.journal.expanded()), "start_digest": ex.journal.digest(),
            "start_now_ms": ex.now_ms}


def end_record(state: ServerState, requests: int) -> dict[str, Any]:
    """A recording's last line: counts, simulated time and the journal digest."""
    ex = state.exchange
    return {"kind": "end", "requests": requests, "events": len(ex.journal.expanded()),
            "now_ms": ex.now_ms, "journal_digest": ex.journal.digest()}


# ---- control plane ---------------------------------------------------------------------------
class RecordBody(BaseModel):
    """POST /control/record: ``{"path": P}`` starts, ``{"stop": true}`` stops."""

    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(default=None, min_length=1, max_length=4096)
    stop: bool = False

    @model_validator(mode="after")
    def _one(self) -> RecordBody:
        if (self.path is None) == (not self.stop):
            raise ValueError("send either {'path': FILE} to start or {'stop': true} to stop")
        return self


router = APIRouter(prefix="/control", tags=["control"])


def _harness(request: Request) -> Any:
    return request.app.state.perpsim_harness


def start_recording(harness: Any, path: str | Path) -> Recorder:
    """Start recording ``harness``'s server to ``path`` (InvalidState if one runs already)."""
    if harness.recorder is not None:
        raise InvalidState(f"already recording to {str(harness.recorder.path)!r}; stop first")
    harness.recorder = Recorder(path, harness.state)
    return harness.recorder


def stop_recording(harness: Any) -> dict[str, Any]:
    """Finish the running recording; its summary (InvalidState if none runs)."""
    recorder: Recorder | None = harness.recorder
    if recorder is None:
        raise InvalidState("no recording is running")
    harness.recorder = None
    return recorder.stop()


@router.post("/record")
async def record(body: RecordBody, request: Request) -> dict[str, Any]:
    """Start recording requests and the journal to a file, or stop and write it."""
    harness = _harness(request)
    async with harness.lock():  # not between two steps of a recorded request
        if body.stop:
            return stop_recording(harness)
        assert body.path is not None
        path = confined_path(request.app.state.perpsim_security, body.path, "recording path")
        start_recording(harness, path)
    return {"recording": True, "path": body.path}


@router.get("/record")
async def record_status(request: Request) -> dict[str, Any]:
    """Whether a recording runs, where, and how many requests it holds."""
    recorder: Recorder | None = _harness(request).recorder
    if recorder is None:
        return {"recording": False}
    return {"recording": True, "path": str(recorder.path), "requests": recorder.requests}


# ---- reading -----------------------------------------------------------------------------------
class BadRecording(ValueError):
    """The file is not a readable, complete perpsim recording."""


@dataclasses.dataclass
class Recording:
    """A parsed recording file."""

    header: dict[str, Any]
    requests: list[dict[str, Any]]
    events: list[str]  # canonical journal lines
    end: dict[str, Any]


def load_recording(path: str | Path) -> Recording:
    """Parse and check a recording (BadRecording names the file and the problem)."""
    name = str(path)
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BadRecording(f"{name}: cannot read: {exc}") from None
    header: dict[str, Any] | None = None
    requests: list[dict[str, Any]] = []
    events: list[str] = []
    end: dict[str, Any] | None = None
    for number, text in enumerate(lines, 1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except ValueError:
            raise BadRecording(f"{name}:{number}: not JSON") from None
        kind = record.get("kind") if isinstance(record, dict) else None
        if number == 1 and (kind != "header" or record.get("format") != FORMAT):
            raise BadRecording(f"{name}: not a perpsim recording (no header line)")
        if kind == "header":
            if record.get("version") != VERSION:
                raise BadRecording(f"{name}: recording version {record.get('version')!r} is "
                                   f"not supported (expected {VERSION})")
            header = record
        elif kind == "request":
            check_request(record, name, number)
            requests.append(record)
        elif kind == "event":
            events.append(json.dumps(record.get("event"), sort_keys=True,
                                     separators=(",", ":")))
        elif kind == "end":
            end = record
        else:
            raise BadRecording(f"{name}:{number}: unknown record kind {kind!r}")
    if header is None:
        raise BadRecording(f"{name}: empty file")
    if end is None:
        raise BadRecording(f"{name}: no end record (the recording was not stopped, or the file "
                           "is truncated)")
    if not isinstance(header.get("config"), dict):
        raise BadRecording(f"{name}: the header has no market config")
    return Recording(header, requests, events, end)


def check_request(record: dict[str, Any], name: str, number: int) -> None:
    for key, kind in (("method", str), ("path", str), ("query", str), ("headers", dict),
                      ("wall", list), ("sim_before", int), ("executed", bool)):
        if not isinstance(record.get(key), kind):
            raise BadRecording(f"{name}:{number}: request field {key!r} is missing or not "
                               f"a {kind.__name__}")
