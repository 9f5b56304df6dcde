"""Invariants of trading, checked against the exchange's ground truth.

For a set of exchange accounts (a tenant's simulator account and the mode it trades in), compares what
the platform recorded (strategy's signals; execution's signal outcomes, orders, fills, positions and
wallet) with what the Bybit simulator's admin API says happened:

1. every signal of the tenant has exactly one recorded outcome, and an ORDERED outcome names an order of
   that signal;
2. every order on the exchange is known to execution and belongs to a signal, to the stop-loss or
   take-profit of a signal's position, or to a manual action taken through the platform's API;
3. the fills in our database are the exchange's fills (same ids, sides, quantities, prices, fees);
4. positions and the wallet balance agree with the exchange's.

It reads the services' schemas directly, which only tests may do (services own their schemas), so it
lives with the tests. `check` returns readable violations, empty when all hold; `settled` re-checks
until they hold or time runs out, for a platform that is still catching up with the exchange.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import hvac
import psycopg2
import psycopg2.extras

from services.common.bybit import BybitEnv, BybitVenue
from services.common.vault import SecretStore

PROTECTIVE_CREATE_TYPES = {"CreateByStopLoss", "CreateByTakeProfit", "CreateByTrailingStop"}


@dataclass(frozen=True)
class ExchangeAccount:
    """A tenant's account on the simulator, as execution trades it ("LIVE" or "PAPER")."""

    tenant_id: str
    uid: int
    mode: str = "LIVE"


@dataclass(frozen=True)
class Sources:
    """Where the truth and our records are: the simulator, the database and the services' schemas."""

    simulator_url: str
    database_url: str
    strategy_schema: str = "strategy"
    execution_schema: str = "execution"


def paper_account(sources: Sources, vault: hvac.Client, tenant_id: str) -> ExchangeAccount:
    """The tenant's paper account: execution keeps its key in Vault (decision 0036), the simulator
    names the key's account (`/v5/user/query-api`)."""
    key = SecretStore(vault).read(f"paper/{tenant_id}/exchange")
    if not key:
        raise AssertionError(f"execution has opened no paper account for tenant {tenant_id}")
    session = BybitVenue(BybitEnv.SIMULATOR, sources.simulator_url).http(key["api_key"], key["api_secret"])
    uid = session.get_api_key_information()["result"]["userID"]
    return ExchangeAccount(tenant_id, int(uid), "PAPER")


def check(sources: Sources, accounts: Iterable[ExchangeAccount]) -> list[str]:
    violations: list[str] = []
    with psycopg2.connect(sources.database_url) as conn:
        for account in accounts:
            ours = _Records(conn, sources, account)
            theirs = _Exchange(sources.simulator_url, account.uid)
            where = f"tenant {account.tenant_id} ({account.mode}, exchange account {account.uid})"
            violations += [f"{where}: {v}" for v in _signals_have_one_outcome(ours)]
            violations += [f"{where}: {v}" for v in _orders_belong(ours, theirs)]
            violations += [f"{where}: {v}" for v in _fills_agree(ours, theirs)]
            violations += [f"{where}: {v}" for v in _positions_and_balance_agree(ours, theirs)]
    return violations


def settled(sources: Sources, accounts: Iterable[ExchangeAccount], within: float = 60.0) -> list[str]:
    """`check` until it finds nothing or `within` seconds pass; the last violations found."""
    accounts = list(accounts)
    deadline = time.monotonic() + within
    while True:
        violations = check(sources, accounts)
        if not violations or time.monotonic() > deadline:
            return violations
        time.sleep(1.0)


class _Records:
    """The platform's records of one tenant in one mode."""

    def __init__(self, conn: Any, sources: Sources, account: ExchangeAccount) -> None:
        self.conn, self.tenant, self.mode = conn, account.tenant_id, account.mode
        s, e = sources.strategy_schema, sources.execution_schema
        mode = account.mode.lower()
        self.signals = self._rows(
            f"select s.id, s.bot_id from {s}.signal s join {s}.bot b on b.id = s.bot_id "
            "where s.tenant_id = %s and b.mode = %s",
            (self.tenant, mode),
        )
        self.all_signal_ids = {
            row["id"] for row in self._rows(f"select id from {s}.signal where tenant_id = %s", (self.tenant,))
        }
        # Every outcome of the tenant (a signal's bot may be unknown to execution); the bot's mode when known.
        self.outcomes = self._rows(
            f"select o.signal_id, o.outcome, o.order_id, o.reason, coalesce(b.mode, %s) as mode "
            f"from {e}.exec_signal o left join {e}.exec_bot b on b.bot_id = o.bot_id where o.tenant_id = %s",
            (account.mode, self.tenant),
        )
        self.orders = self._rows(
            f"select * from {e}.exec_order where tenant_id = %s and mode = %s", (self.tenant, account.mode)
        )
        self.fills = self._rows(
            f"select * from {e}.exec_fill where tenant_id = %s and mode = %s", (self.tenant, account.mode)
        )
        self.positions = self._rows(
            f"select * from {e}.exec_position where tenant_id = %s and mode = %s", (self.tenant, account.mode)
        )
        wallets = self._rows(
            f"select * from {e}.exec_wallet where tenant_id = %s and mode = %s order by time desc, id desc "
            "limit 1",
            (self.tenant, account.mode),
        )
        self.wallet = wallets[0] if wallets else None

    def _rows(self, query: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
        with self.conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute(query, args)
            return [dict(row) for row in cur.fetchall()]


class _Exchange:
    """Ground truth of one simulator account, from the simulator's admin API."""

    def __init__(self, url: str, uid: int) -> None:
        self.orders = _admin(url, f"accounts/{uid}/orders")["orders"]
        self.fills = [f for f in _admin(url, f"accounts/{uid}/fills")["fills"] if f["execType"] == "Trade"]
        self.positions = _admin(url, f"accounts/{uid}/positions")["positions"]
        self.balances = {
            c: Decimal(v) for c, v in _admin(url, f"accounts/{uid}/balances")["balances"].items()
        }


def _admin(url: str, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/admin/{path}", timeout=10) as response:
        return dict(json.loads(response.read()))


def _signals_have_one_outcome(ours: _Records) -> list[str]:
    out = []
    recorded = Counter(o["signal_id"] for o in ours.outcomes)
    orders = {o["id"]: o for o in ours.orders}
    for signal in ours.signals:
        count = recorded[signal["id"]]
        if count != 1:
            out.append(
                f"signal {signal['id']} of bot {signal['bot_id']} has {count} recorded outcomes, not 1"
            )
    for outcome in (o for o in ours.outcomes if o["mode"] == ours.mode):
        if outcome["signal_id"] not in ours.all_signal_ids:
            out.append(
                f"outcome {outcome['outcome']} is recorded for signal {outcome['signal_id']}, "
                "which strategy never emitted"
            )
        if outcome["outcome"] == "ORDERED":
            order = orders.get(outcome["order_id"])
            if order is None or order["signal_id"] != outcome["signal_id"]:
                out.append(
                    f"signal {outcome['signal_id']} is recorded as ORDERED with order "
                    f"{outcome['order_id']!r}, but execution has no such order of that signal"
                )
    return out


def _orders_belong(ours: _Records, theirs: _Exchange) -> list[str]:
    out = []
    by_exchange_id = {o["exchange_order_id"]: o for o in ours.orders if o["exchange_order_id"]}
    by_link = {o["order_link_id"]: o for o in ours.orders if o["order_link_id"]}
    for order in theirs.orders:
        what = f"exchange order {order['orderId']} ({order['side']} {order['qty']} {order['symbol']})"
        row = by_exchange_id.get(order["orderId"]) or by_link.get(order.get("orderLinkId") or "")
        if row is None:
            out.append(f"{what} is unknown to execution")
        elif row["signal_id"]:
            if row["signal_id"] not in ours.all_signal_ids:
                out.append(f"{what} names signal {row['signal_id']}, which strategy never emitted")
        elif row["external"]:
            out.append(f"{what} belongs to no signal and was not placed through the platform")
        elif order.get("createType") in PROTECTIVE_CREATE_TYPES and not _protected(ours, row["symbol"]):
            out.append(f"{what} is a stop-loss or take-profit of a position no signal opened")
        # Otherwise a manual action through the platform's API (ClosePosition): ours, with no signal.
    return out


def _protected(ours: _Records, symbol: str) -> bool:
    """Whether a signal's order on `symbol` carried a stop-loss or take-profit to the exchange."""
    return any(
        o["signal_id"] and o["symbol"] == symbol and (o["stop_loss"] or o["take_profit"]) for o in ours.orders
    )


def _fills_agree(ours: _Records, theirs: _Exchange) -> list[str]:
    out = []
    recorded = {f["exec_id"]: f for f in ours.fills}
    happened = {f["execId"]: f for f in theirs.fills}
    for exec_id, fill in happened.items():
        row = recorded.get(exec_id)
        what = f"exchange fill {exec_id} ({fill['side']} {fill['execQty']} {fill['symbol']})"
        if row is None:
            out.append(f"{what} is missing from our fills")
            continue
        for ours_field, theirs_field in (("side", "side"), ("symbol", "symbol")):
            if row[ours_field] != fill[theirs_field]:
                out.append(f"{what}: our {ours_field} is {row[ours_field]!r}")
        for ours_field, theirs_field in (
            ("exec_qty", "execQty"),
            ("exec_price", "execPrice"),
            ("exec_fee", "execFee"),
        ):
            if Decimal(row[ours_field]) != Decimal(fill[theirs_field]):
                out.append(
                    f"{what}: our {ours_field} is {row[ours_field]}, the exchange's {fill[theirs_field]}"
                )
    for exec_id, row in recorded.items():
        if exec_id not in happened:
            out.append(
                f"our fill {exec_id} ({row['side']} {row['exec_qty']} {row['symbol']}) "
                "never happened on the exchange"
            )
    return out


def _signed(side: str, size: Decimal) -> Decimal:
    return -size if side == "Sell" else size


def _positions_and_balance_agree(ours: _Records, theirs: _Exchange) -> list[str]:
    out = []
    exchange = {p["symbol"]: _signed(p["side"], Decimal(p["size"])) for p in theirs.positions}
    recorded = {p["symbol"]: p for p in ours.positions}
    for symbol in sorted(set(exchange) | set(recorded)):
        size = exchange.get(symbol, Decimal(0))
        row = recorded.get(symbol)
        seen = _signed(row["side"], Decimal(row["size"])) if row else Decimal(0)
        book = Decimal(row["book_size"]) if row else Decimal(0)
        if seen != size:
            out.append(f"{symbol} position: the exchange holds {size}, our record of it says {seen}")
        if book != size:
            out.append(f"{symbol} position: the exchange holds {size}, our book of fills adds up to {book}")
    if ours.wallet is None:
        if theirs.fills:
            out.append("no wallet balance recorded although the account has traded")
        return out
    coins = {c["coin"]: Decimal(c["wallet_balance"]) for c in ours.wallet["coins"]}
    for coin, balance in sorted(theirs.balances.items()):
        if coins.get(coin, Decimal(0)) != balance:
            out.append(f"{coin} wallet balance: the exchange's is {balance}, ours {coins.get(coin, 'none')}")
    return out
