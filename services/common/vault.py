"""Vault (or OpenBao) access: the one way services authenticate and read or write KV v2 secrets.

Locally a token from the environment is used; in Kubernetes the pod's service-account token is
exchanged through the Kubernetes auth method for a token carrying only that service's policy.
Secret values never leave this module in logs or error messages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hvac

from services.common.errors import Unavailable
from services.common.settings import ServiceSettings

K8S_TOKEN_PATH = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
KV_MOUNT = "secret"


def vault_client(settings: ServiceSettings) -> hvac.Client:
    if not settings.vault_addr:
        raise Unavailable("VAULT_ADDR is not configured")
    client = hvac.Client(url=settings.vault_addr, timeout=10)
    if settings.vault_k8s_role:
        jwt = K8S_TOKEN_PATH.read_text().strip()
        hvac.api.auth_methods.Kubernetes(client.adapter).login(role=settings.vault_k8s_role, jwt=jwt)
    else:
        client.token = settings.vault_token
    return client


class SecretStore:
    """KV v2 secrets under one mount; versions are kept, so a rotation can be undone."""

    def __init__(self, client: hvac.Client, mount: str = KV_MOUNT) -> None:
        self.kv = client.secrets.kv.v2
        self.mount = mount

    def put(self, path: str, data: dict[str, str]) -> int:
        """Write a new version and return its number."""
        result = self.kv.create_or_update_secret(path=path, secret=data, mount_point=self.mount)
        return int(result["data"]["version"])

    def read(self, path: str, version: int | None = None) -> dict[str, Any] | None:
        try:
            result = self.kv.read_secret_version(
                path=path, version=version, mount_point=self.mount, raise_on_deleted_version=True
            )
        except hvac.exceptions.InvalidPath:
            return None
        return dict(result["data"]["data"])

    def destroy(self, path: str) -> None:
        """Remove every version and the metadata: nothing is recoverable afterwards."""
        self.kv.delete_metadata_and_all_versions(path=path, mount_point=self.mount)
