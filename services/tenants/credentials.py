"""Exchange credentials: checked against Bybit, then kept in Vault KV v2; the database gets a reference.

The check (GET /v5/user/query-api and /v5/account/wallet-balance through pybit) refuses a key that
Bybit rejects, that cannot trade, or that can withdraw: a platform that only trades never needs
withdrawal rights, so a leaked key could not move funds off the exchange. Neither the secret nor the
full key ever reaches a log line, an error message, the database or a response: errors are built
from Bybit's return code and a fixed text, and the key is only ever shown masked.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests
from pybit.exceptions import FailedRequestError, InvalidRequestError

from services.common.bybit import BybitVenue
from services.common.errors import InvalidArgument, Unavailable

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


def check_key(venue: BybitVenue, api_key: str, api_secret: str) -> KeyCheck:
    """Ask Bybit what the key may do; raise InvalidArgument(field="api_key") for a key we refuse."""
    # Both calls are reads, safe to retry; pybit needs at least one attempt configured.
    session = venue.http(api_key, api_secret, max_retries=1)
    try:
        info: dict[str, Any] = session.get_api_key_information()["result"]
        session.get_wallet_balance(accountType="UNIFIED")
    except InvalidRequestError as error:
        raise InvalidArgument(_refusal(int(error.status_code)), field="api_key") from None
    except (FailedRequestError, requests.RequestException, OSError, ValueError, KeyError):
        raise Unavailable("Bybit could not be reached to check the key; retry later") from None
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
