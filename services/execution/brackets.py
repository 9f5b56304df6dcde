"""A filled entry's stop-loss and take-profit moved to the fill (docs/decisions/0037).

The entry order carries the signal's absolute levels, computed from the candle close, so the position
is protected from its first moment. The strategy engine and the backtester judge exits at the signal's
distances from the *fill*; once the entry has filled, the position's levels are set to fill -/+ those
distances with Bybit's `POST /v5/position/trading-stop`, rounded to the tick toward the fill (as
intake rounds toward the reference), linear only (spot has no position stops).

Once per entry: the order row keeps when it was settled (`bracket_time`), so neither a restart nor a
repeated stream message calls the exchange again. A call whose outcome is unknown (timeout, 5xx, rate
limit) leaves the entry pending: the next reconciliation tries again, and meanwhile the original
levels stay in force. A definite refusal (e.g. the market is already past the fill-based stop) is
logged and recorded; the original levels stay as well.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from decimal import Decimal
from typing import Any, Protocol

from sqlmodel import Session, col, select

from services.execution import convert, models
from services.execution.account_book import Changes
from services.execution.events import Events
from services.execution.exchange import AccountClient, ExchangeError
from services.execution.instruments import InstrumentCache
from services.execution.store import Store

log = logging.getLogger("tradebot.execution.brackets")
Ord = models.Order


class ClientSource(Protocol):
    async def client(self, tenant_id: str) -> AccountClient | None: ...


def distance(reference: Decimal | None, level: Decimal | None) -> Decimal | None:
    """The signal's distance from its reference price to a stop or target; None without both."""
    if reference is None or level is None:
        return None
    return abs(reference - level) or None


def distances(
    reference: str, stop_loss: str, take_profit: str, order_stop: Decimal | None, order_target: Decimal | None
) -> tuple[Decimal | None, Decimal | None]:
    """An entry order's `stop_distance` and `target_distance` from its signal's decimal strings, for
    the levels the order carries (none for spot or an exit)."""
    ref = convert.opt_dec(reference)
    return (
        distance(ref, convert.opt_dec(stop_loss)) if order_stop is not None else None,
        distance(ref, convert.opt_dec(take_profit)) if order_target is not None else None,
    )


def pending(order: models.Order) -> bool:
    """A linear entry with distances to re-anchor whose levels were not settled yet."""
    return (
        order.category == "linear"
        and not order.reduce_only
        and order.bracket_time is None
        and (order.stop_distance is not None or order.target_distance is not None)
    )


def filled(order: models.Order) -> bool:
    return order.status in convert.FINAL_STATUSES and order.cum_exec_qty > 0 and bool(order.avg_price)


class Brackets:
    def __init__(self, store: Store, instruments: InstrumentCache, events: Events) -> None:
        self.store = store
        self.instruments = instruments
        self.events = events
        self.accounts: dict[str, ClientSource] = {}  # by mode; wired once both modes exist
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._background: set[asyncio.Task[None]] = set()
        self.calls = 0  # trading-stop requests sent (tests, metrics)

    def notice(self, changes: Changes) -> None:
        """After a stream message: settle at once the accounts where an entry has just filled."""
        due = {(o.tenant_id, o.mode) for o in changes.orders if pending(o) and filled(o)}
        for tenant_id, mode in due:
            self._spawn(self._settle_quietly(tenant_id, mode), f"brackets:{tenant_id}:{mode}")

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _settle_quietly(self, tenant_id: str, mode: str) -> None:
        try:
            await self.settle(tenant_id, mode)
        except Exception:  # the next reconciliation tries again
            log.exception(
                "fill-based stop and target not set yet", extra={"tenant_id": tenant_id, "mode": mode}
            )

    async def settle(self, tenant_id: str, mode: str, client: AccountClient | None = None) -> None:
        """Re-anchor every filled entry of the account still waiting for it (the latest per symbol)."""
        async with self._locks.setdefault((tenant_id, mode), asyncio.Lock()):
            waiting = await self.store.run(lambda s: _waiting(s, tenant_id, mode))
            for order in waiting:
                if order.status in convert.FINAL_STATUSES and not filled(order):
                    await self._record(order, "entry not filled", None)
            entries = [o for o in waiting if filled(o)]
            if not entries:
                return
            if client is None:
                source = self.accounts.get(mode)
                client = await source.client(tenant_id) if source is not None else None
                if client is None:
                    return
            latest: dict[str, models.Order] = {}
            for order in entries:  # oldest first: a later entry on the symbol supersedes an earlier one
                if order.symbol in latest:
                    await self._record(latest[order.symbol], "superseded by a later entry", None)
                latest[order.symbol] = order
            for order in latest.values():
                await self._one(client, order)

    async def _one(self, client: AccountClient, order: models.Order) -> None:
        found = await client.call("get_positions", category="linear", symbol=order.symbol)
        rows: list[dict[str, Any]] = found.get("list", [])
        position = next((p for p in rows if p.get("symbol") == order.symbol), {})
        if convert.dec(position.get("size")) == 0 or position.get("side") != order.side:
            await self._record(order, "position closed or turned before the levels were moved", None)
            return
        rules = await self.instruments.get("linear", order.symbol)
        if rules is None:
            return  # instrument unknown for now: try again at the next reconciliation
        fill = order.avg_price or Decimal(0)
        sign = 1 if order.side == "Buy" else -1
        stop = _level(rules.protective_price, fill, order.stop_distance, -sign)
        target = _level(rules.protective_price, fill, order.target_distance, sign)
        params: dict[str, Any] = {
            "category": "linear",
            "symbol": order.symbol,
            "positionIdx": order.position_idx,
            "tpslMode": "Full",
        }
        if stop is not None:
            params["stopLoss"] = convert.text(stop)
        if target is not None:
            params["takeProfit"] = convert.text(target)
        self.calls += 1
        try:
            await client.call("set_trading_stop", **params)
        except ExchangeError as error:
            if error.unknown or error.rate_limited:
                log.warning(
                    "fill-based stop and target not set yet: %s",
                    error.message,
                    extra={"tenant_id": order.tenant_id, "order_id": order.id},
                )
                return
            log.warning(
                "the exchange refused the fill-based stop and target; the entry's levels stay: %s",
                error.message,
                extra={"tenant_id": order.tenant_id, "order_id": order.id},
            )
            await self._record(order, f"refused: {error.message}", None)
            return
        await self._record(order, "set", (stop, target))

    async def _record(
        self, order: models.Order, note: str, levels: tuple[Decimal | None, Decimal | None] | None
    ) -> None:
        def work(session: Session) -> models.Position | None:
            row = session.get(Ord, order.id)
            if row is None:
                return None
            row.bracket_time, row.bracket_note = convert.now(), note[:500]
            session.add(row)
            if levels is None:
                return None
            position = session.get(models.Position, (order.tenant_id, "linear", order.symbol, order.mode))
            if position is None:
                return None
            stop, target = levels
            if stop is not None:
                position.stop_loss = stop
            if target is not None:
                position.take_profit = target
            position.update_time = convert.now()
            session.add(position)
            return position

        position = await self.store.run(work)
        if position is not None:
            await self.events.position(position)

    async def stop(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)


def _level(rounder: Any, fill: Decimal, gap: Decimal | None, direction: int) -> Decimal | None:
    if gap is None:
        return None
    level = fill + direction * gap
    return rounder(level, fill) if level > 0 else None


def _waiting(session: Session, tenant_id: str, mode: str) -> list[models.Order]:
    # Matches the partial index exec_order_brackets_pending (migration 0004).
    q = (
        select(Ord)
        .where(
            Ord.tenant_id == tenant_id,
            Ord.mode == mode,
            col(Ord.bracket_time).is_(None),
            (col(Ord.stop_distance).is_not(None)) | (col(Ord.target_distance).is_not(None)),
        )
        .order_by(col(Ord.create_time))
    )
    return [o for o in session.exec(q).all() if pending(o)]
