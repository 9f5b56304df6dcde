"""Request authentication exactly as Bybit V5 does it: HMAC-SHA256 over the raw bytes received.

REST: sign `timestamp + apiKey + recvWindow + payload`, where payload is the raw query string
(GET) or the raw body (POST), byte for byte. Accepted when
`server_time - recv_window <= timestamp < server_time + 1000`.
Private stream: sign `"GET/realtime" + expires`; `expires` must lie in the future.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from services.exchangesim import errors
from services.exchangesim.accounts import Accounts, ApiKey
from services.exchangesim.errors import BybitError

DEFAULT_RECV_WINDOW = 5000
FUTURE_TOLERANCE_MS = 1000


class ServerClock:
    """Wall time as the server sees it; `skew_ms` lets tests simulate a drifting client clock."""

    def __init__(self) -> None:
        self.skew_ms = 0

    def now_ms(self) -> int:
        return int(time.time() * 1000) + self.skew_ms


def sign(secret: str, payload: bytes) -> str:
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def rest_payload(method: str, raw_path: str, body: bytes) -> bytes:
    if method == "GET":
        return raw_path.partition("?")[2].encode()
    return body


def check_ip(key: ApiKey, remote: str) -> None:
    if key.ips and remote not in key.ips and "*" not in key.ips:
        raise BybitError(errors.UNMATCHED_IP)


def verify_rest(
    accounts: Accounts, headers: dict[str, str], payload: bytes, remote: str, server_ms: int
) -> ApiKey:
    """The API key of a correctly signed request, else the BybitError Bybit would answer."""
    key = accounts.keys.get(headers.get("X-BAPI-API-KEY", ""))
    if key is None:
        raise BybitError(errors.INVALID_KEY)
    check_ip(key, remote)
    raw_ts = headers.get("X-BAPI-TIMESTAMP", "")
    raw_window = headers.get("X-BAPI-RECV-WINDOW", str(DEFAULT_RECV_WINDOW))
    try:
        timestamp, window = int(raw_ts), int(raw_window)
    except ValueError:
        raise errors.params(
            "params error: X-BAPI-TIMESTAMP and X-BAPI-RECV-WINDOW must be integers"
        ) from None
    if not (server_ms - window <= timestamp < server_ms + FUTURE_TOLERANCE_MS):
        raise BybitError(errors.TIMESTAMP, req=timestamp, server=server_ms, window=window)
    prefix = f"{raw_ts}{key.key}{raw_window}".encode()
    expected = sign(key.secret, prefix + payload)
    if not hmac.compare_digest(expected, headers.get("X-BAPI-SIGN", "").lower()):
        raise BybitError(errors.SIGNATURE, origin=(prefix + payload).decode(errors="replace"))
    return key


def verify_stream(accounts: Accounts, args: list[object], server_ms: int) -> ApiKey:
    """The key of a private-stream `auth` request, else BybitError."""
    if len(args) != 3:
        raise errors.params("Params Error: auth args must be [apiKey, expires, signature]")
    key = accounts.keys.get(str(args[0]))
    if key is None:
        raise BybitError(errors.INVALID_KEY, "Invalid apikey")
    try:
        expires = int(str(args[1]))
    except ValueError:
        raise errors.params("Params Error: expires must be an integer") from None
    if expires <= server_ms:
        raise BybitError(errors.TIMESTAMP, "Request expired: expires must lie in the future")
    if not hmac.compare_digest(sign(key.secret, f"GET/realtime{expires}".encode()), str(args[2]).lower()):
        raise BybitError(errors.SIGNATURE, "Signature verification failed")
    return key
