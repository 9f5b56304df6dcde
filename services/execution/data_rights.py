"""Data rights for the tenants service: export and erase everything execution holds about one tenant.

Service-only RPCs (`require_service`), called by tenants with its own service identity for a user who
has already passed its checks (OWNER, step-up). Every table of this service's schema with a
`tenant_id` column is covered, found from the database catalogue rather than a list kept by hand, so a
table added later is exported and erased without touching this module. No column holds an exchange
key or secret (models.py); those live in Vault and in memory only.

Deletion first forgets the tenant in memory (cached credentials, exchange sessions, private streams)
for every account mode, so nothing keeps trading or writing for them, destroys the paper account's key
execution provisioned in Vault, then removes the rows in one transaction. It is idempotent.
"""

from __future__ import annotations

import json
from typing import Any

import grpc
from sqlalchemy import text
from sqlmodel import Session
from tradebot.execution.v1 import execution_service_pb2 as pb

from services.common.auth import require_service
from services.common.context import current_principal
from services.common.errors import InvalidArgument
from services.execution.accounts import Accounts
from services.execution.rpc_base import Deps

TENANT_TABLES = text(
    "select table_name from information_schema.columns"
    " where table_schema = current_schema() and column_name = 'tenant_id'"
    " order by table_name"
)


def _tenant(tenant_id: str) -> str:
    require_service(current_principal())
    if not tenant_id or len(tenant_id) > 64:
        raise InvalidArgument("must name the tenant (1 to 64 characters)", field="tenant_id")
    return tenant_id


def _tables(session: Session) -> list[str]:
    return [str(name) for name in session.execute(TENANT_TABLES).scalars()]


def _kind(table: str) -> str:
    """Table name as a kind of data in the document: exec_order -> order."""
    return table.removeprefix("exec_")


def export(session: Session, tenant_id: str) -> dict[str, list[dict[str, Any]]]:
    document = {}
    for table in _tables(session):
        rows = session.execute(text(f'select * from "{table}" where tenant_id = :t'), {"t": tenant_id})
        document[_kind(table)] = [dict(row) for row in rows.mappings()]
    return document


def erase(session: Session, tenant_id: str) -> dict[str, int]:
    counts = {}
    for table in _tables(session):
        result = session.execute(text(f'delete from "{table}" where tenant_id = :t'), {"t": tenant_id})
        if result.rowcount:  # type: ignore[attr-defined]
            counts[_kind(table)] = int(result.rowcount)  # type: ignore[attr-defined]
    return counts


def _json_value(value: object) -> object:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)  # Decimal as its exact text


class DataRightsRpc:
    """Mixed into ExecutionServicer; uses its `deps` (store and the accounts of each mode)."""

    deps: Deps

    def _accounts(self) -> list[Accounts]:
        every = [self.deps.accounts, self.deps.paper]
        return [accounts for accounts in every if accounts is not None]

    async def ExportTenantData(
        self, request: pb.ExportTenantDataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ExportTenantDataResponse:
        tenant_id = _tenant(request.tenant_id)
        document = await self.deps.store.run(lambda s: export(s, tenant_id))
        body = json.dumps(document, sort_keys=True, default=_json_value).encode()
        return pb.ExportTenantDataResponse(json_document=body)

    async def DeleteTenantData(
        self, request: pb.DeleteTenantDataRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteTenantDataResponse:
        tenant_id = _tenant(request.tenant_id)
        for accounts in self._accounts():
            await accounts.erase(tenant_id)
        counts = await self.deps.store.run(lambda s: erase(s, tenant_id))
        return pb.DeleteTenantDataResponse(deleted_rows=counts)
