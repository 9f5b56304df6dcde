"""Performance: equity curve, drawdown, trade returns, daily PnL calendar and the summary figures, from
execution's PnL and fills."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import streamlit as st
from tradebot.common.v1 import common_pb2 as common
from tradebot.execution.v1 import execution_service_pb2 as ex

from services.common.convert import timestamp
from services.dashboard import figures, pickers, session, stats, widgets

RANGES = {"7 days": 7, "30 days": 30, "90 days": 90, "1 year": 365, "All": 0}
MAX_FILL_PAGES = 5

st.title("Performance")
api = session.api()
left, mid, right = st.columns(3)
mode = pickers.mode(left, "performance_mode")
bot_id = pickers.bot(mid, api, "performance_bot", allow_all=True)
days = RANGES[right.selectbox("Period", list(RANGES), index=1, key="performance_range")]
window = common.TimeRange()
if days:
    window.start.CopyFrom(timestamp(datetime.now(UTC) - timedelta(days=days)))

with widgets.shown_errors():
    pnl = api.execution.GetPnL(ex.GetPnLRequest(time_range=window, bot_id=bot_id, mode=mode))
    fills: list[ex.Fill] = []
    token = ""
    for _ in range(MAX_FILL_PAGES):
        page = api.execution.ListFills(
            ex.ListFillsRequest(bot_id=bot_id, mode=mode, time_range=window, page_size=1000, page_token=token)
        )
        fills.extend(page.fills)
        token = page.next_page_token
        if not token:
            break
    coin = pnl.currency
    cols = st.columns(4)
    cols[0].metric("Net PnL", widgets.signed(pnl.net_pnl, coin))
    cols[1].metric("Realised", widgets.signed(pnl.realized_pnl, coin))
    cols[2].metric("Fees", widgets.money(pnl.fees, coin))
    cols[3].metric("Unrealised", widgets.signed(pnl.unrealized_pnl, coin))
    cols = st.columns(4)
    cols[0].metric("Win rate", stats.percent(stats.win_rate(fills)))
    cols[1].metric("Profit factor", stats.ratio(stats.profit_factor(fills)))
    cols[2].metric("Max drawdown", stats.percent(stats.max_drawdown(pnl.equity_curve)))
    cols[3].metric("Sharpe", stats.ratio(stats.sharpe(pnl.equity_curve, periods_per_year=365 * 24)))
    if pnl.equity_curve:
        st.plotly_chart(figures.equity_and_drawdown(pnl.equity_curve), use_container_width=True)
    else:
        st.caption("No equity history in this period yet.")
    returns = stats.trade_returns(fills)
    if returns:
        st.plotly_chart(figures.returns_histogram(returns), use_container_width=True)
    if pnl.daily:
        daily = [(d.date, Decimal(d.net_pnl or "0")) for d in pnl.daily]
        st.plotly_chart(figures.calendar_heatmap([(d, v) for d, v in daily]), use_container_width=True)
