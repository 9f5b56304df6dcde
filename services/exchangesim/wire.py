"""Bybit V5 wire shapes of orders, executions, positions, wallets and bars (REST and stream variants)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from services.exchangesim import ledger
from services.exchangesim.accounts import ZERO, Account, Execution, Order, Position
from services.exchangesim.instruments import Catalog, fmt
from services.exchangesim.market import Bar

MONEY = Decimal("0.00000001")


def money(value: Decimal) -> str:
    return fmt(value.quantize(MONEY))


def _price(value: Decimal) -> str:
    return fmt(value) if value else "0"


def order_rest(o: Order) -> dict[str, Any]:
    return {
        "orderId": o.order_id,
        "orderLinkId": o.order_link_id,
        "blockTradeId": "",
        "symbol": o.symbol,
        "price": _price(o.price),
        "qty": fmt(o.qty),
        "side": o.side,
        "isLeverage": "0",
        "positionIdx": 0,
        "orderStatus": o.status,
        "cancelType": o.cancel_type,
        "rejectReason": o.reject_reason,
        "avgPrice": money(o.avg_price) if o.cum_qty else "",
        "leavesQty": fmt(o.leaves_qty),
        "leavesValue": money(o.leaves_qty * o.price),
        "cumExecQty": fmt(o.cum_qty),
        "cumExecValue": money(o.cum_value),
        "cumExecFee": money(o.cum_fee),
        "timeInForce": o.time_in_force,
        "orderType": o.order_type,
        "stopOrderType": o.stop_order_type,
        "orderIv": "",
        "triggerPrice": "0",
        "takeProfit": _price(o.take_profit),
        "stopLoss": _price(o.stop_loss),
        "tpTriggerBy": "LastPrice" if o.take_profit else "",
        "slTriggerBy": "LastPrice" if o.stop_loss else "",
        "triggerDirection": 0,
        "triggerBy": "",
        "lastPriceOnCreated": fmt(o.last_price_on_created),
        "reduceOnly": o.reduce_only,
        "closeOnTrigger": o.close_on_trigger,
        "smpType": "None",
        "smpGroup": 0,
        "smpOrderId": "",
        "tpslMode": "Full" if o.take_profit or o.stop_loss else "",
        "tpLimitPrice": "0",
        "slLimitPrice": "0",
        "placeType": "",
        "createdTime": str(o.created_ms),
        "updatedTime": str(o.updated_ms),
    }


def order_stream(o: Order) -> dict[str, Any]:
    row = order_rest(o)
    del row["isLeverage"]
    row.update(category=o.category, feeCurrency=o.fee_currency, createType=o.create_type)
    return row


def execution_rest(e: Execution) -> dict[str, Any]:
    o = e.order
    return {
        "symbol": o.symbol,
        "orderId": o.order_id,
        "orderLinkId": o.order_link_id,
        "side": o.side,
        "orderPrice": _price(o.price),
        "orderQty": fmt(o.qty),
        "leavesQty": fmt(e.leaves_qty),
        "createType": o.create_type,
        "orderType": o.order_type,
        "stopOrderType": o.stop_order_type,
        "execFee": money(e.fee),
        "execId": e.exec_id,
        "execPrice": fmt(e.price),
        "execQty": fmt(e.qty),
        "execType": e.exec_type,
        "execValue": money(e.value),
        "execTime": str(e.time_ms),
        "feeCurrency": e.fee_currency,
        "isMaker": e.is_maker,
        "feeRate": fmt(e.fee_rate),
        "tradeIv": "",
        "markIv": "",
        "markPrice": fmt(e.mark_price),
        "indexPrice": fmt(e.mark_price),
        "underlyingPrice": "",
        "blockTradeId": "",
        "closedSize": fmt(e.closed_size),
        "seq": e.seq,
    }


def execution_stream(e: Execution) -> dict[str, Any]:
    row = execution_rest(e)
    for key in ("createType", "feeCurrency"):
        del row[key]
    row.update(category=e.order.category, isLeverage="0")
    return row


def _position_common(p: Position, mark: Decimal) -> dict[str, Any]:
    value = abs(p.size) * p.avg_price
    return {
        "positionIdx": 0,
        "riskId": 1,
        "riskLimitValue": "2000000",
        "symbol": p.symbol,
        "side": p.side,
        "size": fmt(abs(p.size)),
        "positionValue": money(value),
        "tradeMode": 0,
        "positionStatus": "Normal",
        "autoAddMargin": 0,
        "adlRankIndicator": 2 if p.size else 0,
        "leverage": fmt(p.leverage),
        "positionBalance": money(ledger.position_im(p)),
        "markPrice": fmt(mark),
        "liqPrice": "",
        "bustPrice": "",
        "positionMM": money(value * Decimal("0.005")),
        "positionIM": money(ledger.position_im(p)),
        "tpslMode": "Full",
        "takeProfit": _price(p.take_profit),
        "stopLoss": _price(p.stop_loss),
        "trailingStop": "0",
        "unrealisedPnl": money(ledger.unrealised(p, mark)),
        "curRealisedPnl": money(p.cur_realised),
        "cumRealisedPnl": money(p.cum_realised),
        "seq": p.seq,
        "isReduceOnly": False,
        "mmrSysUpdatedTime": "",
        "leverageSysUpdatedTime": "",
        "createdTime": str(p.created_ms),
        "updatedTime": str(p.updated_ms),
    }


def position_rest(p: Position, mark: Decimal) -> dict[str, Any]:
    row = _position_common(p, mark)
    row["avgPrice"] = money(p.avg_price)
    return row


def position_stream(p: Position, mark: Decimal) -> dict[str, Any]:
    row = _position_common(p, mark)
    im, mm = row["positionIM"], row["positionMM"]
    row.update(
        entryPrice=money(p.avg_price),
        sessionAvgPrice="",
        positionIMByMp=im,
        positionMMByMp=mm,
        category="linear",
    )
    return row


def _wallet_figures(account: Account, marks: dict[str, Decimal], catalog: Catalog) -> dict[str, Any]:
    base_of = {i.symbol: i.base_coin for i in catalog.all("spot")}
    upl, pim, oim = ledger.linear_usage(account, marks)
    usdt_price = {i.base_coin: marks.get(i.symbol, ZERO) for i in catalog.all("spot")}
    usdt_price[ledger.SETTLE] = Decimal(1)
    coins = []
    total_equity = ZERO
    for coin in sorted(account.coins):
        balance = account.coins[coin]
        is_settle = coin == ledger.SETTLE
        equity = balance + (upl if is_settle else ZERO)
        held = ledger.spot_locked(account, coin, base_of)
        usd = equity * usdt_price.get(coin, ZERO)
        total_equity += usd
        free = ledger.available(account, coin, marks, base_of)
        coins.append(
            {
                "coin": coin,
                "equity": money(equity),
                "usdValue": money(usd),
                "walletBalance": money(balance),
                "availableToWithdraw": money(max(free, ZERO)),
                "availableToBorrow": "",
                "borrowAmount": "0",
                "accruedInterest": "0",
                "totalOrderIM": money(oim if is_settle else ZERO),
                "totalPositionIM": money(pim if is_settle else ZERO),
                "totalPositionMM": money(pim * Decimal("0.05") if is_settle else ZERO),
                "unrealisedPnl": money(upl if is_settle else ZERO),
                "cumRealisedPnl": money(account.cum_realised.get(coin, ZERO)),
                "bonus": "0",
                "locked": money(held),
                "collateralSwitch": True,
                "marginCollateral": True,
                "spotBorrow": "0",
            }
        )
    wallet = sum((Decimal(str(c["usdValue"])) - Decimal(str(c["unrealisedPnl"])) for c in coins), ZERO)
    return {
        "accountType": "UNIFIED",
        "accountIMRate": "0",
        "accountMMRate": "0",
        "accountLTV": "0",
        "totalEquity": money(total_equity),
        "totalWalletBalance": money(wallet),
        "totalMarginBalance": money(wallet + upl),
        "totalAvailableBalance": money(max(wallet + min(upl, ZERO) - pim - oim, ZERO)),
        "totalPerpUPL": money(upl),
        "totalInitialMargin": money(pim + oim),
        "totalMaintenanceMargin": money(pim * Decimal("0.05")),
        "coin": coins,
    }


def wallet_rest(
    account: Account, marks: dict[str, Decimal], catalog: Catalog, coins: set[str] | None
) -> dict[str, Any]:
    row = _wallet_figures(account, marks, catalog)
    if coins:
        row["coin"] = [c for c in row["coin"] if c["coin"] in coins]
    return row


STREAM_COIN_KEYS = (
    "coin",
    "equity",
    "walletBalance",
    "availableToWithdraw",
    "availableToBorrow",
    "borrowAmount",
    "accruedInterest",
    "totalOrderIM",
    "totalPositionIM",
    "totalPositionMM",
    "spotBorrow",
)


def wallet_stream(account: Account, marks: dict[str, Decimal], catalog: Catalog) -> dict[str, Any]:
    row = _wallet_figures(account, marks, catalog)
    row["totalPerpUpl"] = row.pop("totalPerpUPL")
    del row["accountType"]
    row["coin"] = [{k: c[k] for k in STREAM_COIN_KEYS} for c in row["coin"]]
    return row


def bar_rest(bar: Bar) -> list[str]:
    return [
        str(bar.start),
        fmt(bar.open),
        fmt(bar.high),
        fmt(bar.low),
        fmt(bar.close),
        fmt(bar.volume),
        money(bar.turnover),
    ]


def bar_stream(bar: Bar, interval: str, confirm: bool, now_ms: int) -> dict[str, Any]:
    return {
        "start": bar.start,
        "end": bar.end - 1,
        "interval": interval,
        "open": fmt(bar.open),
        "close": fmt(bar.close),
        "high": fmt(bar.high),
        "low": fmt(bar.low),
        "volume": fmt(bar.volume),
        "turnover": money(bar.turnover),
        "confirm": confirm,
        "timestamp": now_ms,
    }
