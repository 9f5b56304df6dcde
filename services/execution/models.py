"""The execution service's tables. Every row carries `tenant_id` (kill switches of GLOBAL scope aside).

Money, prices and quantities are NUMERIC and Decimal in Python. No column ever holds an exchange key
or secret: those are read from Vault on demand and kept in memory only (credentials.py).

The models use their own registry, so their metadata never mixes with other services' tables when
several services are imported into one process (tests, tools).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import registry
from sqlmodel import Column, Field, SQLModel

_registry = registry()
ZERO = Decimal(0)


class Model(SQLModel, registry=_registry):
    pass


metadata = _registry.metadata


def _ts(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(sa.DateTime(timezone=True), nullable=nullable))


def _money(default: Decimal | None = ZERO) -> Any:
    return Field(default=default, sa_column=Column(sa.Numeric, nullable=default is not None))


class Order(Model, table=True):
    """One order on the tenant's account; written as PENDING_SUBMIT before it is ever sent."""

    __tablename__ = "exec_order"
    # Open orders are counted per (tenant, mode) on every account summary (migration 0003).
    __table_args__ = (sa.Index("exec_order_tenant_mode_status", "tenant_id", "mode", "status"),)
    id: str = Field(primary_key=True)
    tenant_id: str = Field(index=True)
    bot_id: str = ""
    signal_id: str = ""
    order_link_id: str = ""
    exchange_order_id: str = ""
    category: str  # Bybit spelling: "linear" | "spot"
    symbol: str
    side: str  # "Buy" | "Sell"
    order_type: str = "Market"
    time_in_force: str = "IOC"
    qty: Decimal = _money()
    price: Decimal | None = _money(None)
    reduce_only: bool = False
    take_profit: Decimal | None = _money(None)
    stop_loss: Decimal | None = _money(None)
    status: str = "PendingSubmit"  # Bybit orderStatus, or PendingSubmit before the exchange knows it
    reject_reason: str = ""
    cum_exec_qty: Decimal = _money()
    cum_exec_value: Decimal = _money()
    cum_exec_fee: Decimal = _money()
    fee_currency: str = ""
    avg_price: Decimal | None = _money(None)
    leaves_qty: Decimal = _money()
    mode: str = "LIVE"
    external: bool = False
    position_idx: int = 0
    create_type: str = ""
    create_time: datetime = _ts(False)
    update_time: datetime = _ts(False)
    exchange_update_ms: int = Field(default=0, sa_column=Column(sa.BigInteger, nullable=False))
    revision: int = 0  # bumped on every change; part of the OrderEvent id
    # An entry's stop and target as the signal's distances from its reference price: once the entry
    # fills, the position's levels are moved to fill -/+ these (brackets.py, decision 0037).
    stop_distance: Decimal | None = _money(None)
    target_distance: Decimal | None = _money(None)
    # When the fill-based levels were settled (set, or found needless); NULL while still to do.
    bracket_time: datetime | None = _ts()
    bracket_note: str = ""  # what became of them: "set", or why they were not


class Fill(Model, table=True):
    """A trade execution (never funding). `realized_pnl` comes from the platform's own position book."""

    __tablename__ = "exec_fill"
    tenant_id: str = Field(primary_key=True)
    exec_id: str = Field(primary_key=True)
    bot_id: str = ""
    order_id: str = ""
    exchange_order_id: str = ""
    order_link_id: str = ""
    category: str
    symbol: str = Field(index=True)
    side: str
    exec_price: Decimal = _money()
    exec_qty: Decimal = _money()
    exec_value: Decimal = _money()
    exec_fee: Decimal = _money()
    fee_rate: Decimal = _money()
    fee_currency: str = ""
    is_maker: bool = False
    closed_size: Decimal = _money()
    realized_pnl: Decimal = _money()
    exec_time: datetime = _ts(False)
    mode: str = "LIVE"
    external: bool = False
    seq: int = Field(default=0, sa_column=Column(sa.BigInteger, nullable=False))


class Funding(Model, table=True):
    """A funding settlement (Bybit execType Funding): counted in PnL, never a fill."""

    __tablename__ = "exec_funding"
    tenant_id: str = Field(primary_key=True)
    exec_id: str = Field(primary_key=True)
    symbol: str
    # Positive when received, negative when paid (Bybit's execFee has the opposite sign).
    amount: Decimal = _money()
    exec_time: datetime = _ts(False)
    mode: str = "LIVE"


class Position(Model, table=True):
    """The exchange's view of a position (stream, reconciliation) and the platform's book of it (fills)."""

    __tablename__ = "exec_position"
    tenant_id: str = Field(primary_key=True)
    category: str = Field(primary_key=True)
    symbol: str = Field(primary_key=True)
    mode: str = Field(primary_key=True, default="LIVE")
    bot_id: str = ""
    side: str = ""  # "Buy" | "Sell" | "" when flat
    size: Decimal = _money()
    entry_price: Decimal = _money()
    mark_price: Decimal = _money()
    leverage: Decimal = _money(Decimal(1))
    position_value: Decimal = _money()
    unrealized_pnl: Decimal = _money()
    take_profit: Decimal | None = _money(None)
    stop_loss: Decimal | None = _money(None)
    liq_price: Decimal | None = _money(None)
    position_idx: int = 0
    # The platform's book, rebuilt from fills in exchange sequence: signed size and average entry price.
    book_size: Decimal = _money()
    book_avg_price: Decimal = _money()
    book_realized_pnl: Decimal = _money()
    book_last_seq: int = Field(default=0, sa_column=Column(sa.BigInteger, nullable=False))
    open_time: datetime | None = _ts()
    update_time: datetime = _ts(False)


class WalletSnapshot(Model, table=True):
    """Balances as reported at one time: the latest is the account's state, all of them its equity history."""

    __tablename__ = "exec_wallet"
    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = Field(index=True)
    mode: str = "LIVE"
    time: datetime = _ts(False)
    total_equity: Decimal = _money()
    total_wallet_balance: Decimal = _money()
    total_available_balance: Decimal = _money()
    total_initial_margin: Decimal = _money()
    total_maintenance_margin: Decimal = _money()
    total_perp_upl: Decimal = _money()
    coins: list[dict[str, str]] = Field(default_factory=list, sa_column=Column(sa.JSON, nullable=False))


class RiskLimitsRow(Model, table=True):
    """Limits of a tenant (`bot_id` "") or of one bot; NULL fields inherit."""

    __tablename__ = "exec_risk_limits"
    tenant_id: str = Field(primary_key=True)
    bot_id: str = Field(primary_key=True, default="")
    max_position_notional: Decimal | None = _money(None)
    max_open_positions: int | None = None
    max_leverage: Decimal | None = _money(None)
    daily_loss_limit: Decimal | None = _money(None)
    max_orders_per_minute: int | None = None
    update_time: datetime = _ts(False)
    updated_by: str = ""


class KillSwitchRow(Model, table=True):
    __tablename__ = "exec_kill_switch"
    scope: str = Field(primary_key=True)  # "GLOBAL" | "TENANT" | "BOT"
    tenant_id: str = Field(primary_key=True, default="")
    bot_id: str = Field(primary_key=True, default="")
    engaged: bool = False
    # Engaged to flatten: positions in scope are closed, and closed again while it stays engaged
    # (flatten.py).
    close_positions: bool = False
    reason: str = ""
    changed_by: str = ""
    change_time: datetime = _ts(False)


class RiskEventRow(Model, table=True):
    __tablename__ = "exec_risk_event"
    id: str = Field(primary_key=True)
    tenant_id: str = Field(index=True)
    bot_id: str = ""
    signal_id: str = ""
    order_id: str = ""
    category: str = ""
    symbol: str = ""
    kind: str  # RiskEventKind name
    reason: str  # RiskReason name
    message: str = ""
    details: dict[str, str] = Field(default_factory=dict, sa_column=Column(sa.JSON, nullable=False))
    mode: str = "LIVE"
    occur_time: datetime = _ts(False)


class SignalOutcome(Model, table=True):
    """What became of a signal; written before the signal is acknowledged, never changed afterwards."""

    __tablename__ = "exec_signal"
    tenant_id: str = Field(primary_key=True)
    signal_id: str = Field(primary_key=True)
    bot_id: str = ""
    outcome: str  # "ORDERED" | "SKIPPED" | "REJECTED"
    order_id: str = ""
    reason: str = ""
    record_time: datetime = _ts(False)


class Bot(Model, table=True):
    """What execution needs to know of a bot (from bot lifecycle events) to size its signals."""

    __tablename__ = "exec_bot"
    bot_id: str = Field(primary_key=True)
    tenant_id: str = Field(index=True)
    category: str = ""
    symbol: str = ""
    mode: str = "LIVE"
    capital_allocation: Decimal | None = _money(None)
    risk_per_trade: Decimal | None = _money(None)  # a fraction: 0.01 is 1 %
    leverage: Decimal | None = _money(None)  # the bot's own notional cap as a multiple of equity
    max_position_notional: Decimal | None = _money(None)  # the bot's own notional cap
    status: str = ""
    deleted: bool = False
    update_time: datetime = _ts(False)


class Account(Model, table=True):
    """A tenant's exchange account of one mode (LIVE: their own keys; PAPER: the simulator account
    execution provisions for them) as execution tracks it: whether it trades, reconciliation marks."""

    __tablename__ = "exec_account"
    tenant_id: str = Field(primary_key=True)
    mode: str = Field(primary_key=True, default="LIVE")
    active: bool = True
    vault_version: int = 0
    last_reconcile_time: datetime | None = _ts()
    last_exec_time_ms: int = Field(default=0, sa_column=Column(sa.BigInteger, nullable=False))
