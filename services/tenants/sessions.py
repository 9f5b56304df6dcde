"""Sign-in sessions: a family of rotating refresh tokens per sign-in.

Each refresh hands out a new token of the same family and marks the old one used. Presenting a used
token means two parties hold the session (a stolen token): the whole family is revoked, so the thief
and the user are both signed out and the user signs in again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, col, select, update

from services.common.context import Role
from services.tenants import tokens
from services.tenants.models import RefreshToken, TenantSettings, User
from services.tenants.settings_store import DEFAULT_SESSION_SECONDS

REFRESH_PREFIX = "tbr_"


@dataclass
class Issued:
    access_token: str
    access_expire: datetime
    refresh_token: str
    refresh_expire: datetime


def _store(session: Session, user: User, family_id: str, expire: datetime) -> str:
    value = tokens.opaque(REFRESH_PREFIX)
    session.add(
        RefreshToken(
            id=str(uuid.uuid4()),
            tenant_id=user.tenant_id,
            user_id=user.id,
            family_id=family_id,
            token_hash=tokens.digest(value),
            create_time=datetime.now(UTC),
            expire_time=expire,
        )
    )
    return value


def start(session: Session, issuer: tokens.TokenIssuer, user: User) -> Issued:
    """A new session for `user`, lasting the tenant's session lifetime."""
    settings = session.get(TenantSettings, user.tenant_id)
    lifetime = settings.session_lifetime_seconds if settings else DEFAULT_SESSION_SECONDS
    expire = datetime.now(UTC) + timedelta(seconds=lifetime)
    refresh = _store(session, user, str(uuid.uuid4()), expire)
    access, access_expire = issuer.access_token(
        user_id=user.id, tenant_id=user.tenant_id, role=Role(user.role)
    )
    return Issued(access, access_expire, refresh, expire)


def rotate(session: Session, issuer: tokens.TokenIssuer, row: RefreshToken, user: User) -> Issued:
    row.use_time = datetime.now(UTC)
    session.add(row)
    refresh = _store(session, user, row.family_id, row.expire_time)
    access, access_expire = issuer.access_token(
        user_id=user.id, tenant_id=user.tenant_id, role=Role(user.role)
    )
    return Issued(access, access_expire, refresh, row.expire_time)


def revoke_family(session: Session, family_id: str) -> None:
    session.execute(
        update(RefreshToken)
        .where(col(RefreshToken.family_id) == family_id, col(RefreshToken.revoke_time).is_(None))
        .values(revoke_time=datetime.now(UTC))
    )


def revoke_user(session: Session, user_id: str) -> int:
    """End every session of a user; returns how many were active."""
    families = set(
        session.exec(
            select(RefreshToken.family_id).where(
                RefreshToken.user_id == user_id,
                col(RefreshToken.revoke_time).is_(None),
                col(RefreshToken.use_time).is_(None),
                RefreshToken.expire_time > datetime.now(UTC),
            )
        )
    )
    session.execute(
        update(RefreshToken)
        .where(col(RefreshToken.user_id) == user_id, col(RefreshToken.revoke_time).is_(None))
        .values(revoke_time=datetime.now(UTC))
    )
    return len(families)
