"""Position sizing from equity and stop distance, in Decimal, with the instrument's quantity rules.

qty = equity * risk_per_trade / |entry - stop|, capped by max_position_notional / entry and by
equity * leverage / entry, rounded down to the quantity step. Below the minimum quantity or notional
the signal is skipped with the reason. The backtester runs the same arithmetic in float64 inside its
compiled loop (see backtest/engine.py); tests check that both give the same quantities.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal


@dataclass(frozen=True)
class Instrument:
    """Trading rules of one symbol (Bybit instruments-info `lotSizeFilter`)."""

    symbol: str = "UNKNOWN"
    qty_step: Decimal = Decimal("0.001")
    min_qty: Decimal = Decimal("0.001")
    min_notional: Decimal = Decimal("5")
    shorts_allowed: bool = True

    def __post_init__(self) -> None:
        for name in ("qty_step", "min_qty", "min_notional"):
            value = getattr(self, name)
            if not isinstance(value, Decimal):
                raise TypeError(f"Instrument.{name} must be a Decimal, got {type(value).__name__}")
            if value < 0 or (name == "qty_step" and value == 0):
                raise ValueError(f"Instrument.{name}: must be positive, got {value}")


@dataclass(frozen=True)
class Sizing:
    """Either a quantity to trade or the reason the signal was skipped."""

    qty: Decimal
    notional: Decimal
    skipped_reason: str = ""

    @property
    def skipped(self) -> bool:
        return bool(self.skipped_reason)


def size_position(
    *,
    equity: Decimal,
    entry: Decimal,
    stop: Decimal,
    risk_per_trade: Decimal,
    leverage: Decimal,
    max_position_notional: Decimal,
    instrument: Instrument,
) -> Sizing:
    distance = abs(entry - stop)
    if entry <= 0:
        return Sizing(Decimal(0), Decimal(0), f"entry price must be positive, got {entry}")
    if distance == 0:
        return Sizing(Decimal(0), Decimal(0), "stop distance is zero")
    if equity <= 0:
        return Sizing(Decimal(0), Decimal(0), f"equity is not positive ({equity})")
    raw = min(equity * risk_per_trade / distance, max_position_notional / entry, equity * leverage / entry)
    qty = (raw / instrument.qty_step).to_integral_value(rounding=ROUND_DOWN) * instrument.qty_step
    notional = qty * entry
    if qty < instrument.min_qty or qty == 0:
        return Sizing(qty, notional, f"quantity {qty} is below the minimum {instrument.min_qty}")
    if notional < instrument.min_notional:
        return Sizing(qty, notional, f"notional {notional} is below the minimum {instrument.min_notional}")
    return Sizing(qty, notional)
