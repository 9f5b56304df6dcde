"""Sign-up, login, refresh, logout, GetMe and TOTP enrolment."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select
from tradebot.tenants.v1 import tenants_service_pb2 as pb

from services.common.context import Role
from services.common.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
)
from services.tenants import (
    convert,
    lockout,
    passwords,
    sessions,
    settings_store,
    templates,
    tokens,
    totp,
    validate,
)
from services.tenants.core import Caller, CallInfo, Core, blocking
from services.tenants.models import Invite, RefreshToken, Tenant, User

WRONG_LOGIN = "wrong email, password or code"


def _tokens(issued: sessions.Issued) -> pb.AuthTokens:
    return pb.AuthTokens(
        access_token=issued.access_token,
        access_token_expire_time=convert.ts(issued.access_expire),
        refresh_token=issued.refresh_token,
        refresh_token_expire_time=convert.ts(issued.refresh_expire),
    )


class SessionRpcs(Core):
    @blocking
    def SignUp(self, request: pb.SignUpRequest, call: CallInfo) -> pb.SignUpResponse:
        if not request.invite_token:
            raise InvalidArgument("is required", field="invite_token")
        email = validate.email(request.email)
        name = validate.text(request.display_name, "display_name", maximum=100)
        passwords.check_strength(request.password, email=email, display_name=name)
        tenant_id = self.db.tenant_of("tenant_of_invite", tokens.digest(request.invite_token))
        if tenant_id is None:
            raise NotFound("the invite is unknown, used or expired")
        password_hash = passwords.hash_password(request.password)
        try:
            with self.db.tenant(tenant_id) as session:
                invite = session.exec(
                    select(Invite)
                    .where(Invite.token_hash == tokens.digest(request.invite_token))
                    .with_for_update()
                ).one()
                now = datetime.now(UTC)
                if invite.use_time is not None or invite.expire_time <= now:
                    raise NotFound("the invite is unknown, used or expired")
                if invite.email != email:
                    raise InvalidArgument("is not the address the invite was sent to", field="email")
                if invite.new_tenant:
                    tenant_name = validate.text(request.tenant_name, "tenant_name", maximum=100)
                    session.add(Tenant(id=tenant_id, name=tenant_name, create_time=now))
                    session.add(settings_store.new_settings(tenant_id, email))
                    session.add_all(templates.starter_templates(tenant_id))
                tenant = session.get(Tenant, tenant_id)
                if tenant is None or tenant.purge_time is not None:
                    raise NotFound("the invite is unknown, used or expired")
                user = User(
                    id=str(uuid.uuid4()),
                    tenant_id=tenant_id,
                    email=email,
                    display_name=name,
                    role=invite.role,
                    password_hash=password_hash,
                    create_time=now,
                    last_login_time=now,
                )
                session.add(user)
                invite.use_time = now
                session.add(invite)
                session.flush()
                issued = sessions.start(session, self.deps.issuer, user)
                self.record(
                    session,
                    tenant_id,
                    "user.signup",
                    call=call,
                    actor_kind="ACTOR_KIND_USER",
                    actor_id=user.id,
                    actor_email=email,
                    target_type="user",
                    target_id=user.id,
                    details={
                        "role": invite.role,
                        "invite_id": invite.id,
                        "new_tenant": str(invite.new_tenant).lower(),
                    },
                )
                return pb.SignUpResponse(
                    user=convert.user(user), tenant=convert.tenant(tenant), tokens=_tokens(issued)
                )
        except IntegrityError:
            raise AlreadyExists("an account with this email already exists; sign in instead") from None

    @blocking
    def Login(self, request: pb.LoginRequest, call: CallInfo) -> pb.LoginResponse:
        email = request.email.strip().lower()
        if not email or not request.password or len(email) > 254:
            raise Unauthenticated(WRONG_LOGIN)
        tenant_id = self.db.tenant_of("tenant_of_email", email)
        if tenant_id is None:
            return self._unknown_email(email, request.password)
        with self.db.tenant(tenant_id) as session:
            user = session.exec(select(User).where(User.email == email).with_for_update()).one()
            outcome = self._check_login(session, user, request, call)
            if isinstance(outcome, Exception):
                pass  # the failure is counted and audited: commit it, then refuse
            elif outcome is None:
                return pb.LoginResponse(totp_required=True)
            else:
                return pb.LoginResponse(tokens=_tokens(outcome), user=convert.user(user))
        raise outcome

    def _unknown_email(self, email: str, password: str) -> pb.LoginResponse:
        wait = self.deps.unknown_emails.retry_seconds(email)
        if wait:
            raise ResourceExhausted(f"too many failed sign-in attempts; retry after {wait} s")
        passwords.burn_time(password)
        self.deps.unknown_emails.fail(email)
        raise Unauthenticated(WRONG_LOGIN)

    def _check_login(
        self, session: Session, user: User, request: pb.LoginRequest, call: CallInfo
    ) -> sessions.Issued | Exception | None:
        """Tokens, None when a TOTP code is needed, or the error to raise after committing the failure."""
        now = datetime.now(UTC)
        wait = lockout.retry_seconds(user.locked_until, now)
        if wait:
            return ResourceExhausted(f"too many failed sign-in attempts; retry after {wait} s")
        reason = ""
        if not passwords.verify_password(user.password_hash, request.password):
            reason = "password"
        elif user.disabled:
            reason = "disabled"
        elif user.totp_secret is not None:
            if not request.totp_code:
                return None
            if not self._second_factor(user, request.totp_code):
                reason = "totp"
        if reason:
            user.failed_logins += 1
            lock = lockout.lock_after(user.failed_logins)
            user.locked_until = now + lock if lock else None
            session.add(user)
            details = {"reason": reason, "failed_attempts": str(user.failed_logins)}
            if lock:
                details["locked_seconds"] = str(int(lock.total_seconds()))
            self._audit_login(session, user, call, "user.login.failure", details)
            return Unauthenticated(WRONG_LOGIN)
        user.failed_logins, user.locked_until, user.last_login_time = 0, None, now
        if passwords.HASHER.check_needs_rehash(user.password_hash):
            user.password_hash = passwords.hash_password(request.password)
        session.add(user)
        self._audit_login(session, user, call, "user.login", {})
        return sessions.start(session, self.deps.issuer, user)

    def _second_factor(self, user: User, code: str) -> bool:
        assert user.totp_secret is not None
        secret = self.deps.totp_vault.decrypt(user.id, user.totp_secret)
        step = totp.matching_step(secret, code, after_step=user.totp_last_step)
        if step is not None:
            user.totp_last_step = step
            return True
        hashed = totp.digest(code)
        if hashed in user.recovery_codes:
            user.recovery_codes = [c for c in user.recovery_codes if c != hashed]
            return True
        return False

    def _audit_login(
        self, session: Session, user: User, call: CallInfo, action: str, details: dict[str, str]
    ) -> None:
        self.record(
            session,
            user.tenant_id,
            action,
            call=call,
            actor_kind="ACTOR_KIND_ADMIN" if user.role == Role.ADMIN else "ACTOR_KIND_USER",
            actor_id=user.id,
            actor_email=user.email,
            target_type="user",
            target_id=user.id,
            details=details,
        )

    @blocking
    def RefreshToken(self, request: pb.RefreshTokenRequest, call: CallInfo) -> pb.RefreshTokenResponse:
        refused = Unauthenticated("the refresh token is expired, revoked or unknown; sign in again")
        if not request.refresh_token.startswith(sessions.REFRESH_PREFIX) or len(request.refresh_token) > 100:
            raise refused
        hashed = tokens.digest(request.refresh_token)
        tenant_id = self.db.tenant_of("tenant_of_refresh_token", hashed)
        if tenant_id is None:
            raise refused
        with self.db.tenant(tenant_id) as session:
            row = session.exec(
                select(RefreshToken).where(RefreshToken.token_hash == hashed).with_for_update()
            ).one()
            user = session.get(User, row.user_id)
            if row.use_time is not None and row.revoke_time is None:
                sessions.revoke_family(session, row.family_id)
                self.record(
                    session,
                    tenant_id,
                    "session.reuse_detected",
                    call=call,
                    actor_kind="ACTOR_KIND_SYSTEM",
                    actor_id="tenants",
                    target_type="user",
                    target_id=row.user_id,
                    details={"session_id": row.family_id},
                )
                reused: Exception = Unauthenticated(
                    "this refresh token was already used: the session was ended for safety; sign in again"
                )
            elif (
                (
                    row.revoke_time is not None
                    or row.use_time is not None
                    or row.expire_time <= datetime.now(UTC)
                )
                or user is None
                or user.disabled
            ):
                reused = refused
            else:
                return pb.RefreshTokenResponse(
                    tokens=_tokens(sessions.rotate(session, self.deps.issuer, row, user))
                )
        raise reused

    @blocking
    def Logout(self, request: pb.LogoutRequest, call: CallInfo) -> pb.LogoutResponse:
        with self.db.tenant(self.own_tenant()) as session:
            caller = self.caller(session, call)
            if request.all_sessions:
                ended = sessions.revoke_user(session, caller.user.id)
            elif request.refresh_token:
                row = session.exec(
                    select(RefreshToken).where(
                        RefreshToken.token_hash == tokens.digest(request.refresh_token),
                        RefreshToken.user_id == caller.user.id,
                    )
                ).first()
                ended = 0
                if row is not None and row.revoke_time is None:
                    sessions.revoke_family(session, row.family_id)
                    ended = 1
            else:
                raise InvalidArgument(
                    "give the refresh token of the session to end, or set all_sessions", field="refresh_token"
                )
            self.record(
                session,
                caller.tenant_id,
                "session.logout",
                caller=caller,
                target_type="user",
                target_id=caller.user.id,
                details={"ended_sessions": str(ended)},
            )
            return pb.LogoutResponse(ended_sessions=ended)

    @blocking
    def GetMe(self, request: pb.GetMeRequest, call: CallInfo) -> pb.GetMeResponse:
        with self.db.tenant(self.own_tenant()) as session:
            caller = self.caller(session, call)
            tenant = session.get(Tenant, caller.tenant_id)
            if tenant is None:
                raise Unauthenticated("the tenant of this token no longer exists")
            return pb.GetMeResponse(
                user=convert.user(caller.user),
                tenant=convert.tenant(tenant),
                effective_role=convert.ROLE_TO_PB[caller.role],
            )

    @blocking
    def EnrollTotp(self, request: pb.EnrollTotpRequest, call: CallInfo) -> pb.EnrollTotpResponse:
        with self.db.tenant(self.own_tenant()) as session:
            caller = self._session_user(session, call)
            if caller.user.totp_secret is not None:
                raise AlreadyExists("TOTP is already active for this account")
            secret = totp.new_secret()
            caller.user.totp_pending = self.deps.totp_vault.encrypt(caller.user.id, secret)
            session.add(caller.user)
            return pb.EnrollTotpResponse(
                secret=secret, provisioning_uri=totp.provisioning_uri(secret, caller.user.email)
            )

    @blocking
    def ConfirmTotp(self, request: pb.ConfirmTotpRequest, call: CallInfo) -> pb.ConfirmTotpResponse:
        with self.db.tenant(self.own_tenant()) as session:
            caller = self._session_user(session, call)
            user = caller.user
            if user.totp_secret is not None:
                raise AlreadyExists("TOTP is already active for this account")
            if user.totp_pending is None:
                raise FailedPrecondition("no TOTP enrolment started: call EnrollTotp first")
            secret = self.deps.totp_vault.decrypt(user.id, user.totp_pending)
            step = totp.matching_step(secret, request.code, after_step=user.totp_last_step)
            if step is None:
                raise InvalidArgument("is not the current code of the authenticator app", field="code")
            codes = totp.new_recovery_codes()
            user.totp_secret, user.totp_pending, user.totp_last_step = user.totp_pending, None, step
            user.recovery_codes = [totp.digest(code) for code in codes]
            session.add(user)
            self.record(
                session,
                user.tenant_id,
                "user.totp.enable",
                caller=caller,
                target_type="user",
                target_id=user.id,
            )
            return pb.ConfirmTotpResponse(recovery_codes=codes, user=convert.user(user))

    def _session_user(self, session: Session, call: CallInfo) -> Caller:
        caller = self.caller(session, call)
        if caller.principal.api_token:
            raise PermissionDenied("two-factor enrolment needs a signed-in user, not an API token")
        return caller
