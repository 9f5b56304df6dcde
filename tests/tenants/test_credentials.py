"""Exchange credentials: checked against the simulator, kept in Vault, never shown again anywhere."""

from __future__ import annotations

import aiohttp
import grpc
import hvac
import pytest
from google.protobuf import json_format
from sqlalchemy import create_engine, text
from tradebot.tenants.v1 import tenants_service_pb2 as pb

from services.common.db import sqlalchemy_url
from services.common.vault import SecretStore
from tests.tenants.conftest import Stack


def _put(key: dict[str, str]) -> pb.PutExchangeCredentialsRequest:
    return pb.PutExchangeCredentialsRequest(
        api_key=key["apiKey"], api_secret=key["apiSecret"], environment=pb.EXCHANGE_ENVIRONMENT_DEMO
    )


@pytest.mark.parametrize(
    ("options", "reason"),
    [({"withdraw": True}, "withdrawal permission"), ({"read_only": True}, "cannot trade")],
)
async def test_withdraw_enabled_or_read_only_keys_are_refused_with_the_reason(
    stack: Stack, options: dict[str, bool], reason: str
) -> None:
    owner = await stack.new_tenant("refused")
    key = await stack.exchange_key(**options)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stack.stub.PutExchangeCredentials(_put(key), metadata=owner.meta)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason in str(refused.value.details()) and (refused.value.details() or "").startswith("api_key:")
    status = await stack.stub.GetExchangeCredentialsStatus(
        pb.GetExchangeCredentialsStatusRequest(), metadata=owner.meta
    )
    assert not status.status.present


async def test_a_key_bybit_rejects_is_refused(stack: Stack) -> None:
    owner = await stack.new_tenant("badkey")
    key = await stack.exchange_key()
    key["apiSecret"] = "x" * len(key["apiSecret"])
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stack.stub.PutExchangeCredentials(_put(key), metadata=owner.meta)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "Bybit" in str(
        refused.value.details()
    )


async def test_put_rotate_delete_and_the_planted_secret_appears_nowhere(stack: Stack) -> None:
    owner = await stack.new_tenant("planted")
    key = await stack.exchange_key()
    secret, api_key = key["apiSecret"], key["apiKey"]
    responses: list[bytes] = []
    put = await stack.stub.PutExchangeCredentials(_put(key), metadata=owner.meta)
    responses.append(put.SerializeToString())
    assert (
        put.status.masked_api_key.endswith(api_key[-4:]) and "ContractTrade:Order" in put.status.permissions
    )
    # The client chose DEMO; this platform sends the key's requests to its simulator, and says so.
    assert put.status.environment == pb.EXCHANGE_ENVIRONMENT_DEMO and put.status.venue == "simulator"
    # A refused request with the secret in it: the error must not echo it.
    bad = _put(key)
    bad.environment = 0
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stack.stub.PutExchangeCredentials(bad, metadata=owner.meta)
    responses.append(str(refused.value.details()).encode())
    status = await stack.stub.GetExchangeCredentialsStatus(
        pb.GetExchangeCredentialsStatusRequest(), metadata=owner.meta
    )
    assert status.status.venue == "simulator"
    responses.append(status.SerializeToString())
    responses.append(json_format.MessageToJson(status).encode())
    export = await stack.stub.ExportTenantData(pb.ExportTenantDataRequest(), metadata=owner.meta)
    responses.append(export.json_document)
    audit = await stack.stub.ListAuditEvents(pb.ListAuditEventsRequest(), metadata=owner.meta)
    responses.append(audit.SerializeToString())

    rotated_key = await stack.exchange_key()
    rotate = await stack.stub.RotateExchangeCredentials(
        pb.RotateExchangeCredentialsRequest(
            api_key=rotated_key["apiKey"], api_secret=rotated_key["apiSecret"]
        ),
        metadata=owner.meta,
    )
    responses.append(rotate.SerializeToString())
    assert rotate.previous_version == put.status.version and rotate.status.version == put.status.version + 1
    # Only execution reads secrets; it can still recover the previous version after a rotation.
    path = f"tenants/{owner.tenant_id}/exchange"
    execution = SecretStore(
        hvac.Client(url=stack.infra.vault.addr, token=stack.infra.vault.service_tokens["execution"])
    )
    assert execution.read(path, version=put.status.version) == {"api_key": api_key, "api_secret": secret}
    assert execution.read(path)["api_secret"] == rotated_key["apiSecret"]  # type: ignore[index]
    with pytest.raises(hvac.exceptions.Forbidden):
        stack.deps.secrets.read(path)

    # Byte by byte: every table of the schema, the service's log, every response.
    engine = create_engine(sqlalchemy_url(stack.infra.postgres.url))
    schema = stack.settings.db_schema
    with engine.connect() as conn:
        tables = conn.execute(
            text("select table_name from information_schema.tables where table_schema = :s"), {"s": schema}
        ).scalars()
        dump = "|".join(
            str(row)
            for table in list(tables)
            for row in conn.execute(text(f'select t::text from "{schema}"."{table}" t')).scalars()
        )
    engine.dispose()
    logs = stack.log_path.read_bytes()
    for needle in (secret, rotated_key["apiSecret"]):
        assert needle.encode() not in dump.encode()
        assert needle.encode() not in logs
        for response in responses:
            assert needle.encode() not in response
    assert api_key.encode() not in dump.encode(), "the full API key is not stored either"
    assert len(dump) > 1000 and b"credentials.put" in dump.encode()

    deleted = await stack.stub.DeleteExchangeCredentials(
        pb.DeleteExchangeCredentialsRequest(), metadata=owner.meta
    )
    assert deleted.delete_time.seconds
    assert execution.read(path) is None and execution.read(path, version=put.status.version) is None


async def _fault(stack: Stack, **rule: object) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{stack.sim.http_url}/admin/faults", json=rule) as response,
    ):
        assert response.status == 200, await response.text()


async def _clear_faults(stack: Stack) -> None:
    async with aiohttp.ClientSession() as http, http.delete(f"{stack.sim.http_url}/admin/faults"):
        pass


@pytest.mark.parametrize(
    ("rule", "code", "named"),
    [
        ({"kind": "error", "code": 10006}, grpc.StatusCode.RESOURCE_EXHAUSTED, "retCode 10006"),
        ({"kind": "error", "code": 10016}, grpc.StatusCode.UNAVAILABLE, "retCode 10016"),
        ({"kind": "http", "status": 503}, grpc.StatusCode.UNAVAILABLE, "HTTP 503"),
    ],
    ids=["rate-limit-10006", "server-error-10016", "http-503"],
)
@pytest.mark.parametrize("path", ["/v5/user/query-api", "/v5/account/wallet-balance"])
async def test_a_key_bybit_could_not_check_is_not_judged_and_not_stored(
    stack: Stack, rule: dict[str, object], code: grpc.StatusCode, named: str, path: str
) -> None:
    """Rate limiting or a Bybit outage says nothing about the key: the client is told to retry, not
    that the key is bad, and nothing is written (the same key is accepted once Bybit answers)."""
    owner = await stack.new_tenant("limited")
    key = await stack.exchange_key()
    execution = SecretStore(
        hvac.Client(url=stack.infra.vault.addr, token=stack.infra.vault.service_tokens["execution"])
    )
    await _fault(stack, **rule, count=1, path=path)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stack.stub.PutExchangeCredentials(_put(key), metadata=owner.meta)
    finally:
        await _clear_faults(stack)
    details = str(refused.value.details())
    assert refused.value.code() == code, details
    assert named in details and "not judged" in details and "nothing was stored" in details, details
    assert not details.startswith("api_key:") and key["apiSecret"] not in details
    status = await stack.stub.GetExchangeCredentialsStatus(
        pb.GetExchangeCredentialsStatusRequest(), metadata=owner.meta
    )
    assert not status.status.present
    assert execution.read(f"tenants/{owner.tenant_id}/exchange") is None
    audit = await stack.stub.ListAuditEvents(pb.ListAuditEventsRequest(), metadata=owner.meta)
    assert not [e for e in audit.events if e.action.startswith("credentials.")]

    stored = await stack.stub.PutExchangeCredentials(_put(key), metadata=owner.meta)
    assert stored.status.present and stored.status.version == 1


async def test_a_rotation_bybit_could_not_check_keeps_the_current_key(stack: Stack) -> None:
    owner = await stack.new_tenant("rotlimited")
    first, second = await stack.exchange_key(), await stack.exchange_key()
    put = await stack.stub.PutExchangeCredentials(_put(first), metadata=owner.meta)
    await _fault(stack, kind="error", code=10006, count=1, path="/v5/user/query-api")
    try:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stack.stub.RotateExchangeCredentials(
                pb.RotateExchangeCredentialsRequest(api_key=second["apiKey"], api_secret=second["apiSecret"]),
                metadata=owner.meta,
            )
    finally:
        await _clear_faults(stack)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    status = await stack.stub.GetExchangeCredentialsStatus(
        pb.GetExchangeCredentialsStatusRequest(), metadata=owner.meta
    )
    assert status.status.version == put.status.version
    assert status.status.masked_api_key == put.status.masked_api_key
