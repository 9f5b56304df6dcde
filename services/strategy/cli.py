"""`tradebot`: backtests and indicator exports from the command line.

Errors in the input (parameters, templates, candle files) print one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import math
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path

import numpy as np

from services.strategy.candles import Candles, load_csv
from services.strategy.errors import StrategyInputError
from services.strategy.registry import get_strategy
from services.strategy.sizing import Instrument


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tradebot", description="Tradebot trading core")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("backtest", "indicators"):
        p = sub.add_parser(name)
        p.add_argument("--strategy", required=True)
        p.add_argument("--template")
        p.add_argument("--data", required=True, type=Path, help="CSV: timestamp,open,high,low,close,volume")
        p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
        p.add_argument(
            "--gaps", choices=("report", "error"), default="report", help="missing bars: count or reject"
        )
        p.add_argument("--out", required=True, type=Path)
    bt = sub.choices["backtest"]
    bt.add_argument("--fee", type=float, default=0.00055, help="fee rate per side")
    bt.add_argument("--slippage-bps", type=float, default=2.0)
    bt.add_argument("--equity", default="10000")
    bt.add_argument("--qty-step", default="0.001")
    bt.add_argument("--min-qty", default="0.001")
    bt.add_argument("--min-notional", default="5")
    bt.add_argument("--no-shorts", action="store_true", help="the market does not allow shorts (spot)")
    return parser


def _overrides(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise StrategyInputError(f"expected NAME=VALUE, got {pair!r}", field="--param")
        out[name.strip()] = value
    return out


def _decimal(text: str, field: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise StrategyInputError(f"not a number: {text!r}", field=field) from None
    if not value.is_finite() or value < 0:
        raise StrategyInputError(f"must be a non-negative number, got {text}", field=field)
    return value


def _backtest(args: argparse.Namespace, candles: Candles) -> None:
    from services.strategy.backtest.engine import BacktestConfig, run_backtest
    from services.strategy.backtest.report import write_all

    strategy = get_strategy(args.strategy)
    params = strategy.resolve(args.template, _overrides(args.param))
    if not (0 <= args.fee < 0.1):
        raise StrategyInputError(f"must be in [0, 0.1), got {args.fee}", field="--fee")
    if not (0 <= args.slippage_bps < 1000):
        raise StrategyInputError(f"must be in [0, 1000), got {args.slippage_bps}", field="--slippage-bps")
    step = _decimal(args.qty_step, "--qty-step")
    if step == 0:
        raise StrategyInputError("must be positive", field="--qty-step")
    config = BacktestConfig(
        instrument=Instrument(
            qty_step=step,
            min_qty=_decimal(args.min_qty, "--min-qty"),
            min_notional=_decimal(args.min_notional, "--min-notional"),
            shorts_allowed=not args.no_shorts,
        ),
        initial_equity=_decimal(args.equity, "--equity"),
        fee_rate=args.fee,
        slippage_bps=args.slippage_bps,
    )

    def progress(done: int, total: int) -> None:
        print(f"backtest: {done}/{total} bars ({100 * done // total}%)", file=sys.stderr, flush=True)

    result = run_backtest(strategy, candles, params, config, progress=progress)
    for path in write_all(result, args.out):
        print(path)
    m = result.metrics
    print(
        f"trades {m['trade_count']}, total return {m['total_return']:.2%}, "
        f"max drawdown {m['max_drawdown']:.2%}"
    )


def _indicators(args: argparse.Namespace, candles: Candles) -> None:
    strategy = get_strategy(args.strategy)
    params = strategy.resolve(args.template, _overrides(args.param))
    columns = strategy.indicators(candles, params)
    signals = strategy.signals(candles, columns, params, shorts_allowed=True)
    table: dict[str, np.ndarray] = {
        "timestamp": candles.timestamp,
        "open": candles.open,
        "high": candles.high,
        "low": candles.low,
        "close": candles.close,
        "volume": candles.volume,
        **columns,
        "long_entry": signals.long_entry,
        "short_entry": signals.short_entry,
    }
    flags = {"ut_buy", "ut_sell", "long_entry", "short_entry"}
    text = [",".join(table)]
    cells = [_format(name, col, name in flags) for name, col in table.items()]
    text.extend(",".join(row) for row in zip(*cells, strict=True))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(text) + "\n")
    print(args.out)


def _format(name: str, col: np.ndarray, flag: bool) -> list[str]:
    if name == "timestamp":
        return [str(v) for v in col.tolist()]
    if flag:
        return ["1" if v else "0" for v in col.tolist()]
    return ["" if math.isnan(v) else repr(v) for v in col.tolist()]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        candles = load_csv(args.data, gaps=args.gaps)
        if args.command == "backtest":
            _backtest(args, candles)
        else:
            _indicators(args, candles)
    except StrategyInputError as exc:
        print(f"tradebot {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"tradebot {args.command}: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
