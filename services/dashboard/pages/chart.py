"""Chart: candles of a bot's symbol with EMA and the UT Bot stop, a Heikin Ashi toggle, EWO and Stoch RSI
panels, and the bot's signals marked with their reasons on hover."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import streamlit as st
from tradebot.common.v1 import common_pb2 as common
from tradebot.marketdata.v1 import marketdata_service_pb2 as md
from tradebot.strategy.v1 import events_pb2 as se
from tradebot.strategy.v1 import strategy_service_pb2 as sp

from services.dashboard import chart_lines, figures, pickers, session, widgets
from services.dashboard.client import PlatformError

BARS = 300
SECONDS = {
    common.INTERVAL_1_MINUTE: 60,
    common.INTERVAL_5_MINUTES: 300,
    common.INTERVAL_15_MINUTES: 900,
    common.INTERVAL_1_HOUR: 3600,
    common.INTERVAL_4_HOURS: 14400,
    common.INTERVAL_1_DAY: 86400,
}


def hover(signal: se.Signal) -> str:
    reasons = "<br>".join(f"{'✔' if r.held else '✘'} {r.description or r.name}" for r in signal.reasons)
    return (
        f"{widgets.label(se.SignalAction, signal.action)} {widgets.label(common.Side, signal.side)} "
        f"@ {signal.reference_price}<br>{reasons}"
    )


st.title("Chart")
api = session.api()
bots = pickers.bots(api)
left, mid, right = st.columns(3)
choice = left.selectbox(
    "Bot or symbol",
    [b.id for b in bots] + ["other"],
    format_func=lambda i: next((f"{b.name} ({b.symbol})" for b in bots if b.id == i), "Any symbol"),
    key="chart_bot",
)
bot = next((b for b in bots if b.id == choice), None)
if bot is None:
    symbol = mid.text_input("Symbol", value="SOLUSDT", key="chart_symbol").strip().upper()
    category = common.CATEGORY_LINEAR
    interval = pickers.interval(right, "chart_interval")
    params = chart_lines.DEFAULTS
else:
    symbol, category, interval = bot.symbol, bot.category, bot.interval
    mid.text_input("Symbol", value=symbol, disabled=True, key="chart_symbol_bot")
    right.text_input("Interval", value=pickers.interval_name(interval), disabled=True, key="chart_iv_bot")
    params = chart_lines.parameter_values(bot.parameters)
heikin_ashi = st.toggle("Heikin Ashi candles", key="chart_ha")

with widgets.shown_errors():
    now = datetime.now(UTC)
    window = common.TimeRange()
    window.start.FromDatetime(now - timedelta(seconds=BARS * SECONDS.get(interval, 3600)))
    reply = api.marketdata.GetCandles(
        md.GetCandlesRequest(
            category=category, symbol=symbol, interval=interval, time_range=window, page_size=1000
        )
    )
    candles = list(reply.candles)
    if not candles:
        st.info(f"No candles for {symbol} yet.")
        st.stop()
    frame: dict[str, Any] = {
        "time": [c.start.ToDatetime() for c in candles],
        **{k: np.array([float(getattr(c, k)) for c in candles]) for k in ("open", "high", "low", "close")},
    }
    drawn = chart_lines.compute(frame, params, heikin_ashi)
    fig = figures.candles({**drawn["candles"], "time": frame["time"]}, drawn["lines"], drawn["panels"])
    if bot is not None:
        try:
            signals = api.strategy.ListSignals(
                sp.ListSignalsRequest(bot_id=bot.id, time_range=window, page_size=1000)
            ).signals
        except PlatformError as error:
            st.info(error.sentence)
            signals = []
        for action, up in (("entries", True), ("exits", False)):
            chosen = [s for s in signals if (s.action != se.SIGNAL_ACTION_EXIT) == up]
            if chosen:
                figures.add_markers(
                    fig,
                    action,
                    [s.candle_start.ToDatetime() for s in chosen],
                    [float(s.reference_price) for s in chosen],
                    [hover(s) for s in chosen],
                    up=up,
                )
    st.plotly_chart(fig, use_container_width=True, config={"scrollZoom": True})
    st.caption(
        "Lines are drawn here from the candles with the strategy's own indicator code and the bot's "
        "parameters (defaults for other symbols)."
    )
