"""Every REST and stream answer has the keys and value types of Bybit's own samples."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from services.exchangesim.app import Simulator
from tests.exchangesim.helpers import get, post

SAMPLES = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "bybit"
pytestmark = pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"Bybit samples folder {SAMPLES} is absent")

# Where a sample disagrees with Bybit's documented V5 behaviour, we follow the documentation:
# REST answers always carry retExtInfo and time (some samples drop them).
ENVELOPE_EXTRAS = {"retExtInfo", "time"}


def sample(name: str) -> Any:
    return json.loads((SAMPLES / f"{name}.json").read_text())


def same_shape(ours: Any, theirs: Any, where: str = "$", extras: frozenset[str] = frozenset()) -> None:
    if theirs is None:  # the sample leaves this value open (null)
        return
    if isinstance(theirs, dict):
        assert isinstance(ours, dict), f"{where}: expected an object, got {ours!r}"
        missing, extra = set(theirs) - set(ours), set(ours) - set(theirs) - extras
        assert not missing and not extra, f"{where}: missing {sorted(missing)}, unexpected {sorted(extra)}"
        for key, value in theirs.items():
            same_shape(ours[key], value, f"{where}.{key}")
    elif isinstance(theirs, list):
        assert isinstance(ours, list), f"{where}: expected a list, got {ours!r}"
        if theirs and ours:
            for i, item in enumerate(ours):
                same_shape(item, theirs[0], f"{where}[{i}]")
    else:
        assert type(ours) is type(theirs), f"{where}: {type(ours).__name__} {ours!r}, sample has {theirs!r}"


async def test_rest_shapes(sim: Simulator, http: aiohttp.ClientSession) -> None:
    key = sim.create_account({"USDT": "10000"})
    base = sim.http_url
    await post(
        http,
        base,
        key,
        "/v5/order/create",
        {"category": "linear", "symbol": "SOLUSDT", "side": "Buy", "orderType": "Market", "qty": "2"},
    )
    await post(
        http,
        base,
        key,
        "/v5/order/create",
        {
            "category": "linear",
            "symbol": "SOLUSDT",
            "side": "Buy",
            "orderType": "Limit",
            "qty": "1",
            "price": "100",
            "orderLinkId": "shape-1",
        },
    )
    await post(
        http,
        base,
        key,
        "/v5/order/create",
        {
            "category": "linear",
            "symbol": "SOLUSDT",
            "side": "Buy",
            "orderType": "Limit",
            "qty": "1",
            "price": "101",
            "orderLinkId": "shape-2",
        },
    )
    await post(
        http,
        base,
        key,
        "/v5/order/cancel",
        {"category": "linear", "symbol": "SOLUSDT", "orderLinkId": "shape-2"},
    )
    sim.clock.step_candles(1)
    checks = [
        (
            "http_get_klines_linear",
            "/v5/market/kline",
            "category=linear&symbol=SOLUSDT&interval=60&limit=3",
            False,
        ),
        ("http_get_instruments_linear", "/v5/market/instruments-info", "category=linear", False),
        ("http_get_instruments_spot", "/v5/market/instruments-info", "category=spot", False),
        ("http_get_orderbook", "/v5/market/orderbook", "category=linear&symbol=SOLUSDT&limit=3", False),
        (
            "http_get_trades_recent",
            "/v5/market/recent-trade",
            "category=linear&symbol=SOLUSDT&limit=2",
            False,
        ),
        ("http_get_orders_realtime", "/v5/order/realtime", "category=linear&symbol=SOLUSDT", True),
        ("http_get_orders_history", "/v5/order/history", "category=linear&symbol=SOLUSDT", True),
        ("http_get_executions", "/v5/execution/list", "category=linear&symbol=SOLUSDT", True),
        ("http_get_positions", "/v5/position/list", "category=linear&symbol=SOLUSDT", True),
        ("http_get_wallet_balance", "/v5/account/wallet-balance", "accountType=UNIFIED", True),
        ("http_get_user_query_api", "/v5/user/query-api", "", True),
        ("http_get_account_info", "/v5/account/info", "", True),
        ("http_get_fee_rate", "/v5/account/fee-rate", "category=linear", True),
    ]
    for name, path, query, private in checks:
        status, body, _ = await get(http, base, key if private else None, path, query)
        assert status == 200 and body["retCode"] == 0, (name, body)
        theirs = sample(name)
        assert body["result"].get("list") != [], f"{name}: empty list proves nothing"
        for k in ("retCode", "retMsg", "time"):
            assert k not in theirs or type(body[k]) is type(theirs[k]), (name, k)
        assert set(theirs) - set(body) == set(), name
        assert set(body) - set(theirs) <= ENVELOPE_EXTRAS, name
        same_shape(body["result"], theirs["result"], name)


def _auth_message(key: Any) -> str:
    expires = int(time.time() * 1000) + 5000
    sig = hmac.new(key.secret.encode(), f"GET/realtime{expires}".encode(), hashlib.sha256).hexdigest()
    return json.dumps({"op": "auth", "args": [key.key, expires, sig]})


async def _collect(
    ws: aiohttp.ClientWebSocketResponse, done: Callable[[list[dict[str, Any]]], bool], within: float = 15.0
) -> list[dict[str, Any]]:
    """Messages until `done` holds for them (or `within` seconds pass: the assertions then say what is
    missing). A fixed listening time was too short under a loaded CI machine."""
    out: list[dict[str, Any]] = []
    deadline = asyncio.get_running_loop().time() + within
    while not done(out):
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            return out
        try:
            msg = await ws.receive(timeout=left)
        except TimeoutError:
            return out
        if msg.type != aiohttp.WSMsgType.TEXT:
            return out
        out.append(json.loads(msg.data))
    return out


def _matches(message: dict[str, Any], prefix: str, kind: str | None = None) -> bool:
    return str(message.get("topic", "")).startswith(prefix) and (kind is None or message.get("type") == kind)


def _has(messages: list[dict[str, Any]], prefix: str, kind: str | None = None) -> bool:
    return any(_matches(m, prefix, kind) for m in messages)


def _public_done(messages: list[dict[str, Any]]) -> bool:
    confirmed = any(
        d["confirm"] for m in messages if str(m.get("topic", "")).startswith("kline.") for d in m["data"]
    )
    wanted = [("tickers.", "snapshot"), ("orderbook.", "snapshot"), ("orderbook.", "delta")]
    return confirmed and _has(messages, "publicTrade.") and all(_has(messages, *w) for w in wanted)


def _private_done(messages: list[dict[str, Any]]) -> bool:
    return all(_has(messages, topic) for topic in ("order", "execution", "position", "wallet"))


def _by_topic(messages: list[dict[str, Any]], prefix: str, kind: str | None = None) -> dict[str, Any]:
    for m in messages:
        if _matches(m, prefix, kind):
            return m
    raise AssertionError(
        f"no {prefix} {kind or ''} message among {[m.get('topic') or m.get('op') for m in messages]}"
    )


async def test_stream_shapes(sim: Simulator, http: aiohttp.ClientSession) -> None:
    key = sim.create_account({"USDT": "10000"})
    async with (
        http.ws_connect(sim.ws_url + "/v5/public/linear") as pub,
        http.ws_connect(sim.ws_url + "/v5/private") as priv,
    ):
        await pub.send_str(
            json.dumps(
                {
                    "op": "subscribe",
                    "req_id": "sub-1",
                    "args": [
                        "kline.60.SOLUSDT",
                        "tickers.SOLUSDT",
                        "orderbook.50.SOLUSDT",
                        "publicTrade.SOLUSDT",
                    ],
                }
            )
        )
        await pub.send_str(json.dumps({"op": "subscribe", "args": ["invalid.topic.SOLUSDT"]}))
        await priv.send_str(_auth_message(key))
        await priv.send_str(
            json.dumps(
                {"op": "subscribe", "req_id": "p1", "args": ["order", "execution", "position", "wallet"]}
            )
        )
        # Both subscriptions answered before anything happens, so nothing is published to nobody.
        public = await _collect(pub, lambda ms: sum(m.get("op") == "subscribe" for m in ms) == 2)
        private = await _collect(priv, lambda ms: any(m.get("op") == "subscribe" for m in ms))
        await post(
            http,
            sim.http_url,
            key,
            "/v5/order/create",
            {"category": "linear", "symbol": "SOLUSDT", "side": "Buy", "orderType": "Market", "qty": "2"},
        )
        sim.clock.step_candles(1)
        public += await _collect(pub, lambda ms: _public_done(public + ms))
        private += await _collect(priv, lambda ms: _private_done(private + ms))

    acks = [m for m in public if m.get("op") == "subscribe"]
    same_shape(acks[0], sample("ws_subscription_ack"))
    assert acks[0]["req_id"] == "sub-1"
    same_shape(acks[1], sample("ws_subscription_failure"))
    same_shape(_by_topic(public, "kline."), sample("ws_kline"))
    assert any(d["confirm"] for m in public if m.get("topic", "").startswith("kline.") for d in m["data"])
    same_shape(_by_topic(public, "tickers.", "snapshot"), sample("ws_ticker_linear"))
    same_shape(_by_topic(public, "orderbook.", "snapshot"), sample("ws_orderbook_snapshot"))
    same_shape(_by_topic(public, "orderbook.", "delta"), sample("ws_orderbook_delta"))
    same_shape(_by_topic(public, "publicTrade."), sample("ws_public_trade"))

    auth = next(m for m in private if m.get("op") == "auth")
    # The sample is a trade-stream (/v5/trade) reply; /v5/private answers in the documented shape below.
    assert set(auth) == {"success", "ret_msg", "op", "conn_id"} and auth["success"] is True
    same_shape(_by_topic(private, "order"), sample("ws_account_order"))
    same_shape(_by_topic(private, "order"), sample("ws_account_order_filled"))
    same_shape(_by_topic(private, "execution"), sample("ws_account_execution"))
    same_shape(_by_topic(private, "position"), sample("ws_account_position"))
    same_shape(_by_topic(private, "wallet"), sample("ws_account_wallet"))
