"""A client without exchange keys trades on paper: a PAPER bot's signal becomes an order on the paper
account execution opened for the tenant on the simulator, and the invariant checker finds that account's
orders, fills, position and balance in agreement with our records."""

from __future__ import annotations

import hvac
import pytest
from tradebot.common.v1 import common_pb2 as common
from tradebot.execution.v1 import execution_service_pb2 as ex
from tradebot.strategy.v1 import strategy_service_pb2 as sp
from tradebot.tenants.v1 import tenants_service_pb2 as tp

from tests.e2e.conftest import Stack, metric, run_market_until
from tests.helpers.bots import create_bot
from tests.helpers.infra import Infra
from tests.helpers.invariants import paper_account, settled
from tests.helpers.waiting import eventually

PAPER = common.TRADING_MODE_PAPER

# Possibly start-up of the whole platform, and a market run.
pytestmark = pytest.mark.timeout(600)


def test_a_paper_bot_trades_without_keys_and_its_account_agrees(stack: Stack, infra: Infra) -> None:
    client = stack.new_client("paper")
    status = stack.tenants.GetExchangeCredentialsStatus(
        tp.GetExchangeCredentialsStatusRequest(), metadata=client.meta
    ).status
    assert not status.present
    bot = create_bot(
        stack.strategy, client, name="paper-bot", template="aggressive", mode=PAPER, capital_allocation="5000"
    )
    stack.strategy.StartBot(sp.StartBotRequest(bot_id=bot.id), metadata=client.meta, timeout=30)
    eventually(
        lambda: (metric(stack, "strategy", "strategy_bots_running") or 0) >= 1, 60, "the bot warmed up"
    )

    def filled() -> list[ex.Fill] | None:
        reply = stack.execution.ListFills(
            ex.ListFillsRequest(bot_id=bot.id, mode=PAPER), metadata=client.meta
        )
        return list(reply.fills) or None

    fills = run_market_until(stack, filled, 240, "the paper bot's first fill")
    assert all(f.mode == PAPER and f.symbol == "SOLUSDT" for f in fills)
    stack.strategy.StopBot(sp.StopBotRequest(bot_id=bot.id, reason="paper checked"), metadata=client.meta)

    tenant_id = stack.tenants.GetMe(tp.GetMeRequest(), metadata=client.meta).tenant.id
    vault = hvac.Client(url=infra.vault.addr, token=infra.vault.root_token)
    account = paper_account(stack.sources, vault, tenant_id)
    exchange_fills = stack.simulator.admin(f"accounts/{account.uid}/fills")["fills"]
    assert {f.exec_id for f in fills} <= {f["execId"] for f in exchange_fills}
    assert settled(stack.sources, [account]) == []
