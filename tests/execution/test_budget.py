"""Request budgets kept before anything is sent: Bybit's per-key limits (10 linear order creations a
rolling second), the per-IP limit shared by every tenant, and a key parked until Bybit's reset time
after a 10006. Measured on the event loop's clock: each request's start time is recorded."""

from __future__ import annotations

import asyncio
import time

from services.execution.budget import RequestBudget


async def starts(budget: RequestBudget, requests: list[tuple[str, str, str]]) -> list[float]:
    began = time.monotonic()
    times: list[float] = []
    for key, endpoint, category in requests:
        await budget.acquire(key, endpoint, category)
        times.append(time.monotonic() - began)
    return times


async def test_one_key_gets_ten_linear_orders_a_second_and_another_key_is_not_held_up() -> None:
    budget = RequestBudget(ip_limit=1000, ip_window_seconds=5)
    first = await starts(budget, [("k1", "order/create", "linear")] * 12)
    assert max(first[:10]) < 0.5  # the first ten at once
    assert first[10] >= 0.95  # the eleventh waits for the rolling second
    other = await starts(budget, [("k2", "order/create", "linear")] * 10)
    assert max(other) < 0.5  # another tenant's key has its own budget
    queries = await starts(budget, [("k1", "order/realtime", "linear")] * 20)
    assert max(queries) < 0.5  # queries count against their own, larger limit


async def test_the_ip_budget_is_shared_by_every_key() -> None:
    budget = RequestBudget(ip_limit=5, ip_window_seconds=1)
    times = await starts(budget, [(f"k{n}", "order/realtime", "") for n in range(7)])
    assert max(times[:5]) < 0.5 and times[5] >= 0.95


async def test_a_rate_limited_key_waits_for_bybits_reset_time_and_only_that_key() -> None:
    budget = RequestBudget(ip_limit=1000, ip_window_seconds=5)
    reset_ms = int((time.time() + 0.6) * 1000)  # as in X-Bapi-Limit-Reset-Timestamp
    budget.park_key("k1", reset_ms)
    other, parked = await asyncio.gather(
        starts(budget, [("k2", "order/create", "linear")]),
        starts(budget, [("k1", "order/create", "linear")]),
    )
    assert other[0] < 0.5
    assert 0.5 <= parked[0] < 3
