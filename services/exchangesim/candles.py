"""Base candle series: real OHLCV replay, continued (or replaced) by a seeded random walk.

Every base candle is walked through one price point per simulated minute: open, then the
first extreme, then the other, then close (down first on a rising candle, up first on a
falling one), so minute bars aggregate back to the base candle exactly.
"""

from __future__ import annotations

import csv
import itertools
import math
import random
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from pathlib import Path

MINUTE_MS = 60_000
VOLUME_STEP = Decimal("0.001")


@dataclass(frozen=True)
class Candle:
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


@dataclass(frozen=True)
class Walk:
    """Minute points of one base candle with cumulative volume and turnover at each point."""

    points: tuple[Decimal, ...]  # K + 1 prices: points[0] = open, points[K] = close
    cum_volume: tuple[Decimal, ...]
    cum_turnover: tuple[Decimal, ...]


def read_csv(path: Path) -> tuple[int, int, list[Candle]]:
    """(first timestamp ms, interval ms, candles) from a `timestamp,open,high,low,close,volume` file."""
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if len(rows) < 2:
        raise ValueError(f"{path}: need at least two candles")
    stamps = [int(r["timestamp"]) for r in rows]
    interval = stamps[1] - stamps[0]
    if interval % MINUTE_MS or interval <= 0:
        raise ValueError(f"{path}: candle interval {interval} ms is not a whole number of minutes")
    candles = [
        Candle(
            Decimal(r["open"]),
            Decimal(r["high"]),
            Decimal(r["low"]),
            Decimal(r["close"]),
            Decimal(r["volume"]),
        )
        for r in rows
    ]
    return stamps[0], interval, candles


class Series:
    """One symbol's base candles; grows by a seeded random walk past the end of its data."""

    def __init__(self, symbol: str, minutes: int, candles: list[Candle], tick: Decimal, seed: int) -> None:
        if minutes not in (1,) and minutes < 3:
            raise ValueError("base interval must be 1 minute or at least 3 minutes")
        self.symbol = symbol
        self.minutes = minutes
        self.tick = tick
        self.candles = list(candles)
        self._rng = random.Random(f"{seed}:{symbol}")
        closes = [float(c.close) for c in self.candles]
        returns = [math.log(b / a) for a, b in itertools.pairwise(closes) if a > 0 and b > 0]
        mean = sum(returns) / len(returns) if returns else 0.0
        var = sum((r - mean) ** 2 for r in returns) / len(returns) if returns else 0.0
        self._vol = math.sqrt(var) or 0.01 * math.sqrt(minutes / 60)
        volumes = [c.volume for c in self.candles]
        self._volume = sum(volumes, Decimal(0)) / len(volumes) if volumes else Decimal(1000)
        self._walks: dict[int, Walk] = {}

    @classmethod
    def random_walk(
        cls, symbol: str, minutes: int, *, start: Decimal, tick: Decimal, seed: int, n: int
    ) -> Series:
        seed_candle = Candle(start, start, start, start, Decimal(1000))
        series = cls(symbol, minutes, [seed_candle], tick, seed)
        series.ensure(n)
        return series

    def _round(self, price: float) -> Decimal:
        value = (Decimal(repr(price)) / self.tick).to_integral_value() * self.tick
        return max(value, self.tick)

    def ensure(self, index: int) -> None:
        """Make sure candle `index` exists, extending by the random walk."""
        while len(self.candles) <= index:
            prev = float(self.candles[-1].close)
            rng = self._rng
            close = prev * math.exp(rng.gauss(0.0, self._vol))
            open_ = prev
            top = max(open_, close) * (1 + abs(rng.gauss(0.0, self._vol / 2)))
            bottom = min(open_, close) * (1 - abs(rng.gauss(0.0, self._vol / 2)))
            o, c = self._round(open_), self._round(close)
            h, low = max(self._round(top), o, c), min(self._round(bottom), o, c)
            volume = (self._volume * Decimal(repr(rng.uniform(0.5, 1.5)))).quantize(VOLUME_STEP)
            self.candles.append(Candle(o, h, low, c, volume))

    def candle(self, index: int) -> Candle:
        self.ensure(index)
        return self.candles[index]

    def walk(self, index: int) -> Walk:
        cached = self._walks.get(index)
        if cached is not None:
            return cached
        c = self.candle(index)
        k = self.minutes
        if k == 1:
            points: list[Decimal] = [c.open, c.close]
        else:
            rng = random.Random(f"{self.symbol}:{index}:{self.minutes}")
            first = rng.randint(1, max(1, k // 2 - 1)) if k > 3 else 1
            second = rng.randint(first + 1, k - 1) if k > 3 else 2
            ext1, ext2 = (c.low, c.high) if c.close >= c.open else (c.high, c.low)
            anchors = [(0, c.open), (first, ext1), (second, ext2), (k, c.close)]
            points = []
            for (i0, p0), (i1, p1) in itertools.pairwise(anchors):
                for i in range(i0, i1):
                    raw = p0 + (p1 - p0) * Decimal(i - i0) / Decimal(i1 - i0)
                    points.append((raw / self.tick).to_integral_value() * self.tick)
            points.append(c.close)
        cum_v = [(c.volume * i / k).quantize(VOLUME_STEP, rounding=ROUND_DOWN) for i in range(k)] + [c.volume]
        cum_t = [Decimal(0)]
        for i in range(k):
            minute_volume = cum_v[i + 1] - cum_v[i]
            cum_t.append(cum_t[-1] + minute_volume * (points[i] + points[i + 1]) / 2)
        walk = Walk(tuple(points), tuple(cum_v), tuple(cum_t))
        if len(self._walks) > 4096:
            self._walks.clear()
        self._walks[index] = walk
        return walk

    def price(self, minute: int) -> Decimal:
        """Last traded price at simulated minute `minute` (counted from the anchor)."""
        index, k = divmod(minute, self.minutes)
        return self.walk(index).points[k]
