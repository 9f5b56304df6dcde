"""What a strategy provides for live trading: one vectorised step over all bots of a symbol/timeframe."""

from __future__ import annotations

from typing import Any, Protocol

from services.strategy.strategies.base import Signals


class LiveKernel(Protocol):
    n_bots: int

    def step(self, op: float, high: float, low: float, close: float) -> Signals:
        """Advance every bot by one closed candle; signals are arrays over bots."""

    def explain(self, bot: int, side: int, close: float) -> dict[str, Any]:
        """Conditions and indicator values behind bot's latest signal for `side`."""

    def state_bytes(self) -> int:
        """Memory held by the kernel's state arrays."""
