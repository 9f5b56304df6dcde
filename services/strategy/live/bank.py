"""A bank of live bots on one symbol and timeframe: positions, stops, cooldown and sizing as arrays.

The strategy's `LiveKernel` turns each closed candle into signals for all bots at once; the bank
applies what the backtester applies, from the same functions (`services.strategy.position`): stop
first, then take-profit, against the bar's range, at the level or the open when the bar opens beyond
it; exit on the opposite signal at the close; cooldown after a losing exit; flat-only entries. It sizes
entries in Decimal. Entries are assumed filled at the signal close until the execution service reports
the real fill with `confirm_fill`, which places the stop and target from the fill as the backtester
does; tests/strategy/test_live_parity.py checks that both give the same signals on real candles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np

from services.strategy.position import EXIT_REASONS, NO_EXIT, bar_exits, bracket, losing_exit
from services.strategy.sizing import Instrument, size_position
from services.strategy.strategies.base import ParamValues, Strategy


def _dec(x: float) -> Decimal:
    return Decimal(repr(float(x)))


@dataclass(frozen=True)
class Held:
    """One bot's position as the bank held it, to put back when what replaced it never reached the
    exchange (a REVERSE that execution skipped or the exchange rejected: the old position is still open)."""

    side: int
    entry: float
    distance: float
    stop: float
    take_profit: float
    qty: Decimal
    filled: bool
    cooldown_until: int


@dataclass(frozen=True)
class Decision:
    """What one bot does on a candle; `reasons` say why."""

    bot: int
    action: str  # enter_long, enter_short, exit, skipped
    price: float
    qty: Decimal = Decimal(0)
    stop: float = float("nan")
    take_profit: float = float("nan")
    reason: str = ""
    reasons: dict[str, Any] = field(default_factory=dict)
    left: Held | None = None  # exits: the position left, as it was


class BotBank:
    def __init__(
        self, strategy: Strategy, bots: list[ParamValues], instrument: Instrument, equity: list[Decimal]
    ) -> None:
        self.strategy = strategy
        self.instrument = instrument
        self.params = bots
        self.kernel = strategy.live_kernel(bots, shorts_allowed=instrument.shorts_allowed)
        n = len(bots)
        self.equity = list(equity)
        self.side = np.zeros(n, dtype=np.int8)
        self.entry = np.full(n, np.nan)
        self.distance = np.full(n, np.nan)
        self.stop = np.full(n, np.nan)
        self.take_profit = np.full(n, np.nan)
        self.qty: list[Decimal] = [Decimal(0)] * n
        # Whether execution has reported the fill of the position the bank holds (`confirm_fill`).
        self.filled = np.zeros(n, dtype=bool)
        self.cooldown_until = np.full(n, -1, dtype=np.int64)
        plans = [strategy.exit_plan(p) for p in bots]
        self.tp_rr = np.array([p.tp_rr for p in plans])
        self.cooldown = np.array([p.cooldown_bars for p in plans], dtype=np.int64)
        self.plans = plans
        self.bar = -1

    def state_bytes(self) -> int:
        arrays = (
            self.side,
            self.filled,
            self.entry,
            self.distance,
            self.stop,
            self.take_profit,
            self.cooldown_until,
            self.tp_rr,
            self.cooldown,
        )
        return self.kernel.state_bytes() + sum(a.nbytes for a in arrays)

    def step(self, op: float, high: float, low: float, close: float) -> list[Decision]:
        self.bar += 1
        decisions: list[Decision] = []
        reasons, prices = bar_exits(self.side, self.stop, self.take_profit, op, high, low)
        for i in np.flatnonzero(reasons != NO_EXIT):
            decisions.append(self._exit(int(i), float(prices[i]), EXIT_REASONS[reasons[i]]))
        sig = self.kernel.step(op, high, low, close)
        opposite = ((self.side == 1) & sig.long_exit) | ((self.side == -1) & sig.short_exit)
        for i in np.flatnonzero(opposite):
            decisions.append(self._exit(int(i), close, "opposite_signal"))
        ready = (self.side == 0) & (self.bar >= self.cooldown_until)
        for i in np.flatnonzero(ready & (sig.long_entry | sig.short_entry)):
            side = 1 if sig.long_entry[i] else -1
            decisions.append(self._enter(int(i), side, close, float(sig.stop_distance[i])))
        return decisions

    def _exit(self, i: int, price: float, reason: str) -> Decision:
        """Close bot i at the reference `price` (the exit's price before slippage)."""
        left = Held(
            int(self.side[i]),
            float(self.entry[i]),
            float(self.distance[i]),
            float(self.stop[i]),
            float(self.take_profit[i]),
            self.qty[i],
            bool(self.filled[i]),
            int(self.cooldown_until[i]),
        )
        if losing_exit(int(self.side[i]), float(self.entry[i]), price):
            self.cooldown_until[i] = self.bar + self.cooldown[i]
        qty = self.qty[i]
        self.side[i] = 0
        self.qty[i] = Decimal(0)
        return Decision(i, "exit", price, qty, reason=reason, left=left)

    def _enter(self, i: int, side: int, close: float, distance: float) -> Decision:
        reasons = self.kernel.explain(i, side, close)
        plan = self.plans[i]
        entry = _dec(close)
        sized = size_position(
            equity=self.equity[i],
            entry=entry,
            stop=entry - side * _dec(distance),
            risk_per_trade=_dec(plan.risk_per_trade),
            leverage=_dec(plan.leverage),
            max_position_notional=_dec(plan.max_position_notional),
            instrument=self.instrument,
        )
        action = "enter_long" if side > 0 else "enter_short"
        stop, tp = bracket(close, side, distance, float(self.tp_rr[i]))
        if sized.skipped:
            return Decision(i, "skipped", close, sized.qty, stop, tp, sized.skipped_reason, reasons)
        self.side[i] = side
        self.filled[i] = False
        self.entry[i] = close
        self.distance[i] = distance
        self.stop[i] = stop
        self.take_profit[i] = tp
        self.qty[i] = sized.qty
        return Decision(i, action, close, sized.qty, stop, tp, "", reasons)

    def flatten(self, bot: int, *, clear_cooldown: bool) -> None:
        """Bot holds no position, whatever the bank decided: the exchange closed it (execution reported
        it flat), or the bot was not yet trading when the bank entered (warm-up, paused). Warm-up also
        clears the cooldown, so a bot starts as the backtester starts: flat and free to enter."""
        self.side[bot] = 0
        self.filled[bot] = False
        self.qty[bot] = Decimal(0)
        if clear_cooldown:
            self.cooldown_until[bot] = -1

    def restore(self, bot: int, held: Held) -> None:
        """Bot holds `held` again, as before the exit that left it (cooldown included)."""
        self.side[bot] = held.side
        self.entry[bot] = held.entry
        self.distance[bot] = held.distance
        self.stop[bot] = held.stop
        self.take_profit[bot] = held.take_profit
        self.qty[bot] = held.qty
        self.filled[bot] = held.filled
        self.cooldown_until[bot] = held.cooldown_until

    def confirm_fill(self, bot: int, price: float) -> None:
        """The exchange filled bot's entry at `price`: the stop and target are placed from the fill at the
        signal's distances, as the backtester places them."""
        self.entry[bot] = price
        self.filled[bot] = True
        self.stop[bot], self.take_profit[bot] = bracket(
            price, int(self.side[bot]), float(self.distance[bot]), float(self.tp_rr[bot])
        )
