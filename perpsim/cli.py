"""The ``perpsim`` command line (docs/contract.md): serve, and the jobs built on it.

Exit codes: 0 success, 2 bad arguments or a bad input file (one line naming the problem),
1 anything else.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from sim.errors import PerpsimError

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad arguments as one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"perpsim: error: {message}\n")


def _positive_float(text: str) -> float:
    value = float(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number 0-65535, got {text}")
    return value


def _seed(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The whole command line."""
    from sim.scenario import bundled_scenarios

    parser = _Parser(prog="perpsim", description="A mock exchange for inverse perpetual futures.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    names = ", ".join(bundled_scenarios())
    serve = sub.add_parser("serve", help="run the mock exchange until interrupted",
                           description="Run the mock exchange (Binance COIN-M dialect + control "
                           f"plane) until interrupted. Bundled scenarios: {names}.")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_port, default=8765)
    serve.add_argument("--profile", default="binance_coinm",
                       help="bundled profile name or path to a profile JSON")
    serve.add_argument("--scenario", default="manual", help="bundled name or CSV/JSON path")
    serve.add_argument("--seed", type=_seed, default=0)
    serve.add_argument("--start", default=None, help="start time (ISO 8601 UTC or epoch ms)")
    serve.add_argument("--clock", choices=("stepped", "realtime"), default="stepped")
    serve.add_argument("--speed", type=_positive_float, default=1.0,
                       help="realtime only: simulated seconds per wall second")
    serve.set_defaults(run=_serve)
    return parser


def ccxt_snippet(base_url: str, api_key: str = "<api_key>", secret: str = "<api_secret>") -> str:
    """A ready-to-paste ccxt configuration for a server at ``base_url``."""
    return (
        "from strategy.connect import connect   # rewrites every ccxt URL to perpsim\n"
        f"ex = connect({base_url!r}, {api_key!r}, {secret!r})   # mode='async' or 'pro' too\n"
        "# or by hand:\n"
        "import ccxt\n"
        "ex = ccxt.binancecoinm({'apiKey': KEY, 'secret': SECRET,\n"
        f"    'urls': {{'api': {{'dapiPublic': '{base_url}/dapi/v1', "
        f"'dapiPrivate': '{base_url}/dapi/v1',\n"
        f"                    'dapiPrivateV2': '{base_url}/dapi/v2', "
        f"'dapiData': '{base_url}/futures/data',\n"
        f"                    'ws': {{'inverse': '{base_url.replace('http', 'ws', 1)}/ws'}}}}}},\n"
        "    'options': {'fetchCurrencies': False}})\n"
        "ex.exceptions['exact'] = ex.extend(ex.exceptions['exact'], "
        "ex.exceptions['inverse']['exact'])"
    )


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from api.app import create_app
    from api.state import ServerConfig, ServerState

    state = ServerState(ServerConfig(profile=args.profile, scenario=args.scenario,
                                     seed=args.seed, start=args.start, clock=args.clock,
                                     speed=args.speed))
    base = f"http://{args.host}:{args.port}"
    ex = state.exchange
    print(f"perpsim: {ex.profile.name} · scenario {ex.scenario.name} · clock {args.clock}")
    print(f"  REST (Binance COIN-M):  {base}/dapi/v1")
    print(f"  WebSocket:              {base.replace('http', 'ws', 1)}/ws")
    print(f"  control plane:          {base}/control   (API docs: {base}/docs)")
    print("  create an account:      curl -X POST " + base +
          "/control/accounts -H 'content-type: application/json' "
          "-d '{\"balances\": {\"BTC\": \"1\"}}'")
    print("ccxt:\n" + ccxt_snippet(base), flush=True)
    uvicorn.run(create_app(state=state), host=args.host, port=args.port, log_level="warning")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``perpsim`` console script."""
    args = build_parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except PerpsimError as exc:
        print(f"perpsim: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
