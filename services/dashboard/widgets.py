"""Widgets every page shares: platform errors as sentences, money and time formatting, confirmation,
critical actions with a few seconds to undo, the emergency stop-all and the phone-friendly layout."""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import segno
import streamlit as st
from google.protobuf.timestamp_pb2 import Timestamp
from tradebot.execution.v1 import execution_service_pb2 as ex

from services.dashboard import session
from services.dashboard.client import NotAvailable, PlatformError, SessionEnded

UNDO_SECONDS = 5.0

# Phones: tighter side padding (the top keeps clear of the fixed header, which would otherwise cover
# who is signed in), full-width buttons a thumb can hit (their containers shrink to fit by default).
MOBILE_CSS = """
<style>
@media (max-width: 640px) {
  .block-container { padding: 4rem 0.6rem 3rem 0.6rem !important; }
  [data-testid="stElementContainer"]:has([data-testid="stButton"]),
  [data-testid="stElementContainer"]:has([data-testid="stFormSubmitButton"]),
  [data-testid="stButton"], [data-testid="stFormSubmitButton"] { width: 100% !important; }
  [data-testid="stButton"] button, [data-testid="stFormSubmitButton"] button {
    width: 100%; min-height: 2.75rem;
  }
  [data-testid="stMetricValue"] { font-size: 1.3rem; }
}
.st-key-stop_all button { background: #c62828; color: white; font-weight: 700; }
</style>
"""


@contextmanager
def shown_errors() -> Iterator[None]:
    """Show a platform failure inside this block as a sentence; the rest of the page still renders."""
    try:
        yield
    except SessionEnded as error:
        session.end(f"{error.sentence} Sign in again.")
        st.rerun()
    except NotAvailable as error:
        st.info(error.sentence)
    except PlatformError as error:
        st.error(error.sentence)


def decimal(text: str) -> Decimal | None:
    try:
        return Decimal(text) if text else None
    except InvalidOperation:
        return None


def money(text: str, coin: str = "") -> str:
    """A decimal string from the platform as people read it, exactly (never through float)."""
    value = decimal(text)
    if value is None:
        return "—"
    shown = f"{value:,.2f}" if abs(value) >= 1 or value == 0 else f"{value.normalize():,f}"
    return f"{shown} {coin}".strip()


def signed(text: str, coin: str = "") -> str:
    value = decimal(text)
    return money(text, coin) if value is None or value < 0 else "+" + money(text, coin)


def when(stamp: Timestamp) -> str:
    if not stamp.seconds and not stamp.nanos:
        return "—"
    return stamp.ToDatetime(tzinfo=UTC).strftime("%Y-%m-%d %H:%M:%S")


def label(enum: Any, value: int) -> str:
    """An enum value as a word: BOT_STATUS_RUNNING -> "running"."""
    try:
        name: str = enum.Name(value)
    except ValueError:
        return str(value)
    if name.endswith("UNSPECIFIED"):
        return "—"
    return name.removeprefix(_prefix(enum)).replace("_", " ").lower()


def _prefix(enum: Any) -> str:
    names = [v.name for v in enum.DESCRIPTOR.values]
    return names[0].removesuffix("UNSPECIFIED") if names[0].endswith("UNSPECIFIED") else ""


def table(rows: list[dict[str, Any]], empty: str) -> None:
    """Rows as a scrollable table (phones scroll it sideways), or a sentence when there are none."""
    if rows:
        st.dataframe(rows, hide_index=True, use_container_width=True)
    else:
        st.caption(empty)


# Shown at this width in CSS pixels: large enough to scan from a screen, narrower than a phone.
QR_WIDTH = 240


def qr_svg(text: str) -> str:
    """`text` (a TOTP provisioning URI) as a QR code in SVG, sharp at any size and sent as it is (a
    bitmap would be re-encoded): medium error correction, a 4-module quiet zone, dark on white."""
    buffer = io.BytesIO()
    segno.make(text, error="m", micro=False).save(
        buffer, kind="svg", xmldecl=False, svgns=True, scale=8, border=4, dark="#000", light="#fff"
    )
    return buffer.getvalue().decode()


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def confirm(key: str, question: str, yes: str) -> bool:
    """Two-step confirmation inline (dialogs are awkward on phones): True on the second tap."""
    if not st.session_state.get(f"confirm:{key}"):
        return False
    st.warning(question)
    left, right = st.columns(2)
    if left.button(yes, key=f"confirm-yes:{key}", type="primary"):
        st.session_state.pop(f"confirm:{key}", None)
        return True
    if right.button("Cancel", key=f"confirm-no:{key}"):
        st.session_state.pop(f"confirm:{key}", None)
        st.rerun()
    return False


def ask_confirmation(key: str) -> None:
    st.session_state[f"confirm:{key}"] = True


@dataclass
class Pending:
    id: str
    label: str
    due: float
    action: Callable[[], str]


def schedule(label_text: str, action: Callable[[], str], delay: float = UNDO_SECONDS) -> None:
    """Run a critical action after `delay` seconds unless undone; `action` returns what happened."""
    queue: list[Pending] = st.session_state.setdefault("pending", [])
    queue.append(Pending(uuid.uuid4().hex, label_text, time.time() + delay, action))


def run_due() -> bool:
    """Carry out the actions whose undo time is over; True when one ran."""
    queue: list[Pending] = st.session_state.get("pending", [])
    due = [p for p in queue if p.due <= time.time()]
    for item in due:
        queue.remove(item)
        try:
            st.session_state.setdefault("done", []).append(("ok", item.action()))
        except PlatformError as error:
            st.session_state.setdefault("done", []).append(("error", error.sentence))
    return bool(due)


@st.fragment(run_every=1)
def pending_bar() -> None:
    """The countdown with an Undo button for each scheduled action; ticks every second."""
    if run_due():
        st.rerun(scope="app")
    for item in list(st.session_state.get("pending", [])):
        left, right = st.columns([3, 1])
        left.warning(f"{item.label} in {max(0, round(item.due - time.time()))} s")
        if right.button("Undo", key=f"undo:{item.id}"):
            st.session_state["pending"].remove(item)
            st.rerun(scope="app")


def outcomes() -> None:
    for kind, text in st.session_state.pop("done", []):
        (st.success if kind == "ok" else st.error)(text)


def stop_all(user: session.UserSession) -> None:
    """The tenant kill switch, one tap from every page: it acts at once (an emergency has no undo);
    users with TOTP add their code, which the platform requires for it. Ticking "close my positions"
    also flattens the account, and execution keeps closing what is still open until it is released."""
    api = session.api()
    if tenant_switch_engaged(api):
        st.error("Emergency stop is on: no bot of yours trades until it is released (Bots page).")
        return
    code = ""
    if user.user.totp_enabled:
        code = st.text_input("Code for stop-all", key="stop_all_code", max_chars=6, placeholder="TOTP code")
    pressed = st.button("STOP ALL BOTS", key="stop_all", use_container_width=True, help="Tenant kill switch")
    # Below the button, so the button keeps its place in the first screen on a phone.
    flatten = st.checkbox("Also close my positions", key="stop_all_close")
    if pressed:
        with shown_errors():
            api.execution.SetKillSwitch(
                ex.SetKillSwitchRequest(
                    scope=ex.KILL_SWITCH_SCOPE_TENANT,
                    engaged=True,
                    reason=f"emergency stop-all from the dashboard by {user.user.email}",
                    totp_code=code,
                    close_positions=flatten,
                )
            )
            st.rerun()


def tenant_switch_engaged(api: Any) -> bool:
    try:
        reply = api.execution.ListKillSwitches(ex.ListKillSwitchesRequest())
    except PlatformError:
        return False  # unknown: the button stays, and pressing it says why it cannot act
    return any(s.engaged and s.scope != ex.KILL_SWITCH_SCOPE_BOT for s in reply.kill_switches)
