"""The Bybit v5 wire dialect (``category=inverse``) over perpsim's dialect-neutral core.

Everything Bybit-specific lives in this folder: the envelope and retCode table (errors.py),
X-BAPI-* signing (signing.py), parameter parsing (params.py), wire shapes (*_wire.py), the
REST routers and the WebSocket streams. docs/bybit-dialect-notes.md lists what the pinned
clients (ccxt.bybit, pybit) read and where perpsim knowingly differs from Bybit.
"""
