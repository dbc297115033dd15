"""The hedging client: a plain ccxt client that never imports ``sim``."""
