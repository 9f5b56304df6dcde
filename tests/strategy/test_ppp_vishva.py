"""PPP Vishva: parameters, templates, sizing, and every real-data entry checked against the spec's rules
re-derived here from the exported indicator columns (not from the strategy's rule code)."""

from __future__ import annotations

import csv
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from services.strategy.cli import main
from services.strategy.errors import ParameterError
from services.strategy.registry import get_strategy
from services.strategy.sizing import Instrument, size_position
from tests.strategy.conftest import shared_file

STRATEGY = get_strategy("ppp_vishva")


def test_templates_match_spec() -> None:
    cons, mod, aggr = (STRATEGY.resolve(t) for t in ("conservative", "moderate", "aggressive"))
    assert (cons["ut_key"], mod["ut_key"], aggr["ut_key"]) == (3.0, 2.0, 1.0)
    assert (cons["ha_confirm"], mod["ha_confirm"], aggr["ha_confirm"]) == (True, True, False)
    assert (cons["sl_atr_mult"], cons["tp_rr"], mod["sl_atr_mult"], mod["tp_rr"]) == (2.0, 1.5, 1.5, 2.0)
    assert (aggr["sl_atr_mult"], aggr["tp_rr"]) == (1.0, 2.5)
    assert (cons["cooldown_bars"], mod["cooldown_bars"], aggr["cooldown_bars"]) == (3, 0, 0)
    assert (cons["risk_per_trade"], mod["risk_per_trade"], aggr["risk_per_trade"]) == (0.005, 0.01, 0.02)
    assert (cons["allow_short"], mod["allow_short"], aggr["allow_short"]) == (False, True, True)
    for p in (cons, mod, aggr):
        assert (p["ema_len"], p["ut_atr"], p["ut_use_ha"], p["ewo_fast"], p["ewo_slow"]) == (
            100,
            10,
            False,
            5,
            35,
        )
        assert (p["stoch_rsi_len"], p["stoch_len"], p["stoch_k"], p["stoch_d"]) == (14, 14, 3, 3)
        assert (p["stoch_oversold"], p["stoch_overbought"], p["stoch_lookback"], p["atr_len"]) == (
            20,
            80,
            5,
            14,
        )
        assert p["exit_on_opposite_ut"] is True and p["ewo_threshold"] == 0.0
    assert STRATEGY.resolve() == mod


def test_schema_is_plain_data() -> None:
    schema = json.loads(json.dumps(STRATEGY.schema()))
    ema = next(p for p in schema["params"] if p["name"] == "ema_len")
    assert ema == {
        "name": "ema_len",
        "type": "int",
        "default": 100,
        "minimum": 2,
        "maximum": 1000,
        "unit": "bars",
        "description": ema["description"],
    }
    assert set(schema["templates"]) == {"conservative", "moderate", "aggressive"}


@pytest.mark.parametrize(
    ("template", "overrides", "field"),
    [
        ("moderate", {"ema_len": "abc"}, "ema_len"),
        ("moderate", {"ema_len": 2.5}, "ema_len"),
        ("moderate", {"ema_len": 0}, "ema_len"),
        ("moderate", {"ut_key": -1}, "ut_key"),
        ("moderate", {"ha_confirm": "maybe"}, "ha_confirm"),
        ("moderate", {"ha_confirm": 1}, "ha_confirm"),
        ("moderate", {"ewo_slow": 5}, "ewo_slow"),
        ("moderate", {"stoch_overbought": 10}, "stoch_overbought"),
        ("moderate", {"risk_per_trade": 0.5}, "risk_per_trade"),
        ("moderate", {"no_such_param": 1}, "no_such_param"),
        ("reckless", {}, "template"),
    ],
)
def test_validation_names_the_field(template: str, overrides: dict[str, object], field: str) -> None:
    with pytest.raises(ParameterError) as info:
        STRATEGY.resolve(template, overrides)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


def test_text_overrides_are_parsed() -> None:
    p = STRATEGY.resolve("aggressive", {"ema_len": "50", "ha_confirm": "true", "ut_key": "1.5"})
    assert (p["ema_len"], p["ha_confirm"], p["ut_key"]) == (50, True, 1.5)


def test_sizing_rounds_down_and_skips_below_minimums() -> None:
    ins = Instrument(qty_step=Decimal("0.01"), min_qty=Decimal("0.05"), min_notional=Decimal("5"))
    common: dict[str, Any] = {"risk_per_trade": Decimal("0.01"), "leverage": Decimal(1), "instrument": ins}
    big = Decimal(10**9)
    sized = size_position(
        equity=Decimal(1000), entry=Decimal(100), stop=Decimal(97), max_position_notional=big, **common
    )
    assert sized.qty == Decimal("3.33") and not sized.skipped  # 10 / 3 = 3.333… rounded down
    capped = size_position(
        equity=Decimal(1000), entry=Decimal(100), stop=Decimal("99.9"), max_position_notional=big, **common
    )
    assert capped.qty == Decimal("10.00")  # 100 by risk, capped by 1x leverage: 1000 / 100
    small = size_position(
        equity=Decimal(10), entry=Decimal(100), stop=Decimal(90), max_position_notional=big, **common
    )
    assert small.skipped and "below the minimum 0.05" in small.skipped_reason
    fine = size_position(
        equity=Decimal(40), entry=Decimal(60), stop=Decimal(59), max_position_notional=big, **common
    )
    assert fine.qty == Decimal("0.40") and not fine.skipped
    tiny = size_position(
        equity=Decimal(6), entry=Decimal(60), stop=Decimal(59), max_position_notional=big, **common
    )
    assert (
        tiny.qty == Decimal("0.06")
        and tiny.skipped
        and "notional 3.60 is below the minimum 5" in tiny.skipped_reason
    )


def _read(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def _f(row: dict[str, str], name: str) -> float:
    return float(row[name]) if row[name] else float("nan")


@pytest.mark.parametrize("template", ["conservative", "moderate", "aggressive"])
def test_real_entries_satisfy_every_rule(template: str, tmp_path: Path) -> None:
    data = shared_file("ohlcv/ALTBTC-1m.csv")
    params = STRATEGY.resolve(template)
    assert (
        main(
            [
                "indicators",
                "--strategy",
                "ppp_vishva",
                "--template",
                template,
                "--data",
                str(data),
                "--out",
                str(tmp_path / "ind.csv"),
            ]
        )
        == 0
    )
    step, min_qty, min_notional = "1", "100", "0.5"
    assert (
        main(
            [
                "backtest",
                "--strategy",
                "ppp_vishva",
                "--template",
                template,
                "--data",
                str(data),
                "--qty-step",
                step,
                "--min-qty",
                min_qty,
                "--min-notional",
                min_notional,
                "--out",
                str(tmp_path / "bt"),
            ]
        )
        == 0
    )
    rows = _read(tmp_path / "ind.csv")
    report = json.loads((tmp_path / "bt" / "report.json").read_text())
    trades = report["trades"]
    assert trades, "expected trades on real data"
    lookback = int(params["stoch_lookback"])
    equity = Decimal(report["config"]["initial_equity"])
    previous = None
    for trade in trades:
        t = trade["signal_bar"]
        assert trade["entry_bar"] == t + 1
        r = rows[t]
        side = 1 if trade["side"] == "long" else -1
        close, ema, ewo = _f(r, "close"), _f(r, "ema"), _f(r, "ewo")
        window = range(max(1, t - lookback + 1), t + 1)
        k = [_f(rows[j], "stochrsi_k") for j in range(t + 1)]
        d = [_f(rows[j], "stochrsi_d") for j in range(t + 1)]
        if side == 1:
            assert close > ema
            assert r["ut_buy"] == "1"
            assert ewo > params["ewo_threshold"]
            assert any(
                k[j] > d[j] and k[j - 1] <= d[j - 1] and k[j] < params["stoch_oversold"] for j in window
            )
            assert not params["ha_confirm"] or _f(r, "ha_close") > _f(r, "ha_open")
            assert r["long_entry"] == "1"
        else:
            assert params["allow_short"]
            assert close < ema
            assert r["ut_sell"] == "1"
            assert ewo < -params["ewo_threshold"]
            assert any(
                k[j] < d[j] and k[j - 1] >= d[j - 1] and k[j] > params["stoch_overbought"] for j in window
            )
            assert not params["ha_confirm"] or _f(r, "ha_close") < _f(r, "ha_open")
            assert r["short_entry"] == "1"
        if previous is not None:  # rule 6: flat at the signal, and the cooldown after a loss
            assert previous["exit_bar"] <= t
            if previous["pnl"] < 0:
                assert t >= previous["exit_bar"] + params["cooldown_bars"]
        # stop and target from the signal bar's ATR
        dist = params["sl_atr_mult"] * _f(r, "atr_sl")
        assert trade["stop_loss"] == pytest.approx(trade["entry_price"] - side * dist, rel=1e-12)
        assert trade["take_profit"] == pytest.approx(
            trade["entry_price"] + side * params["tp_rr"] * dist, rel=1e-12
        )
        # sizing: quantity step and minimums, and the same quantity as the Decimal sizer
        qty = Decimal(trade["qty"])
        assert qty % Decimal(step) == 0 and qty >= Decimal(min_qty)
        assert qty * Decimal(repr(trade["entry_price"])) >= Decimal(min_notional)
        sized = size_position(
            equity=equity,
            entry=Decimal(repr(trade["entry_price"])),
            stop=Decimal(repr(trade["stop_loss"])),
            risk_per_trade=Decimal(repr(params["risk_per_trade"])),
            leverage=Decimal(repr(params["leverage"])),
            max_position_notional=Decimal(repr(params["max_position_notional"])),
            instrument=Instrument(
                qty_step=Decimal(step), min_qty=Decimal(min_qty), min_notional=Decimal(min_notional)
            ),
        )
        assert abs(sized.qty - qty) <= Decimal(step)  # float vs Decimal stop distance may straddle a step
        equity += Decimal(repr(trade["pnl"]))
        previous = trade
