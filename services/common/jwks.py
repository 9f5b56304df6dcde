"""Fetch the tenants service's public signing keys (JWKS) over gRPC, for local token verification."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict

from services.common.auth import JwksFetcher
from services.common.service_identity import platform_channel


def tenants_jwks_fetcher(tenants_addr: str) -> JwksFetcher:
    channel: grpc.aio.Channel | None = None

    async def fetch() -> dict[str, Any]:
        nonlocal channel
        from tradebot.tenants.v1 import tenants_service_pb2, tenants_service_pb2_grpc

        if channel is None:
            channel = platform_channel(tenants_addr)
        stub = tenants_service_pb2_grpc.TenantsServiceStub(channel)
        response = await stub.GetJwks(tenants_service_pb2.GetJwksRequest(), timeout=5)
        keys = [
            {k: v for k, v in MessageToDict(key, preserving_proto_field_name=True).items() if v}
            for key in response.keys
        ]
        return {"keys": keys}

    return fetch
