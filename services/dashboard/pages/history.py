"""History: orders and fills (paginated, filtered, CSV export), the bots' event log in plain language,
and the audit trail."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

import streamlit as st
from tradebot.common.v1 import common_pb2 as common
from tradebot.execution.v1 import events_pb2 as xe
from tradebot.execution.v1 import execution_service_pb2 as ex
from tradebot.strategy.v1 import events_pb2 as se
from tradebot.strategy.v1 import strategy_service_pb2 as sp
from tradebot.tenants.v1 import events_pb2 as te
from tradebot.tenants.v1 import tenants_service_pb2 as tp

from services.dashboard import pickers, session, widgets

user = session.require()
api = session.api()
PAGE = 50
EXPORT_PAGES = 20


def pager(
    key: str, fetch: Callable[[str], Any], rows: Callable[[Any], list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """One page at a time with Previous/Next; page tokens are kept in a stack per filter set."""
    tokens: list[str] = st.session_state.setdefault(f"{key}:tokens", [""])
    reply = fetch(tokens[-1])
    shown = rows(reply)
    widgets.table(shown, "Nothing here.")
    left, mid, right = st.columns(3)
    mid.caption(f"Page {len(tokens)}")
    if len(tokens) > 1 and left.button("Previous", key=f"{key}:prev"):
        tokens.pop()
        st.rerun()
    if reply.next_page_token and right.button("Next", key=f"{key}:next"):
        tokens.append(reply.next_page_token)
        st.rerun()
    return shown


def reset_pages(key: str, filters: tuple[Any, ...]) -> None:
    if st.session_state.get(f"{key}:filters") != filters:
        st.session_state[f"{key}:filters"] = filters
        st.session_state[f"{key}:tokens"] = [""]


def export(key: str, fetch: Callable[[str], Any], rows: Callable[[Any], list[dict[str, Any]]]) -> None:
    if not st.button("Prepare CSV", key=f"{key}:csv"):
        return
    out: list[dict[str, Any]] = []
    token = ""
    for _ in range(EXPORT_PAGES):
        reply = fetch(token)
        out.extend(rows(reply))
        token = reply.next_page_token
        if not token:
            break
    buffer = io.StringIO()
    if out:
        writer = csv.DictWriter(buffer, fieldnames=list(out[0]))
        writer.writeheader()
        writer.writerows(out)
    st.download_button(
        f"Download {len(out)} rows", buffer.getvalue(), f"{key}.csv", "text/csv", key=f"{key}:dl"
    )


def order_rows(reply: Any) -> list[dict[str, Any]]:
    return [
        {
            "time": widgets.when(o.create_time),
            "symbol": o.symbol,
            "side": widgets.label(common.Side, o.side),
            "type": widgets.label(xe.OrderType, o.order_type),
            "qty": o.qty,
            "price": o.price or "market",
            "filled": o.cum_exec_qty,
            "avg price": o.avg_price,
            "status": widgets.label(xe.OrderStatus, o.status),
            "reason": o.reject_reason,
            "link id": o.order_link_id,
        }
        for o in reply.orders
    ]


def fill_rows(reply: Any) -> list[dict[str, Any]]:
    return [
        {
            "time": widgets.when(f.exec_time),
            "symbol": f.symbol,
            "side": widgets.label(common.Side, f.side),
            "qty": f.exec_qty,
            "price": f.exec_price,
            "fee": f.exec_fee,
            "realised PnL": f.realized_pnl,
        }
        for f in reply.fills
    ]


def trading_tab() -> None:
    left, mid, right = st.columns(3)
    mode = pickers.mode(left, "h_mode")
    bot_id = pickers.bot(mid, api, "h_bot", allow_all=True)
    symbol = right.text_input("Symbol", key="h_symbol").strip().upper()
    statuses = st.multiselect(
        "Order status",
        [v for v in xe.OrderStatus.values() if v],
        format_func=lambda v: widgets.label(xe.OrderStatus, v),
        key="h_status",
    )
    filters = (mode, bot_id, symbol, tuple(statuses))
    for key in ("orders", "fills"):
        reset_pages(key, filters)

    def orders(token: str) -> Any:
        return api.execution.ListOrders(
            ex.ListOrdersRequest(
                mode=mode, bot_id=bot_id, symbol=symbol, statuses=statuses, page_size=PAGE, page_token=token
            )
        )

    def fills(token: str) -> Any:
        return api.execution.ListFills(
            ex.ListFillsRequest(mode=mode, bot_id=bot_id, symbol=symbol, page_size=PAGE, page_token=token)
        )

    st.subheader("Orders")
    with widgets.shown_errors():
        pager("orders", orders, order_rows)
        export("orders", orders, order_rows)
    st.subheader("Fills")
    with widgets.shown_errors():
        pager("fills", fills, fill_rows)
        export("fills", fills, fill_rows)


def signal_sentence(s: se.Signal) -> str:
    held = [r.description or r.name for r in s.reasons if r.held]
    direction = "long" if s.side == common.SIDE_BUY else "short"
    what = {
        se.SIGNAL_ACTION_ENTRY: f"decided to open a {direction} position",
        se.SIGNAL_ACTION_EXIT: "decided to close its position",
        se.SIGNAL_ACTION_REVERSE: "decided to turn its position around",
    }.get(s.action, "signalled")
    return f"{what} at {s.reference_price}" + (f" because {'; '.join(held)}" if held else "")


def events_tab() -> None:
    bots = {b.id: b.name for b in pickers.bots(api)}
    lines: list[tuple[str, str]] = []
    with widgets.shown_errors():
        for s in api.strategy.ListSignals(sp.ListSignalsRequest(page_size=100)).signals:
            lines.append(
                (widgets.when(s.create_time), f"{bots.get(s.bot_id, 'A bot')} {signal_sentence(s)}.")
            )
    with widgets.shown_errors():
        for e in api.execution.ListRiskEvents(ex.ListRiskEventsRequest(page_size=100)).events:
            lines.append((widgets.when(e.occur_time), f"{bots.get(e.bot_id, 'Risk check')}: {e.message}"))
    for when, text in sorted(lines, reverse=True):
        st.markdown(f"`{when}` {text}")
    if not lines:
        st.caption("No events yet.")


def audit_rows(reply: Any) -> list[dict[str, Any]]:
    return [
        {
            "time": widgets.when(e.occur_time),
            "who": e.actor_email or widgets.label(te.ActorKind, e.actor_kind),
            "action": e.action,
            "target": f"{e.target_type} {e.target_id}".strip(),
            "details": ", ".join(f"{k}={v}" for k, v in sorted(e.details.items())),
        }
        for e in reply.events
    ]


def audit_tab() -> None:
    action = st.text_input("Action (e.g. user.login)", key="a_action").strip()
    reset_pages("audit", (action,))

    def fetch(token: str) -> Any:
        return api.tenants.ListAuditEvents(
            tp.ListAuditEventsRequest(action=action, page_size=PAGE, page_token=token)
        )

    with widgets.shown_errors():
        pager("audit", fetch, audit_rows)
        export("audit", fetch, audit_rows)
        if st.button("Verify the trail", key="a_verify"):
            result = api.tenants.VerifyAuditChain(tp.VerifyAuditChainRequest())
            if result.valid:
                st.success(f"The trail is intact: {result.checked_count} entries checked.")
            else:
                st.error(f"The trail was altered at entry {result.first_invalid_sequence}: {result.message}")


st.title("History")
names = ["Orders & fills", "Event log"] + (["Audit trail"] if user.is_owner or user.is_admin else [])
for tab, render in zip(st.tabs(names), [trading_tab, events_tab, audit_tab], strict=False):
    with tab:
        render()
