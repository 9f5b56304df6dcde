"""Public streams /v5/public/{linear,spot}: kline, tickers, orderbook (snapshot + deltas), publicTrade."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from aiohttp import web

from services.exchangesim import rest_market
from services.exchangesim.instruments import Instrument, fmt
from services.exchangesim.market import INTERVALS
from services.exchangesim.streams import Connection, serve
from services.exchangesim.venue import Venue
from services.exchangesim.wire import bar_stream

REST_ONLY_TICKER_KEYS = ("predictedDeliveryPrice", "basisRate", "basis", "deliveryFeeRate", "deliveryTime")
BOOK_DEPTHS = {"linear": (1, 50, 200, 500), "spot": (1, 50, 200)}


class BookFeed:
    """The book a topic's subscribers hold; deltas are computed against it, so they always apply."""

    def __init__(self, inst: Instrument, depth: int) -> None:
        self.inst = inst
        self.depth = depth
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        self.u = 0

    def snapshot(self) -> dict[str, Any]:
        return {
            "s": self.inst.symbol,
            "b": [[fmt(p), fmt(q)] for p, q in sorted(self.bids.items(), reverse=True)],
            "a": [[fmt(p), fmt(q)] for p, q in sorted(self.asks.items())],
            "u": self.u,
            "seq": self.u,
        }

    def update(
        self, bids: list[tuple[Decimal, Decimal]], asks: list[tuple[Decimal, Decimal]]
    ) -> dict[str, Any] | None:
        changes = []
        for held, fresh in ((self.bids, dict(bids)), (self.asks, dict(asks))):
            side = [[fmt(p), "0"] for p in held if p not in fresh]
            side += [[fmt(p), fmt(q)] for p, q in fresh.items() if held.get(p) != q]
            held.clear()
            held.update(fresh)
            changes.append(side)
        self.u += 1
        if not changes[0] and not changes[1]:
            return None
        return {"s": self.inst.symbol, "b": changes[0], "a": changes[1], "u": self.u, "seq": self.u}


class PublicStreams:
    """Every public connection of one category and the topics they follow."""

    def __init__(self, venue: Venue, category: str, idle_timeout: float) -> None:
        self.venue = venue
        self.category = category
        self.idle_timeout = idle_timeout
        self.connections: set[Connection] = set()
        self.subscribers: dict[str, set[Connection]] = {}
        self.books: dict[str, BookFeed] = {}
        self._tickers: dict[str, dict[str, Any]] = {}
        venue.market.clock.listeners.append(self.on_minute)

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        return await serve(
            request,
            private=False,
            idle_timeout=self.idle_timeout,
            on_open=self.connections.add,
            on_message=self.on_message,
            on_close=self._closed,
        )

    def _closed(self, conn: Connection) -> None:
        self.connections.discard(conn)
        for topic in conn.topics:
            self._leave(conn, topic)

    def _leave(self, conn: Connection, topic: str) -> None:
        subs = self.subscribers.get(topic)
        if subs is not None:
            subs.discard(conn)
            if not subs:
                del self.subscribers[topic]
                self.books.pop(topic, None)
                self._tickers.pop(topic, None)

    def _check_topic(self, topic: str) -> Instrument | None:
        parts = topic.split(".")
        try:
            if parts[0] == "kline" and len(parts) == 3 and parts[1] in INTERVALS:
                return self.venue.catalog.get(self.category, parts[2])
            if parts[0] == "orderbook" and len(parts) == 3 and int(parts[1]) in BOOK_DEPTHS[self.category]:
                return self.venue.catalog.get(self.category, parts[2])
            if parts[0] in ("tickers", "publicTrade") and len(parts) == 2:
                return self.venue.catalog.get(self.category, parts[1])
        except Exception:
            return None
        return None

    def on_message(self, conn: Connection, msg: dict[str, Any]) -> None:
        op, req_id = msg.get("op"), msg.get("req_id", "")
        reply: dict[str, Any] = {
            "success": True,
            "ret_msg": "",
            "conn_id": conn.conn_id,
            "op": op,
        }
        if "req_id" in msg:
            reply["req_id"] = req_id
        if op == "ping":
            conn.send_json({**reply, "ret_msg": "pong"})
            return
        args = msg.get("args") or []
        if op == "subscribe":
            bad = [t for t in args if self._check_topic(str(t)) is None]
            if bad or not args:
                conn.send_json(
                    {**reply, "success": False, "ret_msg": f"Invalid topic: {','.join(map(str, bad))}"}
                )
                return
            conn.send_json(reply)
            for topic in args:
                if topic not in conn.topics:
                    conn.topics.add(topic)
                    self.subscribers.setdefault(topic, set()).add(conn)
                    self._first_message(conn, topic)
            return
        if op == "unsubscribe":
            for topic in args:
                conn.topics.discard(topic)
                self._leave(conn, topic)
            conn.send_json(reply)
            return
        conn.send_json({**reply, "success": False, "ret_msg": f"Invalid op: {op!r}"})

    # messages --------------------------------------------------------------------------
    def _first_message(self, conn: Connection, topic: str) -> None:
        kind = topic.split(".", maxsplit=1)[0]
        inst = self._check_topic(topic)
        assert inst is not None
        if kind == "orderbook":
            feed = self.books.get(topic)
            if feed is None:
                feed = self.books[topic] = BookFeed(inst, int(topic.split(".")[1]))
                feed.update(*self.venue.market.book(inst, feed.depth))
            conn.send(self._envelope(topic, "snapshot", feed.snapshot()))
        elif kind == "tickers":
            row = self._ticker(inst)
            self._tickers.setdefault(topic, row)
            conn.send(self._envelope(topic, "snapshot", row, cs=True))
        elif kind == "kline":
            interval = topic.split(".")[1]
            _, bar = self.venue.market.closing_bars(inst.symbol, interval)
            if bar is not None:
                data = [bar_stream(bar, interval, False, self.venue.market.now_ms())]
                conn.send(self._envelope(topic, "snapshot", data))

    def _ticker(self, inst: Instrument) -> dict[str, Any]:
        row = rest_market.ticker(self.venue, inst)
        for key in REST_ONLY_TICKER_KEYS:
            row.pop(key, None)
        return row

    def _envelope(self, topic: str, kind: str, data: Any, cs: bool = False) -> str:
        now = self.venue.market.now_ms()
        msg: dict[str, Any] = {"topic": topic, "type": kind, "ts": now, "data": data}
        if cs:
            msg["cs"] = self.venue.market.minute
        return json.dumps(msg, separators=(",", ":"))

    def fan_out(self, topic: str, text: str) -> None:
        for conn in self.subscribers.get(topic, ()):
            conn.send(text)

    def on_minute(self, minute: int) -> None:
        market = self.venue.market
        now = market.now_ms()
        for topic in list(self.subscribers):
            inst = self._check_topic(topic)
            if inst is None:
                continue
            kind = topic.split(".")[0]
            if kind == "kline":
                interval = topic.split(".")[1]
                closed, current = market.closing_bars(inst.symbol, interval)
                if closed is not None:
                    self.fan_out(
                        topic, self._envelope(topic, "snapshot", [bar_stream(closed, interval, True, now)])
                    )
                elif current is not None:
                    self.fan_out(
                        topic, self._envelope(topic, "snapshot", [bar_stream(current, interval, False, now)])
                    )
            elif kind == "orderbook":
                feed = self.books[topic]
                delta = feed.update(*market.book(inst, feed.depth))
                if delta is not None:
                    self.fan_out(topic, self._envelope(topic, "delta", delta))
            elif kind == "tickers":
                row = self._ticker(inst)
                if self.category == "spot":
                    self.fan_out(topic, self._envelope(topic, "snapshot", row, cs=True))
                    continue
                held = self._tickers.setdefault(topic, {})
                delta = {k: v for k, v in row.items() if held.get(k) != v}
                held.update(row)
                if delta:
                    self.fan_out(
                        topic, self._envelope(topic, "delta", {"symbol": inst.symbol, **delta}, cs=True)
                    )
            elif kind == "publicTrade":
                trades = [t for t in market.trades[inst.symbol] if t.time == now]
                if trades:
                    data = [
                        {
                            "T": t.time,
                            "s": t.symbol,
                            "S": t.side,
                            "v": fmt(t.size),
                            "p": fmt(t.price),
                            "i": t.trade_id,
                            "BT": False,
                        }
                        for t in trades
                    ]
                    self.fan_out(topic, self._envelope(topic, "snapshot", data))

    def drop_all(self, abort: bool = False) -> int:
        conns = list(self.connections)
        for conn in conns:
            conn.drop(abort)
        return len(conns)
