"""The simulated market: one clock driving every symbol's price, bars, synthetic book and trades.

Time is counted in simulated minutes from the anchor (the first candle of the first series). The
clock advances one minute per tick; `seconds_per_candle` of wall time make one base candle. All
series are aligned to the same anchor, whatever dates their source files carry.
"""

from __future__ import annotations

import asyncio
import calendar
import collections
import contextlib
import random
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from services.exchangesim.candles import MINUTE_MS, Series
from services.exchangesim.instruments import Instrument

DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS
INTERVALS = ("1", "3", "5", "15", "30", "60", "120", "240", "360", "720", "D", "W", "M")
FUNDING_MINUTES = 480


@dataclass(frozen=True)
class Bar:
    start: int
    end: int  # exclusive, ms
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    turnover: Decimal


@dataclass(frozen=True)
class PublicTrade:
    trade_id: str
    time: int
    symbol: str
    price: Decimal
    size: Decimal
    side: str


def bar_start(ts: int, interval: str) -> int:
    if interval == "D":
        return ts - ts % DAY_MS
    if interval == "W":
        return ts - (ts - 4 * DAY_MS) % WEEK_MS  # 1970-01-01 was a Thursday; weeks start on Monday
    if interval == "M":
        d = datetime.fromtimestamp(ts / 1000, tz=UTC)
        return calendar.timegm((d.year, d.month, 1, 0, 0, 0)) * 1000
    size = int(interval) * MINUTE_MS
    return ts - ts % size


def bar_end(start: int, interval: str) -> int:
    if interval == "D":
        return start + DAY_MS
    if interval == "W":
        return start + WEEK_MS
    if interval == "M":
        d = datetime.fromtimestamp(start / 1000, tz=UTC)
        year, month = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
        return calendar.timegm((year, month, 1, 0, 0, 0)) * 1000
    return start + int(interval) * MINUTE_MS


class Clock:
    """The market clock: runs at a wall-time speed, can be paused and stepped."""

    def __init__(self, minutes_per_candle: int, seconds_per_candle: float, paused: bool) -> None:
        self.minutes_per_candle = minutes_per_candle
        self.seconds_per_candle = seconds_per_candle
        self.minute = 0
        self.paused = paused
        self.listeners: list[Callable[[int], None]] = []
        self._wake = asyncio.Event()

    def set_speed(self, seconds_per_candle: float) -> None:
        if seconds_per_candle <= 0:
            raise ValueError("seconds_per_candle must be positive")
        self.seconds_per_candle = seconds_per_candle
        self._wake.set()

    def pause(self) -> None:
        self.paused = True
        self._wake.set()

    def resume(self) -> None:
        self.paused = False
        self._wake.set()

    def advance(self, minutes: int) -> None:
        for _ in range(minutes):
            self.minute += 1
            for listener in self.listeners:
                listener(self.minute)

    def step_candles(self, candles: int) -> None:
        """Advance to the close of the `candles`-th base candle from now (the current one counts)."""
        k = self.minutes_per_candle
        target = (self.minute // k + candles) * k
        self.advance(target - self.minute)

    async def run(self) -> None:
        while True:
            if self.paused:
                self._wake.clear()
                await self._wake.wait()
                continue
            per_tick = self.seconds_per_candle / self.minutes_per_candle
            origin, done = time.monotonic(), 0
            self._wake.clear()
            while not self.paused and not self._wake.is_set():
                due = int((time.monotonic() - origin) / per_tick) - done
                if due > 0:
                    step = min(due, 1000)
                    self.advance(step)
                    done += step
                wait = origin + (done + 1) * per_tick - time.monotonic()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=max(wait, 0.0))


class Market:
    """Prices, bars, order book and public trades of every symbol, all driven by one clock."""

    def __init__(self, series: list[Series], anchor_ms: int, clock: Clock, seed: int) -> None:
        self.series = {s.symbol: s for s in series}
        self.anchor_ms = anchor_ms
        self.clock = clock
        self.seed = seed
        self.trades: dict[str, collections.deque[PublicTrade]] = {
            s: collections.deque(maxlen=1000) for s in self.series
        }
        self._rng = random.Random(f"{seed}:trades")
        self._symbol_salt = {s: zlib.crc32(s.encode()) for s in self.series}
        self._base_size = {
            s.symbol: max(
                sum((c.volume for c in s.candles), Decimal(0)) / len(s.candles) / s.minutes / 20, Decimal(1)
            )
            for s in series
        }
        clock.listeners.append(self._on_minute)

    # time and price ---------------------------------------------------------------------
    @property
    def minute(self) -> int:
        return self.clock.minute

    def now_ms(self) -> int:
        return self.anchor_ms + self.clock.minute * MINUTE_MS

    def price(self, symbol: str, minute: int | None = None) -> Decimal:
        m = self.clock.minute if minute is None else minute
        return self.series[symbol].price(max(m, 0))

    def _on_minute(self, minute: int) -> None:
        for symbol in self.series:
            now, before = self.price(symbol, minute), self.price(symbol, minute - 1)
            side = "Buy" if now >= before else "Sell"
            size = (self._base_size[symbol] * Decimal(repr(self._rng.uniform(0.01, 0.2)))).quantize(
                Decimal("0.001")
            )
            trade_id = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
            trade = PublicTrade(trade_id, self.now_ms(), symbol, now, max(size, Decimal("0.001")), side)
            self.trades[symbol].append(trade)

    # bars -------------------------------------------------------------------------------
    def aggregate(self, symbol: str, m0: int, m1: int, start: int, end: int) -> Bar:
        """The bar of minutes [m0, m1) (m1 > m0), labelled [start, end)."""
        s = self.series[symbol]
        k_size = s.minutes
        o = h = lo = c = None
        volume = turnover = Decimal(0)
        m = m0
        while m < m1:
            index, k = divmod(m, k_size)
            stop = min(k_size, k + (m1 - m))
            walk = s.walk(index)
            if k == 0 and stop == k_size:
                candle = s.candle(index)
                first, hi, low, last = candle.open, candle.high, candle.low, candle.close
            else:
                pts = walk.points[k : stop + 1]
                first, hi, low, last = pts[0], max(pts), min(pts), pts[-1]
            o = first if o is None else o
            h = hi if h is None else max(h, hi)
            lo = low if lo is None else min(lo, low)
            c = last
            volume += walk.cum_volume[stop] - walk.cum_volume[k]
            turnover += walk.cum_turnover[stop] - walk.cum_turnover[k]
            m += stop - k
        assert o is not None and h is not None and lo is not None and c is not None
        return Bar(start, end, o, h, lo, c, volume, turnover)

    def bar_at(self, symbol: str, interval: str, start: int) -> Bar | None:
        """The bar starting at `start` as of now (partial if it is in progress), None before the data."""
        end = bar_end(start, interval)
        if end <= self.anchor_ms or start > self.now_ms():
            return None
        m0 = max(0, (start - self.anchor_ms) // MINUTE_MS)
        m1 = min(self.clock.minute, (end - self.anchor_ms) // MINUTE_MS)
        if m1 <= m0:
            p = self.price(symbol)
            return Bar(start, end, p, p, p, p, Decimal(0), Decimal(0))
        return self.aggregate(symbol, m0, m1, start, end)

    def bars(self, symbol: str, interval: str, start: int | None, end: int | None, limit: int) -> list[Bar]:
        """Bars newest first, up to the simulated now, at most `limit`."""
        newest = min(self.now_ms(), end) if end is not None else self.now_ms()
        out: list[Bar] = []
        b = bar_start(newest, interval)
        while len(out) < limit:
            if start is not None and bar_end(b, interval) <= start:
                break
            bar = self.bar_at(symbol, interval, b)
            if bar is None:
                break
            if start is None or b >= bar_start(start, interval):
                out.append(bar)
            b = bar_start(b - 1, interval)
        return out

    def closing_bars(self, symbol: str, interval: str) -> tuple[Bar | None, Bar | None]:
        """(bar that closed at this minute or None, bar in progress) for the kline stream."""
        now = self.now_ms()
        current = bar_start(now, interval)
        closed = None
        if bar_start(now - MINUTE_MS, interval) != current:
            closed = self.bar_at(symbol, interval, bar_start(now - MINUTE_MS, interval))
        return closed, self.bar_at(symbol, interval, current)

    def window(self, symbol: str, minutes: int) -> Bar:
        """The rolling window of the last `minutes` minutes (for 24h ticker figures)."""
        m1 = self.clock.minute
        m0 = max(0, m1 - minutes)
        now = self.now_ms()
        if m1 <= m0:
            p = self.price(symbol)
            return Bar(now, now, p, p, p, p, Decimal(0), Decimal(0))
        return self.aggregate(symbol, m0, m1, now - minutes * MINUTE_MS, now)

    # order book -------------------------------------------------------------------------
    def best(self, instrument: Instrument) -> tuple[Decimal, Decimal]:
        p = self.price(instrument.symbol)
        bid = max((p / instrument.tick_size).to_integral_value() * instrument.tick_size, instrument.tick_size)
        return bid, bid + instrument.tick_size

    def level_size(self, instrument: Instrument, price: Decimal, level: int) -> Decimal:
        units = int(price / instrument.tick_size)
        h = hash((self.seed, self._symbol_salt[instrument.symbol], units, self.clock.minute // 5)) & 0xFFFF
        raw = (
            self._base_size[instrument.symbol]
            * (1 + Decimal(level) / 10)
            * (Decimal(h) / 65536 + Decimal("0.5"))
        )
        step = instrument.qty_step
        return max((raw / step).to_integral_value() * step, step)

    def levels(self, instrument: Instrument, side: str) -> Iterator[tuple[Decimal, Decimal]]:
        """Book levels a taker on `side` meets: asks for Buy, bids for Sell, best first."""
        bid, ask = self.best(instrument)
        tick = instrument.tick_size
        for i in range(10_000):
            price = ask + tick * i if side == "Buy" else bid - tick * i
            if price <= 0:
                return
            yield price, self.level_size(instrument, price, i)

    def book(self, instrument: Instrument, depth: int) -> tuple[list[tuple[Decimal, Decimal]], ...]:
        bids = [lv for lv, _ in zip(self.levels(instrument, "Sell"), range(depth), strict=False)]
        asks = [lv for lv, _ in zip(self.levels(instrument, "Buy"), range(depth), strict=False)]
        return bids, asks

    def next_funding_ms(self) -> int:
        now = self.now_ms()
        period = FUNDING_MINUTES * MINUTE_MS
        return now - now % period + period
