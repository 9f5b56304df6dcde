"""Tenants service wiring: users, roles, login, tokens, 2FA, exchange keys in Vault, settings, audit.

Today it serves GetJwks (the public keys every service verifies tokens with); the other RPCs answer
UNIMPLEMENTED (the generated base servicer) until the tenants work fills them in.
"""

from __future__ import annotations

import asyncio

import grpc
import hvac
from tradebot.tenants.v1 import tenants_service_pb2 as pb
from tradebot.tenants.v1 import tenants_service_pb2_grpc as rpc

from services.common.runtime import ServiceRuntime
from services.common.settings import ServiceSettings
from services.common.signing import SERVICE_KEY_PREFIX, USER_KEY, TransitSigner
from services.common.vault import vault_client

_SERVICE = "/tradebot.tenants.v1.TenantsService/"
# Calls that carry their own credential (an invite, a password, a refresh token) or none at all.
PUBLIC_METHODS = {_SERVICE + name for name in ("SignUp", "Login", "RefreshToken", "GetJwks")}
JWKS_CACHE_SECONDS = 300


class Settings(ServiceSettings):
    pass


def platform_public_keys(client: hvac.Client) -> list[dict[str, str]]:
    """Users' token key and every platform service's identity key, as JWKs."""
    names = client.secrets.transit.list_keys()["data"]["keys"]
    signers = [USER_KEY, *sorted(name for name in names if name.startswith(SERVICE_KEY_PREFIX))]
    return [jwk for name in signers for jwk in TransitSigner(client, name).public_keys()]


class TenantsServicer(rpc.TenantsServiceServicer):
    def __init__(self, vault: hvac.Client) -> None:
        self.vault = vault

    async def GetJwks(
        self, request: pb.GetJwksRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetJwksResponse:
        keys = await asyncio.to_thread(platform_public_keys, self.vault)
        response = pb.GetJwksResponse(keys=[pb.Jwk(**key) for key in keys])
        response.cache_ttl.FromSeconds(JWKS_CACHE_SECONDS)
        return response


async def setup(runtime: ServiceRuntime) -> None:
    servicer = TenantsServicer(vault_client(runtime.settings))
    runtime.add_servicer(rpc.add_TenantsServiceServicer_to_server, servicer)
