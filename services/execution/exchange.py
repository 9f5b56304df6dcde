"""One tenant's Bybit account over pybit's synchronous HTTP client, run in a bounded thread pool.

Every call goes through the request budget first and comes back either as Bybit's `result` or as an
`ExchangeError` that says what is known about the outcome: `unknown` is true when the request may
have been executed (timeout, connection reset, HTTP 5xx, Bybit 10016), which for an order means "look
it up by orderLinkId before anything else". Messages never contain keys or signatures.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests
from pybit.exceptions import FailedRequestError, InvalidRequestError
from pybit.unified_trading import HTTP

from services.common.bybit import BybitVenue
from services.execution.budget import RequestBudget

RATE_LIMIT = 10006
SERVER_ERROR = 10016
INVALID_KEY = 10003
ORDER_NOT_EXISTS = 110001
INSUFFICIENT_BALANCE = 110007
DUPLICATE_LINK_IDS = (110072, 170141)
# Answers after which the request may or may not have been executed.
UNKNOWN_CODES = {SERVER_ERROR, 10000}


class ExchangeError(Exception):
    def __init__(
        self,
        message: str,
        *,
        code: int = 0,
        http_status: int = 0,
        unknown: bool = False,
        rate_limited: bool = False,
        reset_ms: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.http_status = http_status
        self.unknown = unknown
        self.rate_limited = rate_limited
        self.reset_ms = reset_ms

    @property
    def duplicate(self) -> bool:
        return self.code in DUPLICATE_LINK_IDS


def _reset_ms(headers: Any) -> int | None:
    try:
        return int(headers.get("X-Bapi-Limit-Reset-Timestamp")) if headers else None
    except (TypeError, ValueError):
        return None


def classify(error: Exception) -> ExchangeError:
    """Turn what pybit raised into what we know about the request's outcome."""
    if isinstance(error, InvalidRequestError):
        code = int(error.status_code)
        text = f"{error.message} ({code})"
        if code == RATE_LIMIT:
            return ExchangeError(text, code=code, rate_limited=True, reset_ms=_reset_ms(error.resp_headers))
        return ExchangeError(text, code=code, unknown=code in UNKNOWN_CODES)
    if isinstance(error, FailedRequestError):
        status = int(error.status_code)
        if status == 403:
            return ExchangeError("HTTP 403: egress IP rate limit", http_status=status, rate_limited=True)
        # 5xx, or a body that is not JSON: the gateway may have passed the request on.
        return ExchangeError(f"HTTP {status}: {error.message}", http_status=status, unknown=True)
    if isinstance(error, requests.exceptions.RequestException):
        return ExchangeError(f"no answer from the exchange: {type(error).__name__}", unknown=True)
    return ExchangeError(f"exchange call failed: {type(error).__name__}", unknown=True)


# pybit method, budget endpoint and whether the call changes the account.
ENDPOINTS = {
    "place_order": "order/create",
    "cancel_order": "order/cancel",
    "get_open_orders": "order/realtime",
    "get_order_history": "order/history",
    "get_executions": "execution/list",
    "get_positions": "position/list",
    "get_wallet_balance": "account/wallet-balance",
    "set_leverage": "position/set-leverage",
    "set_trading_stop": "position/trading-stop",
    "get_instruments_info": "market/instruments-info",
}


class Exchange:
    """Shared by all tenants: the venue, the thread pool and the budgets."""

    def __init__(
        self,
        venue: BybitVenue,
        budget: RequestBudget,
        threads: int,
        timeout: float,
        pool: ThreadPoolExecutor | None = None,
    ) -> None:
        self.venue = venue
        self.budget = budget
        # LIVE and PAPER share one pool: the threads are sized to what this process can drive.
        self.pool = pool or _started_pool(threads)
        self.timeout = timeout
        # HTTP(S)_PROXY / NO_PROXY as they apply to this venue's host, resolved once.
        self._proxies = requests.utils.get_environ_proxies(self._public_endpoint())
        self._public = self._session(None, None)

    def _public_endpoint(self) -> str:
        return str(self.venue.http().endpoint)

    def _session(self, api_key: str | None, api_secret: str | None) -> HTTP:
        # max_retries=1 is one attempt in pybit; retry_codes empty: every retry is decided here.
        session = self.venue.http(
            api_key,
            api_secret,
            timeout=self.timeout,  # type: ignore[arg-type]
            max_retries=1,
            retry_codes=set(),
            return_response_headers=True,
        )
        # requests reads proxy settings from the environment on every request (about half of its
        # own work per order); the environment does not change while we run, so read it once.
        session.client.trust_env = False
        session.client.proxies.update(self._proxies)
        return session

    def account(self, key_id: str, api_key: str, api_secret: str) -> AccountClient:
        return AccountClient(self, key_id, self._session(api_key, api_secret))

    async def public(self, method: str, **params: Any) -> dict[str, Any]:
        return await _call(self, "public", self._public, method, params)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def _started_pool(threads: int) -> ThreadPoolExecutor:
    """A pool whose threads are all started now. ThreadPoolExecutor starts a thread on a submit that
    finds none idle, and each start waits for the new thread: on the first busy candle that put a
    few hundred thread starts on the event loop (~2 % of the burst's CPU). Each starter task waits
    until all have started, so no submit finds an idle thread and every one starts its own."""
    pool = ThreadPoolExecutor(threads, thread_name_prefix="bybit")
    everyone = threading.Barrier(threads)
    for _ in range(threads):
        pool.submit(_until_all_started, everyone)
    return pool


def _until_all_started(everyone: threading.Barrier) -> None:
    with contextlib.suppress(threading.BrokenBarrierError):
        everyone.wait(timeout=10)


class AccountClient:
    """One tenant's authenticated session. `key_id` names the key in budgets, never the key itself."""

    def __init__(self, exchange: Exchange, key_id: str, session: HTTP) -> None:
        self.exchange = exchange
        self.key_id = key_id
        self.session = session

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        return await _call(self.exchange, self.key_id, self.session, method, params)

    async def pages(self, method: str, **params: Any) -> list[dict[str, Any]]:
        """Every row of a cursor-paged list endpoint."""
        rows: list[dict[str, Any]] = []
        cursor = ""
        for _ in range(200):  # bounded: a misbehaving cursor cannot loop forever
            result = await self.call(method, **params, **({"cursor": cursor} if cursor else {}))
            rows.extend(result.get("list", []))
            cursor = str(result.get("nextPageCursor") or "")
            if not cursor:
                break
        return rows


async def _call(
    exchange: Exchange, key_id: str, session: HTTP, method: str, params: dict[str, Any]
) -> dict[str, Any]:
    endpoint = ENDPOINTS[method]
    await exchange.budget.acquire(key_id, endpoint, str(params.get("category", "")))
    loop = asyncio.get_running_loop()
    try:
        body, _elapsed, _headers = await loop.run_in_executor(
            exchange.pool, functools.partial(getattr(session, method), **params)
        )
    except Exception as raw:  # pybit raises several unrelated types; classify() names each
        error = classify(raw)
        if error.rate_limited:
            if error.http_status == 403:
                exchange.budget.park_ip()
            else:
                exchange.budget.park_key(key_id, error.reset_ms)
        raise error from None
    return dict(body.get("result") or {})
