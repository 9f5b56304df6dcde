"""What execution learns from other services over NATS: bots (for sizing: capital allocation,
risk per trade, leverage and notional caps) from `bot.lifecycle.>`, and credential changes from
`tenant.credentials.>` (which carry only the Vault version, never a secret)."""

from __future__ import annotations

import logging
from decimal import Decimal

from nats.aio.msg import Msg
from sqlmodel import Session
from tradebot.common.v1 import common_pb2 as common
from tradebot.strategy.v1 import events_pb2 as sig
from tradebot.tenants.v1 import events_pb2 as tenants

from services.execution import convert, models
from services.execution.accounts import Accounts
from services.execution.store import Store

log = logging.getLogger("tradebot.execution.tenant_events")


def _param(bot: sig.Bot, name: str) -> Decimal | None:
    value = bot.parameters.get(name)
    if value is None:
        return None
    kind = value.WhichOneof("kind")
    if kind == "float_value":
        return Decimal(repr(value.float_value))  # repr: the shortest decimal that round-trips
    if kind == "int_value":
        return Decimal(value.int_value)
    return None


def bot_row(event: sig.BotLifecycleEvent) -> models.Bot:
    bot = event.bot
    return models.Bot(
        bot_id=bot.id,
        tenant_id=bot.tenant_id,
        category=convert.CATEGORY_NAME.get(bot.category, ""),
        symbol=bot.symbol,
        mode=convert.MODE_NAME.get(bot.mode, "LIVE"),
        capital_allocation=convert.opt_dec(bot.capital_allocation),
        risk_per_trade=_param(bot, "risk_per_trade"),
        leverage=_param(bot, "leverage"),
        max_position_notional=_param(bot, "max_position_notional"),
        status=sig.BotStatus.Name(bot.status),
        deleted=event.deleted,
        update_time=convert.now(),
    )


class TenantEvents:
    def __init__(self, store: Store, accounts: Accounts, paper: Accounts | None = None) -> None:
        self.store = store
        self.accounts = accounts
        self.paper = paper

    async def on_bot(self, event: sig.BotLifecycleEvent, raw: Msg | None = None) -> None:
        if not event.bot.id or not event.bot.tenant_id:
            return
        row = bot_row(event)

        def save(session: Session) -> None:
            session.merge(row)

        await self.store.run(save)
        if event.deleted:
            return
        # Ready the bot's account before its first signal (a paper account is opened here).
        if event.bot.mode == common.TRADING_MODE_LIVE:
            self.accounts.activate(event.bot.tenant_id)
        elif event.bot.mode == common.TRADING_MODE_PAPER and self.paper is not None:
            self.paper.activate(event.bot.tenant_id)

    async def on_credentials(self, event: tenants.ExchangeCredentialsChanged, raw: Msg | None = None) -> None:
        if not event.tenant_id:
            return
        deleted = event.change == tenants.CREDENTIALS_CHANGE_DELETED
        log.info(
            "exchange credentials changed",
            extra={"tenant_id": event.tenant_id, "vault_version": event.vault_version},
        )
        await self.accounts.credentials_changed(event.tenant_id, int(event.vault_version), deleted)
