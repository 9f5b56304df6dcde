"""The REST front door: IP limits, faults, signature checks, per-key limits, the Bybit envelope."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from services.exchangesim import auth, errors, rest_account, rest_market, rest_trade
from services.exchangesim.errors import BybitError
from services.exchangesim.ratelimit import Status
from services.exchangesim.venue import Call, Venue

log = logging.getLogger(__name__)
Handler = Callable[[Venue, Call], dict[str, Any]]


@dataclass(frozen=True)
class Route:
    handler: Handler
    private: bool = False
    trade: bool = False


ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "/v5/market/time"): Route(rest_market.server_time),
    ("GET", "/v5/market/kline"): Route(rest_market.kline),
    ("GET", "/v5/market/tickers"): Route(rest_market.tickers),
    ("GET", "/v5/market/instruments-info"): Route(rest_market.instruments_info),
    ("GET", "/v5/market/orderbook"): Route(rest_market.orderbook),
    ("GET", "/v5/market/recent-trade"): Route(rest_market.recent_trade),
    ("POST", "/v5/order/create"): Route(rest_trade.create, private=True, trade=True),
    ("POST", "/v5/order/amend"): Route(rest_trade.amend, private=True, trade=True),
    ("POST", "/v5/order/cancel"): Route(rest_trade.cancel, private=True, trade=True),
    ("POST", "/v5/order/cancel-all"): Route(rest_trade.cancel_all, private=True, trade=True),
    ("GET", "/v5/order/realtime"): Route(rest_trade.realtime, private=True),
    ("GET", "/v5/order/history"): Route(rest_trade.history, private=True),
    ("GET", "/v5/execution/list"): Route(rest_trade.executions, private=True),
    ("GET", "/v5/position/list"): Route(rest_account.positions, private=True),
    ("POST", "/v5/position/set-leverage"): Route(rest_account.set_leverage, private=True, trade=True),
    ("POST", "/v5/position/trading-stop"): Route(rest_account.trading_stop, private=True, trade=True),
    ("GET", "/v5/account/wallet-balance"): Route(rest_account.wallet_balance, private=True),
    ("GET", "/v5/account/info"): Route(rest_account.account_info, private=True),
    ("GET", "/v5/account/fee-rate"): Route(rest_account.fee_rate, private=True),
    ("GET", "/v5/user/query-api"): Route(rest_account.query_api, private=True),
}


def envelope(venue: Venue, code: int, message: str, result: dict[str, Any]) -> dict[str, Any]:
    return {
        "retCode": code,
        "retMsg": message,
        "result": result,
        "retExtInfo": {},
        "time": venue.server_clock.now_ms(),
    }


def reply(
    venue: Venue,
    status: Status,
    *,
    code: int = 0,
    message: str = "OK",
    result: dict[str, Any] | None = None,
    http_status: int = 200,
) -> web.Response:
    body = json.dumps(envelope(venue, code, message, result or {}), separators=(",", ":"))
    return web.Response(
        text=body, status=http_status, content_type="application/json", headers=status.headers()
    )


def _drop(request: web.Request) -> web.Response:
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=504)


def _params(method: str, request: web.Request, body: bytes) -> dict[str, Any]:
    if method == "GET":
        return dict(request.query)
    if not body:
        return {}
    try:
        parsed = json.loads(body)
    except ValueError:
        raise errors.params("params error: the request body is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise errors.params("params error: the request body must be a JSON object")
    return parsed


async def handle(venue: Venue, request: web.Request) -> web.Response:
    remote = request.remote or ""
    limiter = venue.limiter
    if limiter.banned_until(remote) is not None:
        return web.Response(status=403, text="access too frequent, your IP is banned for a while")
    ip_status = limiter.hit_ip(remote)
    if not ip_status.allowed:
        log.warning(
            "IP %s exceeded %d requests / %.0fs; banned", remote, limiter.ip_limit, limiter.ip_window_s
        )
        return web.Response(status=403, text="access too frequent", headers=ip_status.headers())
    fired = venue.faults.fire(request.path)
    accept_timeout = None
    for rule in fired:
        if rule.kind == "delay":
            await asyncio.sleep(rule.delay_ms / 1000)
        elif rule.kind == "hang":
            await asyncio.sleep(rule.delay_ms / 1000)
            return _drop(request)
        elif rule.kind == "error":
            return reply(
                venue,
                ip_status,
                code=rule.code,
                message=errors.MESSAGES.get(rule.code, "injected fault").format(
                    req=0, server=0, window=0, origin=""
                ),
            )
        elif rule.kind == "http":
            return web.Response(
                status=rule.status, text=f"{rule.status} injected fault", headers=ip_status.headers()
            )
        elif rule.kind == "accept_timeout":
            accept_timeout = rule
    method = request.method
    route = ROUTES.get((method, request.path))
    if route is None:
        return reply(
            venue,
            ip_status,
            code=errors.ROUTE_NOT_FOUND,
            message=errors.MESSAGES[errors.ROUTE_NOT_FOUND],
            http_status=404,
        )
    body = await request.read()
    status = ip_status
    try:
        params = _params(method, request, body)
        call = Call(params)
        if route.private:
            headers = {k.upper(): v for k, v in request.headers.items()}
            payload = auth.rest_payload(method, request.raw_path, body)
            key = auth.verify_rest(venue.accounts, headers, payload, remote, venue.server_clock.now_ms())
            status = limiter.hit_key(key.uid, request.path, str(params.get("category", "")))
            if not status.allowed:
                raise BybitError(errors.RATE_LIMIT)
            if route.trade and key.read_only:
                raise BybitError(errors.PERMISSION)
            call = Call(params, key, venue.accounts.by_uid[key.uid])
        result = route.handler(venue, call)
    except BybitError as exc:
        return reply(venue, status, code=exc.code, message=exc.message, http_status=exc.http_status)
    if accept_timeout is not None:
        await asyncio.sleep(accept_timeout.delay_ms / 1000)
        return _drop(request)
    return reply(venue, status, result=result)
