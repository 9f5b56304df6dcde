"""The invariant checker catches what it is for: an order placed on the exchange behind the platform's
back, a signal that never got an outcome, and a fill missing from our database. Each is planted on a
tenant whose records first check clean, against the running platform and the simulator."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg2
import pytest
from tradebot.common.v1 import common_pb2 as common
from tradebot.tenants.v1 import tenants_service_pb2 as tp

from services.common.bybit import BybitEnv, BybitVenue
from tests.e2e.conftest import Stack
from tests.helpers.bots import create_bot
from tests.helpers.clients import open_account, store_keys
from tests.helpers.invariants import ExchangeAccount, check, settled
from tests.helpers.waiting import eventually

# Possibly start-up of the whole platform.
pytestmark = pytest.mark.timeout(600)


def sql(stack: Stack, query: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg2.connect(stack.sources.database_url) as conn, conn.cursor() as cur:
        cur.execute(query, args)
        return list(cur.fetchall()) if cur.description else []


def test_the_checker_names_each_planted_violation(stack: Stack) -> None:
    client = stack.new_client("planted")
    keys = open_account(stack.simulator, "planted", usdt="50000")
    store_keys(stack.tenants, client, keys)
    tenant_id = stack.tenants.GetMe(tp.GetMeRequest(), metadata=client.meta).tenant.id
    account = ExchangeAccount(tenant_id, int(keys["uid"]))
    # template="": strategy's default template, as a client who picks none gets.
    bot = create_bot(stack.strategy, client, name="planted-bot", template="", mode=common.TRADING_MODE_LIVE)
    assert settled(stack.sources, [account], within=30) == []

    # 1. An order placed by hand on the exchange, with the tenant's own key: no signal, no platform action.
    session = BybitVenue(BybitEnv.SIMULATOR, stack.simulator.url).http(keys["apiKey"], keys["apiSecret"])
    placed = session.place_order(category="linear", symbol="SOLUSDT", side="Buy", orderType="Market", qty="1")
    order_id = placed["result"]["orderId"]
    fill = eventually(
        lambda: next(
            (
                f
                for f in stack.simulator.admin(f"accounts/{account.uid}/fills")["fills"]
                if f["orderId"] == order_id
            ),
            None,
        ),
        30,
        "the hand-placed order's fill on the exchange",
    )
    execution = stack.sources.execution_schema
    eventually(
        lambda: sql(stack, f"select 1 from {execution}.exec_fill where exec_id = %s", fill["execId"]),
        60,
        "execution to record the exchange's fill",
    )

    # 2. A signal strategy recorded that execution never decided on.
    signal_id = uuid.uuid4().hex
    sql(
        stack,
        f"insert into {stack.sources.strategy_schema}.signal "
        "(id, tenant_id, bot_id, candle_start_ms, action, payload) values (%s, %s, %s, 0, 1, %s)",
        signal_id,
        tenant_id,
        bot.id,
        b"",
    )

    # 3. A fill of the exchange lost from our database.
    sql(
        stack,
        f"delete from {execution}.exec_fill where tenant_id = %s and exec_id = %s",
        tenant_id,
        fill["execId"],
    )

    violations = check(stack.sources, [account])
    where = f"tenant {tenant_id} (LIVE, exchange account {account.uid}): "
    assert all(v.startswith(where) for v in violations), violations
    by_hand = f"exchange order {order_id} (Buy 1 SOLUSDT) belongs to no signal and was not placed through"
    assert any(by_hand in v for v in violations), violations
    assert where + f"signal {signal_id} of bot {bot.id} has 0 recorded outcomes, not 1" in violations
    assert any(
        f"exchange fill {fill['execId']} (Buy 1 SOLUSDT) is missing from our fills" in v for v in violations
    )
