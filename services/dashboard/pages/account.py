"""Account: exchange keys (write-only), settings and risk limits, notifications, two-factor sign-in,
API tokens, the team and the owner's data rights (download, delete). Every change that the platform
guards with step-up asks to re-authenticate."""

from __future__ import annotations

import streamlit as st
from google.protobuf.field_mask_pb2 import FieldMask
from tradebot.common.v1 import common_pb2 as common
from tradebot.execution.v1 import execution_service_pb2 as ex
from tradebot.tenants.v1 import tenants_service_pb2 as tp

from services.dashboard import data_rights, session, widgets

user = session.require()
api = session.api()
ENVIRONMENTS = {
    "Mainnet": tp.EXCHANGE_ENVIRONMENT_MAINNET,
    "Testnet": tp.EXCHANGE_ENVIRONMENT_TESTNET,
    "Demo": tp.EXCHANGE_ENVIRONMENT_DEMO,
}
# Where the platform sends a stored key's requests (the status's `venue`, the platform's BYBIT_ENV).
VENUES = {
    "simulator": "simulator",
    "testnet": "Bybit testnet",
    "demo": "Bybit demo trading",
    "mainnet": "Bybit mainnet",
}


def key_venue(status: tp.ExchangeCredentialsStatus) -> str:
    """Where the key really points: the venue the platform reports, not the environment chosen when
    it was stored (on the simulator a key stored as "Mainnet" never reaches Bybit)."""
    if status.venue:
        return VENUES.get(status.venue, status.venue)
    return widgets.label(tp.ExchangeEnvironment, status.environment)


def keys_tab() -> None:
    status = api.tenants.GetExchangeCredentialsStatus(tp.GetExchangeCredentialsStatusRequest()).status
    if status.present:
        st.markdown(
            f"Key `{status.masked_api_key}` · "  # in code style: the mask's asterisks are not emphasis
            f"{key_venue(status)} · "
            f"{widgets.label(tp.CredentialsValidation, status.validation)}"
        )
        if status.venue == "simulator":
            st.caption(
                "This platform trades on its exchange simulator: orders on this key never reach Bybit "
                "and no real money moves."
            )
        st.caption(
            f"Permissions: {', '.join(status.permissions) or '—'} · "
            f"checked {widgets.when(status.validate_time)}"
            + (f" · {status.validation_message}" if status.validation_message else "")
        )
    else:
        st.caption("No exchange key stored. Paper trading needs none.")
    if not user.is_owner:
        st.caption("Only the organisation's owner can change the exchange key.")
        return
    action = "Rotate key" if status.present else "Store key"
    with st.form("keys", clear_on_submit=True):
        key = st.text_input("API key", type="password", key="api_key")
        secret = st.text_input("API secret", type="password", key="api_secret")
        # A rotation keeps where the key points (shown above), so only a first key chooses.
        environment = "" if status.present else st.selectbox("Environment", list(ENVIRONMENTS), key="api_env")
        submitted = st.form_submit_button(action, type="primary")
    code = session.reauthenticate("keys")
    if submitted and code is None:
        st.warning("Confirm it is you first (below the form), then submit again.")
    elif submitted:
        with widgets.shown_errors():
            if status.present:
                api.tenants.RotateExchangeCredentials(
                    tp.RotateExchangeCredentialsRequest(api_key=key, api_secret=secret, totp_code=code)
                )
            else:
                api.tenants.PutExchangeCredentials(
                    tp.PutExchangeCredentialsRequest(
                        api_key=key, api_secret=secret, environment=ENVIRONMENTS[environment], totp_code=code
                    )
                )
            st.success("The key was checked with Bybit and stored.")
            st.rerun()
    if status.present and st.button("Delete key", key="delete_key"):
        widgets.ask_confirmation("delete_key")
    if widgets.confirm("delete_key", "Delete the stored exchange key?", "Yes, delete") and code is not None:
        with widgets.shown_errors():
            api.tenants.DeleteExchangeCredentials(tp.DeleteExchangeCredentialsRequest(totp_code=code))
            st.rerun()


def settings_tab() -> None:
    settings = api.tenants.GetSettings(tp.GetSettingsRequest()).settings
    st.markdown(f"Session lifetime: **{settings.session_lifetime.ToTimedelta()}**")
    require = st.checkbox(
        "Require two-factor sign-in for everyone", value=settings.require_totp, key="require_totp"
    )
    st.subheader("Risk limits")
    with widgets.shown_errors():
        limits = api.execution.GetRiskLimits(ex.GetRiskLimitsRequest())
        effective = limits.effective_limits
        st.caption(
            f"Enforced now: position ≤ {effective.max_position_notional}, "
            f"≤ {effective.max_open_positions} positions, "
            f"leverage ≤ {effective.max_leverage}, daily loss ≤ {effective.daily_loss_limit}, "
            f"≤ {effective.max_orders_per_minute} orders/min"
        )
    defaults = settings.default_risk_limits
    left, right = st.columns(2)
    new = common.RiskLimits(
        max_position_notional=left.text_input(
            "Largest position (quote coin)", defaults.max_position_notional, key="rl_pos"
        ),
        max_open_positions=int(
            right.number_input("Open positions", 0, 1000, defaults.max_open_positions, key="rl_n")
        ),
        max_leverage=left.text_input("Largest leverage", defaults.max_leverage, key="rl_lev"),
        daily_loss_limit=right.text_input("Daily loss limit", defaults.daily_loss_limit, key="rl_loss"),
        max_orders_per_minute=int(
            left.number_input("Orders per minute", 0, 10000, defaults.max_orders_per_minute, key="rl_rate")
        ),
    )
    if user.is_owner:
        code = session.reauthenticate("settings")
        if st.button("Save settings and limits", key="save_settings", disabled=code is None):
            with widgets.shown_errors():
                changed = tp.TenantSettings(require_totp=require, default_risk_limits=new)
                api.tenants.UpdateSettings(
                    tp.UpdateSettingsRequest(
                        settings=changed,
                        update_mask=FieldMask(paths=["require_totp", "default_risk_limits"]),
                        totp_code=code or "",
                    )
                )
                st.success("Settings saved.")
                api.execution.SetRiskLimits(ex.SetRiskLimitsRequest(limits=new, totp_code=code or ""))
                st.success("Risk limits saved.")


def notifications_tab() -> None:
    prefs = api.tenants.GetSettings(tp.GetSettingsRequest()).settings.notifications
    email = st.text_input("Email for notifications", prefs.email, key="n_email")
    webhook = st.text_input("Webhook URL", prefs.webhook_url, key="n_webhook")
    kinds = [v for v in tp.NotificationKind.values() if v]
    chosen = st.multiselect(
        "Tell me about",
        kinds,
        default=list(prefs.kinds),
        format_func=lambda k: widgets.label(tp.NotificationKind, k),
        key="n_kinds",
    )
    if user.is_owner:
        code = session.reauthenticate("notify")
        if st.button("Save notifications", key="save_notify", disabled=code is None):
            with widgets.shown_errors():
                changed = tp.TenantSettings(
                    notifications=tp.NotificationPreferences(email=email, webhook_url=webhook, kinds=chosen)
                )
                api.tenants.UpdateSettings(
                    tp.UpdateSettingsRequest(
                        settings=changed, update_mask=FieldMask(paths=["notifications"]), totp_code=code or ""
                    )
                )
                st.success("Notification preferences saved.")


def totp_tab() -> None:
    if user.user.totp_enabled:
        st.success("Two-factor sign-in is on.")
        return
    if st.button("Set up two-factor sign-in", key="totp_start"):
        with widgets.shown_errors():
            st.session_state["totp_enrol"] = api.tenants.EnrollTotp(tp.EnrollTotpRequest())
    enrol = st.session_state.get("totp_enrol")
    if enrol is None:
        return
    st.image(
        widgets.qr_svg(enrol.provisioning_uri),
        caption="Scan with your authenticator app",
        width=widgets.QR_WIDTH,
    )
    st.code(enrol.secret)
    st.caption("Or type this secret into your authenticator app.")
    code = st.text_input("Code from the app", key="totp_confirm_code", max_chars=6)
    if st.button("Turn on", key="totp_confirm") and code:
        with widgets.shown_errors():
            reply = api.tenants.ConfirmTotp(tp.ConfirmTotpRequest(code=code.strip()))
            user.user.CopyFrom(reply.user)
            st.session_state.pop("totp_enrol", None)
            st.success("Two-factor sign-in is on. Keep these recovery codes somewhere safe:")
            st.code("\n".join(reply.recovery_codes))


def tokens_tab() -> None:
    if user.can_trade:
        name = st.text_input("Token name", key="tok_name")
        roles = {"Viewer": tp.ROLE_VIEWER, "Trader": tp.ROLE_TRADER}
        role = st.selectbox("Role", list(roles), key="tok_role")
        code = session.reauthenticate("token")
        if st.button("Create token", key="tok_create", disabled=code is None or not name):
            with widgets.shown_errors():
                reply = api.tenants.CreateApiToken(
                    tp.CreateApiTokenRequest(name=name, role=roles[role], totp_code=code or "")
                )
                st.success("Copy the token now: it is shown only once.")
                st.code(reply.token)
    listed = api.tenants.ListApiTokens(tp.ListApiTokensRequest(page_size=100)).api_tokens
    for token in listed:
        left, right = st.columns([3, 1])
        left.markdown(
            f"**{token.name}** `{token.token_prefix}…` · {widgets.label(tp.Role, token.role)} · "
            f"last used {widgets.when(token.last_used_time)}"
        )
        if user.can_trade and right.button("Revoke", key=f"revoke:{token.id}"):
            with widgets.shown_errors():
                api.tenants.RevokeApiToken(tp.RevokeApiTokenRequest(api_token_id=token.id))
                st.rerun()
    if not listed:
        st.caption("No API tokens.")


def team_tab() -> None:
    users = api.tenants.ListUsers(tp.ListUsersRequest(page_size=200)).users
    st.dataframe(
        [{"email": u.email, "name": u.display_name, "role": widgets.label(tp.Role, u.role)} for u in users],
        hide_index=True,
        use_container_width=True,
    )
    email = st.text_input("Invite by email", key="invite_email")
    roles = {"Viewer": tp.ROLE_VIEWER, "Trader": tp.ROLE_TRADER, "Owner": tp.ROLE_OWNER}
    role = st.selectbox("As", list(roles), key="invite_role")
    if st.button("Send invitation", key="invite_send") and email:
        with widgets.shown_errors():
            reply = api.tenants.CreateInvite(tp.CreateInviteRequest(email=email.strip(), role=roles[role]))
            st.success(
                f"Invitation sent. Its code, to pass on if the email does not arrive: {reply.invite_token}"
            )


st.title("Account")


def data_tab() -> None:
    data_rights.data_tab(api, user)


names = ["Exchange key", "Settings & limits", "Notifications", "Two-factor", "API tokens"]
renders = [keys_tab, settings_tab, notifications_tab, totp_tab, tokens_tab]
if user.is_owner:
    names += ["Team", "Your data"]
    renders += [team_tab, data_tab]
for tab, render in zip(st.tabs(names), renders, strict=True):
    with tab, widgets.shown_errors():
        render()
