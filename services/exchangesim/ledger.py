"""Balances, margin and positions: what a fill or a funding payment does to an account."""

from __future__ import annotations

from decimal import Decimal

from services.exchangesim.accounts import ZERO, Account, Order, Position
from services.exchangesim.instruments import Instrument

SETTLE = "USDT"
DEFAULT_LEVERAGE = Decimal(10)


def position(account: Account, symbol: str, now_ms: int) -> Position:
    pos = account.positions.get(symbol)
    if pos is None:
        pos = Position(symbol, account.leverage.get(symbol, DEFAULT_LEVERAGE), now_ms, updated_ms=now_ms)
        account.positions[symbol] = pos
    return pos


def leverage_of(account: Account, symbol: str) -> Decimal:
    pos = account.positions.get(symbol)
    return pos.leverage if pos else account.leverage.get(symbol, DEFAULT_LEVERAGE)


def unrealised(pos: Position, mark: Decimal) -> Decimal:
    return (mark - pos.avg_price) * pos.size if pos.size else ZERO


def position_im(pos: Position) -> Decimal:
    return abs(pos.size) * pos.avg_price / pos.leverage


def order_im(order: Order, leverage: Decimal) -> Decimal:
    if order.category != "linear" or order.reduce_only or not order.is_open:
        return ZERO
    return order.leaves_qty * order.price / leverage


def linear_usage(account: Account, marks: dict[str, Decimal]) -> tuple[Decimal, Decimal, Decimal]:
    """(unrealised PnL, position IM, order IM) over the account's linear book."""
    upl = pim = oim = ZERO
    for pos in account.positions.values():
        upl += unrealised(pos, marks.get(pos.symbol, pos.avg_price))
        pim += position_im(pos)
    for order in account.orders.values():
        if order.category == "linear" and order.is_open:
            oim += order_im(order, leverage_of(account, order.symbol))
    return upl, pim, oim


def spot_locked(account: Account, coin: str, base_of: dict[str, str]) -> Decimal:
    total = ZERO
    for order in account.orders.values():
        if order.category != "spot" or not order.is_open:
            continue
        coin_held = SETTLE if order.side == "Buy" else base_of.get(order.symbol, "")
        if coin_held == coin:
            total += order.locked
    return total


def available(account: Account, coin: str, marks: dict[str, Decimal], base_of: dict[str, str]) -> Decimal:
    """What a new order may use: wallet + unrealised PnL − margins − spot holds (USDT), or free coin."""
    wallet = account.coins.get(coin, ZERO)
    held = spot_locked(account, coin, base_of)
    if coin != SETTLE:
        return wallet - held
    upl, pim, oim = linear_usage(account, marks)
    return wallet + min(upl, ZERO) - pim - oim - held


def apply_linear_fill(
    account: Account,
    inst: Instrument,
    order: Order,
    *,
    price: Decimal,
    qty: Decimal,
    fee: Decimal,
    now_ms: int,
) -> tuple[Position, Decimal]:
    """Move the position by one fill; returns (position, closed size). Fee and PnL hit the wallet."""
    pos = position(account, inst.symbol, now_ms)
    signed = qty if order.side == "Buy" else -qty
    closed = ZERO
    pnl = ZERO
    if pos.size and (pos.size > 0) != (signed > 0):
        closed = min(abs(signed), abs(pos.size))
        direction = 1 if pos.size > 0 else -1
        pnl = (price - pos.avg_price) * closed * direction
        pos.size += closed * direction * -1
        signed += closed if signed < 0 else -closed
        if pos.size == 0:
            pos.avg_price = ZERO
            pos.take_profit = pos.stop_loss = ZERO
    if signed:
        if pos.size == 0:
            pos.cur_realised = ZERO
        total = abs(pos.size) + abs(signed)
        pos.avg_price = (pos.avg_price * abs(pos.size) + price * abs(signed)) / total
        pos.size += signed
        if order.take_profit:
            pos.take_profit = order.take_profit
        if order.stop_loss:
            pos.stop_loss = order.stop_loss
    realised = pnl - fee
    pos.cur_realised += realised
    pos.cum_realised += realised
    pos.updated_ms = now_ms
    account.coins[SETTLE] = account.coins.get(SETTLE, ZERO) + realised
    account.cum_realised[SETTLE] = account.cum_realised.get(SETTLE, ZERO) + realised
    return pos, closed


def apply_spot_fill(
    account: Account, inst: Instrument, order: Order, *, price: Decimal, qty: Decimal, fee: Decimal
) -> None:
    """Swap coins for one spot fill. Buys pay the fee in the base coin, sells in the quote coin."""
    value = price * qty
    coins = account.coins
    if order.side == "Buy":
        coins[inst.quote_coin] = coins.get(inst.quote_coin, ZERO) - value
        coins[inst.base_coin] = coins.get(inst.base_coin, ZERO) + qty - fee
    else:
        coins[inst.base_coin] = coins.get(inst.base_coin, ZERO) - qty
        coins[inst.quote_coin] = coins.get(inst.quote_coin, ZERO) + value - fee


def apply_funding(account: Account, pos: Position, mark: Decimal, rate: Decimal, now_ms: int) -> Decimal:
    """Charge (or pay) funding on a position; returns the fee (positive = paid by the account)."""
    fee = pos.size * mark * rate
    account.coins[SETTLE] = account.coins.get(SETTLE, ZERO) - fee
    account.cum_realised[SETTLE] = account.cum_realised.get(SETTLE, ZERO) - fee
    pos.cur_realised -= fee
    pos.cum_realised -= fee
    pos.updated_ms = now_ms
    return fee
