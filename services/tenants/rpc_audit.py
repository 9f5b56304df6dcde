"""The audit trail (list, verify, record for other services) and data rights (export, delete)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import grpc
import sqlalchemy as sa
from sqlalchemy import delete
from sqlmodel import Session, col, select
from tradebot.tenants.v1 import events_pb2
from tradebot.tenants.v1 import tenants_service_pb2 as pb

from services.common import paging
from services.common.auth import require_service
from services.common.context import Role, current_principal
from services.common.errors import InvalidArgument, NotFound, PermissionDenied
from services.tenants import audit, convert, events, settings_store, templates, validate
from services.tenants.core import Caller, CallInfo, blocking
from services.tenants.models import (
    ApiToken,
    AuditEntry,
    ExchangeCredentials,
    Invite,
    RefreshToken,
    SavedTemplate,
    Tenant,
    TenantSettings,
    User,
)
from services.tenants.rpc_credentials import CredentialRpcs

ACTION = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
# 2: strategy's and execution's data are members "strategy" and "execution" of the document.
EXPORT_SCHEMA_VERSION = 2
NOT_DEPLOYED = "services not part of this deployment, so nothing of theirs is held: "


class AuditRpcs(CredentialRpcs):
    def _target_tenant(self, caller: Caller, requested: str) -> str:
        """Admin-only `tenant_id` fields: honoured for ADMIN, refused for anyone else."""
        if not requested or requested == caller.tenant_id:
            return caller.tenant_id
        if caller.role is not Role.ADMIN:
            raise PermissionDenied("tenant_id is admin-only; leave it empty for your own organisation")
        return validate.object_id(requested, "tenant_id")

    @blocking
    def ListAuditEvents(
        self, request: pb.ListAuditEventsRequest, call: CallInfo
    ) -> pb.ListAuditEventsResponse:
        size = paging.page_size(request.page_size, default=100, maximum=1000)
        start, end = (
            convert.time_range(request.time_range, "time_range")
            if request.HasField("time_range")
            else (None, None)
        )
        after = paging.page_position(request)
        with self.db.tenant(self.own_tenant()) as session:
            caller = self.caller(session, call)
            caller.require(Role.OWNER, Role.ADMIN)
            tenant_id = self._target_tenant(caller, request.tenant_id)
            self.db.switch(session, tenant_id)
            query = select(AuditEntry).where(AuditEntry.tenant_id == tenant_id)
            if start is not None:
                query = query.where(AuditEntry.occur_time >= start)
            if end is not None:
                query = query.where(AuditEntry.occur_time < end)
            if request.actor_id:
                query = query.where(AuditEntry.actor_id == request.actor_id)
            if request.action.endswith("."):
                query = query.where(col(AuditEntry.action).startswith(request.action, autoescape=True))
            elif request.action:
                query = query.where(AuditEntry.action == request.action)
            if after is not None:
                query = query.where(AuditEntry.sequence < paging.expect(after, int))
            rows = list(session.exec(query.order_by(col(AuditEntry.sequence).desc()).limit(size + 1)))
            more = len(rows) > size
            rows = rows[:size]
            return pb.ListAuditEventsResponse(
                events=[convert.audit_event(r) for r in rows],
                next_page_token=paging.next_page_token(request, rows[-1].sequence) if more else "",
            )

    @blocking
    def VerifyAuditChain(
        self, request: pb.VerifyAuditChainRequest, call: CallInfo
    ) -> pb.VerifyAuditChainResponse:
        if request.from_sequence < 0 or request.to_sequence < 0:
            raise InvalidArgument(
                "must not be negative", field="from_sequence" if request.from_sequence < 0 else "to_sequence"
            )
        if request.to_sequence and request.to_sequence < request.from_sequence:
            raise InvalidArgument("must not be below from_sequence", field="to_sequence")
        with self.db.tenant(self.own_tenant()) as session:
            caller = self.caller(session, call)
            caller.require(Role.OWNER, Role.ADMIN)
            tenant_id = self._target_tenant(caller, request.tenant_id)
            self.db.switch(session, tenant_id)
            report = audit.verify(session, tenant_id, request.from_sequence or 1, request.to_sequence or None)
            return pb.VerifyAuditChainResponse(
                valid=report.valid,
                checked_count=report.checked,
                first_invalid_sequence=report.first_invalid,
                message=report.message,
                head_hash=report.head_hash,
            )

    @blocking
    def RecordAuditEvent(
        self, request: pb.RecordAuditEventRequest, call: CallInfo
    ) -> pb.RecordAuditEventResponse:
        service = require_service(current_principal()).user_id.removeprefix("service:")
        tenant_id = validate.object_id(request.tenant_id, "tenant_id")
        if (
            request.actor_kind == events_pb2.ACTOR_KIND_UNSPECIFIED
            or request.actor_kind not in events_pb2.ActorKind.values()
        ):
            raise InvalidArgument("must be USER, API_TOKEN, ADMIN or SYSTEM", field="actor_kind")
        if not ACTION.match(request.action) or len(request.action) > 64:
            raise InvalidArgument("must be a dotted lower-case action name, e.g. 'bot.start'", field="action")
        for name, value, limit in (
            ("actor_id", request.actor_id, 128),
            ("target_type", request.target_type, 64),
            ("target_id", request.target_id, 128),
            ("client_ip", request.client_ip, 64),
            ("trace_id", request.trace_id, 64),
            ("idempotency_key", request.idempotency_key, 200),
        ):
            validate.text(value, name, maximum=limit, required=False)
        if len(request.details) > 50:
            raise InvalidArgument("at most 50 entries", field="details")
        for key, value in request.details.items():
            if len(key) > 64 or len(value) > 1024:
                raise InvalidArgument(
                    f"entry {key[:64]!r} is too long (keys 64, values 1024 characters)", field="details"
                )
        occur = (
            convert.to_datetime(request.occur_time, "occur_time") if request.HasField("occur_time") else None
        )
        with self.db.tenant(tenant_id) as session:
            if session.get(Tenant, tenant_id) is None:
                raise NotFound("no such tenant")
            entry, created = audit.append(
                session,
                tenant_id,
                audit.Action(
                    action=request.action,
                    actor_kind=events_pb2.ActorKind.Name(request.actor_kind),
                    actor_id=request.actor_id,
                    target_type=request.target_type,
                    target_id=request.target_id,
                    details=dict(request.details),
                    source_service=service,
                    client_ip=request.client_ip,
                    trace_id=request.trace_id or call.trace_id,
                    occur_time=occur,
                    idempotency_key=request.idempotency_key or None,
                ),
            )
            if created:
                events.queue(session, f"audit.{tenant_id}", convert.audit_event(entry), entry.id)
            return pb.RecordAuditEventResponse(event=convert.audit_event(entry))

    async def ExportTenantData(
        self, request: pb.ExportTenantDataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ExportTenantDataResponse:
        """Tenants' own data, then strategy's and execution's; recorded in the audit trail once whole.
        Step-up is committed first, so a code cannot be reused whether or not the rest succeeds."""
        tenant_id, document = await self._export_own(request, context)
        document.update(await self.deps.partners.export(tenant_id))
        if self.deps.partners.not_deployed:
            document["not_included"] = NOT_DEPLOYED + ", ".join(self.deps.partners.not_deployed)
        now = datetime.now(UTC)
        document["export_time"] = now.isoformat()
        body = json.dumps(document, sort_keys=True, default=str).encode()
        await self._record_export(request, context, sorted(document))
        return pb.ExportTenantDataResponse(json_document=body, export_time=convert.ts(now))

    @blocking
    def _export_own(self, request: pb.ExportTenantDataRequest, call: CallInfo) -> tuple[str, dict[str, Any]]:
        with self.db.tenant(self.own_tenant()) as session:
            caller = self.caller(session, call)
            caller.require(Role.OWNER)
            self.step_up(session, caller.user, request.totp_code)
            return caller.tenant_id, self._export(session, caller.tenant_id)

    @blocking
    def _record_export(self, request: pb.ExportTenantDataRequest, call: CallInfo, parts: list[str]) -> None:
        with self.db.tenant(self.own_tenant()) as session:
            caller = self.caller(session, call)
            self.record(
                session,
                caller.tenant_id,
                "tenant.export",
                caller=caller,
                target_type="tenant",
                details={"parts": ", ".join(parts)},
            )

    @staticmethod
    def _export(session: Session, tenant_id: str) -> dict[str, Any]:
        """Everything the tenants service holds about the tenant, through the same converters as the
        API (no hashes, no TOTP ciphertext, no Vault paths, no token values)."""
        from google.protobuf.json_format import MessageToDict

        def plain(message: Any) -> dict[str, Any]:
            return MessageToDict(message, preserving_proto_field_name=True)

        tenant = session.get(Tenant, tenant_id)
        settings = session.get(TenantSettings, tenant_id)
        return {
            "schema_version": EXPORT_SCHEMA_VERSION,
            "tenant": plain(convert.tenant(tenant)) if tenant else None,
            "users": [plain(convert.user(u)) for u in session.exec(select(User).order_by(col(User.email)))],
            "invites": [
                plain(convert.invite(i))
                for i in session.exec(select(Invite).order_by(col(Invite.create_time)))
            ],
            "settings": settings_store.export(settings) if settings else None,
            "templates": [plain(templates.to_proto(t)) for t in session.exec(select(SavedTemplate))],
            "api_tokens": [
                plain(convert.api_token(t))
                for t in session.exec(select(ApiToken).order_by(col(ApiToken.create_time)))
            ],
            "exchange_credentials": plain(convert.credentials(session.get(ExchangeCredentials, tenant_id))),
            "audit_trail": [
                plain(convert.audit_event(e))
                for e in session.exec(select(AuditEntry).order_by(col(AuditEntry.sequence)))
            ],
        }

    async def DeleteTenant(
        self, request: pb.DeleteTenantRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteTenantResponse:
        """Checks and step-up; then strategy and execution remove their data (stopping the tenant's
        bots, dropping execution's cached keys and streams); only once both confirmed does tenants
        destroy the Vault secret and its own rows and append `tenant.delete`. A failure on the way
        leaves the tenant in place, and calling again finishes the job (every step is idempotent)."""
        tenant_id = await self._delete_checked(request, context)
        removed = await self.deps.partners.delete(tenant_id)
        response: pb.DeleteTenantResponse = await self._delete_own(request, context, tenant_id, removed)
        return response

    def _deleting(self, session: Session, request: pb.DeleteTenantRequest, caller: Caller) -> Tenant:
        """The tenant the caller may delete, locked; raises naming why not."""
        tenant_id = self._target_tenant(caller, request.tenant_id)
        if caller.role is Role.ADMIN and tenant_id == caller.tenant_id:
            raise PermissionDenied("the platform's own organisation cannot be deleted this way")
        self.db.switch(session, tenant_id)
        tenant = session.get(Tenant, tenant_id, with_for_update=True)
        if tenant is None or tenant.purge_time is not None:
            raise NotFound("no such tenant")
        if request.confirm_tenant_name != tenant.name:
            raise InvalidArgument("must be the organisation's exact name", field="confirm_tenant_name")
        return tenant

    @blocking
    def _delete_checked(self, request: pb.DeleteTenantRequest, call: CallInfo) -> str:
        with self.db.tenant(self.own_tenant()) as session:
            caller = self.caller(session, call)
            caller.require(Role.OWNER, Role.ADMIN)
            tenant_id = self._target_tenant(caller, request.tenant_id)
            self.step_up(session, caller.user, request.totp_code)
            session.flush()  # the step-up's use of the code is written before switching tenants
            self._deleting(session, request, caller)
            return tenant_id

    @blocking
    def _delete_own(
        self,
        request: pb.DeleteTenantRequest,
        call: CallInfo,
        tenant_id: str,
        removed: dict[str, dict[str, int]],
    ) -> pb.DeleteTenantResponse:
        with self.db.tenant(self.own_tenant()) as session:
            caller = self.caller(session, call)
            caller.require(Role.OWNER, Role.ADMIN)
            tenant = self._deleting(session, request, caller)
            self.destroy_secret(tenant_id)
            for model in (
                RefreshToken,
                ApiToken,
                Invite,
                SavedTemplate,
                TenantSettings,
                ExchangeCredentials,
                User,
            ):
                session.execute(delete(model).where(sa.column("tenant_id") == tenant_id))
            now = datetime.now(UTC)
            tenant.purge_time = now
            session.add(tenant)
            details = {"removed": "users, sessions, API tokens, invites, settings, templates, credentials"}
            for service, counts in removed.items():
                details[service] = ", ".join(f"{kind} {count}" for kind, count in sorted(counts.items()))
            self.record(
                session, tenant_id, "tenant.delete", caller=caller, target_type="tenant", details=details
            )
            if "execution" not in removed:
                # Execution not reached (not deployed): the event still stops any trading on the key.
                # When it confirmed the deletion it has forgotten the tenant already, and a late
                # event would only make it write an account row for a tenant that is gone.
                events.queue(
                    session, *events.credentials_changed(tenant_id, events_pb2.CREDENTIALS_CHANGE_DELETED, 0)
                )
            return pb.DeleteTenantResponse(purge_time=convert.ts(now))
