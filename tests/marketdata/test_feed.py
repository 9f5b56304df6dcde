"""The service as a process against the simulator: every closed candle reaches NATS exactly once and in
order, through a WebSocket drop in the middle of a candle and through a crash and a restart an hour
of market time later; a silent feed turns health NOT_SERVING and back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest

from services.exchangesim.app import Simulator
from tests.helpers.infra import Infra
from tests.marketdata.helpers import (
    MarketdataProcess,
    assert_exactly_once_in_order,
    ensure_over_nats,
    eventually,
    published,
)


@pytest.fixture
async def js(infra: Infra) -> AsyncIterator[nats.js.JetStreamContext]:
    client = await nats.connect(infra.nats.url)
    yield client.jetstream()
    await client.drain()


@pytest.fixture
async def service(infra: Infra, sim: Simulator, tmp_path: Path) -> AsyncIterator[MarketdataProcess]:
    process = MarketdataProcess(infra, sim, tmp_path)
    await process.start()
    yield process
    process.stop()


def subject(symbol: str, interval: str) -> str:
    return f"md.candle.bybit.linear.{symbol}.{interval}"


async def advance(sim: Simulator, minutes: int, pause: float = 0.02) -> None:
    """Step the market clock minute by minute, giving the socket time to carry each close."""
    for _ in range(minutes):
        sim.clock.advance(1)
        await asyncio.sleep(pause)


async def settle(
    js: nats.js.JetStreamContext, sim: Simulator, symbol: str, interval: str, minutes: int
) -> list:
    """Wait until the newest closed candle of the stream is on NATS; return all its events."""
    now = sim.venue.market.now_ms()
    step = minutes * 60_000
    newest = now - now % step - step
    events: list = []

    async def arrived() -> bool:
        events[:] = await published(js, subject(symbol, interval))
        return bool(events) and events[-1].candle.start.ToMilliseconds() >= newest

    await eventually(arrived, 30, f"candle {newest} of {symbol}.{interval}")
    await asyncio.sleep(0.3)  # anything published twice would show up now
    return await published(js, subject(symbol, interval))


async def start_streaming(infra: Infra, js: nats.js.JetStreamContext, sim: Simulator, symbol: str) -> None:
    await ensure_over_nats(infra, "strategy-0", [(symbol, "1"), (symbol, "5")])

    async def flowing() -> bool:
        sim.clock.advance(1)
        return bool(await published(js, subject(symbol, "1")))

    await eventually(flowing, 30, "the first live candle")


async def test_a_socket_dropped_mid_candle_loses_and_repeats_nothing(
    infra: Infra, js: nats.js.JetStreamContext, sim: Simulator, symbol: str, service: MarketdataProcess
) -> None:
    await start_streaming(infra, js, sim, symbol)
    await advance(sim, 12)
    while sim.venue.market.minute % 5 != 2:  # into the middle of a 5-minute candle
        await advance(sim, 1)
    # Drop and move the market on in one step, before pybit can reconnect: these closes are missed.
    sim.drop_streams("public")
    sim.clock.advance(7)
    await asyncio.sleep(1.0)  # reconnected by now; the repair runs
    await advance(sim, 6)
    for interval, minutes in (("1", 1), ("5", 5)):
        events = await settle(js, sim, symbol, interval, minutes)
        assert_exactly_once_in_order(sim, symbol, interval, events, minutes)
        assert any(e.backfilled for e in events), "the dropped closes were not repaired over REST"


async def test_a_restart_an_hour_later_publishes_what_it_missed_once_in_order(
    infra: Infra, js: nats.js.JetStreamContext, sim: Simulator, symbol: str, service: MarketdataProcess
) -> None:
    await start_streaming(infra, js, sim, symbol)
    await advance(sim, 7)
    await settle(js, sim, symbol, "1", 1)
    service.kill()
    sim.clock.advance(60)  # an hour of market time passes while the service is down
    await service.start()
    await asyncio.sleep(1.0)
    await advance(sim, 3)
    try:
        for interval, minutes in (("1", 1), ("5", 5)):
            events = await settle(js, sim, symbol, interval, minutes)
            assert_exactly_once_in_order(sim, symbol, interval, events, minutes)
    except AssertionError as failed:
        # Rare under a loaded full suite and never seen alone: keep what the service did to tell why.
        log = (service.logs / f"marketdata-{service.schema}.log").read_text().splitlines()
        raise AssertionError(f"{failed}\nservice log (last 60 lines):\n" + "\n".join(log[-60:])) from None


async def test_a_silent_feed_turns_health_not_serving_and_back(
    infra: Infra, js: nats.js.JetStreamContext, sim: Simulator, symbol: str, tmp_path: Path
) -> None:
    process = MarketdataProcess(infra, sim, tmp_path, extra_env={"FEED_STALE_SECONDS": "0.5"})
    await process.start()
    try:
        assert await process.health() == "SERVING"  # no streams yet: nothing can be stale
        await start_streaming(infra, js, sim, symbol)
        await eventually(
            lambda: process.health_is("NOT_SERVING"), 10, "NOT_SERVING while the market is paused"
        )
        sim.clock.resume()
        sim.clock.set_speed(0.6)  # a minute of market time every 10 ms of wall time
        await eventually(lambda: process.health_is("SERVING"), 10, "SERVING once candles flow again")
    finally:
        sim.clock.pause()
        process.stop()
