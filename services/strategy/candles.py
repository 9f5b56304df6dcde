"""Candles: loading from CSV and the validation every consumer relies on.

Input files have the header `timestamp,open,high,low,close,volume`, timestamps in milliseconds since
the Unix epoch (UTC), one closed bar per row. Validation rejects anything that would make indicators
silently wrong (unsorted or duplicate timestamps, NaN, non-positive prices, high below low or below
the open/close) with the file line at fault. Gaps (missing bars) are real in exchange data; they are
counted and reported, and rejected only when the caller asks for that (`gaps="error"`): indicators
treat the bars they are given as consecutive, as TradingView does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from services.strategy.errors import CandleError

COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")
PRICE_COLUMNS = ("open", "high", "low", "close")

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
GapPolicy = Literal["report", "error"]


@dataclass(frozen=True)
class Gap:
    """Bars missing between two consecutive rows (`line` is the file line after the gap)."""

    line: int
    missing_bars: int


@dataclass(frozen=True)
class Candles:
    """Closed OHLCV bars of one symbol and timeframe, oldest first, as float64 columns."""

    timestamp: IntArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray
    interval_ms: int
    gaps: tuple[Gap, ...] = ()
    first_line: int = 2

    def __len__(self) -> int:
        return len(self.close)

    def head(self, n: int) -> Candles:
        """The first n bars (used to prove that later bars never change earlier results)."""
        return Candles(
            self.timestamp[:n],
            self.open[:n],
            self.high[:n],
            self.low[:n],
            self.close[:n],
            self.volume[:n],
            self.interval_ms,
            tuple(g for g in self.gaps if g.line - self.first_line < n),
            self.first_line,
        )

    def column(self, name: str) -> FloatArray | IntArray:
        if name not in COLUMNS:
            raise CandleError(f"unknown candle column {name!r}", field=name)
        value: FloatArray | IntArray = getattr(self, name)
        return value


def from_arrays(
    timestamp: npt.ArrayLike,
    *,
    open_: npt.ArrayLike,
    high: npt.ArrayLike,
    low: npt.ArrayLike,
    close: npt.ArrayLike,
    volume: npt.ArrayLike | None = None,
    gaps: GapPolicy = "report",
    first_line: int = 2,
) -> Candles:
    """Validated candles from arrays; `first_line` is the file line of row 0, for error messages."""
    ts = np.asarray(timestamp, dtype=np.int64)
    cols = [np.ascontiguousarray(a, dtype=np.float64) for a in (open_, high, low, close)]
    vol = np.zeros(len(ts)) if volume is None else np.ascontiguousarray(volume, dtype=np.float64)
    for name, col in zip(("open", "high", "low", "close", "volume"), [*cols, vol], strict=True):
        if len(col) != len(ts):
            raise CandleError(f"has {len(col)} values but there are {len(ts)} timestamps", field=name)
    if len(ts) == 0:
        raise CandleError("no candles")
    _check_values(ts, (*cols, vol), first_line)
    interval, found = _check_order(ts, first_line)
    if found and gaps == "error":
        g = found[0]
        raise CandleError(
            f"line {g.line}: {g.missing_bars} bar(s) missing before this row "
            f"(interval {interval} ms); {len(found)} gap(s) in total",
            field="timestamp",
        )
    o, h, lo, c = cols
    return Candles(ts, o, h, lo, c, vol, interval, tuple(found), first_line)


def _check_values(ts: IntArray, columns: tuple[FloatArray, ...], first: int) -> None:
    o, h, lo, c, v = columns
    for name, col in zip(COLUMNS[1:], (o, h, lo, c, v), strict=True):
        bad = np.flatnonzero(~np.isfinite(col))
        if bad.size:
            raise CandleError(f"line {first + bad[0]}: not a finite number ({col[bad[0]]})", field=name)
    for name, col in zip(PRICE_COLUMNS, (o, h, lo, c), strict=True):
        bad = np.flatnonzero(col <= 0)
        if bad.size:
            raise CandleError(f"line {first + bad[0]}: price must be positive, got {col[bad[0]]}", field=name)
    bad = np.flatnonzero(v < 0)
    if bad.size:
        raise CandleError(f"line {first + bad[0]}: volume is negative ({v[bad[0]]})", field="volume")
    bad = np.flatnonzero(h < lo)
    if bad.size:
        i = bad[0]
        raise CandleError(f"line {first + i}: high {h[i]} is below low {lo[i]}", field="high")
    bad = np.flatnonzero((h < np.maximum(o, c)) | (lo > np.minimum(o, c)))
    if bad.size:
        i = bad[0]
        raise CandleError(
            f"line {first + i}: open {o[i]} / close {c[i]} outside the bar's range [{lo[i]}, {h[i]}]",
            field="high" if h[i] < max(o[i], c[i]) else "low",
        )


def _check_order(ts: IntArray, first: int) -> tuple[int, list[Gap]]:
    if len(ts) < 2:
        return 0, []
    step = np.diff(ts)
    bad = np.flatnonzero(step <= 0)
    if bad.size:
        i = bad[0] + 1
        what = "duplicates" if step[bad[0]] == 0 else "is earlier than"
        raise CandleError(
            f"line {first + i}: timestamp {ts[i]} {what} the previous row's {ts[i - 1]} "
            "(rows must be sorted by ascending timestamp with no repeats)",
            field="timestamp",
        )
    # The bar interval is the most common step; calendar-month bars (28-31 days) count as regular.
    values, counts = np.unique(step, return_counts=True)
    interval = int(values[np.argmax(counts)])
    if _is_monthly(values):
        return interval, []
    gaps = [Gap(first + int(i) + 1, int(step[i] // interval) - 1) for i in np.flatnonzero(step > interval)]
    return interval, gaps


def _is_monthly(steps: IntArray) -> bool:
    day = 86_400_000
    return bool(steps.min() >= 28 * day and steps.max() <= 31 * day)


def load_csv(path: str | Path, *, gaps: GapPolicy = "report") -> Candles:
    """Read and validate a candle CSV; every error names the file line (the header is line 1)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise CandleError(f"cannot read {path}: {exc.strerror or exc}", field="data") from exc
    lines = text.splitlines()
    if not lines:
        raise CandleError(f"{path} is empty", field="data")
    header = [h.strip().lower() for h in lines[0].split(",")]
    if tuple(header) != COLUMNS:
        raise CandleError(f"{path}: header must be {','.join(COLUMNS)}, got {lines[0]!r}", field="data")
    rows: list[list[float]] = []
    stamps: list[int] = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            raise CandleError(f"line {number}: empty row", field="data")
        cells = line.split(",")
        if len(cells) != len(COLUMNS):
            raise CandleError(f"line {number}: expected {len(COLUMNS)} cells, got {len(cells)}", field="data")
        try:
            stamps.append(int(cells[0]))
        except ValueError:
            raise CandleError(
                f"line {number}: not an integer millisecond timestamp: {cells[0]!r}", field="timestamp"
            ) from None
        row = []
        for name, cell in zip(COLUMNS[1:], cells[1:], strict=True):
            try:
                value = float(cell) if cell.strip() else math.nan
            except ValueError:
                raise CandleError(f"line {number}: not a number: {cell!r}", field=name) from None
            row.append(value)
        rows.append(row)
    if not rows:
        raise CandleError(f"{path} has no candle rows", field="data")
    values = np.array(rows, dtype=np.float64)
    o, h, lo, c, v = values.T
    return from_arrays(stamps, open_=o, high=h, low=lo, close=c, volume=v, gaps=gaps)
