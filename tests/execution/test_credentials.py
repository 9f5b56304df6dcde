"""The exchange-key cache against real Vault: a key past its TTL is served while it is read again in
the background (a candle's signals never wait on Vault), the re-read key replaces it, and a rotation
event drops the entry at once."""

from __future__ import annotations

import asyncio

import hvac

from services.common.vault import SecretStore
from services.execution.credentials import CredentialCache, secret_path
from tests.execution.helpers import eventually, unique
from tests.helpers.infra import Infra


def _stores(infra: Infra) -> tuple[SecretStore, CredentialCache]:
    root = SecretStore(hvac.Client(url=infra.vault.addr, token=infra.vault.root_token))
    token = infra.vault.service_tokens["execution"]
    cache = CredentialCache(lambda: SecretStore(hvac.Client(url=infra.vault.addr, token=token)), 0.2)
    return root, cache


async def test_an_expired_key_is_served_at_once_and_refreshed_in_the_background(infra: Infra) -> None:
    root, cache = _stores(infra)
    tenant = unique("t-")
    await asyncio.to_thread(root.put, secret_path(tenant), {"api_key": "K1", "api_secret": "S1"})
    first = await cache.get(tenant)
    assert first is not None and first.api_key == "K1"
    # Rewritten in Vault without an event (the TTL is the safety net for exactly this).
    await asyncio.to_thread(root.put, secret_path(tenant), {"api_key": "K2", "api_secret": "S2"})
    await asyncio.sleep(0.3)  # past the TTL
    stale = await cache.get(tenant)
    assert stale is not None and stale.api_key == "K1"  # no wait on Vault

    async def refreshed() -> bool:
        key = await cache.get(tenant)
        return key is not None and key.api_key == "K2"

    await eventually(refreshed, 10, "the key read again in the background")


async def test_a_rotation_event_drops_the_key_and_the_next_use_reads_the_new_one(infra: Infra) -> None:
    root, cache = _stores(infra)
    tenant = unique("t-")
    await asyncio.to_thread(root.put, secret_path(tenant), {"api_key": "K1", "api_secret": "S1"})
    assert (await cache.get(tenant)) is not None
    version = await asyncio.to_thread(root.put, secret_path(tenant), {"api_key": "K2", "api_secret": "S2"})
    cache.changed(tenant, version)
    key = await cache.get(tenant)
    assert key is not None and key.api_key == "K2" and key.version == version
    cache.changed(tenant, 0)
    await asyncio.to_thread(root.destroy, secret_path(tenant))
    assert await cache.get(tenant) is None
