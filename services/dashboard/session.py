"""Who is signed in: the session in `st.session_state`, sign-in and sign-up, logout, idle timeout and
re-authentication before sensitive actions.

The tenant and role shown come from GetMe with the user's own token; the dashboard never picks a
tenant itself, so a session can only ever show what the platform lets that token see.
"""

from __future__ import annotations

import time
from contextlib import suppress
from dataclasses import dataclass

import streamlit as st
from tradebot.tenants.v1 import tenants_service_pb2 as pb

from services.common.settings import load_settings
from services.dashboard.client import Api, Credentials, Platform, PlatformError, SessionEnded
from services.dashboard.settings import Settings

# Signed out after this long without a click; the refresh token's own lifetime (a tenant setting)
# ends the session at the latest.
IDLE_TIMEOUT_SECONDS = 30 * 60
# A password re-entered for a sensitive action counts for this long (TOTP users give a code each time).
REAUTH_SECONDS = 5 * 60
KEY = "session"


@dataclass
class UserSession:
    credentials: Credentials
    user: pb.User
    tenant: pb.Tenant
    role: int
    last_active: float
    reauth_until: float = 0.0

    @property
    def can_trade(self) -> bool:
        return self.role in (pb.ROLE_OWNER, pb.ROLE_TRADER)

    @property
    def is_owner(self) -> bool:
        return self.role == pb.ROLE_OWNER

    @property
    def is_admin(self) -> bool:
        return self.role == pb.ROLE_ADMIN

    @property
    def role_name(self) -> str:
        return pb.Role.Name(self.role).removeprefix("ROLE_").lower()


@st.cache_resource
def platform() -> Platform:
    return Platform(load_settings(Settings, "dashboard").service_addresses())


def current() -> UserSession | None:
    """The signed-in session, or None (and a notice) once it timed out."""
    session: UserSession | None = st.session_state.get(KEY)
    if session is None:
        return None
    now = time.time()
    if now - session.last_active > IDLE_TIMEOUT_SECONDS or now > session.credentials.refresh_expires:
        end("Your session timed out; sign in again.")
        return None
    return session


def touch() -> None:
    """Count this run as activity (called for full runs, not for the timed refresh of fragments)."""
    session: UserSession | None = st.session_state.get(KEY)
    if session is not None:
        session.last_active = time.time()


def api() -> Api:
    return Api(platform(), require().credentials)


def require() -> UserSession:
    session = current()
    if session is None:
        # app.py runs a page only for a session, so it ended during this run: say so and stop; the
        # next run is the sign-in page. (A rerun would ask for this page again, and a page run on its
        # own, as tests run them, would loop.)
        st.info(st.session_state.get("notice") or "You are signed out; sign in again.")
        st.stop()
    assert session is not None
    return session


def start(tokens: pb.AuthTokens) -> UserSession:
    """Open a session from fresh tokens: who we are comes from GetMe, with those tokens."""
    credentials = Credentials.from_tokens(tokens)
    me = Api(platform(), credentials).tenants.GetMe(pb.GetMeRequest())
    session = UserSession(credentials, me.user, me.tenant, me.effective_role or me.user.role, time.time())
    st.session_state[KEY] = session
    st.session_state.pop("notice", None)
    return session


def login(email: str, password: str, totp_code: str = "") -> bool:
    """Sign in; False when the account needs a TOTP code first."""
    reply = (
        platform()
        .anonymous()
        .tenants.Login(pb.LoginRequest(email=email.strip(), password=password, totp_code=totp_code.strip()))
    )
    if reply.totp_required:
        return False
    start(reply.tokens)
    return True


def sign_up(invite: str, email: str, password: str, name: str, tenant_name: str) -> None:
    reply = (
        platform()
        .anonymous()
        .tenants.SignUp(
            pb.SignUpRequest(
                invite_token=invite.strip(),
                email=email.strip(),
                password=password,
                display_name=name.strip(),
                tenant_name=tenant_name.strip(),
            )
        )
    )
    start(reply.tokens)


def end(notice: str = "") -> None:
    """Forget the session here and end it on the platform (best effort: it may already be over)."""
    session: UserSession | None = st.session_state.pop(KEY, None)
    if session is not None:
        with suppress(PlatformError):
            Api(platform(), session.credentials).tenants.Logout(
                pb.LogoutRequest(refresh_token=session.credentials.refresh_token)
            )
    for key in list(st.session_state):
        del st.session_state[key]
    if notice:
        st.session_state["notice"] = notice


def reauthenticate(key: str) -> str | None:
    """Ask the user to prove it is them before a sensitive action.

    Returns the step-up code to send (the TOTP code, or "" for users without TOTP whose password was
    re-checked), or None while the user has not confirmed. Users with TOTP give a code for each action,
    as the services require; others re-enter their password, which opens a fresh session."""
    session = require()
    if session.user.totp_enabled:
        code = st.text_input("Code from your authenticator app", key=f"{key}:totp", max_chars=12)
        return code.strip() or None
    if time.time() < session.reauth_until:
        return ""
    password = st.text_input("Confirm with your password", type="password", key=f"{key}:password")
    if not password:
        return None
    try:
        login(session.user.email, password)
    except SessionEnded:
        st.error("That password is not right.")
        return None
    fresh = current()
    if fresh is not None:
        fresh.reauth_until = time.time() + REAUTH_SECONDS
        # The old session is replaced by the one the password opened; end the old one on the platform.
        with suppress(PlatformError):
            Api(platform(), fresh.credentials).tenants.Logout(
                pb.LogoutRequest(refresh_token=session.credentials.refresh_token)
            )
    return ""
