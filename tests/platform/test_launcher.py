"""`make run`'s launcher from the outside: it brings the whole platform up, says how long it took, sets
up the demo (admin, client, a paper bot) and reports the bot's first trade, stops cleanly; a second run
finds the data the first one left and creates no second demo."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import hvac
import psycopg2
import pytest

from services.devstack import platform
from services.devstack.openbao import EmbeddedOpenBao
from services.devstack.platform import REPO
from services.devstack.postgres import EmbeddedPostgres
from services.devstack.processes import LISTEN_PORTS_FROM, bindable, ephemeral_ports, free_port

# Two launches, the first until the demo's first trade: on a loaded machine more than the default.
pytestmark = pytest.mark.timeout(900)


def launch(data: Path, until: str = "--exit-when-ready") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "services.devstack",
            until,
            "--any-ports",
            "--data",
            str(data),
            "--timeout",
            "300",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=420,
        check=False,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"},
    )


def database_rows(postgres: EmbeddedPostgres, query: str) -> list[tuple[object, ...]]:
    with psycopg2.connect(postgres.url) as conn, conn.cursor() as cur:
        cur.execute(query)
        return list(cur.fetchall())


def test_launcher_brings_everything_up_and_a_second_run_keeps_the_data(tmp_path: Path) -> None:
    first = launch(tmp_path, until="--exit-after-first-trade")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "Tradebot is up in" in first.stdout
    for name in ("postgresql", "nats", "vault", "bybit", "tenants", "marketdata", "strategy", "execution"):
        assert name in first.stdout
    assert "dashboard   http://127.0.0.1:" in first.stdout
    init = json.loads((tmp_path / "openbao" / "init.json").read_text())
    assert (tmp_path / "openbao" / "init.json").stat().st_mode & 0o777 == 0o600

    # The demo: sign-in details printed and kept private; the paper bot traded on the replay.
    demo = json.loads((tmp_path / "demo.json").read_text())
    assert (tmp_path / "demo.json").stat().st_mode & 0o777 == 0o600
    assert "Demo (created now" in first.stdout
    for line in ("client      demo@tradebot.local", f"password    {demo['password']}"):
        assert line in first.stdout
    assert f"password    {demo['admin_password']}" in first.stdout
    assert "demo bot    demo-ppp-vishva: PPP Vishva (moderate), SOLUSDT 1h, paper" in first.stdout
    trade = re.search(
        r"first simulated trade after ([0-9.]+)s: (Buy|Sell) [0-9.]+ SOLUSDT at [0-9.]+ \(paper\)",
        first.stdout,
    )
    assert trade, first.stdout[-2000:]
    print(f"time to the first simulated trade: {trade.group(1)} s")
    replayed = json.loads((tmp_path / "replay.json").read_text())["candles"]
    assert replayed > 200, "the replay's place was not kept"

    # Plant a row and a secret while the platform is down, through the same embedded parts.
    postgres = EmbeddedPostgres(tmp_path / "postgres").start()
    bao = EmbeddedOpenBao(tmp_path / "openbao").start()
    try:
        with psycopg2.connect(postgres.url) as conn, conn.cursor() as cur:
            cur.execute("create table kept (note text); insert into kept values ('still here')")
        vault = hvac.Client(url=bao.addr, token=bao.root_token)
        vault.secrets.kv.v2.create_or_update_secret(path="kept", secret={"note": "still here"})
    finally:
        bao.stop()
        postgres.stop()

    second = launch(tmp_path)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert json.loads((tmp_path / "openbao" / "init.json").read_text()) == init, (
        "OpenBao was initialised again"
    )
    assert "Demo (kept from an earlier run" in second.stdout
    assert json.loads((tmp_path / "demo.json").read_text()) == demo
    assert f"password    {demo['password']}" in second.stdout
    assert json.loads((tmp_path / "replay.json").read_text())["candles"] >= replayed
    postgres = EmbeddedPostgres(tmp_path / "postgres").start()
    bao = EmbeddedOpenBao(tmp_path / "openbao").start()
    try:
        assert database_rows(postgres, "select note from kept") == [("still here",)]
        # One demo organisation (and the admin's own), one demo bot, still running.
        assert sorted(database_rows(postgres, "select name from tenants.tenant")) == [
            ("Demo",),
            ("Platform",),
        ]
        assert database_rows(postgres, "select name, mode, status from strategy.bot") == [
            ("demo-ppp-vishva", "paper", "running")
        ]
        vault = hvac.Client(url=bao.addr, token=bao.root_token)
        assert vault.secrets.kv.v2.read_secret_version(path="kept", raise_on_deleted_version=True)["data"][
            "data"
        ] == {"note": "still here"}
    finally:
        bao.stop()
        postgres.stop()


def test_the_services_get_distinct_ports_when_the_kernel_hands_one_out_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A port probed free is free again once the probe closes, so the kernel can hand the same one to two
    services not yet started (it happened in CI: strategy and execution on one port, gRPC's SO_REUSEPORT
    let both bind, and execution's callers reached strategy). Which port the kernel returns cannot be
    forced, so the probe is replaced by one that repeats itself."""
    handed = iter([41001, 41001, 41002, 41002, 41003, 41004, 41004, 41005, 41006])
    monkeypatch.setattr(platform, "free_port", lambda host="127.0.0.1": next(handed))
    services = platform.plan_services({}, tmp_path, {}, base_port=0)
    ports = [service.port for service in services]
    assert len(set(ports)) == len(ports) == 5, ports
    addresses = {k: v for k, v in services[0].env.items() if k.endswith("_ADDR")}
    assert sorted(int(a.rsplit(":", 1)[1]) for a in addresses.values()) == sorted(ports[:4])


def test_free_ports_lie_below_the_range_outgoing_connections_take_theirs_from() -> None:
    """The kernel gives every outgoing connection a local port from its ephemeral range; a listening
    port picked there can be taken by one between the pick and the server's bind (it happened in CI:
    marketdata exited, its port held by another process). Picks come from below that range, free."""
    low, _ = ephemeral_ports()
    ports = {free_port() for _ in range(50)}
    assert all(LISTEN_PORTS_FROM <= port < low for port in ports), sorted(ports)
    assert len(ports) > 40  # random, so concurrent pickers rarely meet
    assert all(bindable("127.0.0.1", port) for port in ports)
