"""Trading endpoints: /v5/order/{create,amend,cancel,cancel-all,realtime,history}, /v5/execution/list."""

from __future__ import annotations

from typing import Any

from services.exchangesim.accounts import Order
from services.exchangesim.instruments import check_category
from services.exchangesim.venue import Call, Venue, int_param, page
from services.exchangesim.wire import execution_rest, order_rest


def _ids(order: Order) -> dict[str, str]:
    return {"orderId": order.order_id, "orderLinkId": order.order_link_id}


def create(venue: Venue, call: Call) -> dict[str, Any]:
    return _ids(venue.engine.place(call.account, call.params))


def amend(venue: Venue, call: Call) -> dict[str, Any]:
    return _ids(venue.engine.amend(call.account, call.params))


def cancel(venue: Venue, call: Call) -> dict[str, Any]:
    return _ids(venue.engine.cancel(call.account, call.params))


def cancel_all(venue: Venue, call: Call) -> dict[str, Any]:
    orders = venue.engine.cancel_all(call.account, call.params)
    return {"list": [_ids(o) for o in orders], "success": "1"}


def _matches(order: Order, p: dict[str, Any]) -> bool:
    return (
        order.category == p.get("category")
        and (not p.get("symbol") or order.symbol == p["symbol"])
        and (not p.get("orderId") or order.order_id == p["orderId"])
        and (not p.get("orderLinkId") or order.order_link_id == p["orderLinkId"])
        and (not p.get("orderStatus") or order.status == p["orderStatus"])
    )


def _newest_first(orders: list[Order]) -> list[Order]:
    return orders[::-1]  # insertion order is creation order


def realtime(venue: Venue, call: Call) -> dict[str, Any]:
    p = call.params
    category = str(p.get("category") or "")
    check_category(category)
    open_only = int_param(p, "openOnly", 0, 0, 2)
    chosen = [o for o in call.account.orders.values() if _matches(o, p) and o.order_type != "UNKNOWN"]
    if open_only == 0:
        chosen = [o for o in chosen if o.is_open]
    else:
        chosen = [o for o in chosen if not o.is_open][-500:]
    rows, cursor = page([order_rest(o) for o in _newest_first(chosen)], p, 20, 50)
    return {"list": rows, "nextPageCursor": cursor}


def history(venue: Venue, call: Call) -> dict[str, Any]:
    p = call.params
    category = str(p.get("category") or "")
    check_category(category)
    start = int_param(p, "startTime", 0, 0, 2**62)
    end = int_param(p, "endTime", 2**62, 0, 2**62)
    chosen = [o for o in call.account.orders.values() if _matches(o, p) and start <= o.created_ms <= end]
    rows, cursor = page([order_rest(o) for o in _newest_first(chosen)], p, 20, 50)
    return {"list": rows, "nextPageCursor": cursor}


def executions(venue: Venue, call: Call) -> dict[str, Any]:
    p = call.params
    category = str(p.get("category") or "")
    check_category(category)
    start = int_param(p, "startTime", 0, 0, 2**62)
    end = int_param(p, "endTime", 2**62, 0, 2**62)
    chosen = [
        e
        for e in call.account.executions
        if _matches(e.order, {**p, "orderStatus": None})
        and (not p.get("execType") or e.exec_type == p["execType"])
        and start <= e.time_ms <= end
    ]
    rows, cursor = page([execution_rest(e) for e in chosen[::-1]], p, 50, 100)
    return {"category": category, "list": rows, "nextPageCursor": cursor}
