"""The candle publisher against a real NATS: every candle is acknowledged in order and stored once,
a repeat is harmless, and a candle JetStream refuses is handed back for repair. (The transport,
including lost acknowledgements, is the bus's `Pipeline`: tests/common/test_bus.py.)"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import nats

from services.common import bus as bus_module
from services.devstack.nats import EmbeddedNats
from services.marketdata.domain import Candle, StreamKey
from services.marketdata.metrics import FeedMetrics
from services.marketdata.publisher import CandlePublisher
from tests.helpers.infra import Infra
from tests.marketdata.helpers import eventually, published, unique_symbol

MINUTE = 60_000


def candles(key: StreamKey, count: int) -> list[Candle]:
    base = 1_704_067_200_000
    return [
        Candle(key, base + i * MINUTE, base + (i + 1) * MINUTE - 1, *(Decimal(i + 1),) * 6, True)
        for i in range(count)
    ]


async def test_candles_are_acknowledged_in_order_and_stored_once(infra: Infra) -> None:
    bus = await bus_module.connect(infra.nats.url, "test")
    key = StreamKey("linear", unique_symbol(), "1")
    acked: list[int] = []
    failed: list[int] = []
    publisher = CandlePublisher(
        bus,
        FeedMetrics(),
        on_acked=lambda c: acked.append(c.start),
        on_failed=lambda c: failed.append(c.start),
    )
    sent = candles(key, 300)
    try:
        for candle in sent:
            await publisher.publish(candle)
        for candle in sent[-50:]:  # a repair re-sending what was already stored
            await publisher.publish(candle, backfilled=True)
        await eventually(lambda: len(acked) == 350, 30, "every acknowledgement")
        assert acked == [c.start for c in sent] + [c.start for c in sent[-50:]]
        assert not failed and publisher.unacknowledged == 0
        events = await published(bus.js, key.subject)
        assert [e.candle.start.ToMilliseconds() for e in events] == [c.start for c in sent]
        assert [e.candle.open for e in events[:3]] == ["1", "2", "3"]
        assert not any(e.backfilled for e in events)  # the repeats were dropped as duplicates
    finally:
        await publisher.close()
        await bus.drain()


async def test_a_candle_no_stream_takes_is_handed_back(tmp_path: Path) -> None:
    server = EmbeddedNats(tmp_path / "nats").start()
    client = await nats.connect(server.url)
    failed: list[Candle] = []
    publisher = CandlePublisher(
        bus_module.Bus(client, "test"),  # no streams declared: JetStream answers no one listens
        FeedMetrics(),
        on_acked=lambda c: None,
        on_failed=failed.append,
    )
    try:
        sent = candles(StreamKey("linear", unique_symbol(), "1"), 3)
        for candle in sent:
            await publisher.publish(candle)
        await eventually(lambda: len(failed) == 3, 20, "the refusals")
        assert failed == sent and publisher.unacknowledged == 0
    finally:
        await publisher.close()
        await client.close()
        server.stop()
