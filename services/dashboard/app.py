"""The clients' dashboard (Streamlit). It talks to the platform over gRPC only (services/dashboard/
client.py), holds no business logic and no database connection.

This script runs on every interaction: it decides which pages the session may see, draws the header
(who is signed in, log out, the emergency stop-all and any action waiting for its undo time), then
runs the chosen page. Streamlit's own `/_stcore/health` is the HTTP health check.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from services.dashboard import session, widgets

PAGES = Path(__file__).resolve().parent / "pages"

st.set_page_config(page_title="Tradebot", page_icon="📈", layout="wide", initial_sidebar_state="collapsed")
st.markdown(widgets.MOBILE_CSS, unsafe_allow_html=True)


def page(name: str, title: str, icon: str, default: bool = False) -> st.Page:
    # Sign-in and overview share one address, so signing in (or timing out) turns the page the browser
    # is on into the other without a redirect.
    path = "home" if name in ("login", "overview") else name
    return st.Page(PAGES / f"{name}.py", title=title, icon=icon, url_path=path, default=default)


user = session.current()
if user is None:
    invited = "invite" in st.query_params
    nav = st.navigation(
        [
            page("login", "Sign in", "🔑", default=not invited),
            page("signup", "Sign up", "✉️", default=invited),
        ],
        position="top",
    )
else:
    session.touch()
    pages = [
        page("overview", "Overview", "🏠", default=True),
        page("performance", "Performance", "📊"),
        page("chart", "Chart", "🕯️"),
        page("bots", "Bots", "🤖"),
        page("backtest", "Backtest", "🧪"),
        page("history", "History", "📜"),
        page("account", "Account", "⚙️"),
    ]
    if user.is_admin:
        pages.append(page("admin", "Admin", "🛡️"))
    # Sign-up stays registered (hidden) so that a session that just signed up, still on its address,
    # can be sent on to the overview.
    signup = st.Page(PAGES / "signup.py", title="Sign up", url_path="signup", visibility="hidden")
    nav = st.navigation([*pages, signup], position="top")
    if nav.url_path == "signup":
        st.switch_page(pages[0])
    top = st.container()
    left, right = top.columns([4, 1])
    left.caption(f"{user.tenant.name} · {user.user.display_name or user.user.email} ({user.role_name})")
    if right.button("Log out", key="logout"):
        session.end("You have logged out.")
        st.rerun()
    if user.can_trade:
        with top:
            widgets.stop_all(user)
    if widgets.run_due():
        st.rerun()
    if st.session_state.get("pending"):
        widgets.pending_bar()
    widgets.outcomes()
nav.run()
