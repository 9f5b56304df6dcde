"""A client's whole journey over the real gRPC APIs, every service a real process, the exchange the
Bybit simulator replaying real SOLUSDT hours.

The platform admin invites a client as the owner of a new tenant; the client signs up, enrols 2FA,
stores the keys of a simulator account, creates a live bot from a built-in template and starts it. The
market then moves until the bot's first signal is an order filled on the exchange; the position and
its PnL appear. The client stops the bot, closes the position by hand, and exports their data. The audit
trail holds each step and its hash chain verifies; the invariant checker finds our records and the
exchange's ground truth in agreement.
"""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

import pytest
from tradebot.common.v1 import common_pb2 as common
from tradebot.execution.v1 import events_pb2 as ee
from tradebot.execution.v1 import execution_service_pb2 as ex
from tradebot.marketdata.v1 import marketdata_service_pb2 as md
from tradebot.strategy.v1 import events_pb2 as se
from tradebot.strategy.v1 import strategy_service_pb2 as sp
from tradebot.tenants.v1 import tenants_service_pb2 as tp

from tests.e2e.conftest import Stack, metric, run_market_until
from tests.helpers.bots import create_bot
from tests.helpers.clients import PASSWORD, Person, open_account, store_keys
from tests.helpers.invariants import ExchangeAccount, settled
from tests.helpers.waiting import eventually

# Start-up of the whole platform (the first test of the session pays it) and a market run.
pytestmark = pytest.mark.timeout(600)
LIVE = common.TRADING_MODE_LIVE


def enrol_2fa(stack: Stack, client: Person) -> None:
    enrol = stack.tenants.EnrollTotp(tp.EnrollTotpRequest(), metadata=client.meta, timeout=30)
    client.totp_secret = enrol.secret
    confirmed = stack.tenants.ConfirmTotp(
        tp.ConfirmTotpRequest(code=client.fresh_code()), metadata=client.meta
    )
    assert confirmed.recovery_codes
    # From now on signing in needs the code.
    first = stack.tenants.Login(tp.LoginRequest(email=client.email, password=PASSWORD))
    assert first.totp_required and not first.tokens.access_token
    again = stack.tenants.Login(
        tp.LoginRequest(email=client.email, password=PASSWORD, totp_code=client.fresh_code())
    )
    client.tokens = again.tokens


def test_a_client_journey_from_invitation_to_export(stack: Stack) -> None:
    client = stack.new_client("journey")
    enrol_2fa(stack, client)

    # Exchange keys: a simulator account, checked by tenants against the exchange and kept in Vault.
    account = open_account(stack.simulator, "journey")
    stored = store_keys(stack.tenants, client, account, totp_code=client.fresh_code())
    assert stored.present and stored.validation == tp.CREDENTIALS_VALIDATION_VALID
    assert (
        stored.masked_api_key.endswith(account["apiKey"][-4:])
        and account["apiKey"] not in stored.masked_api_key
    )

    # A live bot from a built-in template.
    strategies = stack.strategy.ListStrategies(sp.ListStrategiesRequest(), metadata=client.meta).strategies
    ppp = next(s for s in strategies if s.id == "ppp_vishva")
    assert {"conservative", "moderate", "aggressive"} <= {t.name for t in ppp.templates}
    bot = create_bot(
        stack.strategy,
        client,
        name="journey-bot",
        template="aggressive",
        mode=LIVE,
        capital_allocation="10000",
        request_id=str(uuid.uuid4()),
    )
    assert bot.status == se.BOT_STATUS_CREATED and bot.template == "aggressive"
    started = stack.strategy.StartBot(
        sp.StartBotRequest(bot_id=bot.id, totp_code=client.fresh_code()), metadata=client.meta, timeout=30
    ).bot
    assert started.status == se.BOT_STATUS_RUNNING
    eventually(
        lambda: (metric(stack, "strategy", "strategy_bots_running") or 0) >= 1, 60, "the bot warmed up"
    )

    # Candles flow until a signal fires; its order is filled on the exchange.
    def signalled() -> list[Any] | None:
        reply = stack.strategy.ListSignals(sp.ListSignalsRequest(bot_id=bot.id), metadata=client.meta)
        return list(reply.signals) or None

    signals = run_market_until(stack, signalled, 180, "the bot's first signal")
    assert [s.action for s in signals] == [se.SIGNAL_ACTION_ENTRY]
    # The signal came from the replayed market: marketdata's candle of that hour closed at its price.
    hour = common.TimeRange(start=signals[0].candle_start)
    hour.end.FromSeconds(signals[0].candle_start.seconds + 3600)
    candles = stack.marketdata.GetCandles(
        md.GetCandlesRequest(
            category=common.CATEGORY_LINEAR,
            symbol="SOLUSDT",
            interval=common.INTERVAL_1_HOUR,
            time_range=hour,
        ),
        metadata=client.meta,
    ).candles
    assert [(c.confirmed, Decimal(c.close)) for c in candles] == [(True, Decimal(signals[0].reference_price))]

    def filled() -> list[Any] | None:
        fills = stack.execution.ListFills(ex.ListFillsRequest(bot_id=bot.id, mode=LIVE), metadata=client.meta)
        return list(fills.fills) or None

    fills = eventually(filled, 60, "the fill of the signal's order")

    def entry_filled() -> Any:
        reply = stack.execution.ListOrders(
            ex.ListOrdersRequest(bot_id=bot.id, mode=LIVE), metadata=client.meta
        )
        return next((o for o in reply.orders if o.status == ee.ORDER_STATUS_FILLED), None)

    entry = eventually(entry_filled, 60, "the order filled")
    assert entry.signal_id == signals[0].id and {f.order_id for f in fills} == {entry.id}
    exchange_orders = stack.simulator.admin(f"accounts/{account['uid']}/orders")["orders"]
    assert entry.exchange_order_id in {o["orderId"] for o in exchange_orders}

    # The position and its PnL appear.
    def position() -> Any:
        reply = stack.execution.ListPositions(ex.ListPositionsRequest(mode=LIVE), metadata=client.meta)
        return next((p for p in reply.positions if p.symbol == "SOLUSDT" and Decimal(p.size or "0")), None)

    held = eventually(position, 60, "the open position")
    filled_qty = sum(Decimal(f.exec_qty) for f in fills)
    assert Decimal(held.size) == filled_qty and held.side == entry.side
    pnl = stack.execution.GetPnL(ex.GetPnLRequest(bot_id=bot.id, mode=LIVE), metadata=client.meta)
    assert Decimal(pnl.fees) == sum(Decimal(f.exec_fee) for f in fills) > 0

    # The client stops the bot and closes its position by hand.
    stopped = stack.strategy.StopBot(
        sp.StopBotRequest(bot_id=bot.id, reason="journey over"), metadata=client.meta, timeout=30
    ).bot
    assert stopped.status == se.BOT_STATUS_STOPPED
    closing = stack.execution.ClosePosition(
        ex.ClosePositionRequest(
            category=common.CATEGORY_LINEAR, symbol="SOLUSDT", mode=LIVE, reason="journey over"
        ),
        metadata=client.meta,
        timeout=30,
    ).order
    assert closing.reduce_only and not closing.signal_id
    eventually(lambda: position() is None, 60, "the position closed")
    pnl = stack.execution.GetPnL(ex.GetPnLRequest(bot_id=bot.id, mode=LIVE), metadata=client.meta)
    assert Decimal(pnl.realized_pnl) != 0 and Decimal(pnl.unrealized_pnl or "0") == 0

    # The client exports their data: everything of the journey, no secret.
    export = stack.tenants.ExportTenantData(
        tp.ExportTenantDataRequest(totp_code=client.fresh_code()), metadata=client.meta, timeout=60
    )
    text = export.json_document.decode()
    document = json.loads(text)
    assert account["apiSecret"] not in text and PASSWORD not in text and client.totp_secret not in text
    assert [b["id"] for b in document["strategy"]["bots"]] == [bot.id]
    assert {s["id"] for s in document["strategy"]["signals"]} == {s.id for s in signals}
    assert {o["id"] for o in document["execution"]["order"]} >= {entry.id, closing.id}
    assert {f["exec_id"] for f in document["execution"]["fill"]} >= {f.exec_id for f in fills}

    # The audit trail records the journey, and its hash chain verifies.
    events = stack.tenants.ListAuditEvents(
        tp.ListAuditEventsRequest(page_size=1000), metadata=client.meta
    ).events
    actions = [e.action for e in reversed(events)]
    for action in ("user.signup", "user.totp.enable", "credentials.put", "tenant.export"):
        assert action in actions, f"{action} missing from the audit trail {actions}"
    assert actions.index("user.signup") < actions.index("credentials.put") < actions.index("tenant.export")
    verified = stack.tenants.VerifyAuditChain(tp.VerifyAuditChainRequest(), metadata=client.meta)
    assert verified.valid and verified.checked_count == len(events), verified.message

    # Our records and the exchange's ground truth agree.
    me = stack.tenants.GetMe(tp.GetMeRequest(), metadata=client.meta)
    assert settled(stack.sources, [ExchangeAccount(me.tenant.id, int(account["uid"]))]) == []


def test_bot_start_and_stop_are_in_the_audit_trail(stack: Stack) -> None:
    client = stack.new_client("audited")
    bot = stack.strategy.CreateBot(
        sp.CreateBotRequest(
            name="audited-bot",
            strategy_id="ppp_vishva",
            category=common.CATEGORY_LINEAR,
            symbol="SOLUSDT",
            interval=common.INTERVAL_1_HOUR,
            mode=common.TRADING_MODE_PAPER,
            capital_allocation="1000",
        ),
        metadata=client.meta,
    ).bot
    stack.strategy.StartBot(sp.StartBotRequest(bot_id=bot.id), metadata=client.meta)
    stack.strategy.StopBot(sp.StopBotRequest(bot_id=bot.id, reason="checked"), metadata=client.meta)

    def audited() -> list[str] | None:
        events = stack.tenants.ListAuditEvents(tp.ListAuditEventsRequest(action="bot."), metadata=client.meta)
        found = sorted(e.action for e in events.events if e.target_id == bot.id)
        return found if found == ["bot.create", "bot.start", "bot.stop"] else None

    eventually(audited, 20, "bot.create, bot.start and bot.stop of the bot in the audit trail")
