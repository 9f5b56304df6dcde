"""Overview: every bot's status and PnL, equity, open positions, latest orders and what needs
attention. The data part refreshes itself every few seconds (a fragment), so inputs elsewhere on the
page are kept."""

from __future__ import annotations

import streamlit as st
from tradebot.common.v1 import common_pb2 as common
from tradebot.execution.v1 import events_pb2 as xe
from tradebot.execution.v1 import execution_service_pb2 as ex
from tradebot.strategy.v1 import events_pb2 as se
from tradebot.tenants.v1 import tenants_service_pb2 as tp

from services.dashboard import overview_data, session, widgets
from services.dashboard.client import NotAvailable

REFRESH_SECONDS = 4  # under the 5 s the issue allows, leaving time for the calls themselves

st.title("Overview")
mode_name = st.segmented_control("Account", ["Paper", "Live"], default="Paper", key="overview_mode")
mode = common.TRADING_MODE_LIVE if mode_name == "Live" else common.TRADING_MODE_PAPER


def alerts(data: overview_data.Overview) -> list[str]:
    """Things a person should look at, as sentences."""
    found = []
    summary = data.get("summary")
    for switch in summary.kill_switches if summary else []:
        found.append(
            f"Kill switch ({widgets.label(ex.KillSwitchScope, switch.scope)}) is on: {switch.reason}"
        )
    creds = data.get("credentials")
    if creds and creds.status.present and creds.status.validation == tp.CREDENTIALS_VALIDATION_INVALID:
        found.append(f"Your exchange key is not valid: {creds.status.validation_message}")
    bots = data.get("bots")
    for bot in bots.bots if bots else []:
        if bot.status_message:
            found.append(f"Bot {bot.name}: {bot.status_message}")
    risk = data.get("risk")
    for event in risk.events if risk else []:
        found.append(f"{widgets.when(event.occur_time)} — {event.message}")
    return found


@st.fragment(run_every=REFRESH_SECONDS)
def live_part() -> None:
    if session.current() is None:
        st.rerun(scope="app")
    data = overview_data.load(session.api(), mode, session.require().tenant.id)
    for error in data.errors.values():
        if not isinstance(error, NotAvailable) and error.code == "UNAUTHENTICATED":
            session.end(f"{error.sentence} Sign in again.")
            st.rerun(scope="app")
    summary = data.get("summary")
    coin = "USDT"
    cols = st.columns(4)
    if summary is not None:
        cols[0].metric("Equity", widgets.money(summary.wallet.total_equity, coin))
        cols[1].metric("PnL today", widgets.signed(summary.today_net_pnl, coin))
        cols[2].metric("Unrealised PnL", widgets.signed(summary.unrealized_pnl, coin))
        cols[3].metric("Open positions", summary.open_position_count)
    shown = set()
    for error in data.errors.values():
        if error.sentence not in shown:
            shown.add(error.sentence)
            (st.info if isinstance(error, NotAvailable) else st.error)(error.sentence)

    attention = alerts(data)
    st.subheader("Needs attention")
    if attention:
        for line in attention:
            st.warning(line)
    else:
        st.caption("Nothing needs your attention.")

    st.subheader("Bots")
    bots = data.get("bots")
    if bots is not None and not bots.bots:
        st.caption(f"No {(mode_name or 'Paper').lower()} bots yet: create one on the Bots page.")
    elif bots is not None:
        rows = []
        for bot in bots.bots:
            pnl = data.bot_pnl.get(bot.id)
            rows.append(
                {
                    "bot": bot.name,
                    "status": widgets.label(se.BotStatus, bot.status),
                    "symbol": bot.symbol,
                    "PnL today": widgets.signed(pnl.today) if pnl else "—",
                    # The days before today arrive from the background a refresh or two later.
                    "PnL total": "—"
                    if pnl is None
                    else "…"
                    if pnl.total is None
                    else widgets.signed(pnl.total),
                }
            )
        st.dataframe(rows, hide_index=True, use_container_width=True)

    st.subheader("Open positions")
    positions = data.get("positions")
    if positions is not None:
        # Few, compact columns: a phone shows them all without scrolling sideways (the mark price is
        # left out: the unrealised PnL already follows it, and a fifth column overflowed 390 px).
        rows = [
            {
                "position": f"{'long' if p.side == common.SIDE_BUY else 'short'} {p.size} {p.symbol}",
                "entry": p.entry_price,
                "unrealised": widgets.signed(p.unrealized_pnl),
                "stop / target": f"{p.stop_loss or '—'} / {p.take_profit or '—'}",
            }
            for p in positions.positions
        ]
        widgets.table(rows, "No open positions.")

    st.subheader("Latest orders")
    orders = data.get("orders")
    if orders is not None:
        rows = [
            {
                "time": widgets.when(o.create_time)[:16],
                "order": f"{widgets.label(common.Side, o.side)} {o.qty} {o.symbol}",
                "price": o.avg_price or o.price or "market",
                "status": widgets.label(xe.OrderStatus, o.status),
            }
            for o in orders.orders
        ]
        widgets.table(rows, "No orders yet.")
    st.caption(f"Updated {widgets.now_iso()} · refreshes every {REFRESH_SECONDS} s")


live_part()
