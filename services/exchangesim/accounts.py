"""Accounts: API keys, balances, orders, executions and positions of each simulated user."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from decimal import Decimal

ZERO = Decimal(0)


@dataclass(frozen=True)
class ApiKey:
    key: str
    secret: str
    uid: int
    read_only: bool = False
    withdraw: bool = False
    ips: tuple[str, ...] = ()
    note: str = ""
    created_ms: int = 0


@dataclass
class Order:
    order_id: str
    order_link_id: str
    category: str
    symbol: str
    side: str
    order_type: str
    qty: Decimal
    price: Decimal
    time_in_force: str
    reduce_only: bool
    take_profit: Decimal
    stop_loss: Decimal
    created_ms: int
    last_price_on_created: Decimal
    market_unit: str = ""  # spot market orders: "baseCoin" or "quoteCoin"
    status: str = "New"
    cum_qty: Decimal = ZERO
    cum_value: Decimal = ZERO
    cum_fee: Decimal = ZERO
    updated_ms: int = 0
    cancel_type: str = "UNKNOWN"
    reject_reason: str = "EC_NoError"
    create_type: str = "CreateByUser"
    stop_order_type: str = ""
    close_on_trigger: bool = False
    fee_currency: str = "USDT"
    locked: Decimal = ZERO  # spot: funds held for the resting part
    quote_left: Decimal = ZERO  # spot market buy by quote amount: quote still to spend

    @property
    def leaves_qty(self) -> Decimal:
        if self.status in ("New", "PartiallyFilled", "Untriggered"):
            return self.qty - self.cum_qty
        return ZERO

    @property
    def avg_price(self) -> Decimal:
        return self.cum_value / self.cum_qty if self.cum_qty else ZERO

    @property
    def is_open(self) -> bool:
        return self.status in ("New", "PartiallyFilled")


@dataclass
class Execution:
    exec_id: str
    order: Order
    exec_type: str  # Trade or Funding
    price: Decimal
    qty: Decimal
    value: Decimal
    fee: Decimal
    fee_rate: Decimal
    is_maker: bool
    time_ms: int
    closed_size: Decimal
    leaves_qty: Decimal
    mark_price: Decimal
    seq: int
    fee_currency: str


@dataclass
class Position:
    symbol: str
    leverage: Decimal
    created_ms: int
    size: Decimal = ZERO  # signed: > 0 long, < 0 short
    avg_price: Decimal = ZERO
    take_profit: Decimal = ZERO
    stop_loss: Decimal = ZERO
    cur_realised: Decimal = ZERO
    cum_realised: Decimal = ZERO
    updated_ms: int = 0
    seq: int = 0

    @property
    def side(self) -> str:
        return "Buy" if self.size > 0 else "Sell" if self.size < 0 else ""


@dataclass
class Account:
    uid: int
    coins: dict[str, Decimal]
    created_ms: int
    orders: dict[str, Order] = field(default_factory=dict)
    link_ids: dict[tuple[str, str], str] = field(default_factory=dict)  # (category, orderLinkId) -> orderId
    executions: list[Execution] = field(default_factory=list)
    positions: dict[str, Position] = field(default_factory=dict)
    cum_realised: dict[str, Decimal] = field(default_factory=dict)
    leverage: dict[str, Decimal] = field(default_factory=dict)


class Accounts:
    """Every account and API key, looked up by uid or key."""

    def __init__(self) -> None:
        self.by_uid: dict[int, Account] = {}
        self.keys: dict[str, ApiKey] = {}
        self._next_uid = 100_001

    def create(self, balances: dict[str, Decimal]) -> Account:
        uid = self._next_uid
        self._next_uid += 1
        account = Account(uid=uid, coins=dict(balances), created_ms=int(time.time() * 1000))
        self.by_uid[uid] = account
        return account

    def add_key(
        self,
        uid: int,
        *,
        read_only: bool = False,
        withdraw: bool = False,
        ips: tuple[str, ...] = (),
        note: str = "",
    ) -> ApiKey:
        if uid not in self.by_uid:
            raise KeyError(uid)
        key = ApiKey(
            key=secrets.token_hex(9).upper(),
            secret=secrets.token_hex(18).upper(),
            uid=uid,
            read_only=read_only,
            withdraw=withdraw,
            ips=ips,
            note=note,
            created_ms=int(time.time() * 1000),
        )
        self.keys[key.key] = key
        return key
