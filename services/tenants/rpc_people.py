"""Invites, users and roles, and integrators' API tokens."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlmodel import col, select, update
from tradebot.tenants.v1 import tenants_service_pb2 as pb

from services.common import paging
from services.common.auth import require_service
from services.common.context import ROLE_RANK, Role, current_principal
from services.common.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from services.tenants import convert, sessions, tokens, validate
from services.tenants.core import CallInfo, Core, blocking
from services.tenants.models import ApiToken, Invite, User

INVITE_PREFIX = "tbi_"
DEFAULT_INVITE_TTL = timedelta(days=7)
MAX_INVITE_TTL = timedelta(days=30)


def _role(value: int, field: str) -> Role:
    role = convert.PB_TO_ROLE.get(value)
    if role is None:
        raise InvalidArgument("must be VIEWER, TRADER, OWNER or ADMIN", field=field)
    return role


class PeopleRpcs(Core):
    @blocking
    def CreateInvite(self, request: pb.CreateInviteRequest, call: CallInfo) -> pb.CreateInviteResponse:
        email = validate.email(request.email)
        ttl = DEFAULT_INVITE_TTL
        if request.HasField("ttl"):
            ttl = request.ttl.ToTimedelta()
            if ttl <= timedelta(0) or ttl > MAX_INVITE_TTL:
                raise InvalidArgument("must be positive and at most 30 days", field="ttl")
        token = tokens.opaque(INVITE_PREFIX)
        with self.db.tenant(self.own_tenant()) as session:
            caller = self.caller(session, call)
            caller.require(Role.OWNER, Role.ADMIN)
            if request.new_tenant:
                if caller.role is not Role.ADMIN:
                    raise PermissionDenied("only platform admins create new tenants")
                if request.role not in (pb.ROLE_UNSPECIFIED, pb.ROLE_OWNER):
                    raise InvalidArgument("must be OWNER or unset for a new-tenant invite", field="role")
                role, tenant_id = Role.OWNER, str(uuid.uuid4())
            else:
                role, tenant_id = _role(request.role, "role"), caller.tenant_id
                if ROLE_RANK[role] > ROLE_RANK[caller.role]:
                    raise PermissionDenied(
                        f"you cannot grant a role above your own ({caller.role.value.upper()})"
                    )
            now = datetime.now(UTC)
            invite = Invite(
                id=str(uuid.uuid4()),
                tenant_id=tenant_id,
                email=email,
                role=role.value,
                new_tenant=request.new_tenant,
                token_hash=tokens.digest(token),
                created_by_user_id=caller.user.id,
                create_time=now,
                expire_time=now + ttl,
            )
            self.db.switch(session, tenant_id)  # the invite row belongs to the tenant it admits to
            session.add(invite)
            session.flush()
            self.db.switch(session, caller.tenant_id)
            self.record(
                session,
                caller.tenant_id,
                "invite.create",
                caller=caller,
                target_type="invite",
                target_id=invite.id,
                details={"email": email, "role": role.value, "new_tenant": str(request.new_tenant).lower()},
            )
            # Sent inside the transaction: if the mail cannot go out, no invite is left behind.
            self.deps.mailer.invite(
                to=email,
                token=token,
                tenant_hint="a new organisation" if request.new_tenant else "your team's organisation",
                role=role.value,
                expire_text=invite.expire_time.strftime("%Y-%m-%d %H:%M UTC"),
            )
            return pb.CreateInviteResponse(invite=convert.invite(invite), invite_token=token)

    @blocking
    def ListUsers(self, request: pb.ListUsersRequest, call: CallInfo) -> pb.ListUsersResponse:
        size = paging.page_size(request.page_size, default=50, maximum=200)
        after = paging.page_position(request)
        with self.db.tenant(self.own_tenant()) as session:
            caller = self.caller(session, call)
            caller.require(Role.OWNER, Role.ADMIN)
            query = select(User).where(User.tenant_id == caller.tenant_id)
            if not request.include_disabled:
                query = query.where(col(User.disabled).is_(False))
            if after is not None:
                query = query.where(User.email > paging.expect(after, str))
            rows = list(session.exec(query.order_by(col(User.email)).limit(size + 1)))
            more = len(rows) > size
            rows = rows[:size]
            return pb.ListUsersResponse(
                users=[convert.user(u) for u in rows],
                next_page_token=paging.next_page_token(request, rows[-1].email) if more else "",
            )

    @blocking
    def CheckStepUp(self, request: pb.CheckStepUpRequest, call: CallInfo) -> pb.CheckStepUpResponse:
        require_service(current_principal())
        tenant_id = validate.object_id(request.tenant_id, "tenant_id")
        user_id = validate.object_id(request.user_id, "user_id")
        with self.db.tenant(tenant_id) as session:
            user = session.get(User, user_id, with_for_update=True)
            if user is None or user.tenant_id != tenant_id:
                raise NotFound("no such user in that tenant")
            # The same check, and the same single use of each code, as this service's own step-up.
            self.step_up(session, user, request.totp_code)
            return pb.CheckStepUpResponse(totp_enrolled=user.totp_secret is not None)

    @blocking
    def SetUserRole(self, request: pb.SetUserRoleRequest, call: CallInfo) -> pb.SetUserRoleResponse:
        user_id = validate.object_id(request.user_id, "user_id")
        new_role = None if request.role == pb.ROLE_UNSPECIFIED else _role(request.role, "role")
        if new_role is None and not request.HasField("disabled"):
            raise InvalidArgument("set a role, or disabled, to change", field="role")
        with self.db.tenant(self.own_tenant()) as session:
            caller = self.caller(session, call)
            caller.require(Role.OWNER, Role.ADMIN)
            if new_role is Role.ADMIN and caller.role is not Role.ADMIN:
                raise PermissionDenied("only a platform admin grants the ADMIN role")
            self.step_up(session, caller.user, request.totp_code)
            tenant_id = caller.tenant_id
            if caller.role is Role.ADMIN:
                tenant_id = self.db.tenant_of("tenant_of_user", user_id) or caller.tenant_id
                self.db.switch(session, tenant_id)
            user = session.get(User, user_id, with_for_update=True)
            if user is None:
                raise NotFound("no such user in your organisation")
            before = user.role
            if new_role is not None:
                user.role = new_role.value
            if request.HasField("disabled"):
                user.disabled = request.disabled
            session.add(user)
            session.flush()
            owners = session.exec(
                select(User.id).where(User.role == Role.OWNER.value, col(User.disabled).is_(False))
            ).all()
            if before == Role.OWNER.value and not owners:
                raise FailedPrecondition("an organisation keeps at least one active OWNER")
            if user.disabled:
                sessions.revoke_user(session, user.id)
                session.execute(
                    update(ApiToken)
                    .where(col(ApiToken.user_id) == user.id, col(ApiToken.revoke_time).is_(None))
                    .values(revoke_time=datetime.now(UTC))
                )
            details = {"role_before": before, "role": user.role, "disabled": str(user.disabled).lower()}
            if tenant_id != caller.tenant_id:
                self.record(
                    session,
                    tenant_id,
                    "user.role.set",
                    caller=caller,
                    target_type="user",
                    target_id=user.id,
                    details=details,
                )
                self.db.switch(session, caller.tenant_id)
            self.record(
                session,
                caller.tenant_id,
                "user.role.set",
                caller=caller,
                target_type="user",
                target_id=user.id,
                details=details,
            )
            return pb.SetUserRoleResponse(user=convert.user(user))

    @blocking
    def CreateApiToken(self, request: pb.CreateApiTokenRequest, call: CallInfo) -> pb.CreateApiTokenResponse:
        name = validate.text(request.name, "name", maximum=64)
        role = _role(request.role, "role")
        expire = None
        if request.HasField("expire_time"):
            expire = convert.to_datetime(request.expire_time, "expire_time")
            now = datetime.now(UTC)
            if expire <= now or expire > now + timedelta(seconds=tokens.API_TOKEN_MAX_SECONDS):
                raise InvalidArgument("must be in the future and within ten years", field="expire_time")
        with self.db.tenant(self.own_tenant()) as session:
            caller = self.caller(session, call)
            caller.require(Role.OWNER, Role.TRADER)
            if caller.principal.api_token:
                raise PermissionDenied("API tokens cannot create API tokens; sign in as the user")
            if ROLE_RANK[role] > ROLE_RANK[caller.role] or role is Role.ADMIN:
                raise PermissionDenied(
                    f"a token cannot grant more than your role ({caller.role.value.upper()})"
                )
            self.step_up(session, caller.user, request.totp_code)
            clash = session.exec(
                select(ApiToken.id).where(
                    ApiToken.user_id == caller.user.id,
                    ApiToken.name == name,
                    col(ApiToken.revoke_time).is_(None),
                )
            ).first()
            if clash is not None:
                raise AlreadyExists("you already have an active token with this name", field="name")
            token_id = str(uuid.uuid4())
            value = self.deps.issuer.api_token(
                token_id=token_id,
                user_id=caller.user.id,
                tenant_id=caller.tenant_id,
                role=role,
                expire_time=expire,
            )
            row = ApiToken(
                id=token_id,
                tenant_id=caller.tenant_id,
                user_id=caller.user.id,
                name=name,
                role=role.value,
                token_prefix=tokens.api_token_display_prefix(token_id),
                token_hash=tokens.digest(value),
                create_time=datetime.now(UTC),
                expire_time=expire,
            )
            session.add(row)
            self.record(
                session,
                caller.tenant_id,
                "api_token.create",
                caller=caller,
                target_type="api_token",
                target_id=token_id,
                details={"name": name, "role": role.value},
            )
            return pb.CreateApiTokenResponse(api_token=convert.api_token(row), token=value)

    @blocking
    def ListApiTokens(self, request: pb.ListApiTokensRequest, call: CallInfo) -> pb.ListApiTokensResponse:
        size = paging.page_size(request.page_size, default=50, maximum=200)
        after = paging.page_position(request)
        with self.db.tenant(self.own_tenant()) as session:
            caller = self.caller(session, call)
            caller.require(Role.OWNER, Role.TRADER, Role.VIEWER)
            query = select(ApiToken).where(ApiToken.tenant_id == caller.tenant_id)
            if caller.role is not Role.OWNER:
                query = query.where(ApiToken.user_id == caller.user.id)
            if not request.include_inactive:
                now = datetime.now(UTC)
                query = query.where(
                    col(ApiToken.revoke_time).is_(None),
                    col(ApiToken.expire_time).is_(None) | (col(ApiToken.expire_time) > now),
                )
            if after is not None:
                time_text, last_id = paging.expect(after, list, 2)
                time = paging.parse_time(time_text)
                query = query.where(
                    (col(ApiToken.create_time) < time)
                    | ((col(ApiToken.create_time) == time) & (col(ApiToken.id) > last_id))
                )
            rows = list(
                session.exec(
                    query.order_by(col(ApiToken.create_time).desc(), col(ApiToken.id)).limit(size + 1)
                )
            )
            more = len(rows) > size
            rows = rows[:size]
            token = (
                paging.next_page_token(request, [rows[-1].create_time.isoformat(), rows[-1].id])
                if more
                else ""
            )
            return pb.ListApiTokensResponse(
                api_tokens=[convert.api_token(r) for r in rows], next_page_token=token
            )

    @blocking
    def RevokeApiToken(self, request: pb.RevokeApiTokenRequest, call: CallInfo) -> pb.RevokeApiTokenResponse:
        token_id = validate.object_id(request.api_token_id, "api_token_id")
        with self.db.tenant(self.own_tenant()) as session:
            caller = self.caller(session, call)
            caller.require(Role.OWNER, Role.TRADER)
            row = session.get(ApiToken, token_id, with_for_update=True)
            if row is None or (caller.role is not Role.OWNER and row.user_id != caller.user.id):
                raise NotFound("no such API token")
            if row.revoke_time is None:
                row.revoke_time = datetime.now(UTC)
                session.add(row)
                self.record(
                    session,
                    caller.tenant_id,
                    "api_token.revoke",
                    caller=caller,
                    target_type="api_token",
                    target_id=row.id,
                    details={"name": row.name},
                )
            return pb.RevokeApiTokenResponse(api_token=convert.api_token(row))
