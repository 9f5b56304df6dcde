"""Paper accounts: a tenant's PAPER bots trade on an account of the bundled simulator
(`BYBIT_SIMULATOR_URL`) that execution opens for the tenant on first need, through the simulator's
admin API, with a starting balance from settings. The client never stores exchange keys for paper
trading.

The account's key is kept in Vault at `paper/<tenant_id>/exchange`, which only execution's policy
reads and writes (helm/tradebot/files/vault-policies/execution.hcl); it is written with
check-and-set 0, so two replicas opening an account at the same moment end up using the same key
(the loser's simulator account is left unused). Keys are never logged or put in errors.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import hvac
import requests

from services.common.vault import SecretStore

log = logging.getLogger("tradebot.execution.paper")
PAPER = "PAPER"
LIVE = "LIVE"


def paper_secret_path(tenant_id: str) -> str:
    return f"paper/{tenant_id}/exchange"


class PaperError(Exception):
    """The simulator did not open a paper account (unreachable, wrong admin token, bad balance)."""


class PaperAccounts:
    """Opens simulator accounts for paper trading; `provision` is the credential cache's hook."""

    def __init__(self, simulator_url: str, admin_token: str, balance: Decimal, timeout: float) -> None:
        self.url = simulator_url.rstrip("/") + "/admin/accounts"
        self.admin_token = admin_token
        self.balance = balance
        self.timeout = timeout
        self.opened = 0

    def _open(self, tenant_id: str) -> dict[str, str]:
        headers = {"X-Admin-Token": self.admin_token} if self.admin_token else {}
        body = {"balances": {"USDT": str(self.balance)}, "note": f"paper account of tenant {tenant_id}"}
        try:
            reply = requests.post(self.url, json=body, headers=headers, timeout=self.timeout)
        except requests.RequestException as error:
            raise PaperError(f"the simulator cannot be reached to open a paper account: {error}") from None
        if reply.status_code != 200:
            # The admin API's error bodies are plain messages; they never echo a token.
            raise PaperError(
                f"the simulator refused to open a paper account: HTTP {reply.status_code} {reply.text[:200]}"
            )
        data = reply.json()
        self.opened += 1
        log.info("paper account opened", extra={"tenant_id": tenant_id, "uid": data.get("uid")})
        return {"api_key": str(data["apiKey"]), "api_secret": str(data["apiSecret"])}

    def provision(self, store: SecretStore, path: str, tenant_id: str, replace: bool) -> dict[str, Any]:
        """Open an account and store its key at `path`; returns the key stored there afterwards."""
        secret = self._open(tenant_id)
        try:
            # cas=0: write only if no key is stored yet (another replica may have just opened one).
            store.kv.create_or_update_secret(
                path=path, secret=secret, cas=None if replace else 0, mount_point=store.mount
            )
        except hvac.exceptions.InvalidRequest:
            stored = store.read(path)
            if not stored:
                raise
            return stored
        return secret
