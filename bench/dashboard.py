"""Dashboard: the overview of a tenant with 100,000 orders, timed as the page loads it.

The tenants, strategy and execution services run as real processes on the embedded stack (PostgreSQL,
NATS, OpenBao), exactly as `make run` starts them. One tenant's year of trading is written straight
into their schemas with COPY: 100,000 orders, a fill for each filled order, a few open positions,
hourly wallet snapshots, risk events and a dozen bots. Measured from this process, through the
dashboard's own client:

- `overview_data.load`, the calls the overview page makes on every refresh (all in parallel, then each
  bot's PnL of today; its earlier days come from the background, docs/decisions/0042), over many
  rounds: p50/p95/p99 against the goal of 300 ms at p95; and the first load, and how long until every
  bot's total is shown;
- each of those calls alone, to show where the time goes, and the plans of the heaviest queries;
- side by side in the same run, two baselines: the overview as it was (each bot's all-time GetPnL on
  every refresh), and the naive way (paging through every order and fill with the List RPCs).
"""

from __future__ import annotations

import csv
import io
import json
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ORDERS = 100_000
BOTS = 12
OPEN_POSITIONS = 4
WALLET_HOURS = 24 * 365
RISK_EVENTS = 400
ROUNDS = 200
BASELINE_ROUNDS = 3
GOAL_P95_MS = 300.0
SERVICES = ("tenants", "strategy", "execution")
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT", "ADAUSDT")
# Orders of a live account: mostly market orders that filled, some cancelled or refused, a few open.
STATUSES = ["Filled"] * 90 + ["Cancelled"] * 6 + ["Rejected"] * 3 + ["New"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def figures(samples_ms: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(samples_ms), 1),
        "p95_ms": round(percentile(samples_ms, 0.95), 1),
        "p99_ms": round(percentile(samples_ms, 0.99), 1),
    }


def progress(label: str, done: int, total: int) -> None:
    print(f"\r  seeding {label}: {done:,}/{total:,}", end="" if done < total else "\n", flush=True)


class Copier:
    """COPY rows into one table of a schema, in chunks, with progress."""

    def __init__(self, url: str) -> None:
        import psycopg2

        self.conn = psycopg2.connect(url)

    def copy(
        self, schema: str, table: str, columns: list[str], rows: Iterator[list[Any]], total: int
    ) -> None:
        chunk: list[list[Any]] = []

        def flush() -> None:
            buffer = io.StringIO()
            csv.writer(buffer).writerows(chunk)
            buffer.seek(0)
            with self.conn.cursor() as cursor:
                names = ", ".join(columns)
                sql = f"COPY \"{schema}\".{table} ({names}) FROM STDIN WITH (FORMAT csv, NULL '\\N')"
                cursor.copy_expert(sql, buffer)
            self.conn.commit()

        for done, row in enumerate(rows, 1):
            chunk.append(["\\N" if value is None else value for value in row])
            if len(chunk) == 10_000 or done == total:
                flush()
                chunk = []
                progress(table, done, total)

    def execute(self, sql: str) -> list[Any]:
        with self.conn.cursor() as cursor:
            cursor.execute(sql)
            rows = cursor.fetchall() if cursor.description else []
        self.conn.commit()
        return rows

    def close(self) -> None:
        self.conn.close()


def seed(db: Copier, tenant: str) -> list[str]:
    """A year of one tenant's live trading; returns the bots' ids."""
    rng = random.Random(7)
    now = datetime.now(UTC)
    start = now - timedelta(days=365)
    bots = [str(uuid.uuid4()) for _ in range(BOTS)]
    bot_symbol = {bot: SYMBOLS[i % len(SYMBOLS)] for i, bot in enumerate(bots)}

    bot_columns = ["id", "tenant_id", "name", "strategy_id", "strategy_version", "template", "parameters"]
    bot_columns += ["overrides", "category", "symbol", "interval", "mode", "capital_allocation", "status"]
    bot_columns += ["status_message", "created_by", "create_time", "update_time"]
    db.copy(
        "strategy",
        "bot",
        bot_columns,
        (
            [
                *(
                    bot,
                    tenant,
                    f"bot-{i:02d}",
                    "ppp_vishva",
                    "1",
                    "default",
                    json.dumps({"risk_per_trade": 0.01}),
                ),
                *("{}", "linear", bot_symbol[bot], "60", "live", "1000"),
                # Half running; the engine is not told (no candles flow here): the overview only reads.
                *("running" if i < BOTS // 2 else "stopped", "", "bench", start, now),
            ]
            for i, bot in enumerate(bots)
        ),
        BOTS,
    )

    step = (now - start) / ORDERS
    order_columns = [
        "id",
        "tenant_id",
        "bot_id",
        "signal_id",
        "order_link_id",
        "exchange_order_id",
        "category",
        "symbol",
        "side",
        "order_type",
        "time_in_force",
        "qty",
        "price",
        "status",
        "reject_reason",
        "cum_exec_qty",
        "cum_exec_value",
        "cum_exec_fee",
        "fee_currency",
        "avg_price",
        "leaves_qty",
        "mode",
        "create_time",
        "update_time",
        "revision",
    ]
    fill_columns = [
        "tenant_id",
        "exec_id",
        "bot_id",
        "order_id",
        "exchange_order_id",
        "order_link_id",
        "category",
        "symbol",
        "side",
        "exec_price",
        "exec_qty",
        "exec_value",
        "exec_fee",
        "fee_rate",
        "fee_currency",
        "closed_size",
        "realized_pnl",
        "exec_time",
        "mode",
        "seq",
    ]
    fills: list[list[Any]] = []

    def orders() -> Iterator[list[Any]]:
        for i in range(ORDERS):
            bot = bots[i % BOTS]
            symbol = bot_symbol[bot]
            when = start + step * i
            status = rng.choice(STATUSES)
            side = "Buy" if i % 2 == 0 else "Sell"
            qty = Decimal(rng.randint(1, 500)) / 10
            price = Decimal(rng.randint(10_000, 900_000)) / 100
            filled = status == "Filled"
            value = qty * price if filled else Decimal(0)
            fee = (value * Decimal("0.00055")).quantize(Decimal("0.00000001"))
            order_id = str(uuid.uuid4())
            link = f"tb-{uuid.uuid4().hex[:24]}"
            exchange_id = str(uuid.uuid4()) if status != "Rejected" else ""
            yield [
                order_id,
                tenant,
                bot,
                f"s{i}",
                link,
                exchange_id,
                "linear",
                symbol,
                side,
                "Market",
                "IOC",
                qty,
                None,
                status,
                "insufficient balance" if status == "Rejected" else "",
                qty if filled else 0,
                value,
                fee,
                "USDT",
                price if filled else None,
                qty if status == "New" else 0,
                "LIVE",
                when,
                when,
                2,
            ]
            if filled:
                closing = side == "Sell"
                pnl = (Decimal(rng.randint(-3000, 3300)) / 100) if closing else Decimal(0)
                fills.append(
                    [
                        tenant,
                        str(uuid.uuid4()),
                        bot,
                        order_id,
                        exchange_id,
                        link,
                        "linear",
                        symbol,
                        side,
                        price,
                        qty,
                        value,
                        fee,
                        "0.00055",
                        "USDT",
                        qty if closing else 0,
                        pnl,
                        when + timedelta(milliseconds=40),
                        "LIVE",
                        i + 1,
                    ]
                )

    db.copy("execution", "exec_order", order_columns, orders(), ORDERS)
    db.copy("execution", "exec_fill", fill_columns, iter(fills), len(fills))
    db.copy(
        "execution",
        "exec_position",
        [
            *(
                "tenant_id",
                "category",
                "symbol",
                "mode",
                "bot_id",
                "side",
                "size",
                "entry_price",
                "mark_price",
            ),
            *("position_value", "unrealized_pnl", "stop_loss", "take_profit", "open_time", "update_time"),
        ],
        iter(
            [
                [
                    *(tenant, "linear", bot_symbol[bot], "LIVE", bot, "Buy", "1.5", "100", "101"),
                    *("151.5", "1.5", "98", "104", now - timedelta(hours=3), now),
                ]
                for bot in bots[:OPEN_POSITIONS]
            ]
        ),
        OPEN_POSITIONS,
    )
    db.copy(
        "execution",
        "exec_wallet",
        [
            *("tenant_id", "mode", "time", "total_equity", "total_wallet_balance", "total_available_balance"),
            *("total_initial_margin", "total_maintenance_margin", "total_perp_upl", "coins"),
        ],
        (
            [
                tenant,
                "LIVE",
                start + timedelta(hours=h),
                100_000 + h,
                100_000 + h,
                90_000,
                10_000,
                500,
                0,
                "[]",
            ]
            for h in range(WALLET_HOURS)
        ),
        WALLET_HOURS,
    )
    db.copy(
        "execution",
        "exec_risk_event",
        ["id", "tenant_id", "bot_id", "kind", "reason", "message", "details", "mode", "occur_time"],
        (
            [
                str(uuid.uuid4()),
                tenant,
                bots[i % BOTS],
                "RISK_EVENT_KIND_SIGNAL_SKIPPED",
                "RISK_REASON_MAX_OPEN_POSITIONS",
                "The signal was not traded: the account already holds its maximum of open positions.",
                "{}",
                "LIVE",
                start + (now - start) * i / RISK_EVENTS,
            ]
            for i in range(RISK_EVENTS)
        ),
        RISK_EVENTS,
    )
    db.execute('ANALYZE "execution".exec_order, "execution".exec_fill, "execution".exec_wallet')
    return bots


def timed(label: str, call: Callable[[], Any], rounds: int) -> list[float]:
    samples = []
    for n in range(1, rounds + 1):
        began = time.perf_counter()
        call()
        samples.append(1000 * (time.perf_counter() - began))
        if n % 10 == 0 or n == rounds:
            print(
                f"\r  {label}: {n}/{rounds}, last {samples[-1]:.0f} ms",
                end="\n" if n == rounds else "",
                flush=True,
            )
    return samples


def naive_overview(api: Any, mode: int) -> dict[str, Any]:
    """The overview's figures the naive way: every order and every fill paged through the List RPCs."""
    from tradebot.execution.v1 import events_pb2 as xe
    from tradebot.execution.v1 import execution_service_pb2 as ex
    from tradebot.strategy.v1 import strategy_service_pb2 as sp

    open_statuses = {
        xe.ORDER_STATUS_PENDING_SUBMIT,
        xe.ORDER_STATUS_CREATED,
        xe.ORDER_STATUS_NEW,
        xe.ORDER_STATUS_PARTIALLY_FILLED,
        xe.ORDER_STATUS_UNTRIGGERED,
    }
    orders: list[Any] = []
    token = ""
    while True:
        page = api.execution.ListOrders(ex.ListOrdersRequest(mode=mode, page_size=500, page_token=token))
        orders.extend(page.orders)
        token = page.next_page_token
        if not token:
            break
    fills: list[Any] = []
    token = ""
    while True:
        reply = api.execution.ListFills(ex.ListFillsRequest(mode=mode, page_size=1000, page_token=token))
        fills.extend(reply.fills)
        token = reply.next_page_token
        if not token:
            break
    bots = api.strategy.ListBots(sp.ListBotsRequest(mode=mode, page_size=200)).bots
    day = int(datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0).timestamp())
    total: dict[str, Decimal] = {bot.id: Decimal(0) for bot in bots}
    today: dict[str, Decimal] = {bot.id: Decimal(0) for bot in bots}
    for fill in fills:
        if fill.bot_id in total:
            net = Decimal(fill.realized_pnl) - Decimal(fill.exec_fee)
            total[fill.bot_id] += net
            if fill.exec_time.seconds >= day:
                today[fill.bot_id] += net
    return {
        "latest": orders[:10],
        "open": sum(1 for o in orders if o.status in open_statuses),
        "pnl": {bot: (today[bot], total[bot]) for bot in total},
    }


def explain(db: Copier, tenant: str) -> dict[str, str]:
    """The plans of the overview's heaviest queries on the seeded data (for docs/decisions)."""
    queries = {
        "latest_orders": f"select * from execution.exec_order where tenant_id = '{tenant}' and mode = 'LIVE' "
        "and not external order by create_time desc, id limit 11",
        "open_orders": f"select count(*) from execution.exec_order where tenant_id = '{tenant}' and "
        "mode = 'LIVE' and status in ('PendingSubmit','Created','New','PartiallyFilled','Untriggered')",
        "bot_fills": f"select * from execution.exec_fill where tenant_id = '{tenant}' and mode = 'LIVE' "
        f"and bot_id = (select bot_id from execution.exec_fill where tenant_id = '{tenant}' limit 1)",
        "today_fills": f"select * from execution.exec_fill where tenant_id = '{tenant}' and mode = 'LIVE' "
        "and exec_time >= date_trunc('day', now() at time zone 'utc') at time zone 'utc'",
    }
    plans = {}
    for name, sql in queries.items():
        rows = db.execute(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) {sql}")
        plans[name] = "\n".join(str(r[0]) for r in rows)
    return plans


def sign_up(platform: Any, outbox: Path, admin_email: str) -> Any:
    """The platform's first admin signs up from the invitation in the outbox and invites the client,
    whose tenant is the one measured: real sessions, so the client's token refreshes like a user's."""
    from email import message_from_bytes

    from tradebot.tenants.v1 import tenants_service_pb2 as tp

    from services.dashboard.client import Api, Credentials

    def invite_code(email: str) -> str:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for path in outbox.glob("*.eml"):
                message = message_from_bytes(path.read_bytes())
                if message["To"] == email:
                    body = bytes(message.get_payload(decode=True)).decode()
                    return body.split("invite code on the sign-up page: ")[1].split()[0]
            time.sleep(0.2)
        raise RuntimeError(f"no invitation for {email} in {outbox}")

    tenants = platform.anonymous().tenants
    password = f"Correct-Horse-{uuid.uuid4().hex[:8]}!"

    def join(email: str, code: str, tenant_name: str) -> Any:
        request = tp.SignUpRequest(
            invite_token=code, email=email, password=password, display_name="Bench", tenant_name=tenant_name
        )
        return tenants.SignUp(request).tokens

    admin = Api(platform, Credentials.from_tokens(join(admin_email, invite_code(admin_email), "Platform")))
    client = "client@bench.example.com"
    admin.tenants.CreateInvite(tp.CreateInviteRequest(email=client, new_tenant=True))
    return join(client, invite_code(client), "Hundred Thousand Orders")


@contextmanager
def seeded_platform() -> Iterator[tuple[Any, str, list[str], dict[str, str]]]:
    """The services on the embedded stack with one seeded tenant: its Api, id, bots, query plans."""
    from tradebot.tenants.v1 import tenants_service_pb2 as tp

    from services.dashboard.client import Api, Credentials, Platform
    from services.devstack.platform import plan_services
    from tests.helpers.infra import start_infra

    with tempfile.TemporaryDirectory() as folder:
        infra = start_infra(Path(folder))
        planned = plan_services(infra.env, Path(folder), infra.vault.service_tokens, base_port=0)
        processes = [s for s in planned if s.name in SERVICES]
        admin_email = "admin@bench.example.com"
        outbox = Path(folder) / "outbox"
        processes[0].extra_env = {"ADMIN_EMAIL": admin_email, "INVITE_OUTBOX": str(outbox)}
        try:
            for service in processes:
                service.start()
            deadline = time.monotonic() + 120
            while not all(s.status() == "SERVING" for s in processes):
                failed = [s.name for s in processes if s.status().startswith("EXITED")]
                if failed or time.monotonic() > deadline:
                    raise RuntimeError(f"services did not start: {[(s.name, s.status()) for s in processes]}")
                time.sleep(0.3)
            platform = Platform({s.name: s.address for s in processes})
            api = Api(platform, Credentials.from_tokens(sign_up(platform, outbox, admin_email)))
            tenant = api.tenants.GetMe(tp.GetMeRequest()).tenant.id
            db = Copier(infra.postgres.url)
            try:
                began = time.monotonic()
                bots = seed(db, tenant)
                print(f"  seeded in {time.monotonic() - began:.1f} s", flush=True)
                plans = explain(db, tenant)
            finally:
                db.close()
            yield api, tenant, bots, plans
        finally:
            for service in reversed(processes):
                service.stop()
            infra.stop()


def every_bot_all_time(api: Any, mode: int) -> None:
    """The overview as it was before the split at the start of the day: the same calls, then each
    bot's GetPnL over its whole history on every refresh."""
    from services.dashboard import overview_data

    bots = overview_data.calls(api, mode)["bots"]().bots
    list(overview_data._POOL.map(lambda bot: overview_data.pnl_of_bot(api, bot.id, mode), bots))
    for call in overview_data.calls(api, mode).values():
        call()


def main() -> None:
    from tradebot.common.v1 import common_pb2 as common

    from bench.results import write_result
    from services.dashboard import overview_data

    mode = common.TRADING_MODE_LIVE
    with seeded_platform() as (api, tenant, bots, plans):
        began = time.monotonic()
        first = overview_data.load(api, mode, tenant)
        first_ms = 1000 * (time.monotonic() - began)
        assert not first.errors, {name: e.sentence for name, e in first.errors.items()}
        assert len(first.get("orders").orders) == overview_data.LATEST_ORDERS
        assert len(first.bot_pnl) == len(bots), first.bot_pnl.keys()
        while any(p.total is None for p in overview_data.load(api, mode, tenant).bot_pnl.values()):
            time.sleep(0.2)
        totals_s = time.monotonic() - began
        print(f"  first load {first_ms:.0f} ms; every bot's total shown after {totals_s:.1f} s", flush=True)
        parts = {
            name: figures(timed(name, call, ROUNDS // 4))
            for name, call in overview_data.calls(api, mode).items()
        }
        day = overview_data.start_of_day()
        parts["GetPnL (one bot, today)"] = figures(
            timed(
                "GetPnL today", lambda: overview_data.pnl_of_bot(api, bots[0], mode, since=day), ROUNDS // 4
            )
        )
        parts["GetPnL (one bot, all time)"] = figures(
            timed(
                "GetPnL all time", lambda: overview_data.pnl_of_bot(api, bots[0], mode), BASELINE_ROUNDS * 3
            )
        )
        ours = timed("overview", lambda: overview_data.load(api, mode, tenant), ROUNDS)
        before = timed(
            "overview before the split", lambda: every_bot_all_time(api, mode), BASELINE_ROUNDS * 3
        )
        naive = timed("naive overview", lambda: naive_overview(api, mode), BASELINE_ROUNDS)

    mine, old, base = figures(ours), figures(before), figures(naive)
    print("  per call:")
    for name, values in parts.items():
        print(f"    {name:28} p50 {values['p50_ms']:7.1f} ms  p95 {values['p95_ms']:7.1f} ms")
    for name, plan in plans.items():
        print(f"  plan {name}:\n    " + plan.replace("\n", "\n    "))
    verdict = "met" if mine["p95_ms"] <= GOAL_P95_MS else "NOT met"
    print(
        f"  overview p50/p95/p99 {mine['p50_ms']}/{mine['p95_ms']}/{mine['p99_ms']} ms "
        f"(goal p95 {GOAL_P95_MS:.0f} ms: {verdict})\n"
        f"  every bot's all-time GetPnL on each refresh: p95 {old['p95_ms']} ms, "
        f"ratio {old['p95_ms'] / mine['p95_ms']:.1f}x\n"
        f"  naive (paging every order and fill): p95 {base['p95_ms']} ms, "
        f"ratio {base['p95_ms'] / mine['p95_ms']:.1f}x"
    )

    def side_by_side(baseline: dict[str, float], key: str) -> dict[str, Any]:
        return {"value": mine[key], "baseline": baseline[key], "ratio": round(baseline[key] / mine[key], 1)}

    write_result(
        "dashboard",
        {
            "orders": ORDERS,
            "fills": "one per filled order (about 90 %)",
            "bots": BOTS,
            "rounds": {"value": ROUNDS, "all_time_pnl": BASELINE_ROUNDS * 3, "naive": BASELINE_ROUNDS},
            "first_load_ms": round(first_ms, 1),
            "every_total_shown_s": round(totals_s, 1),
            **{f"overview_{key}": {**side_by_side(base, key), "goal": GOAL_P95_MS} for key in ("p95_ms",)},
            **{f"overview_{key}": side_by_side(base, key) for key in ("p50_ms", "p99_ms")},
            **{f"vs_all_time_pnl_{key}": side_by_side(old, key) for key in ("p50_ms", "p95_ms", "p99_ms")},
            "per_call": parts,
            "baseline_is": "the same figures computed by paging through every order and fill with "
            "ListOrders/ListFills (page sizes 500/1000)",
            "all_time_pnl_is": "the same calls with every bot's all-time GetPnL on each refresh (the "
            "overview before its PnL was split at the start of the day)",
        },
    )


if __name__ == "__main__":
    main()
