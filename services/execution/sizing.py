"""Order quantity for an entry: the strategy's own sizing function with the instrument's live filters.

The arithmetic is `services.strategy.sizing.size_position` (one definition for backtests, the live
bank and real orders). What is added here is which rule a skip is attributed to: when the quantity
falls below the instrument's minimum only because a risk limit capped it, the skip names that limit
(MAX_POSITION_NOTIONAL or MAX_LEVERAGE) rather than the minimum, so the client knows what to change.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal

from tradebot.execution.v1 import events_pb2 as ev

from services.strategy.sizing import Instrument as SizingInstrument
from services.strategy.sizing import size_position

UNCAPPED = Decimal("1e30")


@dataclass(frozen=True)
class InstrumentRules:
    """Bybit instruments-info filters of one symbol."""

    category: str
    symbol: str
    status: str
    qty_step: Decimal
    min_qty: Decimal
    min_notional: Decimal
    tick_size: Decimal
    max_leverage: Decimal

    def for_sizing(self) -> SizingInstrument:
        return SizingInstrument(
            symbol=self.symbol,
            qty_step=self.qty_step,
            min_qty=self.min_qty,
            min_notional=self.min_notional,
            shorts_allowed=self.category == "linear",
        )

    def protective_price(self, price: Decimal | None, entry: Decimal) -> Decimal | None:
        """A stop-loss or take-profit on the tick grid, rounded toward the entry: the stop never adds
        risk beyond what was sized, the target never promises more than the signal did."""
        if price is None:
            return None
        ticks = price / self.tick_size
        toward_entry = ROUND_CEILING if price < entry else ROUND_FLOOR
        return ticks.to_integral_value(rounding=toward_entry) * self.tick_size

    def round_qty(self, qty: Decimal) -> Decimal:
        return (qty / self.qty_step).to_integral_value(rounding=ROUND_DOWN) * self.qty_step


@dataclass(frozen=True)
class Sized:
    qty: Decimal
    notional: Decimal
    reason: int = ev.RISK_REASON_UNSPECIFIED
    message: str = ""  # set when skipped

    @property
    def skipped(self) -> bool:
        return bool(self.message)


def size_entry(
    *,
    equity: Decimal,
    entry: Decimal,
    stop: Decimal,
    risk_per_trade: Decimal,
    leverage: Decimal,
    max_position_notional: Decimal,
    rules: InstrumentRules,
) -> Sized:
    inst = rules.for_sizing()

    def size(lev: Decimal, cap: Decimal) -> tuple[Decimal, Decimal, str]:
        result = size_position(
            equity=equity,
            entry=entry,
            stop=stop,
            risk_per_trade=risk_per_trade,
            leverage=lev,
            max_position_notional=cap,
            instrument=inst,
        )
        return result.qty, result.notional, result.skipped_reason

    qty, notional, why = size(leverage, max_position_notional)
    if not why:
        return Sized(qty, notional)
    details = f"{why} for {rules.symbol}"
    if qty > 0 or "below the minimum" in why:
        # Was a limit the binding cap? Size again without each one.
        if not size(leverage, UNCAPPED)[2]:
            return Sized(
                qty,
                notional,
                ev.RISK_REASON_MAX_POSITION_NOTIONAL,
                f"{details}: max_position_notional {max_position_notional} leaves too small an order",
            )
        if not size(UNCAPPED, max_position_notional)[2]:
            return Sized(
                qty,
                notional,
                ev.RISK_REASON_MAX_LEVERAGE,
                f"{details}: leverage {leverage} on equity {equity} leaves too small an order",
            )
    if "notional" in why:
        return Sized(qty, notional, ev.RISK_REASON_BELOW_MIN_NOTIONAL, details)
    if "quantity" in why:
        return Sized(
            qty,
            notional,
            ev.RISK_REASON_BELOW_MIN_QTY,
            f"{details}: raise capital allocation or risk_per_trade",
        )
    if "equity" in why:
        return Sized(qty, notional, ev.RISK_REASON_INSUFFICIENT_BALANCE, details)
    return Sized(qty, notional, ev.RISK_REASON_UNSPECIFIED, f"signal cannot be sized: {details}")
