"""The owner's data rights on the Account page: download everything the platform holds about the
organisation (ExportTenantData), and delete the organisation for good (DeleteTenant).

Both RPCs are OWNER-only with step-up, so both sit behind `session.reauthenticate`. Deletion also asks
for the organisation's name typed out, and that is compared here before the call: the service checks
the name only after it has used up the step-up code, so a typo caught here costs the owner no code.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import streamlit as st
from tradebot.tenants.v1 import tenants_service_pb2 as tp

from services.dashboard import session, widgets
from services.dashboard.client import Api
from services.dashboard.session import UserSession

# Strategy and execution add their parts to the export and must confirm a deletion: more than a click.
SLOW_CALL_SECONDS = 60.0
EXPORT_KEY = "data_export"
DELETED_NOTICE = "Your organisation's account and its data were deleted. You are signed out."


def export_file_name(tenant_name: str, when: datetime) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", tenant_name.lower()).strip("-") or "organisation"
    return f"tradebot-{slug}-{when:%Y%m%d-%H%M%S}.json"


def data_tab(api: Api, user: UserSession) -> None:
    download_section(api, user)
    st.divider()
    delete_section(api, user)


def download_section(api: Api, user: UserSession) -> None:
    st.subheader("Download my data")
    st.caption(
        "One JSON file with everything the platform holds about your organisation: users, settings, "
        "bots, signals, orders, positions and the audit trail. It never contains passwords, secrets "
        "or token values. Each download is recorded in the audit trail."
    )
    code = session.reauthenticate("export")
    if st.button("Prepare my data", key="export_prepare", disabled=code is None):
        with widgets.shown_errors():
            reply = api.tenants.ExportTenantData(
                tp.ExportTenantDataRequest(totp_code=code or ""), timeout=SLOW_CALL_SECONDS
            )
            name = export_file_name(user.tenant.name, reply.export_time.ToDatetime(UTC))
            st.session_state[EXPORT_KEY] = (name, bytes(reply.json_document))
    prepared: tuple[str, bytes] | None = st.session_state.get(EXPORT_KEY)
    if prepared is not None:
        name, document = prepared
        st.download_button(
            "Download my data",
            data=document,
            file_name=name,
            mime="application/json",
            key="export_download",
            type="primary",
        )
        st.caption(f"{name} · {len(document):,} bytes")


def delete_section(api: Api, user: UserSession) -> None:
    name = user.tenant.name
    st.subheader("Delete my account")
    st.caption(
        f"Deletes the organisation “{name}” at once and for good: its bots are stopped, its trading "
        "data, settings, users and exchange key are removed, and everyone in it loses access. Open "
        "positions on your exchange account are not closed. There is no restore: download your data "
        "first. Only the audit trail is kept."
    )
    typed = st.text_input(f"Type the organisation's name, {name}, to confirm", key="delete_tenant_name")
    code = session.reauthenticate("delete_tenant")
    if not st.button("Delete my account", key="delete_tenant", disabled=code is None):
        return
    if typed.strip() != name:
        st.error(f"The name typed does not match “{name}”: type it exactly as shown to confirm.")
        return
    with widgets.shown_errors():
        api.tenants.DeleteTenant(
            tp.DeleteTenantRequest(confirm_tenant_name=name, totp_code=code or ""), timeout=SLOW_CALL_SECONDS
        )
        session.end(DELETED_NOTICE)
        st.rerun()
