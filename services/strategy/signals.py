"""Signals: the deterministic id, the message built from a bank's decision, publishing and storage.

The id is a digest of (bot, candle, action), so the same decision always has the same id: it is the
Nats-Msg-Id (JetStream drops a repeat inside its duplicate window), the primary key of the stored row
(a repeat insert is a no-op) and the root of execution's orderLinkId (the exchange refuses a repeat).
Signals are published before they are stored together with the group's cursor; a crash in between
means the candle is evaluated again after the restart and the same ids are published again, which
JetStream drops: nothing is lost and nothing is doubled.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, text
from sqlmodel import Session, select
from tradebot.common.v1 import common_pb2
from tradebot.strategy.v1 import events_pb2

from services.common import db
from services.common.bus import Bus
from services.common.market import CATEGORY_ENUMS, INTERVAL_ENUMS
from services.strategy.convert import MODE_ENUMS, price_text, timestamp
from services.strategy.models import SignalRow

ACTION_NAMES = {
    events_pb2.SIGNAL_ACTION_ENTRY: "entry",
    events_pb2.SIGNAL_ACTION_EXIT: "exit",
    events_pb2.SIGNAL_ACTION_REVERSE: "reverse",
}
SIDES = {1: common_pb2.SIDE_BUY, -1: common_pb2.SIDE_SELL}


def signal_id(bot_id: str, candle_start_ms: int, action: int) -> str:
    """32 hex characters (128 bits) of SHA-256 over the decision's identity."""
    identity = f"{bot_id}|{candle_start_ms}|{ACTION_NAMES[action]}".encode()
    return hashlib.sha256(identity).hexdigest()[:32]


def stop_exit_id(bot_id: str, run_start_ms: int) -> str:
    """The EXIT of a user's stop: one per run of the bot (a run is known by its first trading candle)."""
    return hashlib.sha256(f"{bot_id}|{run_start_ms}|user_stop".encode()).hexdigest()[:32]


def subject(tenant_id: str, bot_id: str) -> str:
    return f"sig.{tenant_id}.{bot_id}"


@dataclass(frozen=True)
class BotRef:
    """What a signal copies from its bot."""

    id: str
    tenant_id: str
    strategy_id: str
    category: str
    symbol: str
    interval: str
    mode: str


def build(
    bot: BotRef,
    candle_start_ms: int,
    action: int,
    side: int,
    price: float,
    stop: float = float("nan"),
    take_profit: float = float("nan"),
    explained: dict[str, Any] | None = None,
    exit_reason: str = "",
) -> events_pb2.Signal:
    """The signal for one decision; `side` is the order's side (+1 buy, -1 sell)."""
    sig = events_pb2.Signal(
        id=signal_id(bot.id, candle_start_ms, action),
        bot_id=bot.id,
        tenant_id=bot.tenant_id,
        strategy_id=bot.strategy_id,
        category=CATEGORY_ENUMS[bot.category],
        symbol=bot.symbol,
        interval=INTERVAL_ENUMS[bot.interval],
        candle_start=timestamp(candle_start_ms),
        action=action,
        side=SIDES[side],
        reference_price=price_text(price),
        stop_loss="" if action == events_pb2.SIGNAL_ACTION_EXIT else price_text(stop),
        take_profit="" if action == events_pb2.SIGNAL_ACTION_EXIT else price_text(take_profit),
        mode=MODE_ENUMS[bot.mode],
    )
    if exit_reason:
        sig.reasons.add(name=exit_reason, held=True, description=f"position closed: {exit_reason}")
    if explained:
        for name, held in explained.get("conditions", {}).items():
            sig.reasons.add(name=name, held=held, description=f"{name}: {'held' if held else 'not held'}")
        sig.reasons.add(name="no_position", held=True, description="the bot held no position")
        for name, value in explained.get("values", {}).items():
            if value is not None:
                sig.indicators[name] = float(value)
    sig.create_time.FromNanoseconds(time.time_ns())  # a quarter of GetCurrentTime's cost (datetime)
    return sig


class SignalPublisher:
    """Publishes signals on `sig.<tenant>.<bot>`; the Nats-Msg-Id is the signal id."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    async def publish(self, signals: Iterable[events_pb2.Signal]) -> int:
        """Publish all at once (one round trip for the lot, not one per signal); returns how many were new."""
        acks = await asyncio.gather(
            *(self.bus.publish(subject(sig.tenant_id, sig.bot_id), sig, sig.id) for sig in signals)
        )
        return sum(acks)

    async def publish_pipelined(self, signals: Iterable[events_pb2.Signal]) -> asyncio.Future[int]:
        """Put every signal on the wire at once, in order, without waiting for JetStream; returns the
        future of their acknowledgements (how many were new), which fails if any publish failed."""
        bus = self.bus
        acks = [await bus.publish_pipelined(subject(s.tenant_id, s.bot_id), s, s.id) for s in signals]

        async def settled() -> int:
            return sum(not ack.duplicate for ack in await asyncio.gather(*acks))

        return asyncio.ensure_future(settled())


# One statement with a column array each: `.values(rows)` compiled a new statement for every batch, and
# that compile, in the journal's thread, held the GIL the candle path needed (a third of the engine
# process's samples in bench/strategy.py); an executemany was a round trip per signal.
SIGNAL_COLUMNS = ["id", "tenant_id", "bot_id", "candle_start_ms", "action", "payload"]
INSERT_SIGNALS = db.unnest_insert(
    SignalRow.__table__,  # type: ignore[attr-defined]
    SIGNAL_COLUMNS,
    "on conflict (id) do nothing",
)


def record(session: Session, signals: list[events_pb2.Signal]) -> None:
    """Store signals inside the caller's transaction; an id already stored is left as it is."""
    if not signals:
        return
    columns = {
        "id": [s.id for s in signals],
        "tenant_id": [s.tenant_id for s in signals],
        "bot_id": [s.bot_id for s in signals],
        "candle_start_ms": [s.candle_start.ToMilliseconds() for s in signals],
        "action": [s.action for s in signals],
        "payload": [s.SerializeToString() for s in signals],
    }
    session.connection().execute(INSERT_SIGNALS, columns)


class SignalStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def page(
        self,
        tenant_id: str,
        *,
        bot_id: str,
        action: int,
        start_ms: int | None,
        end_ms: int | None,
        after: tuple[int, str] | None,
        size: int,
    ) -> list[events_pb2.Signal]:
        """Newest candle first; `after` is the (candle, id) of the previous page's last signal."""
        query = select(SignalRow.payload).where(SignalRow.tenant_id == tenant_id)
        if bot_id:
            query = query.where(SignalRow.bot_id == bot_id)
        if action:
            query = query.where(SignalRow.action == action)
        if start_ms is not None:
            query = query.where(SignalRow.candle_start_ms >= start_ms)
        if end_ms is not None:
            query = query.where(SignalRow.candle_start_ms < end_ms)
        if after is not None:
            query = query.where(text("(candle_start_ms, id) < (:c, :i)").bindparams(c=after[0], i=after[1]))
        query = query.order_by(SignalRow.candle_start_ms.desc(), SignalRow.id.desc()).limit(size)  # type: ignore[attr-defined]
        with Session(self.engine) as session:
            return [events_pb2.Signal.FromString(p) for (p,) in session.execute(query)]
