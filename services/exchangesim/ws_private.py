"""Private stream /v5/private: auth, then order, execution, position and wallet messages of the account."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from services.exchangesim import auth
from services.exchangesim.accounts import Account, Execution, Order, Position
from services.exchangesim.errors import BybitError
from services.exchangesim.streams import Connection, serve
from services.exchangesim.venue import Venue
from services.exchangesim.wire import execution_stream, order_stream, position_stream, wallet_stream

TOPICS = ("order", "execution", "position", "wallet")


class PrivateStreams:
    def __init__(self, venue: Venue, idle_timeout: float) -> None:
        self.venue = venue
        self.idle_timeout = idle_timeout
        self.connections: set[Connection] = set()
        self.by_uid: dict[int, set[Connection]] = {}
        self._message_ids = 0
        venue.engine.publish = self.publish

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        return await serve(
            request,
            private=True,
            idle_timeout=self.idle_timeout,
            on_open=self.connections.add,
            on_message=self.on_message,
            on_close=self._closed,
        )

    def _closed(self, conn: Connection) -> None:
        self.connections.discard(conn)
        if conn.uid is not None:
            self.by_uid.get(conn.uid, set()).discard(conn)

    def on_message(self, conn: Connection, msg: dict[str, Any]) -> None:
        op, req_id = msg.get("op"), msg.get("req_id", "")
        now = self.venue.server_clock.now_ms()
        if op == "ping":
            conn.send_json({"req_id": req_id, "op": "pong", "args": [str(now)], "conn_id": conn.conn_id})
            return
        echo = {"req_id": req_id} if "req_id" in msg else {}
        if op == "auth":
            try:
                key = auth.verify_stream(self.venue.accounts, list(msg.get("args") or []), now)
                remote = conn.ws._req.remote if conn.ws._req is not None else ""
                auth.check_ip(key, remote or "")
            except BybitError as exc:
                conn.send_json(
                    {"success": False, "ret_msg": exc.message, "op": "auth", "conn_id": conn.conn_id, **echo}
                )
                return
            conn.uid = key.uid
            self.by_uid.setdefault(key.uid, set()).add(conn)
            conn.send_json({"success": True, "ret_msg": "", "op": "auth", "conn_id": conn.conn_id, **echo})
            return
        reply: dict[str, Any] = {
            "success": True,
            "ret_msg": "",
            "op": op,
            "conn_id": conn.conn_id,
        }
        if "req_id" in msg:
            reply["req_id"] = req_id
        args = [str(a) for a in msg.get("args") or []]
        if op in ("subscribe", "unsubscribe"):
            if conn.uid is None:
                conn.send_json({**reply, "success": False, "ret_msg": "Request not authorized"})
                return
            bad = [t for t in args if t not in TOPICS]
            if bad or not args:
                conn.send_json({**reply, "success": False, "ret_msg": f"Invalid topic: {','.join(bad)}"})
                return
            if op == "subscribe":
                conn.topics.update(args)
            else:
                conn.topics.difference_update(args)
            conn.send_json(reply)
            return
        conn.send_json({**reply, "success": False, "ret_msg": f"Invalid op: {op!r}"})

    def publish(self, uid: int, topic: str, items: list[Any]) -> None:
        conns = [c for c in self.by_uid.get(uid, ()) if topic in c.topics]
        if not conns:
            return
        marks = self.venue.engine.marks()
        data: list[dict[str, Any]]
        if topic == "order":
            data = [order_stream(o) for o in items if isinstance(o, Order)]
        elif topic == "execution":
            data = [execution_stream(e) for e in items if isinstance(e, Execution)]
        elif topic == "position":
            data = [
                position_stream(p, marks.get(p.symbol, p.avg_price)) for p in items if isinstance(p, Position)
            ]
        else:
            data = [wallet_stream(a, marks, self.venue.catalog) for a in items if isinstance(a, Account)]
        self._message_ids += 1
        text = json.dumps(
            {
                "id": f"{uid}-{self._message_ids}",
                "topic": topic,
                "creationTime": self.venue.market.now_ms(),
                "data": data,
            },
            separators=(",", ":"),
        )
        for conn in conns:
            conn.send(text)

    def drop_all(self, abort: bool = False) -> int:
        conns = list(self.connections)
        for conn in conns:
            conn.drop(abort)
        return len(conns)
