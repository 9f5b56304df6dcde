"""The Account page against the running slice: where a stored key really points, what a client is told
when Bybit cannot check a key, and the owner's data rights (download everything, delete for good)."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator

import grpc
import pyotp
import pytest
from streamlit.runtime.memory_media_file_storage import _calculate_file_id
from streamlit.testing.v1 import AppTest
from tradebot.tenants.v1 import tenants_service_pb2 as pb

from services.dashboard import data_rights
from tests.dashboard.conftest import APP, PASSWORD, Member, Slice, signed_in, texts
from tests.helpers.clients import open_account, store_keys


def account_page(member: Member) -> AppTest:
    app = signed_in(member)
    app.switch_page("pages/account.py").run()
    assert not app.exception, app.exception
    return app


def button(app: AppTest, key: str) -> object:
    return next(b for b in app.button if b.key == key)


def confirm_password(app: AppTest, action: str) -> None:
    app.text_input(key=f"{action}:password").input(PASSWORD)
    app.run()


def test_a_key_on_the_simulator_is_shown_as_the_simulator(dash: Slice, app_env: None) -> None:
    owner = dash.new_tenant("venue")
    # Stored as a mainnet key: on this platform its requests go to the simulator all the same.
    store_keys(
        dash.tenants,
        owner,
        open_account(dash.simulator, "venue"),
        environment=pb.EXCHANGE_ENVIRONMENT_MAINNET,
    )
    app = account_page(owner)
    shown = texts(app)
    assert " · simulator · valid" in shown, shown
    assert "never reach Bybit" in shown and "mainnet" not in shown.lower(), shown
    # Nor does a picker still read "Mainnet" next to the rotation form.
    assert not [box for box in app.selectbox if box.key == "api_env"]


@pytest.fixture
def bybit_fault(dash: Slice) -> Iterator[None]:
    yield
    request = urllib.request.Request(f"{dash.simulator.url}/admin/faults", method="DELETE")
    urllib.request.urlopen(request, timeout=10).close()


@pytest.mark.parametrize(
    ("code", "box", "sentence"),
    [
        (10006, "error", "Bybit is rate limiting this platform (retCode 10006)"),
        (10016, "info", "Bybit could not be asked about the key now (retCode 10016)"),
    ],
)
def test_a_key_bybit_could_not_check_is_not_called_bad(
    dash: Slice, app_env: None, bybit_fault: None, code: int, box: str, sentence: str
) -> None:
    owner = dash.new_tenant(f"limited{code}")
    account = open_account(dash.simulator, "limited")
    app = account_page(owner)
    confirm_password(app, "keys")
    app.text_input(key="api_key").input(account["apiKey"])
    app.text_input(key="api_secret").input(account["apiSecret"])
    dash.simulator.admin("faults", {"kind": "error", "code": code, "count": 1, "path": "/v5/user/query-api"})
    next(b for b in app.button if b.label == "Store key").click().run()
    shown = [str(e.value) for e in getattr(app, box)]
    assert any(sentence in s and "the key was not judged and nothing was stored" in s for s in shown), texts(
        app
    )
    assert "cannot be reached" not in texts(app) and account["apiSecret"] not in texts(app)
    status = dash.tenants.GetExchangeCredentialsStatus(
        pb.GetExchangeCredentialsStatusRequest(), metadata=owner.meta
    ).status
    assert not status.present


def test_an_owner_downloads_all_of_the_organisations_data(dash: Slice, app_env: None) -> None:
    owner = dash.new_tenant("export")
    tenant = dash.tenants.GetMe(pb.GetMeRequest(), metadata=owner.meta).tenant
    app = account_page(owner)
    assert not [b for b in app.get("download_button")]  # nothing leaves before the owner confirms
    confirm_password(app, "export")
    button(app, "export_prepare").click().run()  # type: ignore[attr-defined]
    assert not app.exception and not app.error, texts(app)
    [download] = app.get("download_button")
    assert download.proto.label == "Download my data"
    name, document = app.session_state[data_rights.EXPORT_KEY]
    # The file behind the button is this document: Streamlit names a download by its content.
    assert _calculate_file_id(document, "application/json", name) in download.proto.url
    assert name.startswith("tradebot-export-") and name.endswith(".json") and name in texts(app)
    exported = json.loads(document)
    assert exported["tenant"]["name"] == tenant.name
    assert [u["email"] for u in exported["users"]] == [owner.email]
    assert PASSWORD not in document.decode()
    audit = dash.tenants.ListAuditEvents(pb.ListAuditEventsRequest(), metadata=owner.meta).events
    assert any(e.action == "tenant.export" for e in audit)


def test_deleting_the_account_takes_the_exact_name_then_signs_out(dash: Slice, app_env: None) -> None:
    owner = dash.new_tenant("leaving")
    tenant = dash.tenants.GetMe(pb.GetMeRequest(), metadata=owner.meta).tenant
    app = account_page(owner)
    confirm_password(app, "delete_tenant")
    app.text_input(key="delete_tenant_name").input(tenant.name.upper()).run()
    button(app, "delete_tenant").click().run()  # type: ignore[attr-defined]
    assert any("does not match" in e.value for e in app.error), texts(app)
    assert dash.tenants.GetMe(pb.GetMeRequest(), metadata=owner.meta).tenant.id == tenant.id

    app.text_input(key="delete_tenant_name").input(tenant.name).run()
    button(app, "delete_tenant").click().run()  # type: ignore[attr-defined]
    assert not app.exception, app.exception
    # Signed out with the notice (the sign-in page itself is the browser test's: AppTest runs pages
    # without app.py's navigation).
    assert data_rights.DELETED_NOTICE in texts(app) and "session" not in app.session_state, texts(app)
    with pytest.raises(grpc.RpcError):
        dash.tenants.Login(pb.LoginRequest(email=owner.email, password=PASSWORD))


def signed_in_with_totp(member: Member) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=30)
    app.run()
    app.text_input(key="login_email").input(member.email)
    app.text_input(key="login_password").input(PASSWORD)
    next(b for b in app.button if b.label == "Sign in").click().run()
    app.text_input(key="login_code").input(member.recovery_codes[0])
    next(b for b in app.button if b.label == "Sign in").click().run()
    app.switch_page("pages/account.py").run()
    assert not app.exception, app.exception
    return app


def test_deleting_the_account_with_two_factor_takes_a_current_code(dash: Slice, app_env: None) -> None:
    owner = dash.new_tenant("leaving2fa")
    dash.enable_totp(owner)
    tenant = dash.tenants.GetMe(pb.GetMeRequest(), metadata=owner.meta).tenant
    app = signed_in_with_totp(owner)
    assert not [i for i in app.text_input if i.key == "delete_tenant:password"]
    app.text_input(key="delete_tenant_name").input(tenant.name)
    app.text_input(key="delete_tenant:totp").input("000000").run()
    button(app, "delete_tenant").click().run()  # type: ignore[attr-defined]
    assert any("TOTP code" in e.value for e in app.error), texts(app)
    assert [t.value for t in app.title] == ["Account"]

    # Enrolment used this period's code; the next period's is accepted (one step of clock drift).
    app.text_input(key="delete_tenant:totp").input(pyotp.TOTP(owner.totp_secret).at(time.time() + 30)).run()
    button(app, "delete_tenant").click().run()  # type: ignore[attr-defined]
    assert data_rights.DELETED_NOTICE in texts(app), texts(app)
    with pytest.raises(grpc.RpcError):
        dash.tenants.GetMe(pb.GetMeRequest(), metadata=owner.meta)


def test_only_owners_are_offered_the_data_rights(dash: Slice, app_env: None) -> None:
    owner = dash.new_tenant("rights")
    for role in (pb.ROLE_TRADER, pb.ROLE_VIEWER):
        app = account_page(dash.add_member(owner, role, "member"))
        labels = {b.label for b in app.button}
        assert not labels & {"Prepare my data", "Delete my account"}, labels
        assert "Delete my account" not in texts(app)
