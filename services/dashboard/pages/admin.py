"""Admin (platform operators): health of every service, new organisations by invite, a tenant's audit
trail, deleting a tenant, admins, and the global kill switch.

The tenants service has no RPC to list tenants or invites yet, so tenants are reached by id (from the
audit trail or the invite's sign-up); see the dashboard decision record."""

from __future__ import annotations

import streamlit as st
from tradebot.execution.v1 import execution_service_pb2 as ex
from tradebot.tenants.v1 import tenants_service_pb2 as tp

from services.dashboard import session, widgets

user = session.require()
if not user.is_admin:
    st.error("This page is for platform administrators.")
    st.stop()
api = session.api()
st.title("Admin")

st.subheader("Services")
platform = session.platform()
st.dataframe(
    [
        {"service": name, "address": addr or "—", "health": platform.health(name)}
        for name, addr in platform.addresses.items()
    ],
    hide_index=True,
    use_container_width=True,
)

st.subheader("New organisation")
email = st.text_input("Owner's email", key="adm_invite_email")
if st.button("Invite as owner of a new organisation", key="adm_invite") and email:
    with widgets.shown_errors():
        reply = api.tenants.CreateInvite(tp.CreateInviteRequest(email=email.strip(), new_tenant=True))
        st.success(f"Invitation sent. Its code: {reply.invite_token}")

st.subheader("A tenant")
tenant_id = st.text_input("Tenant id", key="adm_tenant").strip()
if tenant_id:
    with widgets.shown_errors():
        trail = api.tenants.ListAuditEvents(tp.ListAuditEventsRequest(tenant_id=tenant_id, page_size=50))
        st.dataframe(
            [
                {"time": widgets.when(e.occur_time), "who": e.actor_email, "action": e.action}
                for e in trail.events
            ],
            hide_index=True,
            use_container_width=True,
        )
    name = st.text_input("Type the tenant's name to delete it", key="adm_delete_name")
    code = session.reauthenticate("adm_delete")
    if st.button("Delete tenant", key="adm_delete", disabled=code is None or not name):
        with widgets.shown_errors():
            reply = api.tenants.DeleteTenant(
                tp.DeleteTenantRequest(tenant_id=tenant_id, confirm_tenant_name=name, totp_code=code or "")
            )
            st.success(f"Tenant deleted; its data is purged at {widgets.when(reply.purge_time)}.")

st.subheader("Users of the platform organisation")
with widgets.shown_errors():
    users = api.tenants.ListUsers(tp.ListUsersRequest(page_size=200)).users
    st.dataframe(
        [{"email": u.email, "role": widgets.label(tp.Role, u.role), "id": u.id} for u in users],
        hide_index=True,
        use_container_width=True,
    )

st.subheader("Global kill switch")
st.caption("Stops every bot of every tenant. Open positions keep their exchange stop-loss and take-profit.")
reason = st.text_input("Reason", key="adm_kill_reason")
code = session.reauthenticate("adm_kill")
left, right = st.columns(2)
for column, engaged, text in ((left, True, "Engage global kill switch"), (right, False, "Release it")):
    if column.button(text, key=f"adm_kill:{engaged}", disabled=code is None or (engaged and not reason)):
        with widgets.shown_errors():
            api.execution.SetKillSwitch(
                ex.SetKillSwitchRequest(
                    scope=ex.KILL_SWITCH_SCOPE_GLOBAL,
                    engaged=engaged,
                    reason=reason or "released",
                    totp_code=code or "",
                )
            )
            st.success("Global kill switch " + ("engaged." if engaged else "released."))
