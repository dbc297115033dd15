"""The Binance COIN-M (``/dapi``) wire dialect: serialisers, routers and streams."""
