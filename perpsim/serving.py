"""``perpsim serve``: options for a safe, durable server, and the run itself (docs/security.md).

* ``--host`` beyond loopback needs a control token (``--control-token`` or the environment
  variable PERPSIM_CONTROL_TOKEN); with a token it still warns. The bound host joins the Host
  allow-list; ``--allow-host`` adds more names.
* ``--data-dir`` (default: the working directory) confines every file the control plane names.
* ``--state-dir DIR`` keeps the durable request log (api/durable.py) and resumes from it;
  ``--restore FILE`` starts from a snapshot or recording.
* SIGTERM and SIGINT both stop the server cleanly: recordings get their journal and end
  record, the state log is closed.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_BAD_INPUT = 0, 2
# perpsim serve's market defaults (perpsim/cli.py): a flag left at its default is not "given"
DEFAULTS = {"profile": "binance_coinm", "scenario": "manual", "seed": 0, "start": None,
            "clock": "stepped", "speed": 1.0}


def add_serve_options(serve: argparse.ArgumentParser) -> None:
    """The security and durability options of ``perpsim serve``."""
    serve.add_argument("--data-dir", default=None, metavar="DIR",
                       help="files named over the control plane (recordings, snapshots, "
                            "scenario and profile paths) must lie inside DIR (default: the "
                            "working directory)")
    serve.add_argument("--control-token", default=None, metavar="TOKEN",
                       help="require 'Authorization: Bearer TOKEN' on /control and /ui "
                            "(default: $PERPSIM_CONTROL_TOKEN); mandatory beyond loopback")
    serve.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                       help="also accept this Host header (repeatable); loopback names and "
                            "--host are always accepted; default: no other)")
    serve.add_argument("--state-dir", default=None, metavar="DIR",
                       help="persist every request in DIR (SQLite) before answering it; a "
                            "restart with the same DIR resumes where the last run stopped "
                            "(default: nothing kept)")
    serve.add_argument("--restore", default=None, metavar="FILE",
                       help="start from a snapshot (POST /control/snapshot) or a recording "
                            "(default: a fresh market)")


def security_config(args: argparse.Namespace) -> Any:
    """The SecurityConfig for ``args``; SystemExit-free: raises ValueError with the problem."""
    from perpsim.api.security import TOKEN_ENV, SecurityConfig, is_loopback

    token = args.control_token or os.environ.get(TOKEN_ENV) or None
    if not is_loopback(args.host):
        if token is None:
            raise ValueError(f"--host {args.host} exposes the control plane beyond this "
                             f"machine: set --control-token TOKEN (or ${TOKEN_ENV})")
        print(f"perpsim: warning: listening on {args.host}: anyone who can reach it can trade "
              "on the dialect; the control plane needs the token. See docs/security.md.",
              file=sys.stderr)
    elif args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"perpsim: warning: --host {args.host} is a loopback address other than "
              "127.0.0.1", file=sys.stderr)
    data_dir = Path(args.data_dir).resolve() if args.data_dir else Path.cwd()
    if not data_dir.is_dir():
        raise ValueError(f"--data-dir {args.data_dir}: no such directory")
    hosts = tuple(dict.fromkeys([args.host, *args.allow_host]))
    return SecurityConfig(allowed_hosts=hosts, control_token=token, data_dir=data_dir)


def build_server(args: argparse.Namespace) -> tuple[Any, Any]:
    """The app and its state: resumed from --state-dir, restored from --restore, or fresh."""
    from perpsim.api.app import create_app
    from perpsim.api.durable import DurableLog, stored_recording
    from perpsim.api.harness import install_harness
    from perpsim.api.recording import load_recording
    from perpsim.api.state import ServerConfig, ServerState
    from perpsim.replay import check_consistent, rebuild

    security = security_config(args)
    stored = stored_recording(args.state_dir) if args.state_dir else None
    restored = None
    if args.restore is not None:
        if stored is not None:
            raise ValueError(f"--state-dir {args.state_dir} already holds a state; restore "
                             "into an empty directory")
        restored = load_recording(args.restore)
        check_consistent(restored, args.restore)
    source = stored or restored
    if source is not None:
        given = {name: getattr(args, name) for name in ("profile", "scenario", "seed", "start",
                                                        "clock", "speed")}
        kept = source.header.get("config", {})
        ignored = [f"--{n}" for n, v in given.items() if n in kept and v != kept[n]
                   and v != DEFAULTS.get(n)]
        if ignored:
            print(f"perpsim: note: {', '.join(ignored)} ignored: the market is rebuilt from "
                  f"{args.state_dir if stored else args.restore}", file=sys.stderr)
        rebuilt = rebuild(source, str(args.state_dir or args.restore), security=security)
        if restored is not None and not rebuilt.result.equal:
            raise ValueError(f"{args.restore}: the rebuilt market differs from the snapshot "
                             f"({rebuilt.result.digest} != {rebuilt.result.recorded_digest})")
        app, state, harness = rebuilt.app, rebuilt.state, rebuilt.harness
        go_live(state, harness)
        print(f"perpsim: resumed {len(source.requests)} requests "
              f"(journal digest {state.exchange.journal.digest()})", flush=True)
    else:
        state = ServerState(ServerConfig(profile=args.profile, scenario=args.scenario,
                                         seed=args.seed, start=args.start, clock=args.clock,
                                         speed=args.speed, dialect=args.dialect))
        app = create_app(state=state, security=security)
        harness = install_harness(app)
    if args.state_dir:
        harness.durable = DurableLog(args.state_dir, state, seed_with=restored)
    return app, state


def go_live(state: Any, harness: Any) -> None:
    """After a rebuild: the real wall clock and fresh credentials again, faults decided live."""
    import time

    from perpsim.sim.exchange import random_token

    def wall_ms() -> int:
        return int(time.time() * 1000)

    state.wall_ms = wall_ms
    state.token_source = random_token
    harness.replay = False
    harness.faults.wall_ms = wall_ms


def run_serve(args: argparse.Namespace) -> int:
    """``perpsim serve``: until SIGINT or SIGTERM, then close recordings and the state log."""
    from perpsim.api.server import BindError, bind_socket

    # Bind before anything is built or printed: a busy port or a bad host is one line and
    # exit 2, never a banner advertising a server that is not there (nor a new state dir).
    try:
        sock = bind_socket(args.host, args.port)
    except BindError as exc:
        print(f"perpsim: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    with sock:
        return _serve_on(args, sock)


def _serve_on(args: argparse.Namespace, sock: Any) -> int:
    """run_serve once its socket is bound."""
    import uvicorn

    from perpsim.api.harness import record_to
    from perpsim.api.recording import BadRecording
    from perpsim.cli import ccxt_snippet

    try:
        app, state = build_server(args)
    except (ValueError, BadRecording) as exc:
        print(f"perpsim: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    port = int(sock.getsockname()[1])  # the real one when --port 0 asked for a free one
    host = f"[{args.host}]" if ":" in args.host else args.host
    base = f"http://{host}:{port}"
    ex = state.exchange
    print(f"perpsim: {ex.profile.name} · scenario {ex.scenario.name} · clock "
          f"{state.config.clock}")
    from perpsim.api.dialects import DIALECTS, describe

    for name in sorted(DIALECTS, key=lambda n: n != state.dialect):  # the default first
        title, rest, ws = describe(name)
        print(f"  {title + ':':22}  {base}{rest}   {base.replace('http', 'ws', 1)}{ws}")
    print(f"  control plane:          {base}/control   (API docs: {base}/docs)")
    print(f"  live dashboard:         {base}/ui")
    print("  create an account:      curl -X POST " + base +
          "/control/accounts -H 'content-type: application/json' "
          "-d '{\"balances\": {\"BTC\": \"1\"}}'")
    if args.state_dir:
        print(f"  state kept in:          {args.state_dir}")
    print("ccxt:\n" + ccxt_snippet(base), flush=True)
    print(f"python-binance, binance-futures-connector, ccxt for Node: perpsim clients --url {base}",
          flush=True)
    from perpsim.api.server import WS_PING_INTERVAL_S, WS_PING_TIMEOUT_S

    # Binance's ping/pong: a ping every 3 minutes; a peer silent for 10 is dropped.
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=port,
                                           log_level="warning",
                                           ws_ping_interval=WS_PING_INTERVAL_S,
                                           ws_ping_timeout=WS_PING_TIMEOUT_S))
    harness = app.state.perpsim_harness
    try:
        with StopOnSignals(server):
            if args.record is None:
                server.run(sockets=[sock])
            else:
                with record_to(app, args.record) as summary:
                    print(f"  recording to:           {args.record}", flush=True)
                    server.run(sockets=[sock])
                print(f"perpsim: recorded {summary.get('requests', 0)} requests to "
                      f"{args.record} (journal digest {summary.get('journal_digest')}); "
                      f"replay: perpsim replay {args.record}")
    finally:
        if harness.durable is not None:
            harness.durable.close()
    return EXIT_OK


class StopOnSignals:
    """SIGINT/SIGTERM end ``server.run`` normally instead of killing the process.

    uvicorn captures both while it runs and re-raises them after its shutdown; the default
    SIGTERM action would then end the process before a recording is closed. A handler that
    only asks the server to exit makes the re-raise harmless.
    """

    def __init__(self, server: Any) -> None:
        self.server = server
        self.previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        self.server.should_exit = True

    def __enter__(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.previous[sig] = signal.signal(sig, self._handle)

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
