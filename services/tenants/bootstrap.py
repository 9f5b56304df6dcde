"""The first platform admin: with ADMIN_EMAIL set and no account for it, an invite that creates the
platform's own organisation with that person as ADMIN is sent (or written to the outbox) at start.
Every later admin is granted by an existing one (SetUserRole)."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

from services.common.context import Role
from services.tenants import tokens, validate
from services.tenants.core import Deps
from services.tenants.models import Invite

log = logging.getLogger("tradebot.tenants.bootstrap")
BOOTSTRAP_TTL = timedelta(days=7)


def invite_first_admin(deps: Deps, email: str) -> str | None:
    """Invite `email` as the first ADMIN unless it already has an account; returns the invite token."""
    email = validate.email(email, "ADMIN_EMAIL")
    if deps.db.tenant_of("tenant_of_email", email) is not None:
        return None
    token = tokens.opaque("tbi_")
    tenant_id, now = str(uuid.uuid4()), datetime.now(UTC)
    with deps.db.tenant(tenant_id) as session:
        session.add(
            Invite(
                id=str(uuid.uuid4()),
                tenant_id=tenant_id,
                email=email,
                role=Role.ADMIN.value,
                new_tenant=True,
                token_hash=tokens.digest(token),
                created_by_user_id="bootstrap",
                create_time=now,
                expire_time=now + BOOTSTRAP_TTL,
            )
        )
        deps.mailer.invite(
            to=email,
            token=token,
            tenant_hint="the platform's operators",
            role=Role.ADMIN.value,
            expire_text=(now + BOOTSTRAP_TTL).strftime("%Y-%m-%d %H:%M UTC"),
        )
    log.info("first admin invited", extra={"email": email})
    return token
