"""Tenants service wiring: users, roles, login, tokens, 2FA, exchange keys in Vault, settings, audit.

Today it serves GetJwks (the public keys every service verifies access tokens with); the other RPCs
answer UNIMPLEMENTED (the generated base servicer) until the tenants work fills them in.
"""

from __future__ import annotations

import asyncio

import grpc
from tradebot.tenants.v1 import tenants_service_pb2 as pb
from tradebot.tenants.v1 import tenants_service_pb2_grpc as rpc

from services.common.runtime import ServiceRuntime
from services.common.settings import ServiceSettings
from services.common.vault import vault_client
from services.tenants.signing import TransitSigner

_SERVICE = "/tradebot.tenants.v1.TenantsService/"
# Calls that carry their own credential (an invite, a password, a refresh token) or none at all.
PUBLIC_METHODS = {_SERVICE + name for name in ("SignUp", "Login", "RefreshToken", "GetJwks")}
JWKS_CACHE_SECONDS = 300


class Settings(ServiceSettings):
    pass


class TenantsServicer(rpc.TenantsServiceServicer):
    def __init__(self, signer: TransitSigner) -> None:
        self.signer = signer

    async def GetJwks(
        self, request: pb.GetJwksRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetJwksResponse:
        keys = await asyncio.to_thread(self.signer.public_keys)
        response = pb.GetJwksResponse(keys=[pb.Jwk(**key) for key in keys])
        response.cache_ttl.FromSeconds(JWKS_CACHE_SECONDS)
        return response


async def setup(runtime: ServiceRuntime) -> None:
    signer = TransitSigner(vault_client(runtime.settings))
    runtime.add_servicer(rpc.add_TenantsServiceServicer_to_server, TenantsServicer(signer))
