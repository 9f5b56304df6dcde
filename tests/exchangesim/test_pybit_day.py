"""A whole trading day through the unmodified pybit HTTP and WebSocket clients."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import requests
from pybit.unified_trading import HTTP

from services.common.bybit import BybitEnv, BybitVenue, point_pybit_at
from services.exchangesim.app import Simulator
from tests.exchangesim.helpers import close_streams, in_own_thread, wait_for

SYMBOL = "SOLUSDT"


def _future_extremes(sim: Simulator, candles: int) -> tuple[Decimal, Decimal]:
    series = sim.venue.market.series[SYMBOL]
    first = sim.clock.minute // series.minutes
    chosen = [series.candle(i) for i in range(first, first + candles)]
    return min(c.low for c in chosen), max(c.high for c in chosen)


def _trading_day(sim: Simulator, key: Any) -> None:
    session = HTTP(testnet=False, api_key=key.key, api_secret=key.secret, max_retries=1)
    point_pybit_at(sim.http_url, session)

    def step(candles: int) -> None:
        r = requests.post(
            f"{sim.http_url}/admin/clock", json={"action": "step", "candles": candles}, timeout=30
        )
        assert r.status_code == 200, r.text

    streams: dict[str, list[dict[str, Any]]] = {
        "order": [],
        "execution": [],
        "position": [],
        "wallet": [],
        "kline": [],
    }
    # Built through the venue: its lock keeps pybit's module-level URL templates from being changed
    # by any other thread while this WebSocket reads them.
    venue = BybitVenue(BybitEnv.SIMULATOR, sim.http_url)
    private = venue.websocket("private", api_key=key.key, api_secret=key.secret)
    private.order_stream(streams["order"].append)
    private.execution_stream(streams["execution"].append)
    private.position_stream(streams["position"].append)
    private.wallet_stream(streams["wallet"].append)
    public = venue.websocket("linear")
    public.kline_stream(interval=60, symbol=SYMBOL, callback=streams["kline"].append)
    books: list[dict[str, Any]] = []
    public.orderbook_stream(depth=50, symbol=SYMBOL, callback=books.append)
    try:
        # market data a bot warms up from
        inst = session.get_instruments_info(category="linear", symbol=SYMBOL)["result"]["list"][0]
        tick = Decimal(inst["priceFilter"]["tickSize"])
        assert inst["lotSizeFilter"]["qtyStep"] == "0.1"
        klines = session.get_kline(category="linear", symbol=SYMBOL, interval="60", limit=200)["result"][
            "list"
        ]
        assert len(klines) == 200
        assert [int(k[0]) for k in klines] == sorted((int(k[0]) for k in klines), reverse=True)
        assert int(klines[0][0]) <= sim.venue.market.now_ms()
        last = Decimal(
            session.get_tickers(category="linear", symbol=SYMBOL)["result"]["list"][0]["lastPrice"]
        )
        book = session.get_orderbook(category="linear", symbol=SYMBOL, limit=5)["result"]
        assert Decimal(book["b"][0][0]) < Decimal(book["a"][0][0])
        session.set_leverage(category="linear", symbol=SYMBOL, buyLeverage="5", sellLeverage="5")
        wallet0 = Decimal(
            session.get_wallet_balance(accountType="UNIFIED")["result"]["list"][0]["coin"][0]["walletBalance"]
        )

        # open with a market order carrying a far stop-loss
        session.place_order(
            category="linear",
            symbol=SYMBOL,
            side="Buy",
            orderType="Market",
            qty="10",
            orderLinkId="day-open",
            stopLoss=str((last * Decimal("0.5")).quantize(tick)),
        )
        pos = session.get_positions(category="linear", symbol=SYMBOL)["result"]["list"][0]
        assert pos["side"] == "Buy" and pos["size"] == "10"
        assert Decimal(pos["stopLoss"]) > 0

        # a limit sell far away: amend it, then cancel it
        far = (last * Decimal("1.5")).quantize(tick)
        sell = session.place_order(
            category="linear",
            symbol=SYMBOL,
            side="Sell",
            orderType="Limit",
            qty="1",
            price=str(far),
            orderLinkId="day-far",
            reduceOnly=True,
        )["result"]
        session.amend_order(category="linear", symbol=SYMBOL, orderId=sell["orderId"], price=str(far + tick))
        open_orders = session.get_open_orders(category="linear", symbol=SYMBOL)["result"]["list"]
        assert [o["price"] for o in open_orders] == [str(far + tick)]
        session.cancel_order(category="linear", symbol=SYMBOL, orderLinkId="day-far")
        assert session.get_open_orders(category="linear", symbol=SYMBOL)["result"]["list"] == []

        # a resting limit buy that the market will reach within the day
        low, _ = _future_extremes(sim, 12)
        buy_price = ((low + last) / 2).quantize(tick)
        if buy_price >= last:
            buy_price = last - tick
        session.place_order(
            category="linear",
            symbol=SYMBOL,
            side="Buy",
            orderType="Limit",
            qty="5",
            price=str(buy_price),
            orderLinkId="day-dip",
        )
        for _ in range(12):
            step(1)
            if not session.get_open_orders(category="linear", symbol=SYMBOL)["result"]["list"]:
                break
        history = session.get_order_history(category="linear", symbol=SYMBOL, orderLinkId="day-dip")[
            "result"
        ]["list"]
        assert history[0]["orderStatus"] == "Filled"
        pos = session.get_positions(category="linear", symbol=SYMBOL)["result"]["list"][0]
        assert pos["size"] == "15"

        # take profit through trading-stop, triggered by the last price
        now_price = Decimal(
            session.get_tickers(category="linear", symbol=SYMBOL)["result"]["list"][0]["lastPrice"]
        )
        _, high = _future_extremes(sim, 12)
        assert high > now_price + tick, "the replayed day must rise above the current price"
        take_profit = max(((now_price + high) / 2).quantize(tick), now_price + tick)
        session.set_trading_stop(category="linear", symbol=SYMBOL, takeProfit=str(take_profit), positionIdx=0)
        for _ in range(12):
            step(1)
            if session.get_positions(category="linear", symbol=SYMBOL)["result"]["list"][0]["size"] == "0":
                break
        pos = session.get_positions(category="linear", symbol=SYMBOL)["result"]["list"][0]
        assert pos["size"] == "0"

        # everything reconciles: executions, fees, realized PnL and the wallet
        fills = session.get_executions(category="linear", symbol=SYMBOL, limit=100)["result"]["list"]
        trades = [f for f in fills if f["execType"] == "Trade"]
        funding = [f for f in fills if f["execType"] == "Funding"]
        assert any(f["stopOrderType"] == "TakeProfit" for f in trades)
        bought = sum(Decimal(f["execValue"]) for f in trades if f["side"] == "Buy")
        sold = sum(Decimal(f["execValue"]) for f in trades if f["side"] == "Sell")
        qty_in = sum(Decimal(f["execQty"]) for f in trades if f["side"] == "Buy")
        qty_out = sum(Decimal(f["execQty"]) for f in trades if f["side"] == "Sell")
        assert qty_in == qty_out == Decimal(15)
        fees = sum(Decimal(f["execValue"]) * Decimal(f["feeRate"]) for f in trades)
        for f in trades:
            expected_rate = "0.0002" if f["isMaker"] else "0.00055"
            assert f["feeRate"] == expected_rate
        funding_paid = sum(Decimal(f["execFee"]) for f in funding)
        realized = sold - bought - fees - funding_paid
        assert abs(Decimal(pos["cumRealisedPnl"]) - realized) < Decimal("0.0001")
        wallet1 = Decimal(
            session.get_wallet_balance(accountType="UNIFIED")["result"]["list"][0]["coin"][0]["walletBalance"]
        )
        assert abs(wallet1 - wallet0 - realized) < Decimal("0.0001")

        # the streams told the same story
        wait_for(lambda: any(d["stopOrderType"] == "TakeProfit" for m in streams["order"] for d in m["data"]))
        wait_for(
            lambda: (
                len([d for m in streams["execution"] for d in m["data"] if d["execType"] == "Trade"])
                == len(trades)
            )
        )
        wait_for(lambda: any(d["size"] == "0" for m in streams["position"] for d in m["data"]))
        wait_for(lambda: streams["wallet"])
        wait_for(lambda: any(d["confirm"] for m in streams["kline"] for d in m["data"]))
        assert books and books[-1]["data"]["b"] and books[-1]["data"]["a"]

        # a spot round trip on the same account
        session.place_order(category="spot", symbol=SYMBOL, side="Buy", orderType="Market", qty="50")
        coins = session.get_wallet_balance(accountType="UNIFIED", coin="SOL")["result"]["list"][0]["coin"]
        assert Decimal(coins[0]["walletBalance"]) > 0
        history = session.get_order_history(category="spot", symbol=SYMBOL)["result"]
        assert history["list"][0]["orderStatus"] == "Filled" and history["nextPageCursor"] == ""
    finally:
        close_streams(private, public)


async def test_trading_day_through_pybit(sim: Simulator) -> None:
    key = sim.create_account({"USDT": "10000"})
    await in_own_thread(_trading_day, sim, key)
