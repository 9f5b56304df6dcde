"""Public market endpoints: /v5/market/{time,kline,tickers,instruments-info,orderbook,recent-trade}."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from services.exchangesim import errors
from services.exchangesim.instruments import Instrument, check_category, fmt
from services.exchangesim.market import INTERVALS
from services.exchangesim.venue import Call, Venue, int_param, page
from services.exchangesim.wire import bar_rest, money

ORDERBOOK_LIMITS = {"linear": (25, 500), "spot": (1, 200)}


def server_time(venue: Venue, call: Call) -> dict[str, Any]:
    now = venue.server_clock.now_ms()
    return {"timeSecond": str(now // 1000), "timeNano": str(now * 1_000_000)}


def _instrument(venue: Venue, params: dict[str, Any]) -> Instrument:
    category = str(params.get("category") or "linear")
    check_category(category)
    symbol = params.get("symbol")
    if not symbol:
        raise errors.params("params error: symbol is required")
    return venue.catalog.get(category, str(symbol))


def kline(venue: Venue, call: Call) -> dict[str, Any]:
    p = call.params
    inst = _instrument(venue, p)
    interval = str(p.get("interval", ""))
    if interval not in INTERVALS:
        raise errors.params(f"params error: interval invalid, expected one of {', '.join(INTERVALS)}")
    limit = int_param(p, "limit", 200, 1, 1000)
    start = int_param(p, "start", 0, 0, 2**62) or None
    end = int_param(p, "end", 0, 0, 2**62) or None
    bars = venue.market.bars(inst.symbol, interval, start, end, limit)
    return {"category": inst.category, "symbol": inst.symbol, "list": [bar_rest(b) for b in bars]}


def ticker(venue: Venue, inst: Instrument) -> dict[str, Any]:
    m = venue.market
    last = m.price(inst.symbol)
    day = m.window(inst.symbol, 1440)
    prev24 = m.price(inst.symbol, m.minute - 1440)
    change = ((last - prev24) / prev24).quantize(Decimal("0.000001")) if prev24 else Decimal(0)
    bid, ask = m.best(inst)
    row: dict[str, Any] = {
        "symbol": inst.symbol,
        "bid1Price": fmt(bid),
        "bid1Size": fmt(m.level_size(inst, bid, 0)),
        "ask1Price": fmt(ask),
        "ask1Size": fmt(m.level_size(inst, ask, 0)),
        "lastPrice": fmt(last),
        "prevPrice24h": fmt(prev24),
        "price24hPcnt": fmt(change),
        "highPrice24h": fmt(day.high),
        "lowPrice24h": fmt(day.low),
        "turnover24h": money(day.turnover),
        "volume24h": fmt(day.volume),
    }
    if inst.category == "spot":
        row["usdIndexPrice"] = fmt(last)
        return row
    row.update(
        tickDirection="PlusTick" if last >= m.price(inst.symbol, m.minute - 1) else "MinusTick",
        prevPrice1h=fmt(m.price(inst.symbol, m.minute - 60)),
        markPrice=fmt(last),
        indexPrice=fmt(last),
        openInterest="0",
        openInterestValue="0",
        nextFundingTime=str(m.next_funding_ms()),
        fundingRate=fmt(venue.engine.funding_rate or Decimal(0)),
        fundingIntervalHour="8",
        predictedDeliveryPrice="",
        basisRate="",
        basis="",
        deliveryFeeRate="",
        deliveryTime="0",
    )
    return row


def tickers(venue: Venue, call: Call) -> dict[str, Any]:
    category = str(call.params.get("category") or "")
    check_category(category)
    symbol = call.params.get("symbol")
    items = [venue.catalog.get(category, str(symbol))] if symbol else venue.catalog.all(category)
    return {"category": category, "list": [ticker(venue, i) for i in items]}


def instrument_row(inst: Instrument) -> dict[str, Any]:
    if inst.category == "spot":
        return {
            "symbol": inst.symbol,
            "baseCoin": inst.base_coin,
            "quoteCoin": inst.quote_coin,
            "innovation": "0",
            "status": "Trading",
            "marginTrading": "none",
            "lotSizeFilter": {
                "basePrecision": fmt(inst.qty_step),
                "quotePrecision": "0.00000001",
                "minOrderQty": fmt(inst.min_qty),
                "maxOrderQty": fmt(inst.max_qty),
                "minOrderAmt": fmt(inst.min_notional),
                "maxOrderAmt": "2000000",
            },
            "priceFilter": {"tickSize": fmt(inst.tick_size)},
        }
    decimals = max(0, -int(inst.tick_size.normalize().as_tuple().exponent))
    return {
        "symbol": inst.symbol,
        "contractType": "LinearPerpetual",
        "status": "Trading",
        "baseCoin": inst.base_coin,
        "quoteCoin": inst.quote_coin,
        "launchTime": "1585526400000",
        "deliveryTime": "0",
        "deliveryFeeRate": "",
        "priceScale": str(decimals),
        "leverageFilter": {"minLeverage": "1", "maxLeverage": fmt(inst.max_leverage), "leverageStep": "0.01"},
        "priceFilter": {
            "minPrice": fmt(inst.tick_size),
            "maxPrice": "199999.98",
            "tickSize": fmt(inst.tick_size),
        },
        "lotSizeFilter": {
            "maxOrderQty": fmt(inst.max_qty),
            "minOrderQty": fmt(inst.min_qty),
            "qtyStep": fmt(inst.qty_step),
            "postOnlyMaxOrderQty": fmt(inst.max_qty),
            "maxMktOrderQty": fmt(inst.max_qty),
            "minNotionalValue": fmt(inst.min_notional),
        },
        "unifiedMarginTrade": True,
        "fundingInterval": 480,
        "settleCoin": inst.quote_coin,
    }


def instruments_info(venue: Venue, call: Call) -> dict[str, Any]:
    p = call.params
    category = str(p.get("category") or "")
    check_category(category)
    symbol = p.get("symbol")
    items = [venue.catalog.get(category, str(symbol))] if symbol else venue.catalog.all(category)
    rows, cursor = page([instrument_row(i) for i in items], p, 500, 1000)
    return {"list": rows, "nextPageCursor": cursor}


def orderbook(venue: Venue, call: Call) -> dict[str, Any]:
    inst = _instrument(venue, call.params)
    default, maximum = ORDERBOOK_LIMITS[inst.category]
    depth = int_param(call.params, "limit", default, 1, maximum)
    bids, asks = venue.market.book(inst, depth)
    now = venue.market.now_ms()
    return {
        "s": inst.symbol,
        "b": [[fmt(p), fmt(q)] for p, q in bids],
        "a": [[fmt(p), fmt(q)] for p, q in asks],
        "ts": now,
        "u": venue.market.minute,
        "seq": venue.market.minute,
        "cts": now,
    }


def recent_trade(venue: Venue, call: Call) -> dict[str, Any]:
    inst = _instrument(venue, call.params)
    limit = int_param(call.params, "limit", 60 if inst.category == "spot" else 500, 1, 1000)
    trades = list(venue.market.trades[inst.symbol])[-limit:][::-1]
    rows = [
        {
            "execId": t.trade_id,
            "symbol": t.symbol,
            "price": fmt(t.price),
            "size": fmt(t.size),
            "side": t.side,
            "time": str(t.time),
            "isBlockTrade": False,
        }
        for t in trades
    ]
    return {"category": inst.category, "list": rows}
