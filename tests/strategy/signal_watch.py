"""Driving and observing the strategy slice: bots created and warmed up, the service's consumers caught
up with what was published, signals as they leave on NATS, and execution's position events."""

from __future__ import annotations

import asyncio
import contextlib
import time
import urllib.request
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import grpc
import nats
from tradebot.common.v1 import common_pb2
from tradebot.execution.v1 import events_pb2 as exec_pb
from tradebot.marketdata.v1 import events_pb2 as md_events
from tradebot.marketdata.v1 import marketdata_service_pb2 as md
from tradebot.marketdata.v1 import marketdata_service_pb2_grpc as md_rpc
from tradebot.strategy.v1 import events_pb2
from tradebot.strategy.v1 import strategy_service_pb2 as pb

from services.strategy import convert
from services.strategy.registry import get_strategy
from services.strategy.sizing import Instrument
from services.strategy.strategies.base import ParamValues
from tests.strategy.service_slice import Slice, create_request

STRATEGY = get_strategy("ppp_vishva")


async def eventually(check: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    """Poll briskly: the replay loops wait on this once or twice per candle."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


def bot_params(template: str, overrides: dict[str, Any]) -> ParamValues:
    return STRATEGY.resolve(template, overrides)


def metric(url: str, name: str) -> float | None:
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


async def start_bots(
    slice_: Slice, bots: list[tuple[str, dict[str, Any]]], tenant: str = "tenant-a"
) -> list[str]:
    """Create and start the bots; return once the service has warmed them all up."""
    stub = slice_.stub()
    ids = []
    for template, overrides in bots:
        request = create_request(slice_.symbol, template=template)
        for name, value in overrides.items():
            typed = STRATEGY.param(name).type(value)
            request.parameters[name].CopyFrom(convert.parameter_value(typed))
        created = await stub.CreateBot(request, metadata=slice_.token(tenant))
        await stub.StartBot(pb.StartBotRequest(bot_id=created.bot.id), metadata=slice_.token(tenant))
        ids.append(created.bot.id)
    await bots_warm(slice_, len(bots))
    return ids


async def bots_warm(slice_: Slice, count: int) -> None:
    url = slice_.strategy.metrics_url

    async def warm() -> bool:
        return await asyncio.to_thread(metric, url, "strategy_bots_running") == count

    await eventually(warm, 60, f"{count} bots warmed up")


async def caught_up(slice_: Slice, consumer: str, candle_start: int | None = None) -> None:
    """The service's durable consumer has taken and acknowledged everything published so far (and, for
    candles, marketdata has published the candle starting at `candle_start`)."""
    js = slice_.nc.jetstream()
    if candle_start is not None:
        subject = f"md.candle.bybit.linear.{slice_.symbol}.60"

        async def published() -> bool:
            try:
                last = await js.get_last_msg("MARKETDATA", subject)
            except nats.js.errors.NotFoundError:
                return False
            return md_events.CandleClosed.FromString(last.data).candle.start.ToMilliseconds() >= candle_start

        await eventually(published, 30, f"candle {candle_start} on NATS")
    stream = "MARKETDATA" if consumer == "candles" else "EXECUTION"
    durable = f"{consumer}-{slice_.strategy.schema}"

    async def drained() -> bool:
        info = await js.consumer_info(stream, durable)
        return info.num_pending == 0 and info.num_ack_pending == 0

    try:
        await eventually(drained, 60, f"{durable} caught up")
    except AssertionError:
        raise AssertionError(f"{durable} not caught up: {await js.consumer_info(stream, durable)}") from None
    await slice_.nc.flush()


class SignalWatch:
    """Every signal of tenant-a as it is published (core NATS subscription on the same connection the
    test asks consumer state on, so a caught-up consumer means its signals have arrived here)."""

    def __init__(self) -> None:
        self.seen: list[events_pb2.Signal] = []
        self._taken = 0

    @classmethod
    async def start(cls, slice_: Slice, tenant: str = "tenant-a") -> SignalWatch:
        watch = cls()

        async def got(msg: Any) -> None:
            watch.seen.append(events_pb2.Signal.FromString(msg.data))

        await slice_.nc.subscribe(f"sig.{tenant}.>", cb=got)
        await slice_.nc.flush()
        return watch

    def take(self, candle_start: int) -> list[events_pb2.Signal]:
        new = self.seen[self._taken :]
        self._taken = len(self.seen)
        return [s for s in new if s.candle_start.ToMilliseconds() == candle_start]

    def of(self, bot_id: str) -> list[events_pb2.Signal]:
        return sorted(
            (s for s in self.seen if s.bot_id == bot_id), key=lambda s: s.candle_start.ToMilliseconds()
        )


def fill_event(sig: events_pb2.Signal, price: float) -> exec_pb.PositionEvent:
    """What execution publishes once the signal's entry filled at `price`."""
    return exec_pb.PositionEvent(
        event_id=f"fill-{sig.id}",
        position=exec_pb.Position(
            tenant_id=sig.tenant_id,
            bot_id=sig.bot_id,
            category=sig.category,
            symbol=sig.symbol,
            side=sig.side,
            size="1",
            entry_price=repr(price),
            mode=sig.mode,
        ),
    )


async def instrument(slice_: Slice) -> Instrument:
    async with grpc.aio.insecure_channel(slice_.marketdata.address) as channel:
        reply = await md_rpc.MarketDataServiceStub(channel).ListInstruments(
            md.ListInstrumentsRequest(category=common_pb2.CATEGORY_LINEAR, symbols=[slice_.symbol]),
            metadata=slice_.token(role="viewer"),
        )
    ins = reply.instruments[0]
    return Instrument(
        symbol=ins.symbol,
        qty_step=Decimal(ins.qty_step),
        min_qty=Decimal(ins.min_qty),
        min_notional=Decimal(ins.min_notional),
        shorts_allowed=True,
    )


async def listed_signals(slice_: Slice, bot_id: str, count: int) -> list[events_pb2.Signal]:
    """ListSignals for one bot once it holds `count` signals (they are stored just after publishing)."""
    found: list[events_pb2.Signal] = []

    async def stored() -> bool:
        reply = await slice_.stub().ListSignals(
            pb.ListSignalsRequest(bot_id=bot_id, page_size=1000), metadata=slice_.token()
        )
        found[:] = reply.signals
        return len(found) >= count

    with contextlib.suppress(AssertionError):  # the caller's comparison says what is missing
        await eventually(stored, 10, f"{count} signals of {bot_id} stored")
    return found
