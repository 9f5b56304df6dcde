"""Access: sign in (with TOTP when enrolled), sign up from an invite link, logout, timeout."""

from __future__ import annotations

import pyotp
from streamlit.testing.v1 import AppTest
from tradebot.tenants.v1 import tenants_service_pb2 as pb

from tests.dashboard.conftest import APP, PASSWORD, Slice, signed_in, unique_email


def texts(app: AppTest) -> str:
    parts = [*app.markdown, *app.caption, *app.info, *app.warning, *app.error, *app.success, *app.title]
    return "\n".join(str(p.value) for p in parts)


def test_sign_in_shows_the_overview_with_the_tenant(dash: Slice, app_env: None) -> None:
    owner = dash.new_tenant("acme")
    app = signed_in(owner)
    assert "Overview" in [t.value for t in app.title]
    assert "(owner)" in texts(app)

