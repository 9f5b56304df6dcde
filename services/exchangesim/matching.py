"""The matching engine: order entry, fills against the synthetic book, resting orders, TP/SL, funding.

Every accepted change is announced through `publish(uid, topic, items)`, which the private stream
turns into Bybit messages. A rejected request changes nothing.
"""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from services.exchangesim import errors, ledger
from services.exchangesim.accounts import ZERO, Account, Accounts, Execution, Order, Position
from services.exchangesim.errors import BybitError
from services.exchangesim.instruments import Catalog, Instrument, check_category, floor_to, fmt, parse_decimal
from services.exchangesim.market import FUNDING_MINUTES, Market

LINK_ID = re.compile(r"^[A-Za-z0-9_-]{1,36}$")
TIME_IN_FORCE = ("GTC", "IOC", "FOK", "PostOnly")
Publish = Callable[[int, str, list[Any]], None]


def _bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).lower() in ("true", "1")


def _optional_price(params: dict[str, Any], name: str) -> Decimal:
    raw = params.get(name)
    if raw in (None, ""):
        return ZERO
    return parse_decimal(name, raw)


class Engine:
    """Owns every account's trading state; called from REST handlers and the market clock."""

    def __init__(
        self,
        market: Market,
        catalog: Catalog,
        accounts: Accounts,
        seed: int,
        funding_rate: Decimal | None = None,
    ) -> None:
        self.market = market
        self.catalog = catalog
        self.accounts = accounts
        self.funding_rate = funding_rate
        self.publish: Publish = lambda uid, topic, items: None
        self._ids = random.Random(f"{seed}:ids")
        self._seq = 0
        self.resting: dict[str, list[tuple[Account, Order]]] = {}
        market.clock.listeners.insert(0, self.on_minute)

    # helpers ----------------------------------------------------------------------------
    def now_ms(self) -> int:
        return self.market.now_ms()

    def new_id(self) -> str:
        return str(uuid.UUID(int=self._ids.getrandbits(128), version=4))

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def marks(self) -> dict[str, Decimal]:
        return {s: self.market.price(s) for s in self.market.series}

    def base_of(self) -> dict[str, str]:
        return {i.symbol: i.base_coin for i in self.catalog.all("spot")}

    def available(self, account: Account, coin: str = ledger.SETTLE) -> Decimal:
        return ledger.available(account, coin, self.marks(), self.base_of())

    def find(self, account: Account, params: dict[str, Any]) -> Order:
        order_id, link_id = params.get("orderId"), params.get("orderLinkId")
        if not order_id and not link_id:
            raise errors.params("params error: orderId or orderLinkId is required")
        if not order_id:
            order_id = account.link_ids.get((params.get("category", ""), str(link_id)))
        order = account.orders.get(str(order_id)) if order_id else None
        if order is None or order.category != params.get("category") or not order.is_open:
            raise BybitError(errors.ORDER_NOT_EXISTS)
        if params.get("symbol") and order.symbol != params.get("symbol"):
            raise BybitError(errors.ORDER_NOT_EXISTS)
        return order

    # order entry ------------------------------------------------------------------------
    def place(self, account: Account, params: dict[str, Any]) -> Order:
        """Validate and accept an order, then run its taker part at once. Raises BybitError."""
        category = str(params.get("category", ""))
        check_category(category)
        inst = self.catalog.get(category, str(params.get("symbol", "")))
        side = params.get("side")
        if side not in ("Buy", "Sell"):
            raise errors.params(f"params error: side invalid, expected Buy or Sell, got {side!r}")
        order_type = params.get("orderType")
        if order_type not in ("Market", "Limit"):
            raise errors.params(
                f"params error: orderType invalid, expected Market or Limit, got {order_type!r}"
            )
        if "qty" not in params:
            raise errors.params("params error: qty is required")
        qty = parse_decimal("qty", params["qty"])
        tif = str(params.get("timeInForce") or ("IOC" if order_type == "Market" else "GTC"))
        if tif not in TIME_IN_FORCE:
            raise errors.params(
                f"params error: timeInForce invalid, expected one of {', '.join(TIME_IN_FORCE)}"
            )
        if order_type == "Market":
            tif = "IOC"
        if int(params.get("positionIdx", 0) or 0) != 0:
            raise errors.params(
                "position idx not match position mode: the simulator runs one-way mode (positionIdx 0)"
            )
        link_id = str(params.get("orderLinkId") or "")
        if link_id and not LINK_ID.match(link_id):
            raise errors.params("params error: orderLinkId must be 1-36 characters of A-Z a-z 0-9 _ -")
        reduce_only = _bool(params.get("reduceOnly", False))
        if reduce_only and category == "spot":
            raise errors.params("params error: reduceOnly is not supported for spot")
        take_profit = _optional_price(params, "takeProfit")
        stop_loss = _optional_price(params, "stopLoss")
        if (take_profit or stop_loss) and category == "spot":
            raise errors.params(
                "params error: takeProfit/stopLoss on spot orders are not supported by the simulator"
            )
        market_unit = ""
        if category == "spot" and order_type == "Market":
            default_unit = "quoteCoin" if side == "Buy" else "baseCoin"
            market_unit = str(params.get("marketUnit") or default_unit)
            if market_unit not in ("baseCoin", "quoteCoin"):
                raise errors.params("params error: marketUnit must be baseCoin or quoteCoin")
        quote_amount = market_unit == "quoteCoin"
        inst.check_qty(qty, quote_amount=quote_amount)
        bid, ask = self.market.best(inst)
        if order_type == "Limit":
            if "price" not in params or params.get("price") in ("", None):
                raise errors.params("params error: price is required for Limit orders")
            price = parse_decimal("price", params["price"])
            inst.check_price("price", price)
        else:
            price = ZERO
        reference = price if order_type == "Limit" else (ask if side == "Buy" else bid)
        for name, value in (("takeProfit", take_profit), ("stopLoss", stop_loss)):
            if value:
                inst.check_price(name, value)
        self._check_tpsl(side, reference, take_profit, stop_loss)
        position = account.positions.get(inst.symbol)
        if reduce_only:
            size = position.size if position else ZERO
            if size == 0 or (size > 0) == (side == "Buy"):
                raise BybitError(
                    errors.REDUCE_ONLY,
                    "current position is zero or on the same side, cannot fix reduce-only order qty",
                )
            qty = min(qty, abs(size))
        else:
            notional = qty if quote_amount else qty * reference
            inst.check_notional(notional)
        if link_id and (category, link_id) in account.link_ids:
            code = errors.SPOT_DUPLICATE_LINK_ID if category == "spot" else errors.DUPLICATE_LINK_ID
            raise BybitError(code)
        self._check_funds(
            account, inst, side, qty, reference, reduce_only=reduce_only, quote_amount=quote_amount
        )

        now = self.now_ms()
        order = Order(
            order_id=self.new_id(),
            order_link_id=link_id,
            category=category,
            symbol=inst.symbol,
            side=side,
            order_type=order_type,
            qty=qty,
            price=price,
            time_in_force=tif,
            reduce_only=reduce_only,
            take_profit=take_profit,
            stop_loss=stop_loss,
            created_ms=now,
            updated_ms=now,
            last_price_on_created=self.market.price(inst.symbol),
            market_unit=market_unit,
            quote_left=qty if quote_amount else ZERO,
            fee_currency=inst.quote_coin if category == "linear" or side == "Sell" else inst.base_coin,
        )
        if quote_amount:
            order.qty = ZERO  # filled base quantity is only known after the fills
        account.orders[order.order_id] = order
        if link_id:
            account.link_ids[(category, link_id)] = order.order_id
        self._execute(account, inst, order)
        return order

    def _check_tpsl(self, side: str, reference: Decimal, take_profit: Decimal, stop_loss: Decimal) -> None:
        long = side == "Buy"
        if take_profit and (take_profit <= reference if long else take_profit >= reference):
            raise errors.params(
                f"TakeProfit:{fmt(take_profit)} set for {'Buy' if long else 'Sell'} position should be "
                f"{'higher' if long else 'lower'} than base_price:{fmt(reference)}"
            )
        if stop_loss and (stop_loss >= reference if long else stop_loss <= reference):
            raise errors.params(
                f"StopLoss:{fmt(stop_loss)} set for {'Buy' if long else 'Sell'} position should be "
                f"{'lower' if long else 'higher'} than base_price:{fmt(reference)}"
            )

    def _check_funds(
        self,
        account: Account,
        inst: Instrument,
        side: str,
        qty: Decimal,
        price: Decimal,
        *,
        reduce_only: bool,
        quote_amount: bool,
    ) -> None:
        if inst.category == "spot":
            if side == "Buy":
                need, coin = (qty if quote_amount else qty * price), inst.quote_coin
            else:
                need, coin = qty, inst.base_coin
            if need > self.available(account, coin):
                raise BybitError(errors.SPOT_INSUFFICIENT_BALANCE)
            return
        if reduce_only:
            return
        position = account.positions.get(inst.symbol)
        size = position.size if position else ZERO
        closing = min(qty, abs(size)) if size and (size > 0) != (side == "Buy") else ZERO
        leverage = ledger.leverage_of(account, inst.symbol)
        need = (qty - closing) * price / leverage + qty * price * inst.taker_fee
        if need > self.available(account):
            raise BybitError(
                errors.INSUFFICIENT_BALANCE,
                f"ab not enough for new order: needs {fmt(need.quantize(Decimal('0.0001')))} USDT "
                f"(margin at {fmt(leverage)}x plus fee), available "
                f"{fmt(self.available(account).quantize(Decimal('0.0001')))} USDT",
            )

    # execution ----------------------------------------------------------------------------
    def _execute(self, account: Account, inst: Instrument, order: Order) -> None:
        """Run the taker part of a new order, then rest, cancel or reject the remainder."""
        crosses = order.order_type == "Market" or (
            order.price >= self.market.best(inst)[1]
            if order.side == "Buy"
            else order.price <= self.market.best(inst)[0]
        )
        executions: list[Execution] = []
        if order.time_in_force == "PostOnly" and crosses:
            order.status, order.reject_reason = "Cancelled", "EC_PostOnlyWillTakeLiquidity"
            order.cancel_type = "CancelByUser"
        elif crosses:
            fills = self._take(inst, order)
            if order.time_in_force == "FOK" and sum((q for _, q in fills), ZERO) < order.qty:
                order.status, order.reject_reason = "Cancelled", "EC_FOKOrderRejected"
            else:
                for price, qty in fills:
                    executions.append(self._fill(account, inst, order, price, qty, is_maker=False))
        if order.status in ("New", "PartiallyFilled"):
            remaining = order.qty - order.cum_qty
            if order.market_unit == "quoteCoin":
                # what is left is less than one lot at the touch: the order is done, as on Bybit
                spendable = floor_to(order.quote_left / self.market.best(inst)[1], inst.qty_step)
                remaining = spendable if not order.cum_qty else ZERO
            if remaining > 0 and (order.order_type == "Market" or order.time_in_force in ("IOC", "FOK")):
                order.status = "PartiallyFilledCanceled" if order.cum_qty else "Cancelled"
                order.cancel_type = "UNKNOWN"
            elif order.status in ("New", "PartiallyFilled") and order.order_type == "Limit":
                self._rest(account, order)
            if order.market_unit == "quoteCoin" and order.cum_qty and remaining <= 0:
                order.status = "Filled"
        order.updated_ms = self.now_ms()
        self._announce(account, inst, order, executions)

    def _take(self, inst: Instrument, order: Order) -> list[tuple[Decimal, Decimal]]:
        """Walk the synthetic book: [(price, qty)] a taker order would get, respecting a limit price."""
        fills: list[tuple[Decimal, Decimal]] = []
        quote_left = order.quote_left
        left = order.qty - order.cum_qty
        for price, size in self.market.levels(inst, order.side):
            if order.order_type == "Limit" and (
                price > order.price if order.side == "Buy" else price < order.price
            ):
                break
            if order.market_unit == "quoteCoin":
                take = min(size, floor_to(quote_left / price, inst.qty_step))
                if take <= 0:
                    break
                quote_left -= take * price
            else:
                take = min(size, left)
                left -= take
            fills.append((price, take))
            if order.market_unit != "quoteCoin" and left <= 0:
                break
            if len(fills) >= 500:
                break
        return fills

    def _fill(
        self,
        account: Account,
        inst: Instrument,
        order: Order,
        price: Decimal,
        qty: Decimal,
        *,
        is_maker: bool,
    ) -> Execution:
        rate = inst.maker_fee if is_maker else inst.taker_fee
        value = price * qty
        now = self.now_ms()
        closed = ZERO
        if inst.category == "linear":
            fee = value * rate
            _, closed = ledger.apply_linear_fill(
                account, inst, order, price=price, qty=qty, fee=fee, now_ms=now
            )
        else:
            fee = qty * rate if order.side == "Buy" else value * rate
            if order.locked:
                order.locked = max(order.locked - (value if order.side == "Buy" else qty), ZERO)
            ledger.apply_spot_fill(account, inst, order, price=price, qty=qty, fee=fee)
        if order.market_unit == "quoteCoin":
            order.qty += qty
            order.quote_left -= value
        order.cum_qty += qty
        order.cum_value += value
        order.cum_fee += fee
        order.status = (
            "Filled" if order.cum_qty >= order.qty and order.market_unit != "quoteCoin" else "PartiallyFilled"
        )
        order.updated_ms = now
        execution = Execution(
            exec_id=self.new_id(),
            order=order,
            exec_type="Trade",
            price=price,
            qty=qty,
            value=value,
            fee=fee,
            fee_rate=rate,
            is_maker=is_maker,
            time_ms=now,
            closed_size=closed,
            leaves_qty=order.qty - order.cum_qty,
            mark_price=self.market.price(inst.symbol),
            seq=self.next_seq(),
            fee_currency=order.fee_currency,
        )
        account.executions.append(execution)
        return execution

    def _rest(self, account: Account, order: Order) -> None:
        if order.category == "spot":
            left = order.qty - order.cum_qty
            order.locked = left * order.price if order.side == "Buy" else left
        self.resting.setdefault(order.symbol, []).append((account, order))

    def _announce(
        self, account: Account, inst: Instrument, order: Order, executions: list[Execution]
    ) -> None:
        self.publish(account.uid, "order", [order])
        if executions:
            self.publish(account.uid, "execution", executions)
            if inst.category == "linear":
                pos = ledger.position(account, inst.symbol, self.now_ms())
                pos.seq = self.next_seq()
                self.publish(account.uid, "position", [pos])
        if executions or order.category == "spot" or order.status in ("Cancelled", "PartiallyFilledCanceled"):
            self.publish(account.uid, "wallet", [account])

    # amend / cancel -----------------------------------------------------------------------
    def amend(self, account: Account, params: dict[str, Any]) -> Order:
        check_category(str(params.get("category", "")))
        order = self.find(account, params)
        inst = self.catalog.get(order.category, order.symbol)
        qty, price = order.qty, order.price
        if params.get("qty") not in (None, ""):
            qty = parse_decimal("qty", params["qty"])
            inst.check_qty(qty)
            if qty <= order.cum_qty:
                raise errors.params("params error: qty must be greater than the filled quantity")
        if params.get("price") not in (None, ""):
            if order.order_type != "Limit":
                raise errors.params("params error: only Limit orders have a price to amend")
            price = parse_decimal("price", params["price"])
            inst.check_price("price", price)
        take_profit = _optional_price(params, "takeProfit") if "takeProfit" in params else order.take_profit
        stop_loss = _optional_price(params, "stopLoss") if "stopLoss" in params else order.stop_loss
        self._check_tpsl(order.side, price, take_profit, stop_loss)
        if (qty, price, take_profit, stop_loss) == (
            order.qty,
            order.price,
            order.take_profit,
            order.stop_loss,
        ):
            raise errors.params(
                "The order remains unchanged as the parameters entered match the existing ones."
            )
        if inst.category == "spot":
            left = qty - order.cum_qty
            need = left * price if order.side == "Buy" else left
            coin = inst.quote_coin if order.side == "Buy" else inst.base_coin
            if need - order.locked > self.available(account, coin):
                raise BybitError(errors.SPOT_INSUFFICIENT_BALANCE)
            order.locked = need
        elif not order.reduce_only:
            extra = (qty - order.cum_qty) * price - order.leaves_qty * order.price
            if extra > 0 and extra / ledger.leverage_of(account, order.symbol) > self.available(account):
                raise BybitError(errors.INSUFFICIENT_BALANCE)
        order.qty, order.price, order.take_profit, order.stop_loss = qty, price, take_profit, stop_loss
        order.updated_ms = self.now_ms()
        self.publish(account.uid, "order", [order])
        return order

    def cancel(self, account: Account, params: dict[str, Any]) -> Order:
        check_category(str(params.get("category", "")))
        order = self.find(account, params)
        self._close_order(account, order, "CancelByUser")
        return order

    def cancel_all(self, account: Account, params: dict[str, Any]) -> list[Order]:
        category = str(params.get("category", ""))
        check_category(category)
        symbol = params.get("symbol")
        if symbol:
            self.catalog.get(category, str(symbol))
        chosen = [
            o
            for o in account.orders.values()
            if o.is_open and o.category == category and (not symbol or o.symbol == symbol)
        ]
        for order in chosen:
            self._close_order(account, order, "CancelByUser")
        return chosen

    def _close_order(self, account: Account, order: Order, cancel_type: str) -> None:
        order.status = "PartiallyFilledCanceled" if order.cum_qty else "Cancelled"
        order.cancel_type = cancel_type
        order.locked = ZERO
        order.updated_ms = self.now_ms()
        book = self.resting.get(order.symbol, [])
        self.resting[order.symbol] = [(a, o) for a, o in book if o is not order]
        self.publish(account.uid, "order", [order])
        self.publish(account.uid, "wallet", [account])

    # positions --------------------------------------------------------------------------
    def set_leverage(self, account: Account, params: dict[str, Any]) -> Position:
        category = str(params.get("category", ""))
        check_category(category)
        if category != "linear":
            raise errors.params("Illegal category: leverage applies to linear contracts")
        inst = self.catalog.get(category, str(params.get("symbol", "")))
        buy = parse_decimal("buyLeverage", params.get("buyLeverage"))
        sell = parse_decimal("sellLeverage", params.get("sellLeverage"))
        if buy != sell:
            raise errors.params("buy leverage must equal sell leverage in one-way mode")
        if buy < 1 or buy > inst.max_leverage or buy % Decimal("0.01"):
            raise errors.params(f"leverage invalid: must be between 1 and {fmt(inst.max_leverage)}")
        pos = ledger.position(account, inst.symbol, self.now_ms())
        if pos.leverage == buy:
            raise BybitError(errors.LEVERAGE_NOT_MODIFIED)
        old = pos.leverage
        pos.leverage = buy
        if self.available(account) < 0:
            pos.leverage = old
            raise BybitError(
                errors.INSUFFICIENT_BALANCE, "ab not enough to lower leverage with the open position"
            )
        account.leverage[inst.symbol] = buy
        pos.updated_ms = self.now_ms()
        pos.seq = self.next_seq()
        self.publish(account.uid, "position", [pos])
        return pos

    def trading_stop(self, account: Account, params: dict[str, Any]) -> Position:
        category = str(params.get("category", ""))
        check_category(category)
        if category != "linear":
            raise errors.params("Illegal category: trading-stop applies to linear positions")
        inst = self.catalog.get(category, str(params.get("symbol", "")))
        if int(params.get("positionIdx", 0) or 0) != 0:
            raise errors.params(
                "position idx not match position mode: the simulator runs one-way mode (positionIdx 0)"
            )
        pos = account.positions.get(inst.symbol)
        if pos is None or pos.size == 0:
            raise errors.params("can not set tp/sl/ts for zero position")
        tp = _optional_price(params, "takeProfit") if "takeProfit" in params else pos.take_profit
        sl = _optional_price(params, "stopLoss") if "stopLoss" in params else pos.stop_loss
        for name, value in (("takeProfit", tp), ("stopLoss", sl)):
            if value:
                inst.check_price(name, value)
        self._check_tpsl(pos.side, self.market.price(inst.symbol), tp, sl)
        pos.take_profit, pos.stop_loss = tp, sl
        pos.updated_ms = self.now_ms()
        pos.seq = self.next_seq()
        self.publish(account.uid, "position", [pos])
        return pos

    # the clock ----------------------------------------------------------------------------
    def on_minute(self, minute: int) -> None:
        for symbol in self.market.series:
            price = self.market.price(symbol, minute)
            self._fill_resting(symbol, price)
            self._trigger_tpsl(symbol, price)
        if self.funding_rate is not None and minute % FUNDING_MINUTES == 0:
            self._funding()

    def _fill_resting(self, symbol: str, price: Decimal) -> None:
        book = self.resting.get(symbol)
        if not book:
            return
        keep = []
        for account, order in book:
            if not order.is_open:
                continue
            hit = price <= order.price if order.side == "Buy" else price >= order.price
            if not hit:
                keep.append((account, order))
                continue
            inst = self.catalog.get(order.category, symbol)
            left = order.qty - order.cum_qty
            if order.category == "linear" and order.reduce_only:
                pos = account.positions.get(symbol)
                size = pos.size if pos else ZERO
                if size == 0 or (size > 0) == (order.side == "Buy"):
                    order.status, order.cancel_type = "Deactivated", "CancelByReduceOnly"
                    self.publish(account.uid, "order", [order])
                    continue
                left = min(left, abs(size))
            execution = self._fill(account, inst, order, order.price, left, is_maker=True)
            self._announce(account, inst, order, [execution])
        self.resting[symbol] = keep

    def _trigger_tpsl(self, symbol: str, price: Decimal) -> None:
        for account in self.accounts.by_uid.values():
            pos = account.positions.get(symbol)
            if pos is None or pos.size == 0 or not (pos.take_profit or pos.stop_loss):
                continue
            long = pos.size > 0
            kind = ""
            if pos.take_profit and (price >= pos.take_profit if long else price <= pos.take_profit):
                kind = "TakeProfit"
            elif pos.stop_loss and (price <= pos.stop_loss if long else price >= pos.stop_loss):
                kind = "StopLoss"
            if kind:
                self._close_position(account, pos, kind)

    def _close_position(self, account: Account, pos: Position, kind: str) -> None:
        inst = self.catalog.get("linear", pos.symbol)
        now = self.now_ms()
        order = Order(
            order_id=self.new_id(),
            order_link_id="",
            category="linear",
            symbol=pos.symbol,
            side="Sell" if pos.size > 0 else "Buy",
            order_type="Market",
            qty=abs(pos.size),
            price=ZERO,
            time_in_force="IOC",
            reduce_only=True,
            take_profit=ZERO,
            stop_loss=ZERO,
            created_ms=now,
            updated_ms=now,
            last_price_on_created=self.market.price(pos.symbol),
            create_type=f"CreateBy{kind}",
            stop_order_type=kind,
            close_on_trigger=True,
        )
        pos.take_profit = pos.stop_loss = ZERO
        account.orders[order.order_id] = order
        self._execute(account, inst, order)

    def _funding(self) -> None:
        assert self.funding_rate is not None
        now = self.now_ms()
        for account in self.accounts.by_uid.values():
            for pos in account.positions.values():
                if pos.size == 0:
                    continue
                mark = self.market.price(pos.symbol)
                fee = ledger.apply_funding(account, pos, mark, self.funding_rate, now)
                order = Order(
                    order_id="",
                    order_link_id="",
                    category="linear",
                    symbol=pos.symbol,
                    side=pos.side,
                    order_type="UNKNOWN",
                    qty=ZERO,
                    price=ZERO,
                    time_in_force="",
                    reduce_only=False,
                    take_profit=ZERO,
                    stop_loss=ZERO,
                    created_ms=now,
                    last_price_on_created=mark,
                    status="Filled",
                    create_type="",
                )
                execution = Execution(
                    exec_id=self.new_id(),
                    order=order,
                    exec_type="Funding",
                    price=mark,
                    qty=abs(pos.size),
                    value=abs(pos.size) * mark,
                    fee=fee,
                    fee_rate=self.funding_rate,
                    is_maker=False,
                    time_ms=now,
                    closed_size=ZERO,
                    leaves_qty=ZERO,
                    mark_price=mark,
                    seq=self.next_seq(),
                    fee_currency=ledger.SETTLE,
                )
                account.executions.append(execution)
                self.publish(account.uid, "execution", [execution])
                self.publish(account.uid, "wallet", [account])
