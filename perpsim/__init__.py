"""perpsim: a mock exchange for inverse perpetual futures, and a hedging client."""

__version__ = "0.1.0"
