"""Risk limits, kill switches and risk events."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlmodel import Session, or_, select
from tradebot.execution.v1 import events_pb2 as ev
from tradebot.execution.v1 import execution_service_pb2 as pb

from services.common import paging
from services.common.context import Principal, Role
from services.common.convert import time_range
from services.common.errors import InvalidArgument, PermissionDenied
from services.execution import convert, models, risk
from services.execution.rpc_base import Base

log = logging.getLogger("tradebot.execution.rpc_risk")
SCOPES = {
    pb.KILL_SWITCH_SCOPE_BOT: "BOT",
    pb.KILL_SWITCH_SCOPE_TENANT: "TENANT",
    pb.KILL_SWITCH_SCOPE_GLOBAL: "GLOBAL",
}
SCOPE_ORDER = {"GLOBAL": 0, "TENANT": 1, "BOT": 2}
K, R = models.KillSwitchRow, models.RiskEventRow
FLATTENING: set[asyncio.Task[None]] = set()  # kept referenced until done


class RiskRpc(Base):
    async def GetRiskLimits(self, request: pb.GetRiskLimitsRequest, context: Any) -> pb.GetRiskLimitsResponse:
        tenant = self.caller().tenant_id
        caps = self.deps.caps

        def read(session: Session) -> pb.GetRiskLimitsResponse:
            tenant_row, bot_row = risk.load_limits(session, tenant, request.bot_id)
            row = bot_row if request.bot_id else tenant_row
            reply = pb.GetRiskLimitsResponse(
                limits=risk.limits_pb(row),
                effective_limits=risk.limits_pb(risk.effective(caps, tenant_row, bot_row)),
                updated_by_user_id=row.updated_by if row is not None else "",
            )
            if row is not None:
                reply.update_time.CopyFrom(convert.stamp(row.update_time))
            return reply

        return await self.deps.store.run(read)

    async def SetRiskLimits(self, request: pb.SetRiskLimitsRequest, context: Any) -> pb.SetRiskLimitsResponse:
        caller = self.caller(Role.OWNER)
        tenant = caller.tenant_id
        caps = self.deps.caps
        values = risk.parse_limits(request.limits, caps)

        def current(session: Session) -> tuple[risk.Limits, risk.Limits]:
            tenant_row, bot_row = risk.load_limits(session, tenant, request.bot_id)
            candidate = models.RiskLimitsRow(tenant_id=tenant, bot_id=request.bot_id, **values)
            after = (
                risk.effective(caps, tenant_row, candidate)
                if request.bot_id
                else risk.effective(caps, candidate, None)
            )
            before = risk.effective(caps, tenant_row, bot_row if request.bot_id else None)
            return before, after

        before, after = await self.deps.store.run(current)
        if risk.loosens(before, after):
            await self.deps.stepup.require(caller, request.totp_code)

        def save(session: Session) -> pb.SetRiskLimitsResponse:
            row = models.RiskLimitsRow(
                tenant_id=tenant,
                bot_id=request.bot_id,
                update_time=convert.now(),
                updated_by=caller.user_id,
                **values,
            )
            session.merge(row)
            return pb.SetRiskLimitsResponse(
                limits=risk.limits_pb(row),
                effective_limits=risk.limits_pb(after),
                update_time=convert.stamp(row.update_time),
            )

        return await self.deps.store.run(save)

    def _switch_tenant(self, caller: Principal, request: pb.SetKillSwitchRequest, scope: str) -> str:
        if scope == "GLOBAL":
            if caller.role is not Role.ADMIN:
                raise PermissionDenied("the GLOBAL kill switch is for platform administrators")
            if request.tenant_id:
                raise InvalidArgument("must be empty for GLOBAL scope", field="tenant_id")
            return ""
        if request.tenant_id and request.tenant_id != caller.tenant_id:
            if caller.role is not Role.ADMIN:
                raise PermissionDenied("tenant_id is honoured for platform administrators only")
            return request.tenant_id
        return caller.tenant_id

    async def SetKillSwitch(self, request: pb.SetKillSwitchRequest, context: Any) -> pb.SetKillSwitchResponse:
        caller = self.caller(Role.TRADER)
        scope = SCOPES.get(request.scope)
        if scope is None:
            raise InvalidArgument("must be BOT, TENANT or GLOBAL", field="scope")
        if scope == "BOT" and not request.bot_id:
            raise InvalidArgument("is required for BOT scope", field="bot_id")
        if scope != "BOT" and request.bot_id:
            raise InvalidArgument("must be empty unless the scope is BOT", field="bot_id")
        if request.engaged and not request.reason.strip():
            raise InvalidArgument("is required when engaging a kill switch", field="reason")
        tenant = self._switch_tenant(caller, request, scope)
        await self.deps.stepup.require(caller, request.totp_code)
        kind = (
            ev.RISK_EVENT_KIND_KILL_SWITCH_ENGAGED
            if request.engaged
            else ev.RISK_EVENT_KIND_KILL_SWITCH_RELEASED
        )
        event = risk.new_event(
            tenant_id=tenant,
            kind=kind,
            reason=ev.RISK_REASON_MANUAL,
            message=f"{scope} kill switch {'engaged' if request.engaged else 'released'}"
            f" by {caller.user_id}: {request.reason}",
            bot_id=request.bot_id,
            details={"scope": scope, "changed_by": caller.user_id},  # the audit trail's actor
        )

        def save(session: Session) -> models.KillSwitchRow:
            row = models.KillSwitchRow(
                scope=scope,
                tenant_id=tenant,
                bot_id=request.bot_id,
                engaged=request.engaged,
                close_positions=request.engaged and request.close_positions and scope != "GLOBAL",
                reason=request.reason,
                changed_by=caller.user_id,
                change_time=convert.now(),
            )
            session.merge(row)
            session.add(event)
            return row

        row = await self.deps.store.run(save)
        await self.deps.events.risk(event)
        if request.engaged and request.close_positions and scope != "GLOBAL":
            task = asyncio.create_task(self.deps.flattener.engaged(tenant, request.bot_id))
            FLATTENING.add(task)
            task.add_done_callback(FLATTENING.discard)
        return pb.SetKillSwitchResponse(kill_switch=convert.kill_switch_pb(row))

    async def ListKillSwitches(
        self, request: pb.ListKillSwitchesRequest, context: Any
    ) -> pb.ListKillSwitchesResponse:
        tenant = self.tenant_of(request.tenant_id)

        def read(session: Session) -> list[models.KillSwitchRow]:
            q = select(K).where(or_(K.scope == "GLOBAL", K.tenant_id == tenant))
            if not request.include_released:
                q = q.where(K.engaged)
            return list(session.exec(q).all())

        rows = await self.deps.store.run(read)
        rows.sort(key=lambda r: (SCOPE_ORDER[r.scope], r.bot_id))
        return pb.ListKillSwitchesResponse(kill_switches=[convert.kill_switch_pb(r) for r in rows])

    async def ListRiskEvents(
        self, request: pb.ListRiskEventsRequest, context: Any
    ) -> pb.ListRiskEventsResponse:
        tenant = self.caller().tenant_id
        size = paging.page_size(request.page_size, default=100, maximum=1000)
        start = paging.offset(request)
        since, until = time_range(request.time_range)
        kinds = [ev.RiskEventKind.Name(k) for k in request.kinds if k]
        reasons = [ev.RiskReason.Name(r) for r in request.reasons if r]

        def read(session: Session) -> list[models.RiskEventRow]:
            q = select(R).where(R.tenant_id == tenant)
            if request.bot_id:
                q = q.where(R.bot_id == request.bot_id)
            if since is not None:
                q = q.where(R.occur_time >= since)
            if until is not None:
                q = q.where(R.occur_time < until)
            if kinds:
                q = q.where(R.kind.in_(kinds))  # type: ignore[attr-defined]
            if reasons:
                q = q.where(R.reason.in_(reasons))  # type: ignore[attr-defined]
            q = q.order_by(R.occur_time.desc(), R.id).offset(start).limit(size + 1)  # type: ignore[attr-defined]
            return list(session.exec(q).all())

        rows = await self.deps.store.run(read)
        return pb.ListRiskEventsResponse(
            events=[convert.risk_event_pb(r) for r in rows[:size]],
            next_page_token=paging.next_offset_token(request, start, size, len(rows)),
        )
