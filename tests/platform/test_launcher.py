"""`make run`'s launcher from the outside: it brings the whole platform up, says how long it took,
stops cleanly, and a second run finds the data the first one left."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import hvac
import psycopg2

from services.devstack.openbao import EmbeddedOpenBao
from services.devstack.platform import REPO
from services.devstack.postgres import EmbeddedPostgres


def launch(data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.devstack", "--exit-when-ready", "--any-ports", "--data", str(data)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"},
    )


def test_launcher_brings_everything_up_and_a_second_run_keeps_the_data(tmp_path: Path) -> None:
    first = launch(tmp_path)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "Tradebot is up in" in first.stdout
    for name in ("postgresql", "nats", "vault", "bybit", "tenants", "marketdata", "strategy", "execution"):
        assert name in first.stdout
    assert "dashboard   http://127.0.0.1:" in first.stdout
    init = json.loads((tmp_path / "openbao" / "init.json").read_text())
    assert (tmp_path / "openbao" / "init.json").stat().st_mode & 0o777 == 0o600

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
    postgres = EmbeddedPostgres(tmp_path / "postgres").start()
    bao = EmbeddedOpenBao(tmp_path / "openbao").start()
    try:
        with psycopg2.connect(postgres.url) as conn, conn.cursor() as cur:
            cur.execute("select note from kept")
            assert cur.fetchall() == [("still here",)]
        vault = hvac.Client(url=bao.addr, token=bao.root_token)
        assert vault.secrets.kv.v2.read_secret_version(path="kept", raise_on_deleted_version=True)["data"][
            "data"
        ] == {"note": "still here"}
    finally:
        bao.stop()
        postgres.stop()
