"""Backtests over gRPC: the CLI's engine (`backtest.engine.run_backtest`) on history from marketdata,
progress streamed while it runs, the report stored and listed."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import numpy as np
from google.protobuf.duration_pb2 import Duration
from sqlalchemy import Engine, text
from sqlmodel import Session, select
from tradebot.common.v1 import common_pb2
from tradebot.strategy.v1 import strategy_service_pb2 as pb

from services.common import market
from services.common.context import Principal
from services.common.errors import InvalidArgument, NotFound, ResourceExhausted
from services.strategy import convert
from services.strategy.backtest.engine import BacktestConfig, BacktestResult, run_backtest
from services.strategy.bots import strategy_of
from services.strategy.market import MarketData, StreamKey
from services.strategy.models import BacktestRow

MAX_RUNNING_PER_TENANT = 2
EQUITY_POINTS = 5000
DEFAULT_FEE_RATE = "0.00055"  # Bybit's taker rate for linear and spot
EXIT_REASONS = {
    "stop_loss": pb.EXIT_REASON_STOP_LOSS,
    "take_profit": pb.EXIT_REASON_TAKE_PROFIT,
    "opposite_signal": pb.EXIT_REASON_SIGNAL,
    "end_of_data": pb.EXIT_REASON_END_OF_DATA,
}


def _duration(seconds: float | None) -> Duration:
    d = Duration()
    d.FromMilliseconds(int((seconds or 0) * 1000))
    return d


def _num(value: float | None) -> float:
    return 0.0 if value is None else float(value)


def metrics_proto(m: dict[str, Any]) -> pb.BacktestMetrics:
    profit_factor = m["profit_factor"]
    if profit_factor is None and m["trade_count"] and (m["win_rate"] or 0) > 0:
        profit_factor = math.inf  # wins and no losses
    return pb.BacktestMetrics(
        total_return=_num(m["total_return"]),
        cagr=_num(m["cagr"]),
        win_rate=_num(m["win_rate"]),
        profit_factor=_num(profit_factor),
        max_drawdown=_num(m["max_drawdown"]),
        max_drawdown_duration=_duration(m["max_drawdown_duration_seconds"]),
        sharpe=_num(m["sharpe"]),
        sortino=_num(m["sortino"]),
        expectancy=convert.price_text(_num(m["expectancy"])),
        exposure=_num(m["exposure"]),
        trade_count=int(m["trade_count"]),
        avg_holding_time=_duration(m["average_holding_time_seconds"]),
        fees_paid=convert.price_text(_num(m["fees_paid"])),
        final_equity=convert.price_text(_num(m["final_equity"])),
    )


def report_proto(result: BacktestResult, first: int) -> pb.BacktestReport:
    """The report over the traded range (bars from `first`; earlier ones only warmed indicators up)."""
    report = pb.BacktestReport(metrics=metrics_proto(result.metrics))
    for tr in result.trades:
        report.trades.add(
            side=common_pb2.SIDE_BUY if tr["side"] == "long" else common_pb2.SIDE_SELL,
            entry_time=convert.timestamp(tr["entry_time"]),
            entry_price=convert.price_text(tr["entry_price"]),
            exit_time=convert.timestamp(tr["exit_time"]),
            exit_price=convert.price_text(tr["exit_price"]),
            qty=tr["qty"],
            pnl=convert.price_text(tr["pnl"]),
            return_fraction=tr["pnl"] / (tr["entry_price"] * float(tr["qty"])) if float(tr["qty"]) else 0.0,
            fees=convert.price_text(tr["fees"]),
            exit_reason=EXIT_REASONS[tr["exit_reason"]],
            stop_loss=convert.price_text(tr["stop_loss"]),
            take_profit=convert.price_text(tr["take_profit"]),
        )
    equity = result.equity[first:]
    times = result.candles.timestamp[first:] + result.candles.interval_ms
    peak = np.maximum.accumulate(equity) if len(equity) else equity
    for j in np.unique(np.linspace(0, len(equity) - 1, min(len(equity), EQUITY_POINTS)).astype(int)):
        report.equity_curve.add(
            time=convert.timestamp(int(times[j])),
            equity=convert.price_text(float(equity[j])),
            drawdown=float(1 - equity[j] / peak[j]) if peak[j] > 0 else 0.0,
        )
    return report


class Backtests:
    def __init__(self, engine: Engine, market: MarketData) -> None:
        self.engine = engine
        self.market = market
        self._running: dict[str, int] = {}

    async def run(self, who: Principal, config: pb.BacktestConfig) -> AsyncIterator[pb.RunBacktestResponse]:
        strategy = strategy_of(config.strategy_id, "config.strategy_id")
        overrides = convert.parameter_overrides(strategy, config.parameters, "config.parameters")
        params = strategy.resolve(config.template or None, overrides)
        category = market.category_name(config.category, "config.category")
        interval = market.interval_name(config.interval, "config.interval")
        window = config.time_range
        if not (window.HasField("start") and window.HasField("end")):
            raise InvalidArgument("both start and end are required", field="config.time_range")
        start_ms, end_ms = window.start.ToMilliseconds(), window.end.ToMilliseconds()
        if end_ms <= start_ms:
            raise InvalidArgument("end must be after start", field="config.time_range")
        capital = convert.positive_decimal(config.initial_capital, "config.initial_capital")
        fee = Decimal(config.fee_rate or DEFAULT_FEE_RATE)
        slippage = Decimal(config.slippage or "0")
        if not (0 <= fee < 1 and 0 <= slippage < 1):
            raise InvalidArgument("fee_rate and slippage are fractions in [0, 1)", field="config.fee_rate")
        if not config.symbol:
            raise InvalidArgument("is required", field="config.symbol")
        instrument = await self.market.instrument(category, config.symbol)
        if self._running.get(who.tenant_id, 0) >= MAX_RUNNING_PER_TENANT:
            raise ResourceExhausted(f"at most {MAX_RUNNING_PER_TENANT} backtests run at once per tenant")

        resolved = pb.BacktestConfig()
        resolved.CopyFrom(config)
        resolved.template = config.template or strategy.default_template
        resolved.ClearField("parameters")
        for name, value in params.items():
            resolved.parameters[name].CopyFrom(convert.parameter_value(value))
        row = BacktestRow(
            id=str(uuid.uuid4()),
            tenant_id=who.tenant_id,
            created_by=who.user_id,
            strategy_id=strategy.name,
            symbol=config.symbol,
            status=pb.BACKTEST_STATUS_RUNNING,
            config=resolved.SerializeToString(),
            create_time=convert.now(),
        )
        await asyncio.to_thread(self._save, row)
        self._running[who.tenant_id] = self._running.get(who.tenant_id, 0) + 1
        try:
            step = market.interval_ms(interval)
            warm = strategy.warmup_bars(params) * step
            history = await self.market.candles(
                StreamKey(category, config.symbol, interval), start_ms - warm, end_ms
            )
            if len(history) == 0:
                raise InvalidArgument("marketdata has no candles in this range", field="config.time_range")
            candles = history.as_candles(step)
            first = int(np.searchsorted(candles.timestamp, start_ms))
            bt_config = BacktestConfig(
                instrument=instrument,
                initial_equity=capital,
                fee_rate=float(fee),
                slippage_bps=float(slippage) * 10_000,
            )
            loop = asyncio.get_running_loop()
            progress: asyncio.Queue[tuple[int, int]] = asyncio.Queue()

            def report(done: int, total: int) -> None:
                loop.call_soon_threadsafe(progress.put_nowait, (done, total))

            chunk = max(1000, len(candles) // 20)  # about one update per 5 % of the candles
            job = asyncio.ensure_future(
                asyncio.to_thread(
                    run_backtest, strategy, candles, params, bt_config, progress=report, chunk=chunk
                )
            )
            while not job.done() or not progress.empty():
                getter = asyncio.ensure_future(progress.get())
                await asyncio.wait({job, getter}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    continue
                done, total = getter.result()
                t = max(0, done - 1)
                msg = pb.BacktestProgress(bars_processed=done, bars_total=total)
                msg.current_candle_start.CopyFrom(convert.timestamp(int(candles.timestamp[t])))
                yield pb.RunBacktestResponse(backtest_id=row.id, progress=msg)
            result = job.result()
            final = report_proto(result, first)
            row.status, row.finish_time = pb.BACKTEST_STATUS_SUCCEEDED, convert.now()
            row.metrics, row.report = final.metrics.SerializeToString(), final.SerializeToString()
            await asyncio.to_thread(self._save, row)
            yield pb.RunBacktestResponse(backtest_id=row.id, report=final)
        except asyncio.CancelledError:
            row.status, row.finish_time = pb.BACKTEST_STATUS_CANCELLED, convert.now()
            await asyncio.to_thread(self._save, row)
            raise
        except Exception as error:
            row.status, row.finish_time = pb.BACKTEST_STATUS_FAILED, convert.now()
            row.error_message = str(error)
            await asyncio.to_thread(self._save, row)
            raise
        finally:
            self._running[who.tenant_id] -= 1

    def _save(self, row: BacktestRow) -> None:
        with Session(self.engine) as session, session.begin():
            session.merge(row)

    def get(self, tenant_id: str, backtest_id: str) -> tuple[pb.Backtest, pb.BacktestReport | None]:
        with Session(self.engine) as session:
            row = session.get(BacktestRow, backtest_id)
        if row is None or row.tenant_id != tenant_id:
            raise NotFound(f"no backtest {backtest_id!r}", field="backtest_id")
        return self._proto(row), pb.BacktestReport.FromString(row.report) if row.report else None

    def page(
        self,
        tenant_id: str,
        *,
        strategy_id: str,
        symbol: str,
        status: int,
        after: tuple[str, str] | None,
        size: int,
    ) -> list[pb.Backtest]:
        query = select(BacktestRow).where(BacktestRow.tenant_id == tenant_id)
        if strategy_id:
            query = query.where(BacktestRow.strategy_id == strategy_id)
        if symbol:
            query = query.where(BacktestRow.symbol == symbol)
        if status:
            query = query.where(BacktestRow.status == status)
        if after is not None:
            query = query.where(
                text("(create_time, id) < (cast(:t as timestamptz), :i)").bindparams(t=after[0], i=after[1])
            )
        query = query.order_by(BacktestRow.create_time.desc(), BacktestRow.id.desc()).limit(size)  # type: ignore[attr-defined]
        with Session(self.engine) as session:
            return [self._proto(row) for row in session.scalars(query)]

    @staticmethod
    def _proto(row: BacktestRow) -> pb.Backtest:
        bt = pb.Backtest(
            id=row.id,
            tenant_id=row.tenant_id,
            created_by_user_id=row.created_by,
            config=pb.BacktestConfig.FromString(row.config),
            status=row.status,
            error_message=row.error_message,
            create_time=convert.timestamp(row.create_time),
        )
        if row.metrics:
            bt.metrics.CopyFrom(pb.BacktestMetrics.FromString(row.metrics))
        if row.finish_time is not None:
            bt.finish_time.CopyFrom(convert.timestamp(row.finish_time))
        return bt
