"""Admin API under /admin/ (plain JSON, not Bybit's envelope). See README.md for every call.

POST   /admin/accounts                 {"balances": {"USDT": "10000"}, "read_only": false, "withdraw": false,
                                        "ips": [], "note": ""} -> {"uid", "apiKey", "apiSecret"}
POST   /admin/accounts/{uid}/keys      same options -> another key of that account
GET    /admin/accounts                 -> {"accounts": [uid, ...]}
GET    /admin/accounts/{uid}/orders    every order of the account (Bybit order shape + "category")
GET    /admin/accounts/{uid}/fills     every execution (Bybit execution shape + "category")
GET    /admin/accounts/{uid}/positions every position;  GET /admin/accounts/{uid}/balances wallet coins
GET    /admin/clock                    -> {"minute", "now_ms", "paused", "seconds_per_candle", ...}
POST   /admin/clock                    {"action": "pause"|"resume"|"step"|"speed", "candles": N, "minutes": N,
                                        "seconds_per_candle": x}
GET    /admin/faults                   active fault rules;  DELETE /admin/faults clears them
POST   /admin/faults                   one rule: {"kind": "error"|"http"|"delay"|"hang"|"accept_timeout",
                                        "code", "status", "delay_ms", "rate", "count", "path"}
POST   /admin/streams/drop             {"scope": "all"|"public"|"private", "abort": false} -> {"dropped": n}
POST   /admin/clock-skew               {"skew_ms": N} shifts the server clock used for auth and `time`
POST   /admin/rate-limits/reset        forget every rate-limit window and IP ban
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from aiohttp import web

from services.exchangesim.accounts import Account
from services.exchangesim.faults import Rule
from services.exchangesim.instruments import fmt
from services.exchangesim.venue import Venue
from services.exchangesim.wire import execution_rest, order_rest, position_rest

Stop = Callable[[str, bool], int]


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.json_response(payload, status=status, dumps=lambda o: json.dumps(o, separators=(",", ":")))


class Admin:
    def __init__(self, venue: Venue, drop_streams: Stop, token: str | None) -> None:
        self.venue = venue
        self.drop_streams = drop_streams
        self.token = token

    def routes(self) -> list[web.RouteDef]:
        w = self._wrap
        return [
            web.post("/admin/accounts", w(self.create_account)),
            web.get("/admin/accounts", w(self.list_accounts)),
            web.post("/admin/accounts/{uid}/keys", w(self.add_key)),
            web.get("/admin/accounts/{uid}/orders", w(self.orders)),
            web.get("/admin/accounts/{uid}/fills", w(self.fills)),
            web.get("/admin/accounts/{uid}/positions", w(self.positions)),
            web.get("/admin/accounts/{uid}/balances", w(self.balances)),
            web.get("/admin/clock", w(self.clock)),
            web.post("/admin/clock", w(self.control_clock)),
            web.get("/admin/faults", w(self.faults)),
            web.post("/admin/faults", w(self.add_fault)),
            web.delete("/admin/faults", w(self.clear_faults)),
            web.post("/admin/streams/drop", w(self.drop)),
            web.post("/admin/clock-skew", w(self.skew)),
            web.post("/admin/rate-limits/reset", w(self.reset_limits)),
        ]

    def _wrap(self, fn: Callable[[web.Request, dict[str, Any]], Awaitable[Any]]) -> Callable[..., Any]:
        async def handler(request: web.Request) -> web.Response:
            if self.token and request.headers.get("X-Admin-Token") != self.token:
                return _json({"error": "missing or wrong X-Admin-Token"}, 401)
            body: dict[str, Any] = {}
            if request.can_read_body:
                try:
                    parsed = await request.json()
                except ValueError:
                    return _json({"error": "body must be JSON"}, 400)
                if not isinstance(parsed, dict):
                    return _json({"error": "body must be a JSON object"}, 400)
                body = parsed
            try:
                return _json(await fn(request, body))
            except (KeyError, ValueError, TypeError, ArithmeticError) as exc:
                return _json({"error": f"{type(exc).__name__}: {exc}"}, 400)

        return handler

    def _account(self, request: web.Request) -> Account:
        uid = int(request.match_info["uid"])
        account = self.venue.accounts.by_uid.get(uid)
        if account is None:
            raise KeyError(f"no account {uid}")
        return account

    def _key(self, uid: int, body: dict[str, Any]) -> dict[str, Any]:
        key = self.venue.accounts.add_key(
            uid,
            read_only=bool(body.get("read_only", False)),
            withdraw=bool(body.get("withdraw", False)),
            ips=tuple(str(ip) for ip in body.get("ips", ())),
            note=str(body.get("note", "")),
        )
        return {"uid": uid, "apiKey": key.key, "apiSecret": key.secret}

    async def create_account(self, request: web.Request, body: dict[str, Any]) -> Any:
        balances = {str(k): Decimal(str(v)) for k, v in dict(body.get("balances", {"USDT": "10000"})).items()}
        account = self.venue.accounts.create(balances)
        return self._key(account.uid, body)

    async def list_accounts(self, request: web.Request, body: dict[str, Any]) -> Any:
        return {"accounts": sorted(self.venue.accounts.by_uid)}

    async def add_key(self, request: web.Request, body: dict[str, Any]) -> Any:
        return self._key(self._account(request).uid, body)

    async def orders(self, request: web.Request, body: dict[str, Any]) -> Any:
        acct = self._account(request)
        return {"orders": [{**order_rest(o), "category": o.category} for o in acct.orders.values()]}

    async def fills(self, request: web.Request, body: dict[str, Any]) -> Any:
        acct = self._account(request)
        return {"fills": [{**execution_rest(e), "category": e.order.category} for e in acct.executions]}

    async def positions(self, request: web.Request, body: dict[str, Any]) -> Any:
        acct = self._account(request)
        marks = self.venue.engine.marks()
        return {"positions": [position_rest(p, marks[p.symbol]) for p in acct.positions.values()]}

    async def balances(self, request: web.Request, body: dict[str, Any]) -> Any:
        acct = self._account(request)
        return {"balances": {c: fmt(v) for c, v in acct.coins.items()}}

    def _clock_state(self) -> dict[str, Any]:
        clock = self.venue.market.clock
        return {
            "minute": clock.minute,
            "now_ms": self.venue.market.now_ms(),
            "paused": clock.paused,
            "seconds_per_candle": clock.seconds_per_candle,
            "minutes_per_candle": clock.minutes_per_candle,
        }

    async def clock(self, request: web.Request, body: dict[str, Any]) -> Any:
        return self._clock_state()

    async def control_clock(self, request: web.Request, body: dict[str, Any]) -> Any:
        clock = self.venue.market.clock
        action = body.get("action")
        if action == "pause":
            clock.pause()
        elif action == "resume":
            clock.resume()
        elif action == "step":
            if "minutes" in body:
                clock.advance(int(body["minutes"]))
            else:
                clock.step_candles(int(body.get("candles", 1)))
        elif action == "speed":
            clock.set_speed(float(body["seconds_per_candle"]))
        else:
            raise ValueError("action must be pause, resume, step or speed")
        return self._clock_state()

    async def faults(self, request: web.Request, body: dict[str, Any]) -> Any:
        return {"faults": self.venue.faults.describe()}

    async def add_fault(self, request: web.Request, body: dict[str, Any]) -> Any:
        self.venue.faults.add(Rule.parse(body))
        return {"faults": self.venue.faults.describe()}

    async def clear_faults(self, request: web.Request, body: dict[str, Any]) -> Any:
        self.venue.faults.clear()
        return {"faults": []}

    async def drop(self, request: web.Request, body: dict[str, Any]) -> Any:
        scope = str(body.get("scope", "all"))
        if scope not in ("all", "public", "private"):
            raise ValueError("scope must be all, public or private")
        return {"dropped": self.drop_streams(scope, bool(body.get("abort", False)))}

    async def skew(self, request: web.Request, body: dict[str, Any]) -> Any:
        self.venue.server_clock.skew_ms = int(body["skew_ms"])
        return {"skew_ms": self.venue.server_clock.skew_ms}

    async def reset_limits(self, request: web.Request, body: dict[str, Any]) -> Any:
        self.venue.limiter.reset()
        return {"reset": True}
