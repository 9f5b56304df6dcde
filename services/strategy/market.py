"""The strategy service's view of marketdata: instruments for validation and sizing, candle history for
warm-up and backtests, and the subscriptions its running bots need. Calls carry this service's own
token; a marketdata that cannot be reached is UNAVAILABLE to our callers (retry), never INTERNAL."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal

import grpc
import numpy as np
from tradebot.common.v1 import common_pb2
from tradebot.marketdata.v1 import marketdata_service_pb2 as md
from tradebot.marketdata.v1 import marketdata_service_pb2_grpc as md_rpc

from services.common.errors import InvalidArgument, Unavailable
from services.common.market import CATEGORY_ENUMS, INTERVAL_ENUMS
from services.common.service_identity import platform_channel
from services.strategy.candles import Candles
from services.strategy.sizing import Instrument

Metadata = Callable[[], Awaitable[tuple[tuple[str, str], ...]]]
LEASE_SECONDS = 120


@dataclass(frozen=True)
class StreamKey:
    """One candle stream: what a group of bots is evaluated on."""

    category: str
    symbol: str
    interval: str

    @property
    def subject(self) -> str:
        return f"md.candle.bybit.{self.category}.{self.symbol}.{self.interval}"


@dataclass(frozen=True)
class CandleBatch:
    """Candles as the core wants them (float64 columns), with their start times."""

    start_ms: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __len__(self) -> int:
        return len(self.start_ms)

    def tail(self, n: int) -> CandleBatch:
        return CandleBatch(*(getattr(self, f)[-n:] for f in CandleBatch.__dataclass_fields__))

    def as_candles(self, interval_ms: int) -> Candles:
        return Candles(
            self.start_ms.astype(np.int64),
            self.open,
            self.high,
            self.low,
            self.close,
            self.volume,
            interval_ms,
        )


def batch_of(candles: list[common_pb2.Candle]) -> CandleBatch:
    cols = [np.array([float(getattr(c, name)) for c in candles]) for name in ("open", "high", "low", "close")]
    volume = np.array([float(c.volume or 0) for c in candles])
    starts = np.array([c.start.ToMilliseconds() for c in candles], dtype=np.int64)
    return CandleBatch(starts, cols[0], cols[1], cols[2], cols[3], volume)


class MarketData:
    def __init__(self, address: str, metadata: Metadata | None) -> None:
        self._channel = platform_channel(address) if address else None
        self._stub = md_rpc.MarketDataServiceStub(self._channel) if self._channel else None
        self._metadata = metadata

    async def _call(self, method: str, request: object) -> object:
        if self._stub is None:
            raise Unavailable("marketdata is not configured (MARKETDATA_ADDR)")
        metadata = await self._metadata() if self._metadata else ()
        try:
            return await getattr(self._stub, method)(request, metadata=metadata, timeout=30)
        except grpc.aio.AioRpcError as error:
            if error.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND):
                raise InvalidArgument(error.details() or "unknown to marketdata", field="symbol") from None
            raise Unavailable(f"marketdata {method}: {error.code().name} {error.details()}") from None

    async def instrument(self, category: str, symbol: str) -> Instrument:
        """The instrument's quantity rules; INVALID_ARGUMENT naming `symbol` when it is not listed."""
        reply = await self._call(
            "ListInstruments", md.ListInstrumentsRequest(category=CATEGORY_ENUMS[category], symbols=[symbol])
        )
        found = [i for i in reply.instruments if i.symbol == symbol]  # type: ignore[attr-defined]
        if not found:
            raise InvalidArgument(f"{symbol!r} is not a listed {category} instrument", field="symbol")
        ins = found[0]
        return Instrument(
            symbol=symbol,
            qty_step=Decimal(ins.qty_step or "0.001"),
            min_qty=Decimal(ins.min_qty or "0"),
            min_notional=Decimal(ins.min_notional or "0"),
            shorts_allowed=category == "linear",
        )

    async def candles(self, key: StreamKey, start_ms: int | None, end_ms: int | None) -> CandleBatch:
        """Closed candles with start in [start_ms, end_ms), ascending, every page. No start: from the
        oldest stored candle; no end: up to now."""
        request = md.GetCandlesRequest(
            category=CATEGORY_ENUMS[key.category],
            symbol=key.symbol,
            interval=INTERVAL_ENUMS[key.interval],
            page_size=1000,
        )
        if start_ms is not None:
            request.time_range.start.FromMilliseconds(max(start_ms, 0))
        if end_ms is not None:
            request.time_range.end.FromMilliseconds(end_ms)
        out: list[common_pb2.Candle] = []
        while True:
            reply = await self._call("GetCandles", request)
            out.extend(c for c in reply.candles if c.confirmed)  # type: ignore[attr-defined]
            token = reply.next_page_token  # type: ignore[attr-defined]
            if not token:
                return batch_of(out)
            request.page_token = token

    async def ensure_subscriptions(
        self, caller_id: str, keys: list[StreamKey]
    ) -> dict[StreamKey, int | None]:
        """Hold a lease on exactly `keys`; returns, for each stream marketdata has live, the start of its
        newest closed candle (None when it has none yet). Streams still being set up are left out."""
        request = md.EnsureSubscriptionsRequest(caller_id=caller_id)
        for key in keys:
            request.subscriptions.add(
                category=CATEGORY_ENUMS[key.category],
                symbol=key.symbol,
                interval=INTERVAL_ENUMS[key.interval],
            )
        request.lease_ttl.FromSeconds(LEASE_SECONDS)
        reply = await self._call("EnsureSubscriptions", request)
        live: dict[StreamKey, int | None] = {}
        for key, status in zip(keys, reply.subscriptions, strict=False):  # type: ignore[attr-defined]
            if status.state == md.SUBSCRIPTION_STATE_ACTIVE:
                has = status.HasField("last_candle_start")
                live[key] = status.last_candle_start.ToMilliseconds() if has else None
        return live

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close(None)
