"""Exchange credentials: checked against Bybit, then kept in Vault KV v2; the database gets a reference.

The check (GET /v5/user/query-api and /v5/account/wallet-balance through pybit) refuses a key that
Bybit rejects, that cannot trade, or that can withdraw: a platform that only trades never needs
withdrawal rights, so a leaked key could not move funds off the exchange. Neither the secret nor the
full key ever reaches a log line, an error message, the database or a response: errors are built
from Bybit's return code and a fixed text, and the key is only ever shown masked.

A check Bybit could not answer judges nothing: rate limiting (10006 and its kin) is
RESOURCE_EXHAUSTED, a Bybit server error (10016, 10000, HTTP 5xx) or no answer at all is
UNAVAILABLE, and the message says the key was not judged. Such a key is not stored: the check comes
before any write, and a stored key is one Bybit accepted (its status reads VALID), so there is no
"unverified" state for execution to trade on by mistake. The client simply submits it again; on a
rotation the previous key stays current.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests
from pybit.exceptions import FailedRequestError, InvalidRequestError

from services.common.bybit import BybitVenue
from services.common.errors import InvalidArgument, ResourceExhausted, TradebotError, Unavailable

# pybit logs request headers (with the API key) at DEBUG; never let them through.
logging.getLogger("pybit").setLevel(logging.WARNING)

TRADE_PERMISSIONS = {("ContractTrade", "Order"), ("Spot", "SpotTrade"), ("Derivatives", "DerivativesTrade")}
BYBIT_REASONS = {
    10003: "Bybit: invalid API key",
    10004: "Bybit: the API secret does not match the key",
    10005: "Bybit: the key lacks a permission this check needs",
    10010: "Bybit: the key does not allow requests from this platform's IP address",
    33004: "Bybit: the API key has expired",
}
# Bybit asking us to slow down (too many visits, IP limit, system-wide protection; HTTP 403 is how
# Bybit answers an IP over its limit): nothing about the key.
RATE_LIMITED = {10006, 10018, 10429, 403, 429}
# Bybit's side failing (server timeout, request outside the time window, server error).
BYBIT_TROUBLE = {10000, 10002, 10016}
NOT_JUDGED = "the key was not judged and nothing was stored; try again"


def vault_path(tenant_id: str) -> str:
    return f"tenants/{tenant_id}/exchange"


def mask(api_key: str) -> str:
    return "*" * max(len(api_key) - 4, 4) + api_key[-4:] if len(api_key) > 8 else "*" * 8


@dataclass
class KeyCheck:
    permissions: list[str]
    read_only: bool
    allowed_ips: list[str] = field(default_factory=list)
    key_expire_time: datetime | None = None


def validate_shape(api_key: str, api_secret: str) -> None:
    if not api_key.strip():
        raise InvalidArgument("is required", field="api_key")
    if not api_secret:
        raise InvalidArgument("is required", field="api_secret")
    if len(api_key) > 128 or not api_key.isascii() or not api_key.isalnum():
        raise InvalidArgument("is not a Bybit API key (letters and digits, at most 128)", field="api_key")
    if len(api_secret) > 256 or not api_secret.isascii() or not api_secret.isprintable():
        raise InvalidArgument("is not a Bybit API secret (printable ASCII, at most 256)", field="api_secret")


def _refusal(code: int) -> str:
    return BYBIT_REASONS.get(code, "Bybit refused the key") + f" ({code})"


def _not_answered(code: int) -> TradebotError:
    """The error for a Bybit return code (or HTTP status) that says nothing about the key."""
    what = f"retCode {code}" if code >= 10000 else f"HTTP {code}"
    if code in RATE_LIMITED:
        return ResourceExhausted(f"Bybit is rate limiting this platform ({what}): {NOT_JUDGED} in a minute")
    return Unavailable(f"Bybit could not be asked about the key now ({what}): {NOT_JUDGED}")


def check_key(venue: BybitVenue, api_key: str, api_secret: str) -> KeyCheck:
    """Ask Bybit what the key may do; raise InvalidArgument(field="api_key") for a key we refuse,
    ResourceExhausted or Unavailable when Bybit could not answer (the key is then not judged)."""
    # One attempt, and no code pybit would retry by sleeping (it waits out a 10006 rate limit inside
    # the call): a client waiting on a form is told to try again instead. pybit restores its default
    # retry codes when given an empty set, hence the one harmless code that can never come back here.
    session = venue.http(api_key, api_secret, max_retries=1, retry_codes={-1})
    try:
        info: dict[str, Any] = session.get_api_key_information()["result"]
        session.get_wallet_balance(accountType="UNIFIED")
    except InvalidRequestError as error:
        code = int(error.status_code)
        if code in RATE_LIMITED or code in BYBIT_TROUBLE:
            raise _not_answered(code) from None
        raise InvalidArgument(_refusal(code), field="api_key") from None
    except (FailedRequestError, requests.RequestException, OSError, ValueError, KeyError) as error:
        # FailedRequestError carries an HTTP status other than 200 (pybit's own 400 and 409 stand for
        # "no answer" and "unreadable JSON"); everything else here is no usable answer at all.
        status = int(error.status_code) if isinstance(error, FailedRequestError) else 0
        if status in RATE_LIMITED or status >= 500:
            raise _not_answered(status) from None
        raise Unavailable(f"Bybit could not be reached to check the key: {NOT_JUDGED} later") from None
    permissions = sorted(
        f"{group}:{name}" for group, names in (info.get("permissions") or {}).items() for name in names or []
    )
    held = {tuple(p.split(":", 1)) for p in permissions}
    read_only = bool(int(info.get("readOnly", 0)))
    if ("Wallet", "Withdraw") in held:
        raise InvalidArgument(
            "the key has withdrawal permission, which the platform refuses: create a key without "
            "'Withdraw' on Bybit",
            field="api_key",
        )
    if read_only or not held & TRADE_PERMISSIONS:
        raise InvalidArgument(
            "the key cannot trade (read-only or no Contract/Spot trade permission)", field="api_key"
        )
    ips = [ip for ip in info.get("ips") or [] if ip != "*"]
    expire = None
    expired_at = str(info.get("expiredAt") or "")
    if expired_at and not expired_at.startswith("1970"):
        try:
            expire = datetime.fromisoformat(expired_at.replace("Z", "+00:00")).astimezone(UTC)
        except ValueError:
            expire = None
    return KeyCheck(permissions=permissions, read_only=read_only, allowed_ips=ips, key_expire_time=expire)
