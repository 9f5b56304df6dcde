"""A platform service's own identity when it calls another service.

Each service signs a short-lived token with its own Vault transit key (`service-<name>`); every
service verifies it locally through the JWKS like a user's token, as a `service` principal. Calls
reserved to platform services (`require_service`) accept nothing else.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import grpc

from services.common.signing import TransitSigner

TOKEN_SECONDS = 600
# Platform services start in any order and restart on their own: gRPC's default reconnect backoff
# (1 s growing to 120 s) would leave a caller answering UNAVAILABLE long after its peer is back.
RECONNECT_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
)


def platform_channel(address: str, options: Sequence[tuple[str, Any]] = ()) -> grpc.aio.Channel:
    """The one way to open a channel to another platform service (short reconnect backoff)."""
    return grpc.aio.insecure_channel(address, options=[*RECONNECT_OPTIONS, *options])


class ServiceCredentials:
    def __init__(self, signer: TransitSigner, service: str) -> None:
        self.signer = signer
        self.service = service
        self._token = ""
        self._renew_at = 0.0

    async def token(self) -> str:
        """The current token, re-signed once half its lifetime has passed."""
        if time.monotonic() >= self._renew_at:
            claims = {"sub": f"service:{self.service}", "tid": "", "role": "service"}
            self._token = await asyncio.to_thread(self.signer.sign, claims, TOKEN_SECONDS)
            self._renew_at = time.monotonic() + TOKEN_SECONDS / 2
        return self._token

    async def metadata(self) -> tuple[tuple[str, str], ...]:
        """gRPC call metadata carrying the token: `stub.Call(request, metadata=await creds.metadata())`."""
        return (("authorization", f"Bearer {await self.token()}"),)
