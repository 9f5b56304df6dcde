"""Exchange credentials: write-only API over Vault KV v2, with a check against Bybit first.

Order of a put: step-up (committed, so a code is not reusable), Bybit check, Vault write (a new
version), then the database row, the audit entry and the NATS event in one transaction. If that
transaction fails, the version just written is destroyed, so Vault and the database never disagree
about which key is current.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import hvac
from tradebot.tenants.v1 import events_pb2
from tradebot.tenants.v1 import tenants_service_pb2 as pb

from services.common.context import Role, current_principal
from services.common.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from services.tenants import convert, credentials, events, validate
from services.tenants.core import Caller, CallInfo, Core, blocking
from services.tenants.models import ExchangeCredentials

# Which environments a platform venue accepts (the simulator stands in for any of them).
VENUE_ENVIRONMENTS = {
    "mainnet": {pb.EXCHANGE_ENVIRONMENT_MAINNET},
    "testnet": {pb.EXCHANGE_ENVIRONMENT_TESTNET},
    "demo": {pb.EXCHANGE_ENVIRONMENT_DEMO},
}


class CredentialRpcs(Core):
    def _authorise(self, call: CallInfo, totp_code: str) -> Caller:
        with self.db.tenant(self.own_tenant()) as session:
            caller = self.caller(session, call)
            caller.require(Role.OWNER)
            self.step_up(session, caller.user, totp_code)
            return caller

    def _store(
        self, caller: Caller, api_key: str, api_secret: str, environment: int, *, rotate: bool
    ) -> tuple[ExchangeCredentials, int]:
        checked = credentials.check_key(self.deps.venue, api_key, api_secret)
        path = credentials.vault_path(caller.tenant_id)
        try:
            version = self.deps.secrets.put(path, {"api_key": api_key, "api_secret": api_secret})
        except (hvac.exceptions.VaultError, OSError):
            raise Unavailable("the secret store could not be reached; nothing was changed, retry") from None
        try:
            with self.db.tenant(caller.tenant_id) as session:
                row = session.get(ExchangeCredentials, caller.tenant_id, with_for_update=True)
                previous = row.vault_version if row else 0
                if rotate and row is None:
                    raise FailedPrecondition("no credentials are stored yet: use PutExchangeCredentials")
                now = datetime.now(UTC)
                row = row or ExchangeCredentials(
                    tenant_id=caller.tenant_id,
                    vault_path=path,
                    vault_version=0,
                    masked_api_key="",
                    environment="",
                    validation="",
                    validate_time=now,
                    update_time=now,
                )
                row.vault_path, row.vault_version = path, version
                row.masked_api_key = credentials.mask(api_key)
                row.environment = pb.ExchangeEnvironment.Name(environment)
                row.permissions, row.read_only, row.allowed_ips = (
                    checked.permissions,
                    checked.read_only,
                    checked.allowed_ips,
                )
                row.validation, row.validation_message = "CREDENTIALS_VALIDATION_VALID", ""
                row.validate_time = row.update_time = now
                row.key_expire_time = checked.key_expire_time
                session.add(row)
                action = "credentials.rotate" if rotate else "credentials.put"
                details = {
                    "masked_api_key": row.masked_api_key,
                    "vault_version": str(version),
                    "environment": row.environment,
                }
                if rotate:
                    details["previous_version"] = str(previous)
                self.record(
                    session,
                    caller.tenant_id,
                    action,
                    caller=caller,
                    target_type="credentials",
                    details=details,
                )
                change = (
                    events_pb2.CREDENTIALS_CHANGE_ROTATED if rotate else events_pb2.CREDENTIALS_CHANGE_PUT
                )
                events.queue(session, *events.credentials_changed(caller.tenant_id, change, version))
                return row, previous
        except BaseException:
            self._undo(path, version)
            raise

    def _undo(self, path: str, version: int) -> None:
        # On failure the database still names the previous version; execution reads that one.
        with contextlib.suppress(hvac.exceptions.VaultError, OSError):
            self.deps.secrets.kv.destroy_secret_versions(
                path=path, versions=[version], mount_point=self.deps.secrets.mount
            )

    def _environment(self, environment: int) -> int:
        if environment not in (
            pb.EXCHANGE_ENVIRONMENT_MAINNET,
            pb.EXCHANGE_ENVIRONMENT_TESTNET,
            pb.EXCHANGE_ENVIRONMENT_DEMO,
        ):
            raise InvalidArgument("must be MAINNET, TESTNET or DEMO", field="environment")
        accepted = VENUE_ENVIRONMENTS.get(self.deps.venue.env.value)
        if accepted is not None and environment not in accepted:
            raise InvalidArgument(
                f"this platform trades on Bybit {self.deps.venue.env.value}", field="environment"
            )
        return environment

    @blocking
    def PutExchangeCredentials(
        self, request: pb.PutExchangeCredentialsRequest, call: CallInfo
    ) -> pb.PutExchangeCredentialsResponse:
        credentials.validate_shape(request.api_key, request.api_secret)
        environment = self._environment(request.environment)
        caller = self._authorise(call, request.totp_code)
        row, _ = self._store(caller, request.api_key, request.api_secret, environment, rotate=False)
        return pb.PutExchangeCredentialsResponse(status=self.status(row))

    @blocking
    def RotateExchangeCredentials(
        self, request: pb.RotateExchangeCredentialsRequest, call: CallInfo
    ) -> pb.RotateExchangeCredentialsResponse:
        credentials.validate_shape(request.api_key, request.api_secret)
        caller = self._authorise(call, request.totp_code)
        with self.db.tenant(caller.tenant_id) as session:
            current = session.get(ExchangeCredentials, caller.tenant_id)
            if current is None:
                raise FailedPrecondition("no credentials are stored yet: use PutExchangeCredentials")
            environment = pb.ExchangeEnvironment.Value(current.environment)
        row, previous = self._store(caller, request.api_key, request.api_secret, environment, rotate=True)
        return pb.RotateExchangeCredentialsResponse(status=self.status(row), previous_version=previous)

    @blocking
    def GetExchangeCredentialsStatus(
        self, request: pb.GetExchangeCredentialsStatusRequest, call: CallInfo
    ) -> pb.GetExchangeCredentialsStatusResponse:
        # `revalidate` returns the stored result: this service can write the secret but never read it
        # back (Vault policy), so only execution, which reads it, can re-check a stored key.
        principal = current_principal()
        if principal is not None and principal.role is Role.SERVICE:
            # A platform service asking for a tenant (strategy, before it starts a LIVE bot).
            tenant_id = validate.object_id(request.tenant_id, "tenant_id")
            with self.db.tenant(tenant_id) as session:
                row = session.get(ExchangeCredentials, tenant_id)
                return pb.GetExchangeCredentialsStatusResponse(status=self.status(row))
        with self.db.tenant(self.own_tenant()) as session:
            caller = self.caller(session, call)
            caller.require(Role.OWNER, Role.TRADER, Role.VIEWER)
            row = session.get(ExchangeCredentials, caller.tenant_id)
            return pb.GetExchangeCredentialsStatusResponse(status=self.status(row))

    @blocking
    def DeleteExchangeCredentials(
        self, request: pb.DeleteExchangeCredentialsRequest, call: CallInfo
    ) -> pb.DeleteExchangeCredentialsResponse:
        caller = self._authorise(call, request.totp_code)
        with self.db.tenant(caller.tenant_id) as session:
            row = session.get(ExchangeCredentials, caller.tenant_id, with_for_update=True)
            if row is None:
                raise NotFound("no exchange credentials are stored")
            self.destroy_secret(caller.tenant_id)
            session.delete(row)
            now = datetime.now(UTC)
            self.record(
                session,
                caller.tenant_id,
                "credentials.delete",
                caller=caller,
                target_type="credentials",
                details={"masked_api_key": row.masked_api_key, "last_version": str(row.vault_version)},
            )
            events.queue(
                session,
                *events.credentials_changed(caller.tenant_id, events_pb2.CREDENTIALS_CHANGE_DELETED, 0),
            )
            return pb.DeleteExchangeCredentialsResponse(delete_time=convert.ts(now))

    def status(self, row: ExchangeCredentials | None) -> pb.ExchangeCredentialsStatus:
        return convert.credentials(row, self.deps.venue.env.value)

    def destroy_secret(self, tenant_id: str) -> None:
        """Every version and the metadata: nothing recoverable (also used by DeleteTenant)."""
        try:
            self.deps.secrets.destroy(credentials.vault_path(tenant_id))
        except hvac.exceptions.InvalidPath:
            pass
        except (hvac.exceptions.VaultError, OSError):
            raise Unavailable("the secret store could not be reached; nothing was deleted, retry") from None
