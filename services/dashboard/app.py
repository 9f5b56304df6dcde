"""The clients' dashboard (Streamlit). It talks to the platform over gRPC only.

Today it shows the health of every platform service; the client pages (overview, bots, performance,
history, account, admin) come with the dashboard work.
"""

from __future__ import annotations

import grpc
import streamlit as st
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.settings import load_settings
from services.dashboard.settings import Settings


def service_status(addr: str) -> str:
    if not addr:
        return "not configured"
    try:
        with grpc.insecure_channel(addr) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
    except grpc.RpcError as error:
        return f"unreachable ({error.code().name})"
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


st.set_page_config(page_title="Tradebot", layout="wide")
st.title("Tradebot")
settings = load_settings(Settings, "dashboard")
st.subheader("Platform status")
st.table(
    [
        {"service": name, "address": addr or "-", "status": service_status(addr)}
        for name, addr in settings.service_addresses().items()
    ]
)
