"""What every dialect's parameter reader shares: the raw values, the market, the mandatory
text and the symbol look-ups. Each dialect subclasses it with its own notion of an absent
value (``get``) and its own error for a missing one (``missing``)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

from perpsim.sim.exchange import Exchange
from perpsim.sim.profile import Instrument


class ParamReader(ABC):
    """One request's parameters over the live exchange."""

    def __init__(self, raw: Mapping[str, Any], ex: Exchange) -> None:
        self.raw = dict(raw)
        self.ex = ex

    def get(self, name: str) -> str | None:
        """The value as text; absent and empty count as absent."""
        value = self.raw.get(name)
        return None if value is None or value == "" else str(value)

    @abstractmethod
    def missing(self, name: str) -> Exception:
        """The error for a mandatory parameter that was not sent (the dialect's)."""

    def required(self, name: str) -> str:
        """A mandatory parameter's text."""
        value = self.get(name)
        if value is None:
            raise self.missing(name)
        return value

    def instrument(self, name: str = "symbol") -> Instrument:
        """The mandatory symbol's instrument (UnknownSymbol otherwise)."""
        return self.ex.instrument(self.required(name))

    def optional_instrument(self, name: str = "symbol") -> Instrument | None:
        """The symbol's instrument if one was sent."""
        value = self.get(name)
        return None if value is None else self.ex.instrument(value)
