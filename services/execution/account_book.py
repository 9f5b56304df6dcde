"""Applying what the exchange reports (orders, executions, positions, wallet) to the stored account.

The private stream and reconciliation both land here, so a message seen twice, late or out of order
changes nothing it should not: fills are keyed by execId, an order never moves back to an earlier
state, and the position book is rebuilt from the fills in exchange sequence whenever a fill arrives
behind one already applied.

Realised PnL is the platform's own book: average entry price, closed quantity times the price move,
before fees (Bybit's and the simulator's convention). Funding executions are stored apart and are
never fills.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlmodel import Session, col, select

from services.execution import convert, models
from services.execution.convert import dec, opt_dec

log = logging.getLogger("tradebot.execution.book")
LINK_PREFIX = "tb-"  # orderLinkIds of orders the platform places (orders.link_id_for_signal)
ZERO = Decimal(0)
# Orders Bybit creates on the position's behalf: its stop-loss, take-profit or trailing stop firing.
PROTECTIVE_CREATE_TYPES = (
    "CreateByStopLoss",
    "CreateByTakeProfit",
    "CreateByTrailingStop",
    "CreateByPartialStopLoss",
    "CreateByPartialTakeProfit",
)


@dataclass
class Changes:
    """Rows changed in one transaction, to publish once it is committed."""

    orders: list[models.Order] = field(default_factory=list)
    fills: list[models.Fill] = field(default_factory=list)
    positions: list[models.Position] = field(default_factory=list)
    wallets: list[models.WalletSnapshot] = field(default_factory=list)
    risk: list[models.RiskEventRow] = field(default_factory=list)

    def merge(self, other: Changes) -> None:
        for name in ("orders", "fills", "positions", "wallets", "risk"):
            getattr(self, name).extend(getattr(other, name))


def find_order(
    session: Session, tenant_id: str, mode: str, exchange_order_id: str, link_id: str
) -> models.Order | None:
    Ord = models.Order
    if exchange_order_id:
        row = session.exec(
            select(Ord).where(
                Ord.tenant_id == tenant_id, Ord.mode == mode, Ord.exchange_order_id == exchange_order_id
            )
        ).first()
        if row is not None:
            return row
    if link_id:
        return session.exec(
            select(Ord).where(Ord.tenant_id == tenant_id, Ord.mode == mode, Ord.order_link_id == link_id)
        ).first()
    return None


def bot_of_symbol(session: Session, tenant_id: str, mode: str, category: str, symbol: str) -> str:
    """The tenant's bot of this mode trading `symbol` (Bybit keeps one position per symbol), or ""."""
    B = models.Bot
    bot = session.exec(
        select(B).where(
            B.tenant_id == tenant_id,
            B.symbol == symbol,
            B.category == category,
            B.mode == mode,
            col(B.deleted).is_(False),
        )
    ).first()
    return bot.bot_id if bot is not None else ""


def _new_order_from_exchange(
    session: Session, tenant_id: str, mode: str, data: dict[str, Any]
) -> models.Order:
    category = str(data.get("category") or "linear")
    symbol = str(data.get("symbol", ""))
    create_type = str(data.get("createType", ""))
    protective = create_type in PROTECTIVE_CREATE_TYPES or str(data.get("stopOrderType", "")) in (
        "StopLoss",
        "TakeProfit",
    )
    when = convert.ms_time(data.get("createdTime") or data.get("execTime") or 0)
    row = models.Order(
        id=str(uuid.uuid4()),
        tenant_id=tenant_id,
        bot_id=bot_of_symbol(session, tenant_id, mode, category, symbol) if protective else "",
        exchange_order_id=str(data.get("orderId", "")),
        order_link_id=str(data.get("orderLinkId", "")),
        category=category,
        symbol=symbol,
        side=str(data.get("side", "")),
        order_type=str(data.get("orderType", "Market")),
        time_in_force=str(data.get("timeInForce", "")),
        qty=dec(data.get("qty") or data.get("orderQty")),
        status="New",
        # Ours if Bybit made it for our position, or if it carries our orderLinkId prefix (an order of
        # ours the exchange reported before we stored its reply).
        external=not protective and not str(data.get("orderLinkId", "")).startswith(LINK_PREFIX),
        create_type=create_type,
        mode=mode,
        create_time=when,
        update_time=when,
    )
    session.add(row)
    return row


def apply_order(
    session: Session, tenant_id: str, mode: str, data: dict[str, Any], changes: Changes
) -> models.Order:
    oid, link = str(data.get("orderId", "")), str(data.get("orderLinkId", ""))
    row = find_order(session, tenant_id, mode, oid, link)
    if row is None:
        row = _new_order_from_exchange(session, tenant_id, mode, data)
    status = str(data.get("orderStatus") or row.status)
    updated_ms = int(str(data.get("updatedTime") or 0))
    if (
        convert.STATUS_RANK.get(status, 1) < convert.STATUS_RANK.get(row.status, 0)
        or updated_ms < row.exchange_update_ms
    ):
        return row  # a late message: the order is already further along
    row.exchange_order_id = oid or row.exchange_order_id
    row.status = status
    row.reject_reason = str(data.get("rejectReason") or "") if status == "Rejected" else row.reject_reason
    row.cum_exec_qty = dec(data.get("cumExecQty"), row.cum_exec_qty)
    row.cum_exec_value = dec(data.get("cumExecValue"), row.cum_exec_value)
    row.cum_exec_fee = dec(data.get("cumExecFee"), row.cum_exec_fee)
    row.fee_currency = str(data.get("feeCurrency") or row.fee_currency)
    row.avg_price = opt_dec(data.get("avgPrice")) or row.avg_price
    row.leaves_qty = dec(data.get("leavesQty"), row.leaves_qty)
    if data.get("qty"):
        row.qty = dec(data.get("qty"))
    row.take_profit = opt_dec(data.get("takeProfit")) or row.take_profit
    row.stop_loss = opt_dec(data.get("stopLoss")) or row.stop_loss
    row.create_type = str(data.get("createType") or row.create_type)
    row.exchange_update_ms = updated_ms
    row.update_time = convert.ms_time(updated_ms) if updated_ms else convert.now()
    row.revision += 1
    session.add(row)
    changes.orders.append(row)
    return row


def _position_row(session: Session, tenant_id: str, mode: str, category: str, symbol: str) -> models.Position:
    row = session.get(models.Position, (tenant_id, category, symbol, mode))
    if row is None:
        row = models.Position(
            tenant_id=tenant_id, category=category, symbol=symbol, mode=mode, update_time=convert.now()
        )
        row.bot_id = bot_of_symbol(session, tenant_id, mode, category, symbol)
        session.add(row)
    return row


def book_fill(pos: models.Position, side: str, qty: Decimal, price: Decimal) -> tuple[Decimal, Decimal]:
    """Move the book by one fill; returns (closed quantity, realised PnL before fees)."""
    signed = qty if side == "Buy" else -qty
    closed = pnl = ZERO
    size, avg = pos.book_size, pos.book_avg_price
    if size and (size > 0) != (signed > 0):
        closed = min(abs(signed), abs(size))
        direction = 1 if size > 0 else -1
        pnl = (price - avg) * closed * direction
        size -= closed * direction
        signed += closed if signed < 0 else -closed
        if size == 0:
            avg = ZERO
    if signed:
        total = abs(size) + abs(signed)
        avg = (avg * abs(size) + price * abs(signed)) / total
        size += signed
    pos.book_size, pos.book_avg_price = size, avg
    pos.book_realized_pnl += pnl
    return closed, pnl


def _rebuild_book(session: Session, pos: models.Position) -> None:
    """Replay every fill of the symbol in exchange sequence (a fill arrived behind a later one)."""
    F = models.Fill
    pos.book_size = pos.book_avg_price = pos.book_realized_pnl = ZERO
    fills = session.exec(
        select(F)
        .where(
            F.tenant_id == pos.tenant_id,
            F.mode == pos.mode,
            F.category == pos.category,
            F.symbol == pos.symbol,
        )
        .order_by(F.seq)  # type: ignore[arg-type]
    ).all()
    for fill in fills:
        _, pnl = book_fill(pos, fill.side, fill.exec_qty, fill.exec_price)
        if fill.realized_pnl != pnl:
            fill.realized_pnl = pnl
            session.add(fill)
        pos.book_last_seq = fill.seq


def apply_execution(
    session: Session, tenant_id: str, mode: str, data: dict[str, Any], changes: Changes
) -> None:
    exec_type = str(data.get("execType", "Trade"))
    exec_id = str(data.get("execId", ""))
    when = convert.ms_time(data.get("execTime"))
    if exec_type == "Funding":
        if session.get(models.Funding, (tenant_id, exec_id)) is None:
            # Bybit's execFee is what the account paid: a positive fee is a loss.
            session.add(
                models.Funding(
                    tenant_id=tenant_id,
                    exec_id=exec_id,
                    symbol=str(data.get("symbol", "")),
                    amount=-dec(data.get("execFee")),
                    exec_time=when,
                    mode=mode,
                )
            )
        return
    if exec_type != "Trade":
        log.info("execution of type %s not counted as a fill", exec_type, extra={"tenant_id": tenant_id})
        return
    if session.get(models.Fill, (tenant_id, exec_id)) is not None:
        return
    category = str(data.get("category") or "linear")
    symbol = str(data.get("symbol", ""))
    order = find_order(
        session, tenant_id, mode, str(data.get("orderId", "")), str(data.get("orderLinkId", ""))
    )
    if order is None:
        order = _new_order_from_exchange(session, tenant_id, mode, {**data, "category": category})
        changes.orders.append(order)
    pos = _position_row(session, tenant_id, mode, category, symbol)
    seq = int(str(data.get("seq") or 0))
    fill = models.Fill(
        tenant_id=tenant_id,
        exec_id=exec_id,
        bot_id=order.bot_id,
        order_id=order.id,
        exchange_order_id=str(data.get("orderId", "")),
        order_link_id=str(data.get("orderLinkId", "")),
        category=category,
        symbol=symbol,
        side=str(data.get("side", "")),
        exec_price=dec(data.get("execPrice")),
        exec_qty=dec(data.get("execQty")),
        exec_value=dec(data.get("execValue")),
        exec_fee=dec(data.get("execFee")),
        fee_rate=dec(data.get("feeRate")),
        fee_currency=str(data.get("feeCurrency") or order.fee_currency or "USDT"),
        is_maker=bool(data.get("isMaker", False)),
        closed_size=dec(data.get("closedSize")),
        exec_time=when,
        mode=mode,
        external=order.external,
        seq=seq,
    )
    session.add(fill)
    if seq >= pos.book_last_seq:
        _, fill.realized_pnl = book_fill(pos, fill.side, fill.exec_qty, fill.exec_price)
        pos.book_last_seq = seq
    else:
        session.flush()
        _rebuild_book(session, pos)
    pos.update_time = convert.now()
    changes.fills.append(fill)
    if category == "spot":  # no exchange position: the book is the position
        pos.size, pos.entry_price = abs(pos.book_size), pos.book_avg_price
        pos.side = "" if not pos.book_size else ("Buy" if pos.book_size > 0 else "Sell")
        changes.positions.append(pos)
    # A linear position is published from the exchange's position message (apply_position), which
    # follows every execution that moves it: published here, an entry's position went out flat
    # (the exchange's size not known yet) before it went out open (docs/decisions/0057).


def apply_position(
    session: Session, tenant_id: str, mode: str, data: dict[str, Any], changes: Changes
) -> models.Position:
    category = str(data.get("category") or "linear")
    pos = _position_row(session, tenant_id, mode, category, str(data.get("symbol", "")))
    size = dec(data.get("size"))
    if size and not pos.size:
        pos.open_time = convert.ms_time(data.get("createdTime")) if data.get("createdTime") else convert.now()
    pos.size = size
    pos.side = str(data.get("side") or "") if size else ""
    pos.entry_price = dec(data.get("entryPrice") or data.get("avgPrice"))
    pos.mark_price = dec(data.get("markPrice"), pos.mark_price)
    pos.leverage = dec(data.get("leverage"), pos.leverage)
    pos.position_value = dec(data.get("positionValue"))
    pos.unrealized_pnl = dec(data.get("unrealisedPnl"))
    pos.take_profit = opt_dec(data.get("takeProfit"))
    pos.stop_loss = opt_dec(data.get("stopLoss"))
    pos.liq_price = opt_dec(data.get("liqPrice"))
    pos.position_idx = int(str(data.get("positionIdx") or 0))
    if not pos.bot_id:
        pos.bot_id = bot_of_symbol(session, tenant_id, mode, category, pos.symbol)
    pos.update_time = convert.now()
    session.add(pos)
    changes.positions.append(pos)
    return pos


def apply_wallet(
    session: Session, tenant_id: str, mode: str, data: dict[str, Any], changes: Changes
) -> models.WalletSnapshot:
    row = models.WalletSnapshot(
        tenant_id=tenant_id,
        mode=mode,
        time=convert.now(),
        total_equity=dec(data.get("totalEquity")),
        total_wallet_balance=dec(data.get("totalWalletBalance")),
        total_available_balance=dec(data.get("totalAvailableBalance")),
        total_initial_margin=dec(data.get("totalInitialMargin")),
        total_maintenance_margin=dec(data.get("totalMaintenanceMargin")),
        total_perp_upl=dec(data.get("totalPerpUPL") or data.get("totalPerpUpl")),
        coins=[
            {
                "coin": str(c.get("coin", "")),
                "equity": convert.text(dec(c.get("equity"))),
                "wallet_balance": convert.text(dec(c.get("walletBalance"))),
                "available_balance": convert.text(dec(c.get("availableToWithdraw"))),
                "unrealized_pnl": convert.text(dec(c.get("unrealisedPnl"))),
                "usd_value": convert.text(dec(c.get("usdValue"))),
            }
            for c in data.get("coin", [])
        ],
    )
    session.add(row)
    changes.wallets.append(row)
    return row
