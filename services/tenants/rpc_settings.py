"""Tenant settings and saved parameter templates."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from tradebot.tenants.v1 import tenants_service_pb2 as pb

from services.common import paging
from services.common.context import Role
from services.common.errors import AlreadyExists, InvalidArgument, NotFound
from services.tenants import settings_store, templates
from services.tenants.core import CallInfo, Core, blocking
from services.tenants.models import SavedTemplate, TenantSettings


class SettingsRpcs(Core):
    def _settings(self, session: object, tenant_id: str, email: str) -> TenantSettings:
        row = session.get(TenantSettings, tenant_id)  # type: ignore[attr-defined]
        return row if row is not None else settings_store.new_settings(tenant_id, email)

    @blocking
    def GetSettings(self, request: pb.GetSettingsRequest, call: CallInfo) -> pb.GetSettingsResponse:
        with self.db.tenant(self.own_tenant()) as session:
            caller = self.caller(session, call)
            caller.require(Role.OWNER, Role.TRADER, Role.VIEWER)
            row = self._settings(session, caller.tenant_id, caller.user.email)
            return pb.GetSettingsResponse(settings=settings_store.to_proto(row))

    @blocking
    def UpdateSettings(self, request: pb.UpdateSettingsRequest, call: CallInfo) -> pb.UpdateSettingsResponse:
        paths = list(request.update_mask.paths)
        with self.db.tenant(self.own_tenant()) as session:
            caller = self.caller(session, call)
            caller.require(Role.OWNER)
            row = self._settings(session, caller.tenant_id, caller.user.email)
            changed = settings_store.apply(row, request.settings, paths)
            self.step_up(session, caller.user, request.totp_code)
            session.add(row)
            self.record(
                session,
                caller.tenant_id,
                "settings.update",
                caller=caller,
                target_type="tenant",
                details=changed,
            )
            return pb.UpdateSettingsResponse(settings=settings_store.to_proto(row))

    @blocking
    def ListTemplates(self, request: pb.ListTemplatesRequest, call: CallInfo) -> pb.ListTemplatesResponse:
        size = paging.page_size(request.page_size, default=50, maximum=200)
        after = paging.page_position(request)
        with self.db.tenant(self.own_tenant()) as session:
            caller = self.caller(session, call)
            caller.require(Role.OWNER, Role.TRADER, Role.VIEWER)
            query = select(SavedTemplate).where(SavedTemplate.tenant_id == caller.tenant_id)
            if request.strategy_id:
                query = query.where(SavedTemplate.strategy_id == request.strategy_id)
            if after is not None:
                strategy, name = paging.expect(after, list, 2)
                query = query.where(
                    (col(SavedTemplate.strategy_id) > strategy)
                    | ((col(SavedTemplate.strategy_id) == strategy) & (col(SavedTemplate.name) > name))
                )
            rows = list(
                session.exec(
                    query.order_by(col(SavedTemplate.strategy_id), col(SavedTemplate.name)).limit(size + 1)
                )
            )
            more = len(rows) > size
            rows = rows[:size]
            return pb.ListTemplatesResponse(
                templates=[templates.to_proto(r) for r in rows],
                next_page_token=paging.next_page_token(request, [rows[-1].strategy_id, rows[-1].name])
                if more
                else "",
            )

    @blocking
    def CreateTemplate(self, request: pb.CreateTemplateRequest, call: CallInfo) -> pb.CreateTemplateResponse:
        if not request.HasField("template"):
            raise InvalidArgument("is required", field="template")
        values = templates.validate(request.template)
        try:
            with self.db.tenant(self.own_tenant()) as session:
                caller = self.caller(session, call)
                caller.require(Role.OWNER, Role.TRADER)
                row = SavedTemplate(
                    tenant_id=caller.tenant_id,
                    strategy_id=request.template.strategy_id,
                    name=request.template.name,
                    description=request.template.description.strip(),
                    values=values,
                    create_time=datetime.now(UTC),
                )
                session.add(row)
                session.flush()
                self.record(
                    session,
                    caller.tenant_id,
                    "template.create",
                    caller=caller,
                    target_type="template",
                    target_id=f"{row.strategy_id}/{row.name}",
                )
                return pb.CreateTemplateResponse(template=templates.to_proto(row))
        except IntegrityError:
            raise AlreadyExists("a template with this strategy and name exists; delete it first") from None

    @blocking
    def DeleteTemplate(self, request: pb.DeleteTemplateRequest, call: CallInfo) -> pb.DeleteTemplateResponse:
        if not request.strategy_id:
            raise InvalidArgument("is required", field="strategy_id")
        if not request.name:
            raise InvalidArgument("is required", field="name")
        with self.db.tenant(self.own_tenant()) as session:
            caller = self.caller(session, call)
            caller.require(Role.OWNER, Role.TRADER)
            row = session.get(SavedTemplate, (caller.tenant_id, request.strategy_id, request.name))
            if row is None:
                raise NotFound("no such saved template")
            session.delete(row)
            self.record(
                session,
                caller.tenant_id,
                "template.delete",
                caller=caller,
                target_type="template",
                target_id=f"{row.strategy_id}/{row.name}",
            )
            return pb.DeleteTemplateResponse()
