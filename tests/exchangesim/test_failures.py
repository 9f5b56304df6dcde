"""Each failure answer: Bybit's code, a clear message, and no change to the account."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import pytest

from services.exchangesim.accounts import ApiKey
from services.exchangesim.app import SimConfig, Simulator
from tests.exchangesim.helpers import get, post, signed_headers

ORDER = {
    "category": "linear",
    "symbol": "SOLUSDT",
    "side": "Buy",
    "orderType": "Limit",
    "qty": "1",
    "price": "100",
}


async def _truth(http: aiohttp.ClientSession, sim: Simulator, key: ApiKey) -> tuple[Any, ...]:
    parts = []
    for what in ("orders", "fills", "balances", "positions"):
        async with http.get(f"{sim.http_url}/admin/accounts/{key.uid}/{what}") as resp:
            parts.append(await resp.json())
    return tuple(parts)


async def _rejected(
    http: aiohttp.ClientSession,
    sim: Simulator,
    key: ApiKey,
    body: dict[str, Any],
    code: int,
    words: str,
    **kw: Any,
) -> dict[str, Any]:
    before = await _truth(http, sim, key)
    _, answer, headers = await post(http, sim.http_url, key, "/v5/order/create", body, **kw)
    assert answer["retCode"] == code, answer
    assert words.lower() in answer["retMsg"].lower(), answer
    assert answer["result"] == {}
    assert int(headers["X-Bapi-Limit-Reset-Timestamp"]) > time.time() * 1000 - 5
    assert await _truth(http, sim, key) == before, "a rejected request changed the account"
    return answer


async def test_authentication_failures(sim: Simulator, http: aiohttp.ClientSession) -> None:
    key = sim.create_account({"USDT": "1000"})
    forged = ApiKey(key=key.key, secret="wrong", uid=key.uid)
    await _rejected(http, sim, forged, ORDER, 10004, "error sign")
    await _rejected(http, sim, key, ORDER, 10002, "recv_window", timestamp=int(time.time() * 1000) - 60_000)
    await _rejected(http, sim, key, ORDER, 10002, "timestamp", timestamp=int(time.time() * 1000) + 5_000)
    stranger = ApiKey(key="NOSUCHKEY", secret="x", uid=key.uid)
    await _rejected(http, sim, stranger, ORDER, 10003, "API key is invalid")
    reader = sim.venue.accounts.add_key(key.uid, read_only=True)
    await _rejected(http, sim, reader, ORDER, 10005, "Permission denied")
    _, ok, _ = await get(http, sim.http_url, reader, "/v5/order/realtime", "category=linear")
    assert ok["retCode"] == 0  # reading is allowed
    fenced = sim.venue.accounts.add_key(key.uid, ips=("10.9.9.9",))
    await _rejected(http, sim, fenced, ORDER, 10010, "Unmatched IP")


async def test_body_is_verified_as_sent(sim: Simulator, http: aiohttp.ClientSession) -> None:
    """Compact JSON in insertion order (not pybit's style) verifies too: the raw bytes are signed."""
    key = sim.create_account({"USDT": "1000"})
    raw = '{"symbol":"SOLUSDT","category":"linear","side":"Buy","orderType":"Limit","qty":"1","price":"100"}'
    async with http.post(
        sim.http_url + "/v5/order/create", data=raw, headers=signed_headers(key, raw)
    ) as resp:
        assert (await resp.json())["retCode"] == 0


async def test_order_validation_failures(sim: Simulator, http: aiohttp.ClientSession) -> None:
    key = sim.create_account({"USDT": "1000"})
    await _rejected(http, sim, key, {**ORDER, "qty": "1.05"}, 10001, "qtyStep 0.1")
    await _rejected(http, sim, key, {**ORDER, "price": "100.005"}, 10001, "tickSize 0.01")
    await _rejected(http, sim, key, {**ORDER, "symbol": "NOPEUSDT"}, 10001, "symbol invalid")
    await _rejected(http, sim, key, {**ORDER, "qty": "0.01"}, 10001, "qtyStep")
    await _rejected(http, sim, key, {**ORDER, "qty": "500"}, 110007, "ab not enough")
    spot = {
        "category": "spot",
        "symbol": "SOLUSDT",
        "side": "Buy",
        "orderType": "Limit",
        "qty": "0.0001",
        "price": "100",
    }
    await _rejected(http, sim, key, spot, 170137, "too many decimals")
    await _rejected(http, sim, key, {**spot, "qty": "100"}, 170131, "Insufficient balance")

    _, first, _ = await post(http, sim.http_url, key, "/v5/order/create", {**ORDER, "orderLinkId": "once"})
    assert first["retCode"] == 0
    await _rejected(http, sim, key, {**ORDER, "orderLinkId": "once"}, 110072, "OrderLinkedID is duplicate")
    _, spot_first, _ = await post(
        http, sim.http_url, key, "/v5/order/create", {**spot, "qty": "0.1", "orderLinkId": "s"}
    )
    assert spot_first["retCode"] == 0
    await _rejected(
        http, sim, key, {**spot, "qty": "0.1", "orderLinkId": "s"}, 170141, "Duplicate clientOrderId"
    )

    _, missing, _ = await post(
        http,
        sim.http_url,
        key,
        "/v5/order/cancel",
        {"category": "linear", "symbol": "SOLUSDT", "orderId": "nope"},
    )
    assert missing["retCode"] == 110001
    lev = {"category": "linear", "symbol": "SOLUSDT", "buyLeverage": "10", "sellLeverage": "10"}
    _, same, _ = await post(http, sim.http_url, key, "/v5/position/set-leverage", lev)
    assert same["retCode"] == 110043


async def test_rate_limit_per_key_and_endpoint(sim: Simulator, http: aiohttp.ClientSession) -> None:
    key = sim.create_account({"USDT": "100000"})
    answers = []
    for i in range(11):
        _, body, headers = await post(
            http, sim.http_url, key, "/v5/order/create", {**ORDER, "orderLinkId": f"r{i}"}
        )
        answers.append((body, headers))
    body, headers = answers[-1]
    assert [b["retCode"] for b, _ in answers[:10]] == [0] * 10
    assert body["retCode"] == 10006 and "Too many visits" in body["retMsg"]
    assert headers["X-Bapi-Limit"] == "10" and headers["X-Bapi-Limit-Status"] == "0"
    assert int(headers["X-Bapi-Limit-Reset-Timestamp"]) > time.time() * 1000
    async with http.get(f"{sim.http_url}/admin/accounts/{key.uid}/orders") as resp:
        assert len((await resp.json())["orders"]) == 10
    _, other, _ = await get(http, sim.http_url, key, "/v5/order/realtime", "category=linear")
    assert other["retCode"] == 0  # limits are per endpoint


@pytest.fixture
async def tight_sim() -> Any:
    simulator = Simulator(SimConfig(port=0, paused=True, ip_limit=5, ip_window_s=5, ban_s=60))
    await simulator.start()
    yield simulator
    await simulator.stop()


async def test_ip_limit_bans_with_403(tight_sim: Simulator, http: aiohttp.ClientSession) -> None:
    statuses = []
    for _ in range(7):
        async with http.get(tight_sim.http_url + "/v5/market/time") as resp:
            statuses.append(resp.status)
    assert statuses == [200] * 5 + [403, 403]
    async with http.post(tight_sim.http_url + "/admin/rate-limits/reset") as resp:
        assert resp.status == 200
    async with http.get(tight_sim.http_url + "/v5/market/time") as resp:
        assert resp.status == 200


async def test_query_api_reports_permissions(sim: Simulator, http: aiohttp.ClientSession) -> None:
    async with http.post(
        sim.http_url + "/admin/accounts",
        json={"balances": {"USDT": "5"}, "withdraw": True, "read_only": True},
    ) as resp:
        made = await resp.json()
    key = ApiKey(key=made["apiKey"], secret=made["apiSecret"], uid=made["uid"])
    _, body, _ = await get(http, sim.http_url, key, "/v5/user/query-api", "")
    result = body["result"]
    assert result["readOnly"] == 1 and "Withdraw" in result["permissions"]["Wallet"]
    assert result["permissions"]["ContractTrade"] == []
