"""Position and account endpoints: /v5/position/*, /v5/account/*, /v5/user/query-api."""

from __future__ import annotations

import time
import zlib
from typing import Any

from services.exchangesim import errors, ledger
from services.exchangesim.instruments import check_category, fmt
from services.exchangesim.venue import Call, Venue, page
from services.exchangesim.wire import position_rest, wallet_rest


def positions(venue: Venue, call: Call) -> dict[str, Any]:
    p = call.params
    category = str(p.get("category") or "")
    check_category(category)
    if category != "linear":
        raise errors.params("Illegal category: positions exist for linear contracts")
    account = call.account
    symbol = p.get("symbol")
    if symbol:
        inst = venue.catalog.get(category, str(symbol))
        chosen = [ledger.position(account, inst.symbol, venue.market.now_ms())]
    elif p.get("settleCoin") or p.get("baseCoin"):
        chosen = [
            pos
            for pos in account.positions.values()
            if (not p.get("settleCoin") or p["settleCoin"] == ledger.SETTLE)
            and (not p.get("baseCoin") or venue.catalog.get(category, pos.symbol).base_coin == p["baseCoin"])
        ]
    else:
        raise errors.params("params error: symbol or settleCoin is required")
    rows = [position_rest(pos, venue.market.price(pos.symbol)) for pos in chosen]
    rows, cursor = page(rows, p, 20, 200)
    return {"category": category, "list": rows, "nextPageCursor": cursor}


def set_leverage(venue: Venue, call: Call) -> dict[str, Any]:
    venue.engine.set_leverage(call.account, call.params)
    return {}


def trading_stop(venue: Venue, call: Call) -> dict[str, Any]:
    venue.engine.trading_stop(call.account, call.params)
    return {}


def wallet_balance(venue: Venue, call: Call) -> dict[str, Any]:
    account_type = call.params.get("accountType")
    if account_type != "UNIFIED":
        raise errors.params(f"accountType only support UNIFIED, got {account_type!r}")
    coins = {c for c in str(call.params.get("coin") or "").split(",") if c}
    row = wallet_rest(call.account, venue.engine.marks(), venue.catalog, coins or None)
    return {"list": [row]}


def account_info(venue: Venue, call: Call) -> dict[str, Any]:
    return {
        "marginMode": "REGULAR_MARGIN",
        "updatedTime": str(call.account.created_ms),
        "unifiedMarginStatus": 6,
        "dcpStatus": "OFF",
        "timeWindow": 10,
        "smpGroup": 0,
        "isMasterTrader": False,
        "spotHedgingStatus": "OFF",
    }


def fee_rate(venue: Venue, call: Call) -> dict[str, Any]:
    category = str(call.params.get("category") or "")
    check_category(category)
    symbol = call.params.get("symbol")
    items = [venue.catalog.get(category, str(symbol))] if symbol else venue.catalog.all(category)
    return {
        "list": [
            {
                "symbol": i.symbol,
                "takerFeeRate": fmt(i.taker_fee),
                "makerFeeRate": fmt(i.maker_fee),
                "baseCoin": "",
            }
            for i in items
        ]
    }


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


def query_api(venue: Venue, call: Call) -> dict[str, Any]:
    key = call.key
    assert key is not None
    trade: list[str] | None = [] if key.read_only else None
    permissions: dict[str, list[str]] = {
        "ContractTrade": trade if trade is not None else ["Order", "Position"],
        "Spot": trade if trade is not None else ["SpotTrade"],
        "Wallet": ["AccountTransfer", "SubMemberTransfer", "Withdraw"]
        if key.withdraw
        else ["AccountTransfer"],
        "Options": [],
        "Derivatives": trade if trade is not None else ["DerivativesTrade"],
        "CopyTrading": [],
        "BlockTrade": [],
        "Exchange": ["ExchangeHistory"],
        "NFT": [],
        "Affiliate": [],
        "Earn": [],
        "FiatP2P": [],
        "FiatBybitPay": [],
        "FiatConvertBroker": [],
        "FiatGlobalPay": [],
        "FiatBitPay": [],
        "BitCard": [],
        "ByXPost": [],
    }
    return {
        "id": str(zlib.crc32(key.key.encode()) % 10_000_000),
        "note": key.note,
        "apiKey": key.key,
        "readOnly": 1 if key.read_only else 0,
        "secret": "",
        "permissions": permissions,
        "ips": list(key.ips) or ["*"],
        "type": 1,
        "deadlineDay": -2 if not key.ips else 90,
        "expiredAt": "1970-01-01T00:00:00Z",
        "createdAt": _iso(key.created_ms),
        "unified": 0,
        "uta": 1,
        "userID": key.uid,
        "inviterID": 0,
        "vipLevel": "No VIP",
        "mktMakerLevel": "0",
        "affiliateID": 0,
        "rsaPublicKey": "",
        "isMaster": True,
        "parentUid": "0",
        "kycLevel": "LEVEL_1",
        "kycRegion": "",
        "userIDInt64": str(key.uid),
        "inviterIDInt64": "0",
        "affiliateIDInt64": "0",
    }
