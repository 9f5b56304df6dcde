"""PostgreSQL from the `pgserver` wheel's binaries, listening on loopback TCP.

pgserver's own launcher listens on a Unix socket only; services and tests want an ordinary
`postgresql://` URL, so we run the same binaries ourselves. PostgreSQL refuses to run as root, so as
root the server runs as pgserver's unprivileged `pgserver` user (created by pgserver's helper).
"""

from __future__ import annotations

import os
import pwd
import stat
import subprocess
import warnings
from dataclasses import dataclass

with warnings.catch_warnings():
    # pgserver's import asks platformdirs for a runtime folder it never uses here; keep `make run` quiet.
    warnings.simplefilter("ignore")
    from pgserver._commands import POSTGRES_BIN_PATH

from services.devstack.processes import EmbeddedServer, free_port, log_file, stop_process, wait_until

DATABASE = "tradebot"


@dataclass
class EmbeddedPostgres(EmbeddedServer):
    @property
    def url(self) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{DATABASE}"

    @property
    def superuser_url(self) -> str:
        return self.url

    def _run_as(self) -> str | None:
        if os.geteuid() != 0:
            return None
        from pgserver.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

        ensure_user_exists("pgserver")
        ensure_prefix_permissions(self.data_dir)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        read, execute = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
        ensure_folder_permissions(POSTGRES_BIN_PATH, read | execute)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
        entry = pwd.getpwnam("pgserver")
        for path in [self.data_dir, *self.data_dir.rglob("*")]:
            os.chown(path, entry.pw_uid, entry.pw_gid)
        return "pgserver"

    def start(self, timeout: float = 60.0) -> EmbeddedPostgres:
        pgdata = self.data_dir / "pgdata"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        user = self._run_as()
        if not (pgdata / "PG_VERSION").exists():
            subprocess.run(
                [
                    str(POSTGRES_BIN_PATH / "initdb"),
                    "-D",
                    str(pgdata),
                    "--auth=trust",
                    "-U",
                    "postgres",
                    "--encoding=utf8",
                    "--no-instructions",
                ],
                check=True,
                capture_output=True,
                user=user,
            )
        self.port = self.port or free_port(self.host)
        self.proc = subprocess.Popen(
            [
                str(POSTGRES_BIN_PATH / "postgres"),
                "-D",
                str(pgdata),
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-k",
                str(pgdata),
                "-c",
                "max_connections=300",
                "-c",
                "fsync=on",
            ],
            stdout=log_file(self.data_dir, "postgres"),
            stderr=subprocess.STDOUT,
            user=user,
            start_new_session=True,
        )
        wait_until(self._ready, timeout, "PostgreSQL", self.proc)
        self._ensure_database()
        return self

    def _psql(self, sql: str, database: str = "postgres") -> str:
        result = subprocess.run(
            [
                str(POSTGRES_BIN_PATH / "psql"),
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-tAc",
                sql,
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        return result.stdout.strip()

    def _ready(self) -> bool:
        return self._psql("select 1") == "1"

    def _ensure_database(self) -> None:
        if self._psql(f"select 1 from pg_database where datname = '{DATABASE}'") != "1":
            self._psql(f"create database {DATABASE}")

    def stop(self) -> None:
        if self.proc is not None:
            # SIGINT is PostgreSQL's "fast" shutdown: roll back open transactions, checkpoint, exit.
            stop_process(self.proc, timeout=30, sig=2)
