"""Every page against the running slice: real data where the service is live, and a plain sentence
(never an exception or a stack trace) where it still answers UNIMPLEMENTED or cannot be reached."""

from __future__ import annotations

import base64
import time

import grpc
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Image
from tradebot.execution.v1 import execution_service_pb2 as ex
from tradebot.execution.v1 import execution_service_pb2_grpc as ex_rpc
from tradebot.tenants.v1 import tenants_service_pb2 as pb

from services.dashboard import widgets
from services.devstack.processes import free_port
from tests.dashboard.conftest import Member, Slice, signed_in, texts

PAGES = ["overview", "performance", "chart", "bots", "backtest", "history", "account"]
NOT_YET = ("are not available yet", "cannot be reached")


def open_page(member: Member, page: str) -> AppTest:
    app = signed_in(member)
    app.switch_page(f"pages/{page}.py").run()
    assert not app.exception, app.exception
    return app


@pytest.mark.parametrize("page", PAGES)
def test_each_page_renders_data_or_says_what_is_missing(dash: Slice, app_env: None, page: str) -> None:
    app = open_page(dash.new_tenant(page), page)
    shown = texts(app)
    assert "Traceback" not in shown and "grpc" not in shown.lower()
    for box in [*app.info, *app.error]:
        assert box.value.endswith((".", "!", "?")), box.value  # sentences, not codes


def test_chart_draws_candles_from_marketdata(dash: Slice, app_env: None) -> None:
    app = open_page(dash.new_tenant("chart"), "chart")
    charts = app.get("plotly_chart")
    assert charts or any(s in texts(app) for s in ("No candles", *NOT_YET)), texts(app)


def test_account_stores_an_exchange_key_write_only(dash: Slice, app_env: None) -> None:
    owner = dash.new_tenant("keys")
    app = open_page(owner, "account")
    assert "No exchange key stored" in texts(app)
    secret_inputs = [i for i in app.text_input if i.key in ("api_key", "api_secret")]
    assert len(secret_inputs) == 2 and all(i.proto.type == i.proto.PASSWORD for i in secret_inputs)


def test_api_tokens_are_created_once_listed_and_revoked(dash: Slice, app_env: None) -> None:
    owner = dash.new_tenant("tokens")
    app = open_page(owner, "account")
    app.text_input(key="tok_name").input("ci")
    app.text_input(key="token:password").input("Correct-Horse-42!")
    app.run()
    next(b for b in app.button if b.key == "tok_create").click().run()
    assert any(c.value.startswith("tb") for c in app.code), texts(app)
    listed = dash.tenants.ListApiTokens(pb.ListApiTokensRequest(), metadata=owner.meta).api_tokens
    assert [t.name for t in listed] == ["ci"]
    app.run()
    next(b for b in app.button if (b.key or "").startswith("revoke:")).click().run()
    listed = dash.tenants.ListApiTokens(pb.ListApiTokensRequest(), metadata=owner.meta).api_tokens
    assert not listed or listed[0].HasField("revoke_time")


def test_history_shows_the_audit_trail_and_verifies_it(dash: Slice, app_env: None) -> None:
    app = open_page(dash.new_tenant("audit"), "history")
    assert app.dataframe, texts(app)
    next(b for b in app.button if b.key == "a_verify").click().run()
    assert any("intact" in s.value for s in app.success), texts(app)


def test_admin_sees_the_health_of_every_service(dash: Slice, app_env: None) -> None:
    app = open_page(dash.admin, "admin")
    health = app.dataframe[0].value
    assert dict(zip(health["service"], health["health"], strict=True))["tenants"] == "SERVING"


def test_viewers_cannot_reach_control_actions(dash: Slice, app_env: None) -> None:
    owner = dash.new_tenant("roles")
    viewer = dash.add_member(owner, pb.ROLE_VIEWER, "viewer")
    dash.create_bot(owner, "watched")
    with grpc.insecure_channel(dash.address("execution")) as channel:
        ex_rpc.ExecutionServiceStub(channel).SetKillSwitch(
            ex.SetKillSwitchRequest(scope=ex.KILL_SWITCH_SCOPE_TENANT, engaged=True, reason="drill"),
            metadata=owner.meta,
            timeout=10,
        )
    controls = {
        "STOP ALL BOTS",
        "Start",
        "Pause",
        "Stop",
        "Delete",
        "Create bot",
        "Create token",
        "Release the emergency stop",
        "Store key",
        "Rotate key",
        "Delete key",
    }
    for page in ("overview", "bots", "account", "history"):
        app = open_page(viewer, page)
        labels = {b.label for b in app.button}  # form submit buttons included
        assert not labels & controls, (page, labels & controls)
        assert not [t for t in app.toggle if t.label == "Edit parameters"]
        if page == "bots":  # the bot and the engaged switch are shown, only their controls are not
            assert "watched" in texts(app) and "Kill switch (tenant) is on" in texts(app), texts(app)
    app = open_page(viewer, "overview")
    assert "Admin" not in texts(app)


def shown_anywhere(app: AppTest) -> str:
    """Sentences, table cells and the choices offered in pickers."""
    picks = [str(box.options) for box in app.selectbox]
    return "\n".join([texts(app), *[str(d.value) for d in app.dataframe], *picks])


def test_a_session_of_tenant_a_never_shows_tenant_b(dash: Slice, app_env: None) -> None:
    a, b = dash.new_tenant("alpha"), dash.new_tenant("beta")
    b_tenant = dash.tenants.GetMe(pb.GetMeRequest(), metadata=b.meta).tenant
    b_bot = dash.create_bot(b, f"beta-only-{b_tenant.id[:6]}")
    dash.create_bot(a, "alpha-bot")
    for page in ("overview", "bots", "chart", "performance", "history", "account"):
        app = open_page(a, page)
        shown = shown_anywhere(app)
        for secret in (b.email, b_tenant.name, b_tenant.id, b_bot.name, b_bot.id):
            assert secret not in shown, (page, secret)
    assert "alpha-bot" in shown_anywhere(open_page(a, "bots"))  # the check above sees bots at all


def test_two_factor_enrolment_shows_a_qr_code_of_the_provisioning_uri(dash: Slice, app_env: None) -> None:
    app = open_page(dash.new_tenant("qr"), "account")
    next(b for b in app.button if b.key == "totp_start").click().run()
    assert not app.exception, app.exception
    enrol = app.session_state["totp_enrol"]
    assert enrol.provisioning_uri.startswith("otpauth://totp/")
    images = [e for e in app.get("image") if isinstance(e, Image)]
    assert len(images) == 1, texts(app)
    assert images[0].captions == ["Scan with your authenticator app"]
    # The SVG travels inline: the picture shown is segno's QR code of this enrolment's provisioning URI.
    kind, _, data = images[0].value[0].partition(",")
    assert kind == "data:image/svg+xml;base64"
    shown = base64.b64decode(data).decode()
    assert shown == widgets.qr_svg(enrol.provisioning_uri)
    assert shown.startswith("<svg") and "<path" in shown
    assert enrol.secret in [c.value for c in app.code]  # and the secret, for typing in by hand


def test_overview_shows_each_bots_pnl_today_and_in_total(dash: Slice, app_env: None) -> None:
    owner = dash.new_tenant("pnl")
    dash.create_bot(owner, "steady")
    app = open_page(owner, "overview")
    # Today's PnL comes with the page; the days before today arrive from the background, and a refresh
    # (the fragment's own, every few seconds) shows them.
    deadline = time.monotonic() + 60
    while True:
        bots = app.dataframe[0].value
        row = dict(zip(bots.columns, bots.iloc[0], strict=True))
        if row["PnL total"] != "…" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
        app.run()
    assert (row["bot"], row["PnL today"], row["PnL total"]) == ("steady", "+0.00", "+0.00"), row


def test_stop_all_can_also_close_positions(dash: Slice, app_env: None) -> None:
    owner = dash.new_tenant("flatten")
    app = open_page(owner, "overview")
    app.checkbox(key="stop_all_close").check().run()
    next(b for b in app.button if b.key == "stop_all").click().run()
    assert not app.exception, app.exception
    with grpc.insecure_channel(dash.address("execution")) as channel:
        switches = (
            ex_rpc.ExecutionServiceStub(channel)
            .ListKillSwitches(ex.ListKillSwitchesRequest(), metadata=owner.meta, timeout=10)
            .kill_switches
        )
    assert [(s.scope, s.engaged, s.close_positions) for s in switches] == [
        (ex.KILL_SWITCH_SCOPE_TENANT, True, True)
    ]
    app = open_page(owner, "bots")
    assert "Open positions are being closed until it is released." in texts(app), texts(app)


def test_a_service_that_is_down_is_named_in_a_sentence_on_every_page(
    dash: Slice, app_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = dash.new_tenant("down")
    # Execution stopped: its address answers nothing (connection refused), as after a crash.
    monkeypatch.setenv("EXECUTION_ADDR", f"127.0.0.1:{free_port()}")
    st.cache_resource.clear()
    down = "Orders, positions and PnL cannot be reached right now; try again in a moment."
    for page in PAGES:
        app = open_page(owner, page)
        shown = texts(app)
        assert "Traceback" not in shown and "grpc" not in shown.lower() and "StatusCode" not in shown
        if page in ("overview", "performance", "history"):
            assert down in shown, (page, shown)
    # The emergency stop-all still answers in a sentence when it cannot act.
    app = open_page(owner, "overview")
    next(b for b in app.button if b.key == "stop_all").click().run()
    assert not app.exception, app.exception
    assert down in texts(app), texts(app)
