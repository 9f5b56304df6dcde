"""Access: sign in (with TOTP when enrolled), sign up from an invite link, logout, session timeout,
plain sentences for refused sign-ins."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.dashboard.conftest import APP, PASSWORD, Slice, signed_in, texts, unique_email


def login_form(email: str, password: str = PASSWORD) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=30)
    app.run()
    app.text_input(key="login_email").input(email)
    app.text_input(key="login_password").input(password)
    next(b for b in app.button if b.label == "Sign in").click().run()
    return app


def test_sign_in_shows_the_overview_of_the_users_tenant(dash: Slice, app_env: None) -> None:
    owner = dash.new_tenant("acme")
    app = signed_in(owner)
    assert [t.value for t in app.title] == ["Overview"]
    assert "(owner)" in texts(app)


def test_a_wrong_password_is_refused_with_a_sentence(dash: Slice, app_env: None) -> None:
    owner = dash.new_tenant("acme")
    app = login_form(owner.email, "not-the-password-123")
    assert not app.exception
    assert app.error and "Traceback" not in app.error[0].value
    assert [t.value for t in app.title] == ["Sign in to Tradebot"]


def test_totp_users_give_their_code_after_the_password(dash: Slice, app_env: None) -> None:
    owner = dash.new_tenant("totp")
    dash.enable_totp(owner)
    app = login_form(owner.email)
    assert "authenticator" in texts(app)
    # The current code was just used to confirm enrolment (codes are single-use); a recovery code
    # takes the same path through Login.
    app.text_input(key="login_code").input(owner.recovery_codes[0])
    next(b for b in app.button if b.label == "Sign in").click().run()
    assert [t.value for t in app.title] == ["Overview"], texts(app)


def test_sign_up_from_an_invite_link(dash: Slice, app_env: None) -> None:
    email = unique_email("invited")
    from tradebot.tenants.v1 import tenants_service_pb2 as pb

    dash.tenants.CreateInvite(pb.CreateInviteRequest(email=email, new_tenant=True), metadata=dash.admin.meta)
    app = AppTest.from_file(APP, default_timeout=30)
    app.query_params["invite"] = dash.invite_token(email)
    app.run()
    assert [t.value for t in app.title] == ["Create your account"]
    app.text_input(key="signup_email").input(email)
    app.text_input(key="signup_name").input("Robin")
    app.text_input(key="signup_password").input(PASSWORD)
    app.text_input(key="signup_tenant").input("Robin Capital")
    next(b for b in app.button if b.label == "Create account").click().run()
    assert "session" in app.session_state and not app.error
    # AppTest replays the page it last ran; a browser follows the app's switch to the overview.
    app.switch_page("pages/overview.py").run()
    assert [t.value for t in app.title] == ["Overview"], texts(app)
    assert app.session_state["session"].tenant.name == "Robin Capital"


def test_logout_returns_to_sign_in(dash: Slice, app_env: None) -> None:
    app = signed_in(dash.new_tenant("bye"))
    next(b for b in app.button if b.label == "Log out").click().run()
    assert [t.value for t in app.title] == ["Sign in to Tradebot"]
    assert "You have logged out." in texts(app)


def test_an_idle_session_times_out(dash: Slice, app_env: None) -> None:
    app = signed_in(dash.new_tenant("idle"))
    app.session_state["session"].last_active -= 31 * 60
    app.run()
    assert [t.value for t in app.title] == ["Sign in to Tradebot"]
    assert "timed out" in texts(app)


def test_an_expired_access_token_is_refreshed_without_signing_out(dash: Slice, app_env: None) -> None:
    app = signed_in(dash.new_tenant("refresh"))
    creds = app.session_state["session"].credentials
    old = creds.refresh_token
    creds.access_expires = 0  # as if it had lapsed
    app.switch_page("pages/account.py").run()
    assert [t.value for t in app.title] == ["Account"], texts(app)
    assert creds.refresh_token != old
