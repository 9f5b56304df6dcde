"""Between Bybit's wire values, our rows and the protobuf messages (decimal strings, enums, times)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from google.protobuf.timestamp_pb2 import Timestamp
from tradebot.common.v1 import common_pb2 as common
from tradebot.execution.v1 import events_pb2 as ev
from tradebot.execution.v1 import execution_service_pb2 as pb

from services.execution import models

ORDER_STATUS = {
    "PendingSubmit": ev.ORDER_STATUS_PENDING_SUBMIT,
    "Created": ev.ORDER_STATUS_CREATED,
    "New": ev.ORDER_STATUS_NEW,
    "PartiallyFilled": ev.ORDER_STATUS_PARTIALLY_FILLED,
    "Filled": ev.ORDER_STATUS_FILLED,
    "Cancelled": ev.ORDER_STATUS_CANCELLED,
    "PartiallyFilledCanceled": ev.ORDER_STATUS_PARTIALLY_FILLED_CANCELED,
    "Rejected": ev.ORDER_STATUS_REJECTED,
    "Untriggered": ev.ORDER_STATUS_UNTRIGGERED,
    "Triggered": ev.ORDER_STATUS_TRIGGERED,
    "Deactivated": ev.ORDER_STATUS_DEACTIVATED,
}
STATUS_NAME = {value: name for name, value in ORDER_STATUS.items()}
OPEN_STATUSES = ("PendingSubmit", "Created", "New", "PartiallyFilled", "Untriggered")
FINAL_STATUSES = tuple(name for name in ORDER_STATUS if name not in OPEN_STATUSES)
# How far an order has come; a stream message never moves an order back (messages can arrive late).
STATUS_RANK = {
    name: (0 if name == "PendingSubmit" else 1 if name in OPEN_STATUSES else 2) for name in ORDER_STATUS
}

CATEGORY = {"linear": common.CATEGORY_LINEAR, "spot": common.CATEGORY_SPOT}
CATEGORY_NAME = {value: name for name, value in CATEGORY.items()}
SIDE = {"Buy": common.SIDE_BUY, "Sell": common.SIDE_SELL}
SIDE_NAME = {value: name for name, value in SIDE.items()}
MODE = {"LIVE": common.TRADING_MODE_LIVE, "PAPER": common.TRADING_MODE_PAPER}
MODE_NAME = {value: name for name, value in MODE.items()}
ORDER_TYPE = {"Market": ev.ORDER_TYPE_MARKET, "Limit": ev.ORDER_TYPE_LIMIT}
TIF = {
    "GTC": ev.TIME_IN_FORCE_GTC,
    "IOC": ev.TIME_IN_FORCE_IOC,
    "FOK": ev.TIME_IN_FORCE_FOK,
    "PostOnly": ev.TIME_IN_FORCE_POST_ONLY,
}
ZERO = Decimal(0)


def dec(value: object, default: Decimal = ZERO) -> Decimal:
    """Bybit's decimal strings ("" and missing mean zero) as Decimal."""
    if value is None or value == "":
        return default
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return default


def opt_dec(value: object) -> Decimal | None:
    """Optional prices: "", "0" and missing mean "none"."""
    parsed = dec(value)
    return parsed if parsed else None


def text(value: Decimal | None) -> str:
    """Plain decimal notation, no exponent, no trailing zeros; "" for None."""
    if value is None:
        return ""
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


def ms_time(ms: object) -> datetime:
    return datetime.fromtimestamp(int(str(ms or 0)) / 1000, UTC)


def now() -> datetime:
    return datetime.now(UTC)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def stamp(when: datetime | None) -> Timestamp | None:
    """`Timestamp.FromDatetime` without its pure-Python calendar work (a naive time is UTC, as there);
    it was a quarter of building an order event."""
    if when is None:
        return None
    since = (when if when.tzinfo is not None else when.replace(tzinfo=UTC)) - EPOCH
    return Timestamp(seconds=since.days * 86400 + since.seconds, nanos=since.microseconds * 1000)


def order_pb(row: models.Order) -> ev.Order:
    return ev.Order(
        id=row.id,
        tenant_id=row.tenant_id,
        bot_id=row.bot_id,
        signal_id=row.signal_id,
        exchange_order_id=row.exchange_order_id,
        order_link_id=row.order_link_id,
        category=CATEGORY.get(row.category, common.CATEGORY_UNSPECIFIED),
        symbol=row.symbol,
        side=SIDE.get(row.side, common.SIDE_UNSPECIFIED),
        order_type=ORDER_TYPE.get(row.order_type, ev.ORDER_TYPE_UNSPECIFIED),
        time_in_force=TIF.get(row.time_in_force, ev.TIME_IN_FORCE_UNSPECIFIED),
        qty=text(row.qty),
        price=text(row.price),
        reduce_only=row.reduce_only,
        take_profit=text(row.take_profit),
        stop_loss=text(row.stop_loss),
        status=ORDER_STATUS.get(row.status, ev.ORDER_STATUS_UNSPECIFIED),
        reject_reason=row.reject_reason,
        cum_exec_qty=text(row.cum_exec_qty),
        cum_exec_value=text(row.cum_exec_value),
        cum_exec_fee=text(row.cum_exec_fee),
        fee_currency=row.fee_currency,
        avg_price=text(row.avg_price),
        leaves_qty=text(row.leaves_qty),
        mode=MODE.get(row.mode, common.TRADING_MODE_UNSPECIFIED),
        external=row.external,
        position_idx=row.position_idx,
        create_time=stamp(row.create_time),
        update_time=stamp(row.update_time),
    )


def fill_pb(row: models.Fill) -> ev.Fill:
    return ev.Fill(
        exec_id=row.exec_id,
        tenant_id=row.tenant_id,
        bot_id=row.bot_id,
        order_id=row.order_id,
        order_link_id=row.order_link_id,
        category=CATEGORY.get(row.category, common.CATEGORY_UNSPECIFIED),
        symbol=row.symbol,
        side=SIDE.get(row.side, common.SIDE_UNSPECIFIED),
        exec_price=text(row.exec_price),
        exec_qty=text(row.exec_qty),
        exec_value=text(row.exec_value),
        exec_fee=text(row.exec_fee),
        fee_rate=text(row.fee_rate),
        is_maker=row.is_maker,
        closed_size=text(row.closed_size),
        realized_pnl=text(row.realized_pnl),
        exec_time=stamp(row.exec_time),
        mode=MODE.get(row.mode, common.TRADING_MODE_UNSPECIFIED),
        external=row.external,
        seq=row.seq,
    )


def position_pb(row: models.Position) -> ev.Position:
    return ev.Position(
        tenant_id=row.tenant_id,
        bot_id=row.bot_id,
        category=CATEGORY.get(row.category, common.CATEGORY_UNSPECIFIED),
        symbol=row.symbol,
        side=SIDE.get(row.side, common.SIDE_UNSPECIFIED) if row.size else common.SIDE_UNSPECIFIED,
        size=text(row.size),
        entry_price=text(row.entry_price),
        mark_price=text(row.mark_price),
        leverage=text(row.leverage),
        position_value=text(row.position_value),
        unrealized_pnl=text(row.unrealized_pnl),
        realized_pnl=text(row.book_realized_pnl),
        take_profit=text(row.take_profit),
        stop_loss=text(row.stop_loss),
        liq_price=text(row.liq_price),
        position_idx=row.position_idx,
        mode=MODE.get(row.mode, common.TRADING_MODE_UNSPECIFIED),
        open_time=stamp(row.open_time),
        update_time=stamp(row.update_time),
    )


def wallet_pb(row: models.WalletSnapshot) -> ev.WalletBalance:
    return ev.WalletBalance(
        tenant_id=row.tenant_id,
        mode=MODE.get(row.mode, common.TRADING_MODE_UNSPECIFIED),
        total_equity=text(row.total_equity),
        total_wallet_balance=text(row.total_wallet_balance),
        total_available_balance=text(row.total_available_balance),
        total_initial_margin=text(row.total_initial_margin),
        total_maintenance_margin=text(row.total_maintenance_margin),
        total_perp_upl=text(row.total_perp_upl),
        coins=[
            ev.CoinBalance(
                coin=c.get("coin", ""),
                equity=c.get("equity", "0"),
                wallet_balance=c.get("wallet_balance", "0"),
                available_balance=c.get("available_balance", "0"),
                unrealized_pnl=c.get("unrealized_pnl", "0"),
                usd_value=c.get("usd_value", "0"),
            )
            for c in row.coins
        ],
        update_time=stamp(row.time),
    )


def kill_switch_pb(row: models.KillSwitchRow) -> pb.KillSwitch:
    return pb.KillSwitch(
        scope=pb.KillSwitchScope.Value(f"KILL_SWITCH_SCOPE_{row.scope}"),
        tenant_id=row.tenant_id,
        bot_id=row.bot_id,
        engaged=row.engaged,
        close_positions=row.close_positions,
        reason=row.reason,
        changed_by=row.changed_by,
        change_time=stamp(row.change_time),
    )


def risk_event_pb(row: models.RiskEventRow) -> ev.RiskEvent:
    return ev.RiskEvent(
        id=row.id,
        tenant_id=row.tenant_id,
        bot_id=row.bot_id,
        signal_id=row.signal_id,
        order_id=row.order_id,
        category=CATEGORY.get(row.category, common.CATEGORY_UNSPECIFIED),
        symbol=row.symbol,
        kind=ev.RiskEventKind.Value(row.kind),
        reason=ev.RiskReason.Value(row.reason),
        message=row.message,
        details=dict(row.details),
        mode=MODE.get(row.mode, common.TRADING_MODE_UNSPECIFIED),
        occur_time=stamp(row.occur_time),
    )
