"""Signal intake: a durable JetStream consumer of `sig.>` with explicit ack, and the decision that turns
one signal into at most one order.

A signal is acknowledged only after its outcome is stored: order accepted, or skipped/rejected with
a reason. If the process dies in between, the signal comes back and finds either its outcome (done)
or its PENDING_SUBMIT order (look it up on the exchange before anything else).

Signals of different tenants are handled concurrently (`Bus.consume` with a concurrency bound), signals
of one tenant in arrival order (a lock per tenant; see docs/decisions/0031-execution-concurrency.md).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from nats.aio.msg import Msg
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session
from tradebot.execution.v1 import events_pb2 as ev
from tradebot.strategy.v1 import events_pb2 as sig

from services.common.bus import Bus, Retry
from services.common.context import bind_tenant
from services.execution import account_book, brackets, convert, models, risk
from services.execution.account_book import Changes
from services.execution.accounts import Accounts
from services.execution.events import Events
from services.execution.exchange import INSUFFICIENT_BALANCE, ExchangeError
from services.execution.instruments import InstrumentCache
from services.execution.orders import (
    Accepted,
    OrderPlacer,
    Placement,
    accept_many,
    insert_orders,
    link_id_for_signal,
    mark_accepted,
)
from services.execution.signal_view import Key, View, read_views
from services.execution.sizing import size_entry
from services.execution.store import Store

log = logging.getLogger("tradebot.execution.intake")
SIGNAL_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
DEFAULT_RISK_PER_TRADE = Decimal("0.01")
ZERO = Decimal(0)
RETRY_SECONDS = 2.0  # an unresolved order or a failed attempt comes back after this


class Unresolved(Exception):
    """The order's outcome is unknown at the deadline: do not acknowledge; the redelivery resumes."""


class BotNotKnownYet(Exception):
    """The signal's bot has not reached execution yet (its lifecycle event on BOTS trails the signal
    right after StartBot): do not acknowledge; the redelivery decides again."""


@dataclass
class Skip:
    reason: int
    message: str
    details: dict[str, str] = field(default_factory=dict)
    kind: int = ev.RISK_EVENT_KIND_SIGNAL_SKIPPED


class SignalIntake:
    def __init__(
        self,
        *,
        store: Store,
        accounts: Accounts,
        paper: Accounts | None = None,
        placer: OrderPlacer,
        instruments: InstrumentCache,
        events: Events,
        caps: risk.Limits,
        breaker: risk.CircuitBreaker,
        rate: risk.OrderRate,
        max_signal_age: float,
        unknown_bot_retries: int = 0,
        unknown_bot_delay: float = 1.0,
    ) -> None:
        self.store = store
        self.accounts = accounts
        self.paper = paper
        self.placer = placer
        self.instruments = instruments
        self.events = events
        self.caps = caps
        self.breaker = breaker
        self.rate = rate
        self.max_signal_age = max_signal_age
        self.unknown_bot_retries = unknown_bot_retries
        self.unknown_bot_delay = unknown_bot_delay
        self._locks: dict[str, asyncio.Lock] = {}
        self._views = store.group(lambda session, keys: read_views(session, keys, caps, convert.now()))
        self._accepts = store.group(accept_many, one_by_one=True)
        self._orders = store.group(insert_orders, one_by_one=True)
        # (signal id, wall time) of recent exchange acceptances: the acceptance metric and the benchmark.
        self.accepted: collections.deque[tuple[str, float]] = collections.deque(maxlen=100_000)
        self.accepted_total = 0
        self.bot_waits = 0  # deliveries put back because the signal's bot was not known yet

    # -- consuming ---------------------------------------------------------------------------------

    def consume(
        self, bus: Bus, durable: str, subject: str, *, ack_wait: float, concurrency: int, batch: int = 256
    ) -> asyncio.Task[None]:
        """The durable consumer of signals, through the shared bus with `concurrency` handlers."""
        return bus.consume(
            "SIGNALS",
            durable,
            subject,
            sig.Signal,
            self.on_signal,
            batch=batch,
            ack_wait_seconds=ack_wait,
            retry_delay_seconds=RETRY_SECONDS,
            concurrency=concurrency,
        )

    async def on_signal(self, signal: sig.Signal, raw: Msg) -> None:
        """One delivery: returns when the outcome is stored (acked), raises Retry to get it again."""
        bind_tenant(signal.tenant_id)
        delivered = raw.metadata.num_delivered if raw.metadata else 1
        try:
            lock = self._locks.get(signal.tenant_id)
            if lock is None:
                lock = self._locks[signal.tenant_id] = asyncio.Lock()
            async with lock:
                await self.handle(
                    signal, redelivered=delivered > 1, wait_for_bot=delivered <= self.unknown_bot_retries
                )
        except BotNotKnownYet:
            log.info(
                "bot not known yet; signal kept for redelivery",
                extra={"signal_id": signal.id, "delivered": delivered},
            )
            self.bot_waits += 1
            raise Retry(self.unknown_bot_delay) from None
        except Unresolved:
            log.warning("order outcome unknown; signal kept for redelivery", extra={"signal_id": signal.id})
            raise Retry(RETRY_SECONDS) from None

    # -- one signal ---------------------------------------------------------------------------------

    async def handle(self, signal: sig.Signal, *, redelivered: bool, wait_for_bot: bool = False) -> None:
        """Decide and place one signal. `wait_for_bot`: raise BotNotKnownYet rather than skip when the
        bot is unknown (the consumer does so a bounded number of deliveries)."""
        if not signal.tenant_id or not SIGNAL_ID.match(signal.id):
            log.error("malformed signal ignored", extra={"signal_id": signal.id[:40]})
            return
        tenant, mode = signal.tenant_id, _mode(signal)
        link = link_id_for_signal(signal.id)
        view = await self._view(signal)
        outcome, order = view.outcome, view.order
        if outcome is not None:
            if not redelivered:  # published again, not merely redelivered: say so once
                await self._skip(
                    signal,
                    Skip(
                        ev.RISK_REASON_DUPLICATE_SIGNAL,
                        f"signal {signal.id} was already handled ({outcome.outcome})",
                    ),
                    record_outcome=False,
                )
            return
        if order is not None:
            await self._resume(signal, order)
            return
        decision = await self._decide(signal, view, wait_for_bot)
        if isinstance(decision, Skip):
            await self._skip(signal, decision)
            return
        try:
            await self._orders.submit(decision)
        except IntegrityError:
            # The exchange already reported an order with this orderLinkId (stream or reconciliation
            # stored it meanwhile): it exists, so follow it instead of placing another.
            order = await self.store.run(lambda s: account_book.find_order(s, tenant, mode, "", link))
            if order is None:
                raise
            await self._resume(signal, order)
            return
        self.rate.record(risk.account_key(tenant, mode))
        client = await self._accounts(mode).client(tenant)
        if client is None:  # credentials deleted between the decision and now
            raise Unresolved()
        placement = await self.placer.place(client, decision, maybe_sent=False)
        await self._finish(signal, decision, placement)

    async def _resume(self, signal: sig.Signal, order: models.Order) -> None:
        """A stored order whose outcome we never recorded: find it on the exchange first."""
        client = await self._accounts(order.mode).client(signal.tenant_id)
        if client is None:
            raise Unresolved()
        account = risk.account_key(signal.tenant_id, order.mode)
        if self._stale(signal) or self.breaker.is_open(account):
            try:
                found = await self.placer.lookup(client, order)
            except ExchangeError:
                raise Unresolved() from None
            if found is not None:
                await self._finish(signal, order, Placement(True, found))
                return
            if self.breaker.is_open(account):
                raise Unresolved()  # retry once the breaker lets orders through
            order.status, order.reject_reason = "Cancelled", "never sent: signal went stale"
            await self.store.run(lambda s: s.merge(order))
            await self._skip(
                signal,
                Skip(
                    ev.RISK_REASON_STALE_SIGNAL,
                    f"signal {signal.id} is older than {self.max_signal_age:.0f}s",
                ),
            )
            return
        placement = await self.placer.place(client, order, maybe_sent=True)
        await self._finish(signal, order, placement)

    async def _finish(self, signal: sig.Signal, order: models.Order, placement: Placement) -> None:
        tenant = signal.tenant_id
        if placement.accepted:
            self.accepted.append((signal.id, time.time()))
            self.accepted_total += 1
            found = placement.exchange_order or {}
            if not found.get("orderStatus"):  # the usual case: recorded with others at once
                done = Accepted(
                    order.id, str(found.get("orderId", "")), _outcome_row(signal, "ORDERED", order.id)
                )
                await self.events.order(await self._accepts.submit(done))
                return

            def accepted(session: Session) -> models.Order:
                row = mark_accepted(order.id, str(found.get("orderId", "")))(session)
                if found.get("orderStatus"):  # adopted: the exchange's full record is at hand
                    row = account_book.apply_order(
                        session, tenant, order.mode, {**found, "category": order.category}, Changes()
                    )
                session.add(_outcome(signal, "ORDERED", row.id))
                return row

            row = await self.store.grouped(accepted)
            await self.events.order(row)
            return
        if not placement.rejected:
            raise Unresolved()
        error = placement.error
        assert error is not None
        reason = (
            ev.RISK_REASON_INSUFFICIENT_BALANCE
            if error.code == INSUFFICIENT_BALANCE
            else ev.RISK_REASON_EXCHANGE_REJECTED
        )
        event = risk.new_event(
            tenant_id=tenant,
            kind=ev.RISK_EVENT_KIND_ORDER_REJECTED,
            reason=reason,
            message=f"the exchange rejected the order: {error.message}",
            bot_id=signal.bot_id,
            signal_id=signal.id,
            order_id=order.id,
            category=order.category,
            symbol=order.symbol,
            details={"code": str(error.code)},
            mode=order.mode,
        )

        def rejected(session: Session) -> models.Order:
            row = session.get(models.Order, order.id)
            assert row is not None
            row.status, row.reject_reason = "Rejected", error.message
            row.revision += 1
            row.update_time = convert.now()
            session.add(row)
            session.add(event)
            session.add(_outcome(signal, "REJECTED", row.id, error.message))
            return row

        row = await self.store.grouped(rejected)
        await self.events.order(row)
        await self.events.risk(event)

    async def _skip(self, signal: sig.Signal, skip: Skip, *, record_outcome: bool = True) -> None:
        event = risk.new_event(
            tenant_id=signal.tenant_id,
            kind=skip.kind,
            reason=skip.reason,
            message=skip.message,
            bot_id=signal.bot_id,
            signal_id=signal.id,
            category=convert.CATEGORY_NAME.get(signal.category, ""),
            symbol=signal.symbol,
            details=skip.details,
            mode=convert.MODE_NAME.get(signal.mode, "LIVE"),
        )

        def store(session: Session) -> None:
            session.add(event)
            if record_outcome:
                session.add(_outcome(signal, "SKIPPED", "", ev.RiskReason.Name(skip.reason)))

        await self.store.grouped(store)
        await self.events.risk(event)

    # -- the decision --------------------------------------------------------------------------------

    def _stale(self, signal: sig.Signal) -> bool:
        if not signal.HasField("create_time"):
            return False
        age = time.time() - (signal.create_time.seconds + signal.create_time.nanos / 1e9)
        return age > self.max_signal_age

    def _accounts(self, mode: str) -> Accounts:
        if mode == "PAPER":
            if self.paper is None:
                raise Unresolved()  # not wired (in-process tests without paper): keep the signal
            return self.paper
        return self.accounts

    async def _view(self, signal: sig.Signal) -> View:
        key = Key(signal.tenant_id, signal.bot_id, signal.id, link_id_for_signal(signal.id), _mode(signal))
        view: View = await self._views.submit(key)
        return view

    async def _decide(self, signal: sig.Signal, view: View, wait_for_bot: bool) -> models.Order | Skip:
        tenant, bot_id = signal.tenant_id, signal.bot_id
        category = convert.CATEGORY_NAME.get(signal.category)
        side = convert.SIDE_NAME.get(signal.side)
        if category is None or side is None or signal.action == sig.SIGNAL_ACTION_UNSPECIFIED:
            return Skip(ev.RISK_REASON_UNSPECIFIED, "signal lacks a category, side or action")
        mode = convert.MODE_NAME.get(signal.mode)
        if mode is None:
            return Skip(ev.RISK_REASON_UNSPECIFIED, "signal lacks a trading mode (PAPER or LIVE)")
        if self._stale(signal):
            return Skip(
                ev.RISK_REASON_STALE_SIGNAL,
                f"signal is older than {self.max_signal_age:.0f}s; the market has moved on",
            )
        bot, switches = view.bot, view.switches
        if switches:
            first = switches[0]
            return Skip(
                ev.RISK_REASON_KILL_SWITCH,
                f"{first.scope} kill switch engaged: {first.reason}",
                {"scope": first.scope},
            )
        if bot is None and wait_for_bot and not self._stale(signal):
            raise BotNotKnownYet()
        if bot is None or bot.tenant_id != tenant or bot.deleted:
            return Skip(ev.RISK_REASON_UNSPECIFIED, f"bot {bot_id} is unknown to the execution service")
        if bot.mode != mode:  # a PAPER bot's signal must never reach a LIVE account, nor the reverse
            return Skip(ev.RISK_REASON_UNSPECIFIED, f"bot {bot_id} trades {bot.mode}, the signal says {mode}")
        account = risk.account_key(tenant, mode)
        if self.breaker.is_open(account):
            return Skip(
                ev.RISK_REASON_CIRCUIT_BREAKER,
                "exchange errors paused this account; new orders resume after the cooldown",
            )
        accounts = self._accounts(mode)
        ready = accounts.is_ready(tenant)
        try:
            client = await accounts.ensure_ready(tenant)
        except ExchangeError as error:
            if self.breaker.failure(account):
                log.warning("circuit breaker tripped during reconciliation", extra={"tenant_id": tenant})
            raise Unresolved() from error
        if client is None and mode == "PAPER":
            raise Unresolved()  # the paper account could not be opened yet: retry, do not drop
        if client is None:
            return Skip(ev.RISK_REASON_NO_CREDENTIALS, "no exchange credentials are stored for this tenant")
        if not ready:  # reconciliation just ran: read what it corrected
            view = await self._view(signal)
        snap = view
        limits = snap.limits
        assert limits is not None
        sent = self.rate.count(account)
        if sent >= limits.max_orders_per_minute:
            return Skip(
                ev.RISK_REASON_RATE_LIMIT,
                f"{sent} orders in the last minute reach max_orders_per_minute"
                f" {limits.max_orders_per_minute}",
                {"limit": str(limits.max_orders_per_minute), "value": str(sent)},
            )
        rules = await self.instruments.get(category, signal.symbol)
        if rules is None or rules.status != "Trading":
            return Skip(
                ev.RISK_REASON_INSTRUMENT_NOT_TRADING,
                f"{signal.symbol} is not trading ({rules.status if rules else 'unknown'})",
            )
        position = snap.positions.get((category, signal.symbol))
        held = position.size if position is not None else Decimal(0)
        opening = signal.action in (sig.SIGNAL_ACTION_ENTRY, sig.SIGNAL_ACTION_REVERSE)
        if signal.action == sig.SIGNAL_ACTION_EXIT:
            if not held or position is None:
                return Skip(ev.RISK_REASON_POSITION_STATE, f"EXIT without an open {signal.symbol} position")
            return _order(signal, category, side, held, mode, reduce_only=True)
        if signal.action == sig.SIGNAL_ACTION_ENTRY and held:
            return Skip(
                ev.RISK_REASON_POSITION_STATE, f"ENTRY while a {signal.symbol} position of {held} is open"
            )
        if (
            signal.action == sig.SIGNAL_ACTION_REVERSE
            and held
            and position is not None
            and position.side == side
        ):
            return Skip(ev.RISK_REASON_POSITION_STATE, f"REVERSE to {side} while already {side} {held}")
        open_count = sum(1 for p in snap.positions.values() if p.size)
        if opening and not held and open_count >= limits.max_open_positions:
            return Skip(
                ev.RISK_REASON_MAX_OPEN_POSITIONS,
                f"{open_count} open positions reach max_open_positions {limits.max_open_positions}",
                {"limit": str(limits.max_open_positions), "value": str(open_count)},
            )
        loss = -(snap.today_net + snap.unrealized)
        if loss >= limits.daily_loss_limit:
            return Skip(
                ev.RISK_REASON_DAILY_LOSS_LIMIT,
                f"today's loss {convert.text(loss)} reached daily_loss_limit"
                f" {convert.text(limits.daily_loss_limit)}; entries resume at 00:00 UTC",
                {"limit": convert.text(limits.daily_loss_limit), "value": convert.text(loss)},
            )
        entry, stop = convert.dec(signal.reference_price), convert.dec(signal.stop_loss)
        equity = _sizing_equity(bot, snap.equity)
        leverage = min(
            limits.max_leverage,
            rules.max_leverage if category == "linear" else Decimal(1),
            bot.leverage or Decimal(1),
        )
        cap = min(limits.max_position_notional, bot.max_position_notional or limits.max_position_notional)
        sized = size_entry(
            equity=equity,
            entry=entry,
            stop=stop,
            risk_per_trade=bot.risk_per_trade or DEFAULT_RISK_PER_TRADE,
            leverage=leverage,
            max_position_notional=cap,
            rules=rules,
        )
        if sized.skipped:
            return Skip(
                sized.reason,
                sized.message,
                {
                    "qty": convert.text(sized.qty),
                    "notional": convert.text(sized.notional),
                    "equity": convert.text(equity),
                },
            )
        qty = sized.qty + (held if signal.action == sig.SIGNAL_ACTION_REVERSE else Decimal(0))
        return _order(
            signal,
            category,
            side,
            qty,
            mode,
            take_profit=rules.protective_price(convert.opt_dec(signal.take_profit), entry),
            stop_loss=rules.protective_price(convert.opt_dec(signal.stop_loss), entry),
        )


def _sizing_equity(bot: models.Bot, account_equity: Decimal | None) -> Decimal:
    """min(capital allocation, account equity); whichever is known when only one is."""
    known = [v for v in (bot.capital_allocation, account_equity) if v is not None and v > 0]
    return min(known) if known else Decimal(0)


def _order(
    signal: sig.Signal,
    category: str,
    side: str,
    qty: Decimal,
    mode: str,
    *,
    reduce_only: bool = False,
    take_profit: Decimal | None = None,
    stop_loss: Decimal | None = None,
) -> models.Order:
    now = convert.now()
    order_take = take_profit if category == "linear" else None
    order_stop = stop_loss if category == "linear" else None
    # The signal's distances, to move the levels to the fill once it is known (brackets.py).
    stop_gap, target_gap = brackets.distances(
        signal.reference_price, signal.stop_loss, signal.take_profit, order_stop, order_take
    )
    # Built without validation (every field is computed right here; validating took a tenth of a
    # signal's CPU) and stored with a Core INSERT (orders.insert_orders), never through a Session.
    # Every field is given: model_construct copies the default of each one left out.
    return models.Order.model_construct(
        id=str(uuid.uuid4()),
        tenant_id=signal.tenant_id,
        bot_id=signal.bot_id,
        signal_id=signal.id,
        order_link_id=link_id_for_signal(signal.id),
        exchange_order_id="",
        category=category,
        symbol=signal.symbol,
        side=side,
        order_type="Market",
        time_in_force="IOC",
        qty=qty,
        price=None,
        reduce_only=reduce_only,
        take_profit=order_take,
        stop_loss=order_stop,
        status="PendingSubmit",
        reject_reason="",
        cum_exec_qty=ZERO,
        cum_exec_value=ZERO,
        cum_exec_fee=ZERO,
        fee_currency="",
        avg_price=None,
        leaves_qty=ZERO,
        mode=mode,
        external=False,
        position_idx=0,
        create_type="",
        create_time=now,
        update_time=now,
        exchange_update_ms=0,
        revision=0,
        stop_distance=stop_gap,
        target_distance=target_gap,
        bracket_time=None,
        bracket_note="",
    )


def _mode(signal: sig.Signal) -> str:
    """The account a signal trades on: PAPER or LIVE (a signal without a mode is skipped in _decide)."""
    return convert.MODE_NAME.get(signal.mode, "LIVE")


def _outcome(signal: sig.Signal, outcome: str, order_id: str, reason: str = "") -> models.SignalOutcome:
    return models.SignalOutcome(
        tenant_id=signal.tenant_id,
        signal_id=signal.id,
        bot_id=signal.bot_id,
        outcome=outcome,
        order_id=order_id,
        reason=reason,
        record_time=convert.now(),
    )


def _outcome_row(signal: sig.Signal, outcome: str, order_id: str, reason: str = "") -> dict[str, Any]:
    """`_outcome` as the exec_signal row for a Core INSERT (no model instance: a tenth of the
    acceptance's CPU on a busy candle went into building them)."""
    return {
        "tenant_id": signal.tenant_id,
        "signal_id": signal.id,
        "bot_id": signal.bot_id,
        "outcome": outcome,
        "order_id": order_id,
        "reason": reason,
        "record_time": convert.now(),
    }
