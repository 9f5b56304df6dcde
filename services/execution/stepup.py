"""Step-up for sensitive changes (loosening risk limits, kill switches): a current TOTP code when the
caller has TOTP enrolled.

TOTP secrets live with the tenants service, which offers no call yet for another service to check a
code; until it does, `StepUp` is given the two questions as functions. The default answers "no TOTP
enrolled", so step-up is not enforced by this service today (see the execution decision record).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from services.common.context import Principal
from services.common.errors import PermissionDenied

HasTotp = Callable[[Principal], Awaitable[bool]]
CheckCode = Callable[[Principal, str], Awaitable[bool]]


async def _no_totp(principal: Principal) -> bool:
    return False


async def _reject(principal: Principal, code: str) -> bool:
    return False


class StepUp:
    def __init__(self, has_totp: HasTotp = _no_totp, check_code: CheckCode = _reject) -> None:
        self.has_totp = has_totp
        self.check_code = check_code

    async def require(self, principal: Principal, code: str) -> None:
        if not await self.has_totp(principal):
            return
        if not code:
            raise PermissionDenied("this change needs a current TOTP code in totp_code (step-up)")
        if not await self.check_code(principal, code):
            raise PermissionDenied("the TOTP code in totp_code is wrong or was already used (step-up)")
