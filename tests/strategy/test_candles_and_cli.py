"""Candle validation and the tradebot command line (real main() and the installed console script)."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from services.strategy.candles import load_csv
from services.strategy.cli import main
from services.strategy.errors import CandleError
from tests.strategy.conftest import shared_file

HEADER = "timestamp,open,high,low,close,volume"
GOOD = ["1000,10,11,9,10.5,1", "2000,10.5,12,10,11,1", "3000,11,11.5,10.5,11,1"]


def _write(tmp_path: Path, rows: list[str], header: str = HEADER) -> Path:
    path = tmp_path / "c.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (["2000,10,11,9,10,1", "1000,10,11,9,10,1"], "line 3: timestamp 1000 is earlier"),
        (["1000,10,11,9,10,1", "1000,10,11,9,10,1"], "line 3: timestamp 1000 duplicates"),
        (["1000,10,11,9,10,1", "2000,10,11,9,,1"], "close: line 3: not a finite number"),
        (["1000,10,11,9,nan,1"], "close: line 2: not a finite number"),
        (["1000,0,11,9,10,1"], "open: line 2: price must be positive"),
        (["1000,10,11,-9,10,1"], "low: line 2: price must be positive"),
        (["1000,10,9,11,10,1"], "high: line 2: high 9.0 is below low 11.0"),
        (["1000,10,10.5,9,11,1"], "line 2: open 10.0 / close 11.0 outside"),
        (["1000,10,11,9,abc,1"], "close: line 2: not a number"),
        (["1000,10,11,9"], "line 2: expected 6 cells"),
    ],
)
def test_bad_candles_name_the_row(tmp_path: Path, rows: list[str], message: str) -> None:
    with pytest.raises(CandleError) as info:
        load_csv(_write(tmp_path, rows))
    assert message in str(info.value)


def test_gaps_are_reported_or_refused(tmp_path: Path) -> None:
    rows = [*GOOD, "6000,11,11.5,10.5,11,1"]
    candles = load_csv(_write(tmp_path, rows))
    assert candles.interval_ms == 1000 and candles.gaps[0].line == 5 and candles.gaps[0].missing_bars == 2
    with pytest.raises(CandleError, match="line 5: 2 bar"):
        load_csv(_write(tmp_path, rows), gaps="error")


def test_real_files_load() -> None:
    alt = load_csv(shared_file("ohlcv/ALTBTC-1m.csv"))
    assert len(alt) == 13681 and sum(g.missing_bars for g in alt.gaps) == 717
    monthly = load_csv(shared_file("ohlcv/BTCUSD-1M.csv"))
    assert not monthly.gaps


def test_cli_backtest_writes_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = shared_file("ohlcv/SOLUSDT-1h.csv")
    code = main(
        [
            "backtest",
            "--strategy",
            "ppp_vishva",
            "--template",
            "moderate",
            "--data",
            str(data),
            "--param",
            "ema_len=50",
            "--fee",
            "0.00055",
            "--slippage-bps",
            "2",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    report = json.loads((tmp_path / "report.json").read_text())
    for name in (
        "total_return",
        "cagr",
        "win_rate",
        "profit_factor",
        "max_drawdown",
        "max_drawdown_duration_bars",
        "sharpe",
        "sortino",
        "expectancy",
        "exposure",
        "trade_count",
        "average_holding_time_seconds",
        "fees_paid",
    ):
        assert name in report["metrics"]
    assert report["params"]["ema_len"] == 50
    assert isinstance(report["trades"], list) and report["metrics"]["trade_count"] == len(report["trades"])
    html = (tmp_path / "report.html").read_text()
    assert "<script" in html and "<script src=" not in html  # plotly.js inlined: works offline
    assert (tmp_path / "equity.png").read_bytes()[:4] == b"\x89PNG"
    assert "100%" in capsys.readouterr().err


def test_cli_indicators_columns(tmp_path: Path) -> None:
    data = shared_file("ohlcv/SOLUSDT-1h.csv")
    out = tmp_path / "ind.csv"
    assert main(["indicators", "--strategy", "ppp_vishva", "--data", str(data), "--out", str(out)]) == 0
    with out.open() as f:
        rows = list(csv.DictReader(f))
    expected = [
        *HEADER.split(","),
        "ema",
        "atr_sl",
        "atr_ut",
        "rsi",
        "stochrsi_k",
        "stochrsi_d",
        "ewo",
        "ha_open",
        "ha_high",
        "ha_low",
        "ha_close",
        "ut_stop",
        "ut_buy",
        "ut_sell",
        "long_entry",
        "short_entry",
    ]
    assert list(rows[0]) == expected
    assert rows[0]["ema"] == "" and rows[99]["ema"] != ""
    assert {r["ut_buy"] for r in rows} <= {"0", "1"}
    assert len(rows) == 1000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--template", "wild"], "template: unknown template 'wild'"),
        (["--param", "ema_len=0"], "ema_len: must be >= 2"),
        (["--param", "bogus=1"], "bogus: unknown parameter"),
        (["--param", "ewo_slow=3"], "ewo_slow: must be greater than ewo_fast"),
    ],
)
def test_cli_bad_parameters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    data = shared_file("ohlcv/SOLUSDT-1h.csv")
    code = main(["backtest", "--strategy", "ppp_vishva", "--data", str(data), "--out", str(tmp_path), *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err and err.count("\n") == 1


def test_cli_bad_data_and_too_few_bars(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = _write(tmp_path, ["2000,10,11,9,10,1", "1000,10,11,9,10,1"])
    assert (
        main(["indicators", "--strategy", "ppp_vishva", "--data", str(bad), "--out", str(tmp_path / "o.csv")])
        == 2
    )
    assert "line 3" in capsys.readouterr().err
    short = shared_file("ohlcv/XRPUSDT-1h.csv")  # 100 bars; EMA(100) needs 102
    assert main(["backtest", "--strategy", "ppp_vishva", "--data", str(short), "--out", str(tmp_path)]) == 2
    assert "too few" in capsys.readouterr().err
    assert main(["backtest", "--strategy", "nope", "--data", str(short), "--out", str(tmp_path)]) == 2
    assert "strategy: unknown strategy" in capsys.readouterr().err


def test_console_script_reports_errors_in_one_line(tmp_path: Path) -> None:
    exe = shutil.which("tradebot", path=str(Path(__file__).parents[2] / ".venv" / "bin"))
    if exe is None:
        pytest.skip("the tradebot console script is not installed in .venv")
    missing = tmp_path / "missing.csv"
    proc = subprocess.run(
        [exe, "backtest", "--strategy", "ppp_vishva", "--data", str(missing), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode != 0
    assert proc.stderr.count("\n") == 1 and "cannot read" in proc.stderr and "Traceback" not in proc.stderr
