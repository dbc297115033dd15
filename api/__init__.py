"""perpsim's server: the Binance COIN-M wire dialect, the control plane and WebSocket streams."""
