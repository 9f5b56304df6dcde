"""Backtest: run a strategy (PPP Vishva first) with chosen parameters over history, with a progress bar,
then show the report; earlier backtests are listed below."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import streamlit as st
from tradebot.common.v1 import common_pb2 as common
from tradebot.strategy.v1 import strategy_service_pb2 as sp

from services.dashboard import figures, params_form, pickers, session, stats, widgets

user = session.require()
api = session.api()
st.title("Backtest")


def report(result: sp.BacktestReport) -> None:
    m = result.metrics
    cols = st.columns(4)
    cols[0].metric("Return", stats.percent(m.total_return))
    cols[1].metric("Win rate", stats.percent(m.win_rate))
    cols[2].metric("Profit factor", stats.ratio(m.profit_factor))
    cols[3].metric("Max drawdown", stats.percent(m.max_drawdown))
    cols = st.columns(4)
    cols[0].metric("Sharpe", stats.ratio(m.sharpe))
    cols[1].metric("Trades", m.trade_count)
    cols[2].metric("Final equity", widgets.money(m.final_equity))
    cols[3].metric("Fees", widgets.money(m.fees_paid))
    if result.equity_curve:
        st.plotly_chart(figures.equity_and_drawdown(result.equity_curve), use_container_width=True)
    if result.trades:
        st.plotly_chart(
            figures.returns_histogram([t.return_fraction for t in result.trades]), use_container_width=True
        )
        st.dataframe(
            [
                {
                    "entry": widgets.when(t.entry_time),
                    "side": widgets.label(common.Side, t.side),
                    "entry price": t.entry_price,
                    "exit price": t.exit_price,
                    "PnL": widgets.signed(t.pnl),
                    "exit": widgets.label(sp.ExitReason, t.exit_reason),
                }
                for t in result.trades
            ],
            hide_index=True,
            use_container_width=True,
        )


with widgets.shown_errors():
    strategies = {s.id: s for s in api.strategy.ListStrategies(sp.ListStrategiesRequest()).strategies}
    strategy = strategies[
        st.selectbox(
            "Strategy", list(strategies), format_func=lambda s: strategies[s].name, key="bt_strategy"
        )
    ]
    templates = [t.name for t in strategy.templates]
    template = st.selectbox("Template", templates, key="bt_template")
    left, right = st.columns(2)
    symbol = left.text_input("Symbol", value="SOLUSDT", key="bt_symbol").strip().upper()
    interval = pickers.interval(right, "bt_interval")
    today = datetime.now(UTC).date()
    start_day = left.date_input("From", value=today - timedelta(days=90), key="bt_from")
    end_day = right.date_input("To", value=today, key="bt_to")
    capital = left.text_input("Initial capital", value="10000", key="bt_capital")
    values = params_form.render(strategy, params_form.starting_values(strategy, template), f"bt:{template}")
    if user.can_trade and st.button("Run backtest", type="primary", key="bt_run"):
        config = sp.BacktestConfig(
            strategy_id=strategy.id,
            template=template,
            category=common.CATEGORY_LINEAR,
            symbol=symbol,
            interval=interval,
            initial_capital=capital.strip(),
        )
        config.time_range.start.FromDatetime(datetime.combine(start_day, time(), UTC))
        config.time_range.end.FromDatetime(datetime.combine(end_day, time(), UTC))
        for k, v in values.items():
            config.parameters[k].CopyFrom(v)
        bar = st.progress(0.0, text="Starting…")
        for message in api.stream("strategy", "RunBacktest", sp.RunBacktestRequest(config=config)):
            if message.HasField("progress"):
                p = message.progress
                bar.progress(
                    min(1.0, p.bars_processed / max(1, p.bars_total)),
                    text=f"{p.bars_processed}/{p.bars_total} candles · {p.trade_count} trades",
                )
            else:
                bar.progress(1.0, text="Done")
                st.session_state["bt_report"] = message.report
    if "bt_report" in st.session_state:
        report(st.session_state["bt_report"])
    st.subheader("Earlier backtests")
    past = api.strategy.ListBacktests(sp.ListBacktestsRequest(page_size=20)).backtests
    widgets.table(
        [
            {
                "when": widgets.when(b.create_time),
                "symbol": b.config.symbol,
                "status": widgets.label(sp.BacktestStatus, b.status),
                "return": stats.percent(b.metrics.total_return) if b.HasField("metrics") else "—",
            }
            for b in past
        ],
        "None yet.",
    )
