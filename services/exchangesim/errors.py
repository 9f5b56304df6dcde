"""Bybit V5 error answers: the codes and messages clients branch on."""

from __future__ import annotations

PARAMS = 10001
TIMESTAMP = 10002
INVALID_KEY = 10003
SIGNATURE = 10004
PERMISSION = 10005
RATE_LIMIT = 10006
UNMATCHED_IP = 10010
SERVER_ERROR = 10016
ROUTE_NOT_FOUND = 10017
ORDER_NOT_EXISTS = 110001
INSUFFICIENT_BALANCE = 110007
REDUCE_ONLY = 110017
LEVERAGE_NOT_MODIFIED = 110043
DUPLICATE_LINK_ID = 110072
MIN_ORDER_VALUE = 110094
SPOT_INSUFFICIENT_BALANCE = 170131
SPOT_PRICE_DECIMALS = 170134
SPOT_QTY_LOWER_LIMIT = 170136
SPOT_QTY_DECIMALS = 170137
SPOT_VALUE_LOWER_LIMIT = 170140
SPOT_DUPLICATE_LINK_ID = 170141

MESSAGES = {
    TIMESTAMP: (
        "invalid request, please check your server timestamp or recv_window param. "
        "req_timestamp[{req}],server_timestamp[{server}],recv_window[{window}]"
    ),
    INVALID_KEY: "API key is invalid.",
    SIGNATURE: "error sign! origin_string[{origin}]",
    PERMISSION: "Permission denied, please check your API key permissions.",
    RATE_LIMIT: "Too many visits. Exceeded the API Rate Limit.",
    UNMATCHED_IP: "Unmatched IP, please check your API key's bound IP addresses.",
    SERVER_ERROR: "Internal server error.",
    ROUTE_NOT_FOUND: "Route not found.",
    ORDER_NOT_EXISTS: "order not exists or too late to cancel",
    INSUFFICIENT_BALANCE: "ab not enough for new order",
    LEVERAGE_NOT_MODIFIED: "leverage not modified",
    DUPLICATE_LINK_ID: "OrderLinkedID is duplicate",
    SPOT_DUPLICATE_LINK_ID: "Duplicate clientOrderId.",
    SPOT_INSUFFICIENT_BALANCE: "Insufficient balance.",
}


class BybitError(Exception):
    """An answer with a non-zero retCode (and, for a few cases, a non-200 HTTP status)."""

    def __init__(self, code: int, message: str | None = None, http_status: int = 200, **fmt: object) -> None:
        text = message if message is not None else MESSAGES.get(code, "error").format(**fmt)
        super().__init__(text)
        self.code = code
        self.message = text
        self.http_status = http_status


def params(message: str) -> BybitError:
    """A 10001 parameter error with a message a person can act on."""
    return BybitError(PARAMS, message)
