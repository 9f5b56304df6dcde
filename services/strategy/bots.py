"""Bots: configuration checked against the strategy's schema and the instrument list, and the lifecycle
`created -> running <-> paused -> stopped` (stopped bots start again with a fresh warm-up).

Every change is published on `bot.lifecycle.<tenant>.<bot>` (audit trail, dashboard, execution) and
hands the engine the new set of running and paused bots. A status change is published before it is
saved: execution learns bots from these events, and whatever reads the database (the engine, after any
refresh) must not see a bot running before execution can know it. If the save then fails, the previous
status is published again.

StartBot refuses what cannot work (peers.py: kill switches, a LIVE bot's exchange keys).
StopBot with `close_position` first publishes an EXIT for a bot that holds a position (as execution has
it), so execution closes it through its usual path.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any

from tradebot.strategy.v1 import events_pb2
from tradebot.strategy.v1 import strategy_service_pb2 as pb

from services.common import market
from services.common.bus import Bus
from services.common.context import Principal
from services.common.errors import FailedPrecondition, InvalidArgument
from services.strategy import convert
from services.strategy.market import MarketData
from services.strategy.models import BotRow
from services.strategy.peers import Peers
from services.strategy.registry import get_strategy
from services.strategy.store import BotStore
from services.strategy.strategies.base import Strategy

STRATEGY_VERSION = "1"
# Publishes an EXIT for a bot that holds a position (server.py: execution's view, the engine), with why.
ClosePosition = Callable[[BotRow, str], Awaitable[object]]
# Fields UpdateBot may change only while the bot is not trading.
STREAM_FIELDS = {"symbol", "category", "interval", "mode"}
UPDATABLE = {"name", "parameters", "template", "capital_allocation", *STREAM_FIELDS}


def strategy_of(strategy_id: str, field: str = "strategy_id") -> Strategy:
    try:
        return get_strategy(strategy_id)
    except InvalidArgument as error:
        raise InvalidArgument(error.message, field=field) from None


def check_name(name: str) -> str:
    if not 1 <= len(name) <= 64:
        raise InvalidArgument("must be 1 to 64 characters", field="name")
    return name


def to_proto(row: BotRow) -> events_pb2.Bot:
    bot = events_pb2.Bot(
        id=row.id,
        tenant_id=row.tenant_id,
        name=row.name,
        strategy_id=row.strategy_id,
        strategy_version=row.strategy_version,
        template=row.template,
        category=market.CATEGORY_ENUMS[row.category],
        symbol=row.symbol,
        interval=market.INTERVAL_ENUMS[row.interval],
        mode=convert.MODE_ENUMS[row.mode],
        capital_allocation=convert.decimal_text(Decimal(row.capital_allocation)),
        status=convert.STATUS_ENUMS[row.status],
        status_message=row.status_message,
        created_by_user_id=row.created_by,
    )
    for name, value in row.parameters.items():
        bot.parameters[name].CopyFrom(convert.parameter_value(value))
    for name in ("create_time", "update_time", "start_time", "stop_time"):
        when = getattr(row, name)
        if when is not None:
            getattr(bot, name).CopyFrom(convert.timestamp(when))
    return bot


class Bots:
    def __init__(
        self,
        store: BotStore,
        market: MarketData,
        bus: Bus | None,
        on_change: Callable[[], Awaitable[None]],
        checks: Peers | None = None,
        close_position: ClosePosition | None = None,
    ) -> None:
        self.store = store
        self.market = market
        self.bus = bus
        self.on_change = on_change
        self.checks = checks
        self.close_position = close_position

    async def _resolve(
        self, strategy: Strategy, template: str, overrides: Mapping[str, Any]
    ) -> dict[str, Any]:
        return dict(strategy.resolve(template or None, overrides))

    async def create(self, who: Principal, request: pb.CreateBotRequest) -> BotRow:
        if request.request_id:
            earlier = await asyncio.to_thread(self.store.by_request, who.tenant_id, request.request_id)
            if earlier is not None:
                return earlier
        strategy = strategy_of(request.strategy_id)
        overrides = convert.parameter_overrides(strategy, request.parameters)
        params = await self._resolve(strategy, request.template, overrides)
        category = market.category_name(request.category)
        interval = market.interval_name(request.interval)
        mode = convert.mode_name(request.mode)
        capital = convert.positive_decimal(request.capital_allocation, "capital_allocation")
        name = check_name(request.name)
        if not request.symbol:
            raise InvalidArgument('is required, e.g. "SOLUSDT"', field="symbol")
        await self.market.instrument(category, request.symbol)
        now = convert.now()
        row = BotRow(
            id=str(uuid.uuid4()),
            tenant_id=who.tenant_id,
            name=name,
            strategy_id=strategy.name,
            strategy_version=STRATEGY_VERSION,
            template=request.template or strategy.default_template,
            parameters=params,
            overrides=overrides,
            category=category,
            symbol=request.symbol,
            interval=interval,
            mode=mode,
            capital_allocation=capital,
            status="created",
            created_by=who.user_id,
            request_id=request.request_id or None,
            create_time=now,
            update_time=now,
        )
        row = await asyncio.to_thread(self.store.save, row)
        await self._publish(row, None, who, "created")
        return row

    async def update(self, who: Principal, request: pb.UpdateBotRequest) -> BotRow:
        row = await asyncio.to_thread(self.store.get, who.tenant_id, request.bot_id)
        paths = list(request.update_mask.paths)
        if not paths:
            raise InvalidArgument('name the fields to change, e.g. "capital_allocation"', field="update_mask")
        new = request.bot
        strategy = strategy_of(row.strategy_id)
        overrides = dict(row.overrides)
        template = row.template
        for path in paths:
            top = path.split(".", 1)[0]
            if top not in UPDATABLE or (path.count(".") and top != "parameters"):
                raise InvalidArgument(f"cannot update {path!r}", field="update_mask")
            if top in STREAM_FIELDS and row.status not in ("created", "stopped"):
                raise FailedPrecondition(f"{top} can change only while the bot is created or stopped")
            if path == "name":
                row.name = check_name(new.name)
            elif path == "template":
                template = new.template or strategy.default_template
            elif path == "parameters":
                overrides = convert.parameter_overrides(strategy, new.parameters, "bot.parameters")
            elif top == "parameters":
                name = path.split(".", 1)[1]
                if name in new.parameters:
                    overrides |= convert.parameter_overrides(
                        strategy, {name: new.parameters[name]}, "bot.parameters"
                    )
                else:
                    overrides.pop(name, None)  # back to the template's value
            elif path == "capital_allocation":
                row.capital_allocation = convert.positive_decimal(
                    new.capital_allocation, "bot.capital_allocation"
                )
            elif path == "category":
                row.category = market.category_name(new.category, "bot.category")
            elif path == "interval":
                row.interval = market.interval_name(new.interval, "bot.interval")
            elif path == "mode":
                row.mode = convert.mode_name(new.mode, "bot.mode")
            elif path == "symbol":
                row.symbol = new.symbol
        row.parameters = await self._resolve(strategy, template, overrides)
        row.overrides, row.template = overrides, template
        if STREAM_FIELDS & {p.split(".", 1)[0] for p in paths}:
            await self.market.instrument(row.category, row.symbol)
        row.update_time = convert.now()
        row = await asyncio.to_thread(self.store.save, row)
        await self._publish(row, row.status, who, "configuration changed")
        await self.on_change()
        return row

    async def start(self, who: Principal, bot_id: str) -> BotRow:
        row = await asyncio.to_thread(self.store.get, who.tenant_id, bot_id)
        if row.status == "running":
            return row
        if row.mode == "live":
            others = await asyncio.to_thread(self.store.live_on, who.tenant_id, row.category, row.symbol)
            if any(o.id != row.id for o in others):
                raise FailedPrecondition(
                    f"another LIVE bot of this tenant trades {row.category} {row.symbol}; stop it first"
                )
        if self.checks is not None:
            await self.checks.require(row)
        previous = row.status
        if previous != "paused":
            row.active_from_ms = None  # a new run: warmed up afresh, trading from the next candle
            row.start_time = convert.now()
            row.stop_time = None
        return await self._move(row, previous, "running", who, "user request")

    async def pause(self, who: Principal, bot_id: str, reason: str) -> BotRow:
        row = await asyncio.to_thread(self.store.get, who.tenant_id, bot_id)
        if row.status == "paused":
            return row
        if row.status != "running":
            raise FailedPrecondition(f"only a running bot can be paused; this one is {row.status}")
        return await self._move(row, "running", "paused", who, reason or "user request")

    async def stop(self, who: Principal, bot_id: str, reason: str, close_position: bool = False) -> BotRow:
        row = await asyncio.to_thread(self.store.get, who.tenant_id, bot_id)
        if row.status == "stopped":
            return row
        if close_position and row.status in ("running", "paused") and self.close_position is not None:
            # Before the stop: the engine still holds the bot's position, and a retry after a failure
            # below publishes the same EXIT id (dropped as a duplicate).
            await self.close_position(row, reason or "user request")
        row.stop_time = convert.now()
        return await self._move(row, row.status, "stopped", who, reason or "user request")

    async def delete(self, who: Principal, bot_id: str) -> None:
        row = await asyncio.to_thread(self.store.get, who.tenant_id, bot_id)
        if row.status in ("running", "paused"):
            raise FailedPrecondition(f"the bot is {row.status}: stop it before deleting it")
        await asyncio.to_thread(self.store.delete, row)
        await self._publish(row, row.status, who, "deleted", deleted=True)

    async def _move(self, row: BotRow, previous: str, status: str, who: Principal, reason: str) -> BotRow:
        row.status, row.status_message = status, ""
        row.update_time = convert.now()
        await self._publish(row, previous, who, reason)  # before the save: see the module docstring
        try:
            row = await asyncio.to_thread(self.store.save, row)
        except Exception:
            row.status = previous
            with contextlib.suppress(Exception):  # the save's error is the one the caller gets
                await self._publish(row, status, who, f"not {status}: the change could not be saved")
            raise
        await self.on_change()
        return row

    async def _publish(
        self, row: BotRow, previous: str | None, who: Principal, reason: str, *, deleted: bool = False
    ) -> None:
        if self.bus is None:
            return
        event = events_pb2.BotLifecycleEvent(
            event_id=str(uuid.uuid4()),
            bot=to_proto(row),
            previous_status=convert.STATUS_ENUMS[previous] if previous else events_pb2.BOT_STATUS_UNSPECIFIED,
            deleted=deleted,
            reason=reason,
            actor_id=who.user_id,
        )
        event.occur_time.GetCurrentTime()
        await self.bus.publish(f"bot.lifecycle.{row.tenant_id}.{row.id}", event, event.event_id)
