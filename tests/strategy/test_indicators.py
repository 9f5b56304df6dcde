"""Indicator definitions against the spec's reference values, and batch == streaming, exactly."""

from __future__ import annotations

import numpy as np
import pytest
import talib

from services.strategy.candles import Candles, from_arrays
from services.strategy.indicators import (
    ATR,
    EMA,
    EWO,
    RMA,
    RSI,
    SMA,
    TR,
    HeikinAshi,
    Indicator,
    StochRSI,
    UTBot,
)
from services.strategy.strategies.ppp_vishva.indicator_set import (
    COLUMNS,
    Layout,
    compute,
    group_params,
    step_groups,
)
from services.strategy.strategies.ppp_vishva.params import PARAMS, TEMPLATES
from tests.strategy.conftest import shared_file, synthetic


@pytest.fixture(scope="module")
def ref() -> dict[str, np.ndarray]:
    path = shared_file("talib-reference/daily_ref.csv")
    data = np.genfromtxt(path, delimiter=",", names=True)
    return {name: data[name] for name in ("open", "high", "low", "close")}


def test_ema_reference(ref: dict[str, np.ndarray]) -> None:
    ema = EMA(10).batch(ref["close"])["value"]
    assert np.isnan(ema[8]) and not np.isnan(ema[9])
    # The spec gives these with two decimals, truncated (TA-Lib's regression values); TA-Lib itself
    # computes 93.2255 at t=9, so they are matched to their printed precision and to TA-Lib exactly.
    for t, expected in {9: 93.22, 10: 93.75, 29: 86.46, 251: 108.97}.items():
        assert expected <= ema[t] < expected + 0.01, (t, ema[t])
    np.testing.assert_allclose(ema[9:], talib.EMA(ref["close"], 10)[9:], rtol=0, atol=1e-9)


def test_rma_reference(ref: dict[str, np.ndarray]) -> None:
    rma = RMA(14).batch(ref["close"])["value"]
    assert np.isnan(rma[12])
    assert rma[13] == pytest.approx(93.8575, abs=1e-4)
    for t, expected in {14: 93.653392857142862, 50: 88.541947809318273, 251: 108.01489148034045}.items():
        assert rma[t] == pytest.approx(expected, rel=1e-13), t


def test_stoch_rsi_raw_reference(ref: dict[str, np.ndarray]) -> None:
    raw = StochRSI(14, 14, 3, 3).batch(ref["close"])["raw"]
    assert np.isnan(raw[26])
    assert raw[27] == pytest.approx(94.156709, abs=1e-4)
    assert raw[251] == pytest.approx(0.0, abs=1e-4)


def test_heikin_ashi_reference(ref: dict[str, np.ndarray]) -> None:
    ha = HeikinAshi().batch(ref["open"], ref["high"], ref["low"], ref["close"])
    expected = {
        0: (92, 93.25, 90.75, 92),
        2: (92.5825, 96.375, 92.5825, 95.03875),
        251: (109.48578998768323, 109.5, 106.62, 108.295),
    }
    for t, values in expected.items():
        got = [ha[k][t] for k in ("open", "high", "low", "close")]
        np.testing.assert_allclose(got, values, rtol=0, atol=1e-9)


def test_warmup_starts(ref: dict[str, np.ndarray]) -> None:
    c, h, lo = ref["close"], ref["high"], ref["low"]
    first = {
        "sma": np.flatnonzero(~np.isnan(SMA(5).batch(c)["value"]))[0],
        "atr": np.flatnonzero(~np.isnan(ATR(14).batch(h, lo, c)["value"]))[0],
        "rsi": np.flatnonzero(~np.isnan(RSI(14).batch(c)["value"]))[0],
    }
    assert first == {"sma": 4, "atr": 13, "rsi": 14}
    assert TR().batch(h, lo, c)["value"][0] == h[0] - lo[0]
    # After warm-up ATR and RSI match TA-Lib (TA-Lib starts TR at t=1, so ATR converges later).
    np.testing.assert_allclose(RSI(14).batch(c)["value"][14:], talib.RSI(c, 14)[14:], atol=1e-9)
    np.testing.assert_allclose(
        ATR(14).batch(h, lo, c)["value"][150:], talib.ATR(h, lo, c, 14)[150:], atol=1e-5
    )


def _inputs(ind: Indicator, c: Candles) -> list[np.ndarray]:
    return [c.close if name == "x" else c.column(name) for name in ind.inputs]


def _all_indicators() -> list[Indicator]:
    return [
        SMA(3),
        EMA(100),
        RMA(14),
        TR(),
        ATR(14),
        RSI(14),
        StochRSI(14, 14, 3, 3),
        EWO(5, 35),
        HeikinAshi(),
        UTBot(2.0, 10, False),
        UTBot(1.0, 10, True),
    ]


def _assert_stream_equals_batch(c: Candles) -> None:
    for ind in _all_indicators():
        inputs = _inputs(ind, c)
        batch = ind.batch(*inputs)
        stream = ind.stream()
        rows = [stream.update(*bar) for bar in zip(*inputs, strict=True)]
        for name in ind.outputs:
            streamed = np.array([r[name] for r in rows])
            assert np.array_equal(streamed, batch[name], equal_nan=True), (ind.name, name)


def _assert_live_equals_batch(c: Candles) -> None:
    """The multi-bot live step (three templates at once) against the batch columns."""
    params = [{p.name: p.default for p in PARAMS} | dict(t) for t in TEMPLATES.values()]
    gp = np.array([group_params(p) for p in params])
    layout = Layout.for_groups(gp)
    state = layout.initial_state(len(gp))
    out = np.empty((len(COLUMNS), len(gp)))
    live = np.empty((len(gp), len(COLUMNS), len(c)))
    for t in range(len(c)):
        step_groups(
            state, gp, layout.k_offset, layout.d_offset, c.open[t], c.high[t], c.low[t], c.close[t], out
        )
        live[:, :, t] = out.T
    for g, p in enumerate(params):
        batch = compute(c.open, c.high, c.low, c.close, p)
        for j, name in enumerate(COLUMNS):
            assert np.array_equal(live[g, j], batch[name], equal_nan=True), (g, name)


def test_stream_equals_batch_on_real_data(real_candles: Candles) -> None:
    _assert_stream_equals_batch(real_candles)
    _assert_live_equals_batch(real_candles)


def test_stream_equals_batch_on_long_synthetic_series() -> None:
    c = synthetic(30_000)
    _assert_stream_equals_batch(c)
    _assert_live_equals_batch(c)


@pytest.mark.parametrize(("r", "s", "k", "d"), [(3, 1, 1, 1), (5, 2, 1, 1), (9, 25, 20, 7), (30, 100, 4, 20)])
def test_stoch_rsi_stream_equals_batch_for_other_lengths(r: int, s: int, k: int, d: int) -> None:
    """The batch window extremes come in blocks of s bars; the streaming form keeps a ring of s."""
    c = synthetic(12_000, seed=11)
    ind = StochRSI(r, s, k, d)
    batch = ind.batch(c.close)
    stream = ind.stream()
    rows = [stream.update(x) for x in c.close]
    for name in ind.outputs:
        assert np.array_equal(np.array([row[name] for row in rows]), batch[name], equal_nan=True), name
    assert np.isfinite(batch["d"][r + s + k + d :]).any() or s == 1


def test_talib_reference_file_stream_equals_batch() -> None:
    path = shared_file("talib-reference/daily_ref.csv")
    data = np.genfromtxt(path, delimiter=",", names=True)
    ts = np.arange(len(data), dtype=np.int64) * 86_400_000
    c = from_arrays(ts, open_=data["open"], high=data["high"], low=data["low"], close=data["close"])
    _assert_stream_equals_batch(c)


def test_bad_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match=r"ema\.length"):
        EMA(0)
    with pytest.raises(ValueError, match=r"ewo\.slow"):
        EWO(10, 5)
