"""A platform service's own identity when it calls another service.

Each service signs a short-lived token with its own Vault transit key (`service-<name>`); every
service verifies it locally through the JWKS like a user's token, as a `service` principal. Calls
reserved to platform services (`require_service`) accept nothing else.
"""

from __future__ import annotations

import asyncio
import time

from services.common.signing import TransitSigner

TOKEN_SECONDS = 600


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
