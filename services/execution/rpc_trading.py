"""Orders, fills and positions: listing them, cancelling an order, closing a position."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlmodel import Session, select
from tradebot.common.v1 import common_pb2 as common
from tradebot.execution.v1 import execution_service_pb2 as pb

from services.common import paging
from services.common.context import Role
from services.common.convert import time_range
from services.common.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from services.execution import account_book, convert, models
from services.execution.account_book import Changes
from services.execution.closing import Closing, closing_link
from services.execution.exchange import ORDER_NOT_EXISTS, AccountClient, ExchangeError
from services.execution.rpc_base import Base

LINK_ID = re.compile(r"^[A-Za-z0-9_-]{1,36}$")
Ord, F, P = models.Order, models.Fill, models.Position
# Both modes close the same way; only the account differs (LIVE: the tenant's keys, PAPER: paper.py).
CLOSABLE_MODES = {common.TRADING_MODE_LIVE: "LIVE", common.TRADING_MODE_PAPER: "PAPER"}


def _mode(value: int) -> str | None:
    return convert.MODE_NAME.get(value)


class TradingRpc(Base):
    async def ListOrders(self, request: pb.ListOrdersRequest, context: Any) -> pb.ListOrdersResponse:
        tenant = self.caller().tenant_id
        size = paging.page_size(request.page_size, default=100, maximum=500)
        start = paging.offset(request)
        since, until = time_range(request.time_range)
        statuses = [convert.STATUS_NAME[s] for s in request.statuses if s in convert.STATUS_NAME]

        def query(session: Session) -> list[models.Order]:
            q = select(Ord).where(Ord.tenant_id == tenant)
            if request.bot_id:
                q = q.where(Ord.bot_id == request.bot_id)
            if request.symbol:
                q = q.where(Ord.symbol == request.symbol)
            if statuses:
                q = q.where(Ord.status.in_(statuses))  # type: ignore[attr-defined]
            if request.open_only:
                q = q.where(Ord.status.in_(convert.OPEN_STATUSES))  # type: ignore[attr-defined]
            if since is not None:
                q = q.where(Ord.create_time >= since)
            if until is not None:
                q = q.where(Ord.create_time < until)
            if _mode(request.mode):
                q = q.where(Ord.mode == _mode(request.mode))
            if not request.include_external:
                q = q.where(~Ord.external)  # type: ignore[arg-type]
            q = q.order_by(Ord.create_time.desc(), Ord.id).offset(start).limit(size + 1)  # type: ignore[attr-defined]
            return list(session.exec(q).all())

        rows = await self.deps.store.run(query)
        return pb.ListOrdersResponse(
            orders=[convert.order_pb(r) for r in rows[:size]],
            next_page_token=paging.next_offset_token(request, start, size, len(rows)),
        )

    async def _order(self, tenant: str, **key: str) -> models.Order:
        def find(session: Session) -> models.Order | None:
            q = select(Ord).where(Ord.tenant_id == tenant)
            for name, value in key.items():
                q = q.where(getattr(Ord, name) == value)
            return session.exec(q).first()

        row = await self.deps.store.run(find)
        if row is None:
            raise NotFound("no such order in your account")
        return row

    async def GetOrder(self, request: pb.GetOrderRequest, context: Any) -> pb.GetOrderResponse:
        tenant = self.caller().tenant_id
        which = request.WhichOneof("key")
        if which is None or not getattr(request, which):
            raise InvalidArgument("give one of id, order_link_id or exchange_order_id", field="key")
        column = {"id": "id", "order_link_id": "order_link_id", "exchange_order_id": "exchange_order_id"}[
            which
        ]
        return pb.GetOrderResponse(
            order=convert.order_pb(await self._order(tenant, **{column: getattr(request, which)}))
        )

    async def _client(self, tenant: str, mode: str = "LIVE") -> AccountClient:
        accounts = self.deps.paper if mode == "PAPER" else self.deps.accounts
        if accounts is None:
            raise Unavailable("paper trading is not available")
        try:
            client = await accounts.ensure_ready(tenant)
        except ExchangeError as error:
            raise Unavailable(f"the exchange cannot be reached: {error.message}") from None
        if client is None:
            raise FailedPrecondition("no exchange credentials are stored for your account")
        return client

    async def CancelOrder(self, request: pb.CancelOrderRequest, context: Any) -> pb.CancelOrderResponse:
        tenant = self.caller(Role.TRADER).tenant_id
        if not request.order_id:
            raise InvalidArgument("is required", field="order_id")
        order = await self._order(tenant, id=request.order_id)
        if order.status in convert.FINAL_STATUSES:
            raise FailedPrecondition(f"the order is already {order.status}")
        if not order.exchange_order_id:
            raise FailedPrecondition("the order has not reached the exchange yet; try again in a moment")
        client = await self._client(tenant, order.mode)
        try:
            await client.call(
                "cancel_order", category=order.category, symbol=order.symbol, orderId=order.exchange_order_id
            )
        except ExchangeError as error:
            if error.code != ORDER_NOT_EXISTS and not error.unknown:
                raise FailedPrecondition(f"the exchange refused the cancellation: {error.message}") from None
        row = await self._refresh(client, order)
        if row.status not in convert.FINAL_STATUSES:
            raise Unavailable("the cancellation is not confirmed yet; call GetOrder to follow it")
        return pb.CancelOrderResponse(order=convert.order_pb(row))

    async def _refresh(self, client: AccountClient, order: models.Order) -> models.Order:
        """The order as the exchange has it now, stored."""
        try:
            found = None
            for method in ("get_open_orders", "get_order_history"):
                result = await client.call(
                    method, category=order.category, symbol=order.symbol, orderId=order.exchange_order_id
                )
                found = next(
                    (r for r in result.get("list", []) if r.get("orderId") == order.exchange_order_id), None
                )
                if found is not None:
                    break
        except ExchangeError as error:
            raise Unavailable(f"the exchange cannot be reached: {error.message}") from None
        if found is None:
            return order
        changes = Changes()
        row = await self.deps.store.run(
            lambda s: account_book.apply_order(
                s, order.tenant_id, order.mode, {**found, "category": order.category}, changes
            )
        )
        await self.deps.events.changes(changes)
        return row

    async def ListFills(self, request: pb.ListFillsRequest, context: Any) -> pb.ListFillsResponse:
        tenant = self.caller().tenant_id
        size = paging.page_size(request.page_size, default=100, maximum=1000)
        start = paging.offset(request)
        since, until = time_range(request.time_range)

        def query(session: Session) -> list[models.Fill]:
            q = select(F).where(F.tenant_id == tenant)
            if request.bot_id:
                q = q.where(F.bot_id == request.bot_id)
            if request.order_id:
                q = q.where(F.order_id == request.order_id)
            if request.symbol:
                q = q.where(F.symbol == request.symbol)
            if since is not None:
                q = q.where(F.exec_time >= since)
            if until is not None:
                q = q.where(F.exec_time < until)
            if _mode(request.mode):
                q = q.where(F.mode == _mode(request.mode))
            q = q.order_by(F.exec_time.desc(), F.seq.desc()).offset(start).limit(size + 1)  # type: ignore[attr-defined]
            return list(session.exec(q).all())

        rows = await self.deps.store.run(query)
        return pb.ListFillsResponse(
            fills=[convert.fill_pb(r) for r in rows[:size]],
            next_page_token=paging.next_offset_token(request, start, size, len(rows)),
        )

    async def ListPositions(self, request: pb.ListPositionsRequest, context: Any) -> pb.ListPositionsResponse:
        tenant = self.tenant_of(request.tenant_id)
        size = paging.page_size(request.page_size, default=100, maximum=500)
        start = paging.offset(request)

        def query(session: Session) -> list[models.Position]:
            q = select(P).where(P.tenant_id == tenant, P.size != 0)
            if request.bot_id:
                q = q.where(P.bot_id == request.bot_id)
            if request.symbol:
                q = q.where(P.symbol == request.symbol)
            if _mode(request.mode):
                q = q.where(P.mode == _mode(request.mode))
            q = q.order_by(P.symbol, P.category).offset(start).limit(size + 1)
            return list(session.exec(q).all())

        rows = await self.deps.store.run(query)
        return pb.ListPositionsResponse(
            positions=[convert.position_pb(r) for r in rows[:size]],
            next_page_token=paging.next_offset_token(request, start, size, len(rows)),
        )

    async def ClosePosition(self, request: pb.ClosePositionRequest, context: Any) -> pb.ClosePositionResponse:
        tenant = self.caller(Role.TRADER).tenant_id
        category = convert.CATEGORY_NAME.get(request.category)
        if category is None:
            raise InvalidArgument("must be SPOT or LINEAR", field="category")
        if not request.symbol:
            raise InvalidArgument("is required", field="symbol")
        mode = CLOSABLE_MODES.get(request.mode)
        if mode is None:
            raise InvalidArgument("must be LIVE or PAPER", field="mode")
        if request.request_id and not LINK_ID.match(request.request_id):
            raise InvalidArgument("must be 1-36 characters of A-Z a-z 0-9 _ -", field="request_id")
        link = request.request_id or closing_link("close")
        existing = await self.deps.store.run(lambda s: account_book.find_order(s, tenant, mode, "", link))
        if existing is not None:
            if existing.status != "PendingSubmit":
                return pb.ClosePositionResponse(order=convert.order_pb(existing))
            # The first request's outcome was not known: follow that order, never send a second one.
            closing = await self.deps.closer.follow(await self._client(tenant, mode), existing)
            return self._closed(closing)
        position = await self.deps.store.run(lambda s: s.get(P, (tenant, category, request.symbol, mode)))
        if position is None or not position.size:
            raise NotFound(f"no open {request.symbol} position in your account")
        qty = position.size
        if request.qty:
            try:
                wanted = Decimal(request.qty)
            except InvalidOperation:
                raise InvalidArgument(f"{request.qty!r} is not a decimal number", field="qty") from None
            if not wanted.is_finite() or wanted <= 0:
                raise InvalidArgument("must be positive", field="qty")
            rules = await self.deps.instruments.get(category, request.symbol)
            qty = min(rules.round_qty(wanted) if rules else wanted, position.size)
            if qty <= 0:
                raise InvalidArgument(
                    f"{request.qty} rounds down to nothing at the instrument's qty step", field="qty"
                )
        client = await self._client(tenant, mode)  # PAPER: the tenant's paper account on the simulator
        return self._closed(await self.deps.closer.close(client, position, qty, link, request.bot_id))

    @staticmethod
    def _closed(closing: Closing) -> pb.ClosePositionResponse:
        if closing.placement.accepted:
            return pb.ClosePositionResponse(order=convert.order_pb(closing.order))
        if closing.placement.rejected:
            raise FailedPrecondition(f"the exchange rejected the closing order: {closing.reason}")
        raise Unavailable(
            "the closing order's outcome is not known yet; repeat with request_id"
            f" {closing.order.order_link_id} to follow it"
        )
