from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from services.strategy.candles import Candles, from_arrays, load_csv

SHARED = Path(__file__).parents[2].parent / "shared"
DATA = SHARED / "data"
OHLCV_FILES = sorted((DATA / "ohlcv").glob("*.csv"))


def shared_file(relative: str) -> Path:
    path = DATA / relative
    if not path.exists():
        pytest.skip(f"shared test data not present: {path}")
    return path


def synthetic(n: int, seed: int = 7, start: float = 100.0) -> Candles:
    """A seeded random walk of one-minute bars with realistic ranges."""
    rng = np.random.default_rng(seed)
    close = start * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    op = np.r_[start, close[:-1]]
    wick = np.abs(rng.normal(0, 0.001, (2, n)))
    high = np.maximum(op, close) * (1 + wick[0])
    low = np.minimum(op, close) * (1 - wick[1])
    ts = 1_700_000_000_000 + 60_000 * np.arange(n, dtype=np.int64)
    return from_arrays(ts, open_=op, high=high, low=low, close=close, volume=np.ones(n))


@pytest.fixture(params=[p.name for p in OHLCV_FILES] or ["(none)"])
def real_candles(request: pytest.FixtureRequest) -> Candles:
    if request.param == "(none)":
        pytest.skip(f"no OHLCV files under {DATA / 'ohlcv'}")
    return load_csv(DATA / "ohlcv" / request.param)
