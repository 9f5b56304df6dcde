"""Sign up from an invitation: the link carries the invite code (`?invite=...`)."""

from __future__ import annotations

import streamlit as st

from services.dashboard import session
from services.dashboard.client import PlatformError

st.title("Create your account")
st.caption("You need an invitation. The link in it fills in the invite code.")
with st.form("signup"):
    invite = st.text_input("Invite code", value=st.query_params.get("invite", ""), key="signup_invite")
    email = st.text_input("Email (the invited address)", key="signup_email")
    name = st.text_input("Your name", key="signup_name")
    password = st.text_input("Password (at least 12 characters)", type="password", key="signup_password")
    tenant_name = st.text_input(
        "Organisation name (only when the invitation creates a new organisation)", key="signup_tenant"
    )
    submitted = st.form_submit_button("Create account", type="primary", use_container_width=True)
if submitted:
    try:
        session.sign_up(invite, email, password, name, tenant_name)
        st.query_params.clear()
        st.rerun()
    except PlatformError as error:
        st.error(error.sentence)
