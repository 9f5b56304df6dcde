"""The live engine: every closed candle from marketdata, evaluated for every running bot, once.

Bots are grouped by (strategy, category, symbol, interval); each group is one `BotBank` (the trading
core's vectorised evaluator: arrays of state across bots, identical indicator parameters share a row),
so the cost per candle grows with distinct parameter sets, not with tenants. Candles come from a
durable JetStream consumer of `md.candle.>`; signals go out on `sig.<tenant>.<bot>`.

A group is (re)built by replaying candle history from marketdata through a fresh bank: from a fixed
number of warm-up bars before the earliest bot's first trading candle (`active_from_ms`, set when the
bot's run began and kept in the database) up to the newest closed candle. Candles before a bot's
`active_from_ms` only warm it up (any position it would take is dropped); later ones are evaluated as
live, with the position updates execution reported (fills, closes, entries it did not place) applied
after the candle they followed. Only
candles after the group's cursor publish what they decide. So a restart, a crash mid-candle or a bot
joining the group all end in the state an uninterrupted run has, and the same signal ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from nats.aio.msg import Msg
from tradebot.common.v1 import common_pb2
from tradebot.execution.v1 import events_pb2 as exec_pb
from tradebot.marketdata.v1 import events_pb2 as md_events
from tradebot.strategy.v1 import events_pb2

from services.common import telemetry
from services.common.errors import Unavailable
from services.common.market import CATEGORIES, INTERVALS, interval_ms
from services.strategy import signals
from services.strategy.feed import Outcome
from services.strategy.journal import Journal
from services.strategy.live.bank import BotBank, Decision, Held
from services.strategy.market import MarketData, StreamKey
from services.strategy.metrics import EngineMetrics
from services.strategy.models import BotRow, PositionUpdateRow
from services.strategy.peers import HeldPosition
from services.strategy.registry import get_strategy
from services.strategy.strategies.base import ParamValues

log = logging.getLogger("tradebot.strategy.engine")
tracer = telemetry.tracer("tradebot.strategy")

# Bars of history before a bot's first trading candle. EMA-type indicators have unbounded memory; after
# this many bars their seed no longer shows in the float64 values the rules compare.
WARMUP_FACTOR = 5
MIN_WARMUP_BARS = 300


@dataclass(frozen=True)
class LiveBot:
    """A running or paused bot as the engine needs it."""

    ref: signals.BotRef
    params: ParamValues
    capital: Decimal
    status: str  # running or paused
    active_from_ms: int | None

    @property
    def stream(self) -> StreamKey:
        return StreamKey(self.ref.category, self.ref.symbol, self.ref.interval)

    @property
    def group_id(self) -> str:
        s = self.stream
        return f"{self.ref.strategy_id}:{s.category}:{s.symbol}:{s.interval}"

    def shape(self) -> tuple[object, ...]:
        """What the bank is built from: a change to any of it needs a rebuild (status does not)."""
        return (self.ref.id, tuple(sorted(self.params.items())), self.capital)


@dataclass(frozen=True)
class Opening:
    """A bot's newest ENTRY or REVERSE signal and what the bank took on with it: the position `side`,
    and for a REVERSE the position it left (`left`), which the exchange still holds if the REVERSE is
    never placed (execution sends it as one order: the close and the new position together)."""

    signal_id: str
    side: int
    left: Held | None


# Execution's risk events that mean "this signal placed nothing". A DUPLICATE_SIGNAL skip is about a
# repeat of a signal already handled, which says nothing about the first one's outcome.
UNPLACED = (exec_pb.RISK_EVENT_KIND_SIGNAL_SKIPPED, exec_pb.RISK_EVENT_KIND_ORDER_REJECTED)
OPENING_ACTIONS = (events_pb2.SIGNAL_ACTION_ENTRY, events_pb2.SIGNAL_ACTION_REVERSE)


@dataclass(frozen=True)
class Decided:
    """What one candle decided for one group: its signals (none when only paused bots' were withheld)."""

    group: Group
    start: int
    signals: list[events_pb2.Signal]


class Group:
    """The bots of one (strategy, stream) and the bank that evaluates them; bank row i is bots[i]."""

    def __init__(self, gid: str, strategy_id: str, stream: StreamKey) -> None:
        self.id = gid
        self.strategy_id = strategy_id
        self.stream = stream
        self.bank: BotBank | None = None
        self.last_ms: int | None = None
        self.last_close = float("nan")
        self.openings: dict[str, Opening] = {}  # by bot id; rebuilt with the bank by the replay
        self.lock = asyncio.Lock()
        self._bots: list[LiveBot] = []
        self._rows: dict[str, int] = {}

    @property
    def bots(self) -> list[LiveBot]:
        return self._bots

    @bots.setter
    def bots(self, bots: list[LiveBot]) -> None:
        self._bots = bots
        self._rows = {b.ref.id: i for i, b in enumerate(bots)}

    def index(self, bot_id: str) -> int | None:
        return self._rows.get(bot_id)


class Subscriptions:
    """Keeps marketdata's lease on the streams the groups need and knows which are live."""

    def __init__(self, market: MarketData, caller_id: str) -> None:
        self.market = market
        self.caller_id = caller_id
        self.wanted: list[StreamKey] = []
        self.live: dict[StreamKey, int | None] = {}
        self._lock = asyncio.Lock()

    async def renew(self) -> None:
        async with self._lock:  # one lease, replaced whole: never two replacements at once
            self.live = await self.market.ensure_subscriptions(self.caller_id, self.wanted)

    async def newest(self, stream: StreamKey, within: float = 60.0) -> int | None:
        """Start of the stream's newest closed candle once marketdata has it live."""
        deadline = time.monotonic() + within
        while True:
            await self.renew()
            if stream in self.live:
                return self.live[stream]
            if time.monotonic() > deadline:
                raise Unavailable(f"marketdata has not made {stream.subject} live yet")
            await asyncio.sleep(0.5)

    async def run(self, period: float) -> None:
        while True:
            with contextlib.suppress(Exception):  # the next round retries; builds wait for `newest`
                await self.renew()
            await asyncio.sleep(period)


class Engine:
    def __init__(
        self,
        market: MarketData,
        publisher: signals.SignalPublisher,
        journal: Journal,
        subscriptions: Subscriptions,
    ) -> None:
        self.market = market
        self.publisher = publisher
        self.journal = journal
        self.subscriptions = subscriptions
        self.groups: dict[str, Group] = {}
        self._by_stream: dict[StreamKey, list[Group]] = {}
        self._by_bot: dict[str, Group] = {}
        self.metrics = EngineMetrics(self.bots_running)
        self._builds: dict[str, asyncio.Task[None]] = {}

    def bots_running(self) -> int:
        return sum(
            sum(b.status == "running" for b in g.bots) for g in self.groups.values() if g.bank is not None
        )

    # membership --------------------------------------------------------------------------------
    def set_bots(self, bots: list[LiveBot]) -> None:
        """The running and paused bots now; groups whose bots changed are rebuilt in the background."""
        wanted: dict[str, list[LiveBot]] = {}
        for bot in sorted(bots, key=lambda b: b.ref.id):
            wanted.setdefault(bot.group_id, []).append(bot)
        for gid in list(self.groups):
            if gid not in wanted:
                self._cancel_build(gid)
                del self.groups[gid]
        for gid, members in wanted.items():
            group = self.groups.get(gid)
            if group is None:
                first = members[0]
                group = self.groups[gid] = Group(gid, first.ref.strategy_id, first.stream)
            if [b.shape() for b in group.bots] != [b.shape() for b in members]:
                group.bots = members
                group.bank = None
                self._schedule_build(group)
            else:  # status changes apply from the next candle; first trading candles stay as fixed
                starts = {b.ref.id: b.active_from_ms for b in group.bots}
                group.bots = [
                    b if b.active_from_ms is not None else _active(b, starts[b.ref.id]) for b in members
                ]
        self.subscriptions.wanted = sorted({g.stream for g in self.groups.values()}, key=str)
        self._by_stream = {}
        for group in self.groups.values():
            self._by_stream.setdefault(group.stream, []).append(group)
        self._by_bot = {bot.ref.id: group for group in self.groups.values() for bot in group.bots}

    def _schedule_build(self, group: Group) -> None:
        self._cancel_build(group.id)
        self._builds[group.id] = asyncio.create_task(self._build_until_done(group), name=f"build:{group.id}")

    def _cancel_build(self, gid: str) -> None:
        task = self._builds.pop(gid, None)
        if task is not None:
            task.cancel()

    async def _build_until_done(self, group: Group) -> None:
        delay = 0.5
        while True:
            sending: asyncio.Future[int] | None = None
            try:
                async with group.lock:
                    if group.bank is None:
                        sending = await self._send(await self._build(group))
                if sending is not None:
                    await sending
                return
            except asyncio.CancelledError:
                raise
            except Exception as error:  # marketdata down or still backfilling: try again
                log.warning("group warm-up failed; retrying", extra={"group": group.id, "error": str(error)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def stop(self) -> None:
        for gid in list(self._builds):
            self._cancel_build(gid)

    # building ----------------------------------------------------------------------------------
    async def _build(self, group: Group) -> list[Decided]:
        """Replay history through a fresh bank (see the module docstring); returns what the candles after
        the group's cursor decided, for the caller to publish. Caller holds the lock."""
        with tracer.start_as_current_span("warm up group", attributes={"group": group.id}):
            strategy = get_strategy(group.strategy_id)
            stream = group.stream
            step = interval_ms(stream.interval)
            newest = await self.subscriptions.newest(stream)
            instrument = await self.market.instrument(stream.category, stream.symbol)
            bots = list(group.bots)
            warm = max(MIN_WARMUP_BARS, WARMUP_FACTOR * max(strategy.warmup_bars(b.params) for b in bots))
            known = [b.active_from_ms for b in bots if b.active_from_ms is not None]
            # Without a known first trading candle, the stored history ends the warm-up (marketdata has not
            # published a candle live yet right after its backfill, so `newest` may be unknown).
            since = min(known) - warm * step if known else None
            until = newest + 1 if newest is not None else None
            history = await self.market.candles(stream, since, until)
            if since is None:
                history = history.tail(warm)
            fresh = [b.ref.id for b in bots if b.active_from_ms is None]
            if fresh:
                # New runs trade from the first candle that closes after their warm-up.
                first_live = int(history.start_ms[-1]) + step if len(history) else (newest or -step) + step
                await asyncio.to_thread(self.journal.set_active_from, fresh, first_live)
                bots = [b if b.active_from_ms is not None else _active(b, first_live) for b in bots]
            bank = BotBank(strategy, [b.params for b in bots], instrument, [b.capital for b in bots])
            cursor = await asyncio.to_thread(self.journal.cursor, group.id)
            updates = await asyncio.to_thread(self.journal.position_updates, [b.ref.id for b in bots])
            group.bank, group.last_ms, group.openings = bank, None, {}
            group.bots = bots  # with their first trading candles, which the replay reads
            decided: list[Decided] = []
            try:
                for t in range(len(history)):
                    if group.bank is not bank:
                        return []  # the bots changed meanwhile (set_bots); the rebuild it queued takes over
                    start = int(history.start_ms[t])
                    candle = (history.open[t], history.high[t], history.low[t], history.close[t])
                    made = self._evaluate(group, start, candle)
                    if made is not None and (cursor is None or start > cursor):
                        decided.append(made)
                    for row in updates.get(start, []):
                        _apply_position(group, row)
            except BaseException:
                group.bank = None  # half a replay is no state: the next attempt starts over
                raise
            # Statuses may have changed meanwhile (same bots, so the bank stands); keep the newer ones.
            starts = {b.ref.id: b.active_from_ms for b in bots}
            group.bots = [_active(b, starts[b.ref.id]) for b in group.bots]
            log.info("group warmed up", extra={"group": group.id, "bots": len(bots), "bars": len(history)})
            _settle_heap()
            return decided

    # candles -------------------------------------------------------------------------------------
    async def on_candles(self, events: Sequence[md_events.CandleClosed]) -> list[Outcome]:
        """Evaluate a burst of closed candles, each for every group on its stream, then publish all their
        signals at once. Returns, per candle, the publication its acknowledgement waits for (None when
        there is nothing to wait for) or the error that keeps it from being acknowledged (it comes again;
        the groups that did evaluate it skip it then)."""
        received = time.perf_counter()
        outcomes: list[Exception | None] = [None] * len(events)
        decided: list[Decided] = []
        waiting: list[int] = []
        for n, event in enumerate(events):
            c = event.candle
            if not c.confirmed:
                continue
            stream = StreamKey(CATEGORIES.get(c.category, ""), c.symbol, INTERVALS.get(c.interval, ""))
            start = c.start.ToMilliseconds()
            values = (float(c.open), float(c.high), float(c.low), float(c.close))
            before = len(decided)
            for group in self._by_stream.get(stream, []):
                try:
                    async with group.lock:
                        if group.bank is None:
                            decided += await self._build(group)
                        decided += await self._catch_up(group, start)
                        if group.last_ms is not None and start <= group.last_ms:
                            continue  # replayed during the build already
                        made = self._evaluate(group, start, values)
                    if made is not None:
                        decided.append(made)
                except Exception as error:  # marketdata away during a build: this candle comes again
                    log.warning("candle not evaluated", extra={"group": group.id, "error": str(error)})
                    outcomes[n] = error
            if len(decided) > before and outcomes[n] is None:
                waiting.append(n)
        sending = await self._send(decided)
        self.metrics.evaluation.record(time.perf_counter() - received)
        result: list[Outcome] = list(outcomes)
        if sending is not None:
            for n in waiting:
                result[n] = sending
        return result

    async def _catch_up(self, group: Group, start: int) -> list[Decided]:
        """Candles missed between the last one evaluated and `start` (a gap in delivery), evaluated first."""
        step = interval_ms(group.stream.interval)
        if group.last_ms is None or start <= group.last_ms + step:
            return []
        missing = await self.market.candles(group.stream, group.last_ms + step, start)
        decided = []
        for t in range(len(missing)):
            candle = (missing.open[t], missing.high[t], missing.low[t], missing.close[t])
            made = self._evaluate(group, int(missing.start_ms[t]), candle)
            if made is not None:
                decided.append(made)
        return decided

    def _evaluate(
        self, group: Group, start: int, candle: tuple[float, float, float, float]
    ) -> Decided | None:
        """Step the group's bank by one candle; returns its signals (possibly none, when a paused bot's
        decision was withheld, which still moves the cursor), or None when nothing was decided."""
        bank = group.bank
        assert bank is not None
        held = bank.side.copy()
        decisions = bank.step(*candle)
        group.last_ms, group.last_close = start, float(candle[3])
        if not decisions:
            return None
        by_bot: dict[int, list[Decision]] = {}
        for d in decisions:
            by_bot.setdefault(d.bot, []).append(d)
        out: list[events_pb2.Signal] = []
        withheld = False
        for i, made in by_bot.items():
            bot = group.bots[i]
            trading = bot.active_from_ms is not None and start >= bot.active_from_ms
            if not trading or bot.status != "running":
                # Warm-up or paused: nothing is sent, so the bank must not believe a position opened.
                if any(d.action.startswith("enter") for d in made):
                    bank.flatten(i, clear_cooldown=not trading)
                withheld = withheld or trading
                continue
            for d in made:
                if d.action == "exit" and d.reason in ("stop_loss", "take_profit"):
                    # Nothing is sent for these (the exchange's own orders close the position); the log
                    # is the only trace of when the bank believed its bot flat.
                    log.info(
                        "stop or target judged hit; the bot is flat",
                        extra={"bot": bot.ref.id, "reason": d.reason, "price": d.price, "candle": start},
                    )
            sent = self._signals(bot, start, int(held[i]), made)
            if sent and sent[0].action in OPENING_ACTIONS:
                # A REVERSE's exit is its opposite-signal exit on the same candle (see _signals).
                left = next((d.left for d in made if d.reason == "opposite_signal"), None)
                group.openings[bot.ref.id] = Opening(sent[0].id, int(bank.side[i]), left)
            out.extend(sent)
        if not (out or withheld):
            return None
        return Decided(group, start, out)

    async def _send(self, decided: list[Decided]) -> asyncio.Future[int] | None:
        """Put every signal on the wire now, pipelined and in candle order, and return the publication
        (all of JetStream's acknowledgements). Only acknowledged signals move the cursors, so a crash
        before then replays and republishes the same ids."""
        if not decided:
            return None
        out = [sig for d in decided for sig in d.signals]
        if not out:  # only withheld decisions: the cursors move, nothing to wait for
            for d in decided:
                self.journal.commit_later(d.group.id, d.start, d.signals)
            return None
        sending = await self.publisher.publish_pipelined(out)
        sending.add_done_callback(lambda done: self._published(done, decided))
        return sending

    def _published(self, done: asyncio.Future[int], decided: list[Decided]) -> None:
        if done.cancelled() or done.exception() is not None:
            # Not known to be on JetStream: rebuild the groups, whose replays publish everything after
            # their cursors again (the same ids, so whatever did arrive is dropped as a duplicate).
            for group in {d.group.id: d.group for d in decided}.values():
                log.error("signals not published; group will replay", extra={"group": group.id})
                group.bank = None
                self._schedule_build(group)
            return
        actions: dict[int, int] = {}
        for d in decided:
            for sig in d.signals:
                actions[sig.action] = actions.get(sig.action, 0) + 1
            self.journal.commit_later(d.group.id, d.start, d.signals)
        for action, count in actions.items():
            self.metrics.signals.add(count, {"action": events_pb2.SignalAction.Name(action)})

    def _signals(self, bot: LiveBot, start: int, held: int, made: list[Decision]) -> list[events_pb2.Signal]:
        """One bot's decisions on one candle as signals: an opposite-signal exit and an entry on the same
        candle are one REVERSE. Stop-loss and take-profit exits are not signals: those orders already sit
        on the exchange and close the position there."""
        exit_ = next((d for d in made if d.action == "exit" and d.reason == "opposite_signal"), None)
        entry = next((d for d in made if d.action.startswith("enter")), None)
        for d in made:
            if d.action == "skipped":
                self.metrics.skipped.add(1, {"reason": d.reason})
                log.info("entry skipped", extra={"bot": bot.ref.id, "reason": d.reason, "candle": start})
        if entry is not None:
            side = 1 if entry.action == "enter_long" else -1
            action = events_pb2.SIGNAL_ACTION_REVERSE if exit_ else events_pb2.SIGNAL_ACTION_ENTRY
            return [
                signals.build(
                    bot.ref, start, action, side, entry.price, entry.stop, entry.take_profit, entry.reasons
                )
            ]
        if exit_ is not None:
            return [
                signals.build(
                    bot.ref,
                    start,
                    events_pb2.SIGNAL_ACTION_EXIT,
                    -held,
                    exit_.price,
                    exit_reason="opposite_signal",
                )
            ]
        return []

    # stops -------------------------------------------------------------------------------------
    async def close_position(
        self, bot: BotRow, why: str, held: HeldPosition | None, *, from_exchange: bool
    ) -> events_pb2.Signal | None:
        """The user stops the bot and wants its position closed: publish an EXIT for the position it
        holds, store it, and return it (None when it holds none). The bot holds one when execution
        (`held`, asked when `from_exchange`) or the bank says so: execution's view is the exchange's but
        can lag a fill by a moment, the bank's can miss what happened on the exchange (0055); an EXIT
        for a position that is not there is skipped by execution. The id comes from the bot and its
        run, so stopping again, or retrying a stop that failed after this, cannot make a second one."""
        group = self._by_bot.get(bot.id)
        side, candle_ms, price = 0, None, float("nan")
        if group is not None:
            async with group.lock:
                if group.bank is None:
                    sending = await self._send(await self._build(group))
                    if sending is not None:
                        await sending
                i = group.index(bot.id)
                if i is not None and group.bank is not None and group.last_ms is not None:
                    side, candle_ms, price = int(group.bank.side[i]), group.last_ms, group.last_close
        if from_exchange and side != (held.side if held is not None else 0):
            # The bank's view decides the bot's exits: a difference from the exchange's is a fault to find.
            log.warning(
                "stop: the engine's view of the position differs from execution's",
                extra={"bot": bot.id, "engine_side": side, "exchange_side": held.side if held else 0},
            )
        if held is not None:
            side = held.side  # what the exchange holds; else the bank's belief (execution may lag a fill)
        if side == 0:
            log.info("stop: no position to close", extra={"bot": bot.id, "exchange_view": from_exchange})
            return None
        if candle_ms is None:  # never evaluated here: the newest closed candle, at the mark price
            step = interval_ms(bot.interval)
            candle_ms = int(time.time() * 1000) // step * step - step
            price = held.mark_price if held is not None else float("nan")
        ref = signals.BotRef(
            bot.id, bot.tenant_id, bot.strategy_id, bot.category, bot.symbol, bot.interval, bot.mode
        )
        sig = signals.build(ref, candle_ms, events_pb2.SIGNAL_ACTION_EXIT, -side, price)
        run = bot.active_from_ms or (int(bot.start_time.timestamp() * 1000) if bot.start_time else 0)
        sig.id = signals.stop_exit_id(bot.id, run)
        sig.reasons.add(
            name="user_stop",
            held=True,
            description=f"the user stopped the bot and closed its position: {why}",
        )
        await self.publisher.publish([sig])
        self.metrics.signals.add(1, {"action": events_pb2.SignalAction.Name(sig.action)})
        if group is not None:
            self.journal.commit_later(group.id, candle_ms, [sig])
        else:
            await asyncio.to_thread(self.journal.record_signals, [sig])
        log.info("position closed by stop", extra={"bot": bot.id, "signal_id": sig.id})
        return sig

    # positions -----------------------------------------------------------------------------------
    async def on_position(self, event: exec_pb.PositionEvent, _: Msg | None = None) -> None:
        """Execution's view of a bot's position: an entry's real fill places the stop and target from it;
        a position closed on the exchange (stop, target, by hand) after its fill was reported makes the
        bot flat (0057)."""
        pos = event.position
        group = self._by_bot.get(pos.bot_id)
        if not pos.bot_id or group is None:
            return  # not a bot we evaluate (stopped, another service's, external)
        async with group.lock:
            if group.bank is None:
                await self._send(await self._build(group))
            i = group.index(pos.bot_id)
            if i is None or group.bank is None or group.last_ms is None:
                return  # nothing evaluated yet, so no position the bank could hold
            side = {common_pb2.SIDE_BUY: 1, common_pb2.SIDE_SELL: -1}.get(pos.side, 0)
            held, filled = int(group.bank.side[i]), bool(group.bank.filled[i])
            if side and held != side:
                log.info(
                    "fill ignored: the bank holds another side",
                    extra={"bot": pos.bot_id, "bank": held, "exchange": side, "candle": group.last_ms},
                )
                return  # a fill for a position the bank has already left (or never took)
            if not side and (held == 0 or not filled):
                # Only the close of a position whose fill execution reported is news. Execution publishes
                # the position after each execution message, and the entry's comes before the exchange's
                # position message, so a flat event (side unset, size 0) arrives just before the entry's
                # fill: taking it would leave the bank flat while the exchange holds the position, and
                # the bot's exits would never fire. Not recorded either: the journal keeps what was applied.
                if held:
                    log.info("flat ignored: the entry's fill is not reported yet", extra={"bot": pos.bot_id})
                return
            kind = "fill" if side else "flat"
            price = Decimal(pos.entry_price) if side and pos.entry_price else None
            row = PositionUpdateRow(
                event_id=event.event_id,
                bot_id=pos.bot_id,
                after_candle_ms=group.last_ms,
                kind=kind,
                price=price,
            )
            _apply_position(group, row)
            await asyncio.to_thread(
                self.journal.record_position, row.event_id, row.bot_id, row.after_candle_ms, kind, price
            )

    async def on_risk(self, event: exec_pb.RiskEvent, _: Msg | None = None) -> None:
        """Execution did not place a signal (skipped by a risk rule, kill switch, breaker or age, or
        rejected by the exchange). When it is the bot's newest ENTRY or REVERSE and the bank still holds
        what that signal opened, the bank goes back to what the exchange holds: flat after an ENTRY, the
        old position after a REVERSE (0058). Otherwise the bank would judge exits of a position that
        never existed and wait for its close before entering again: the bot would stop trading."""
        if event.kind not in UNPLACED or not event.signal_id or not event.bot_id:
            return
        if event.reason == exec_pb.RISK_REASON_DUPLICATE_SIGNAL:
            return
        group = self._by_bot.get(event.bot_id)
        if group is None:
            return  # not a bot we evaluate
        async with group.lock:
            if group.bank is None:
                await self._send(await self._build(group))
            opening, i = group.openings.get(event.bot_id), group.index(event.bot_id)
            if group.bank is None or group.last_ms is None or opening is None or i is None:
                return
            if opening.signal_id != event.signal_id:
                return  # an older signal, or an EXIT: the bank has moved on since
            row = PositionUpdateRow(
                event_id=event.id, bot_id=event.bot_id, after_candle_ms=group.last_ms, kind="unplaced"
            )
            if not _apply_position(group, row):
                return  # the bank already left that position (its stop, target or an opposite signal)
            log.info(
                "entry not placed by execution; the bot holds what the exchange holds",
                extra={
                    "bot": event.bot_id,
                    "signal_id": event.signal_id,
                    "reason": exec_pb.RiskReason.Name(event.reason),
                    "side": int(group.bank.side[i]),
                },
            )
            await asyncio.to_thread(
                self.journal.record_position, row.event_id, row.bot_id, row.after_candle_ms, row.kind, None
            )


def _settle_heap() -> None:
    """Move what a build left alive out of the collector's reach. A full collection walks every tracked
    object: with 10,000 bots' state that is a pause of over 100 ms in the middle of a candle burst (seen
    in bench/strategy.py). Banks are long-lived and freed by reference counting when replaced, so frozen
    objects are not leaked; the young generations are collected first so a build's own cyclic garbage is
    not frozen with them."""
    gc.collect(1)
    gc.freeze()


def _active(bot: LiveBot, start_ms: int | None) -> LiveBot:
    return LiveBot(bot.ref, bot.params, bot.capital, bot.status, start_ms)


def _apply_position(group: Group, row: PositionUpdateRow) -> bool:
    """Apply an update on_position or on_risk took (live) or recorded (replay); True when it changed the
    bank. A recorded flat was applied when the bank held a filled position, so it is applied as it comes:
    were it read before that fill (two updates after one candle), the fill then finds the bank flat and
    both orders end flat. An unplaced signal undoes the bot's newest opening while the bank still holds
    it unfilled; the replay rebuilds the same openings, so it undoes the same one."""
    bank, i = group.bank, group.index(row.bot_id)
    if bank is None or i is None:
        return False
    if row.kind == "fill" and row.price is not None and bank.side[i] != 0:
        bank.confirm_fill(i, float(row.price))
        return True
    if row.kind == "flat" and bank.side[i] != 0:
        bank.flatten(i, clear_cooldown=False)
        return True
    if row.kind == "unplaced":
        opening = group.openings.get(row.bot_id)
        if opening is None or bank.side[i] != opening.side or bank.filled[i]:
            return False
        del group.openings[row.bot_id]
        if opening.left is None:
            bank.flatten(i, clear_cooldown=False)
        else:
            bank.restore(i, opening.left)
        return True
    return False
