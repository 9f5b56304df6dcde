"""The dashboard's one door to the platform: gRPC channels, the user's token, plain-sentence errors.

No other dashboard module imports grpc. Pages call `api.<service>.<Rpc>(request)` on an `Api` bound
to the signed-in user's `Credentials`; the access token is refreshed shortly before it expires (and
once more if a call is refused as expired), and every failure reaches the page as a `PlatformError`
whose `sentence` is what the service wrote for people, never a stack trace.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tradebot.execution.v1 import execution_service_pb2_grpc as execution_rpc
from tradebot.marketdata.v1 import marketdata_service_pb2_grpc as marketdata_rpc
from tradebot.strategy.v1 import strategy_service_pb2_grpc as strategy_rpc
from tradebot.tenants.v1 import tenants_service_pb2 as tenants_pb
from tradebot.tenants.v1 import tenants_service_pb2_grpc as tenants_rpc

STUBS: dict[str, Callable[[grpc.Channel], Any]] = {
    "tenants": tenants_rpc.TenantsServiceStub,
    "marketdata": marketdata_rpc.MarketDataServiceStub,
    "strategy": strategy_rpc.StrategyServiceStub,
    "execution": execution_rpc.ExecutionServiceStub,
}
# What a person loses when a service is missing; used in "... are not available yet".
FEATURES = {
    "tenants": "Accounts and sign-in",
    "marketdata": "Market data",
    "strategy": "Bots, signals and backtests",
    "execution": "Orders, positions and PnL",
}
DEFAULT_TIMEOUT = 10.0
# Refresh this long before the access token expires, so a call never leaves with a token about to lapse.
REFRESH_MARGIN_SECONDS = 30.0


# Words of gRPC's own UNAVAILABLE details (the service was not reached or the connection broke), as
# opposed to an UNAVAILABLE the service wrote for people.
TRANSPORT_WORDS = (
    "connect",
    "socket",
    "dns",
    "goaway",
    "stream removed",
    "keepalive",
    "broken pipe",
    "ipv4:",
)


def _as_sentence(details: str) -> str:
    sentence = details[0].upper() + details[1:]
    return sentence if sentence.endswith((".", "!", "?")) else sentence + "."


class PlatformError(Exception):
    """A call failed; `sentence` is safe and meant to be shown as it is."""

    def __init__(self, sentence: str, code: str, service: str) -> None:
        super().__init__(sentence)
        self.sentence, self.code, self.service = sentence, code, service


class NotAvailable(PlatformError):
    """The service does not offer this yet (UNIMPLEMENTED), cannot be reached, or is not configured."""


class SessionEnded(PlatformError):
    """The session cannot continue (expired, revoked or reused refresh token): sign in again."""


@dataclass
class Credentials:
    """The signed-in session's tokens. Mutable: a refresh replaces them in place, under `lock`, because
    refresh tokens rotate and presenting a used one would end the whole session."""

    access_token: str
    access_expires: float
    refresh_token: str
    refresh_expires: float
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def from_tokens(cls, tokens: tenants_pb.AuthTokens) -> Credentials:
        return cls(
            tokens.access_token,
            tokens.access_token_expire_time.ToSeconds(),
            tokens.refresh_token,
            tokens.refresh_token_expire_time.ToSeconds(),
        )

    def replace(self, tokens: tenants_pb.AuthTokens) -> None:
        fresh = Credentials.from_tokens(tokens)
        self.access_token, self.access_expires = fresh.access_token, fresh.access_expires
        self.refresh_token, self.refresh_expires = fresh.refresh_token, fresh.refresh_expires


def plain_sentence(error: grpc.RpcError, service: str) -> PlatformError:
    """Turn a gRPC failure into the sentence a person reads. The services write their status details
    for people (see tradebot.common.v1), so those are shown; only the codes without such a message,
    or whose message is about our plumbing, get a sentence of our own."""
    code: grpc.StatusCode = error.code()
    details = (error.details() or "").strip()
    feature = FEATURES.get(service, service)
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return NotAvailable(f"{feature} are not available yet.", code.name, service)
    if code == grpc.StatusCode.UNAVAILABLE:
        if not details or any(word in details.lower() for word in TRANSPORT_WORDS):
            return NotAvailable(
                f"{feature} cannot be reached right now; try again in a moment.", code.name, service
            )
        # The service answered and says what it could not reach (Bybit, Vault, another service):
        # "<service> cannot be reached" would send the person looking in the wrong place.
        return NotAvailable(_as_sentence(details), code.name, service)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return PlatformError(f"{feature} took too long to answer; try again.", code.name, service)
    if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN) or not details:
        return PlatformError(
            f"Something went wrong on the platform{f' ({details})' if details else ''}; try again, "
            "and tell support if it keeps happening.",
            code.name,
            service,
        )
    sentence = _as_sentence(details)
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return SessionEnded(sentence, code.name, service)
    return PlatformError(sentence, code.name, service)


class Platform:
    """Channels to every service, one per process (Streamlit caches this object across sessions)."""

    def __init__(self, addresses: dict[str, str]) -> None:
        self.addresses = addresses
        self._stubs = {
            name: make(grpc.insecure_channel(addresses[name]))
            for name, make in STUBS.items()
            if addresses.get(name)
        }

    def stub(self, service: str) -> Any:
        try:
            return self._stubs[service]
        except KeyError:
            raise NotAvailable(
                f"{FEATURES[service]} are not available: the dashboard is not connected to them.",
                "NOT_CONFIGURED",
                service,
            ) from None

    def call(self, service: str, method: str, request: Any, *, token: str = "", timeout: float = 0) -> Any:
        metadata = (("authorization", f"Bearer {token}"),) if token else ()
        rpc = getattr(self.stub(service), method)
        try:
            return rpc(request, metadata=metadata, timeout=timeout or DEFAULT_TIMEOUT)
        except grpc.RpcError as error:
            raise plain_sentence(error, service) from None

    def stream(self, service: str, method: str, request: Any, *, token: str, timeout: float) -> Iterator[Any]:
        """A server stream, with failures (also mid-stream) turned into PlatformError. Closing the
        iterator cancels the call."""
        call = getattr(self.stub(service), method)(
            request, metadata=(("authorization", f"Bearer {token}"),), timeout=timeout
        )
        try:
            yield from call
        except grpc.RpcError as error:
            raise plain_sentence(error, service) from None
        finally:
            call.cancel()

    def health(self, service: str) -> str:
        """The service's own health answer (SERVING, NOT_SERVING) or why there is none."""
        addr = self.addresses.get(service, "")
        if not addr:
            return "not configured"
        try:
            with grpc.insecure_channel(addr) as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
        except grpc.RpcError as error:
            return f"unreachable ({error.code().name.lower()})"
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))

    def anonymous(self) -> Api:
        """For the calls that carry their own credential: SignUp, Login, RefreshToken."""
        return Api(self, None)


class Api:
    """The platform as one user sees it: `api.strategy.ListBots(request)`."""

    def __init__(self, platform: Platform, credentials: Credentials | None) -> None:
        self.platform, self.credentials = platform, credentials

    def __getattr__(self, service: str) -> _Service:
        if service not in STUBS:
            raise AttributeError(service)
        return _Service(self, service)

    def token(self) -> str:
        creds = self.credentials
        if creds is None:
            return ""
        if creds.access_expires - time.time() < REFRESH_MARGIN_SECONDS:
            self.refresh(creds.access_token)
        return creds.access_token

    def refresh(self, stale_access_token: str) -> None:
        """Rotate the token pair, unless another thread already did since `stale_access_token`."""
        creds = self.credentials
        assert creds is not None
        with creds.lock:
            if creds.access_token != stale_access_token:
                return
            reply = self.platform.call(
                "tenants", "RefreshToken", tenants_pb.RefreshTokenRequest(refresh_token=creds.refresh_token)
            )
            creds.replace(reply.tokens)

    def invoke(self, service: str, method: str, request: Any, timeout: float = 0) -> Any:
        token = self.token()
        try:
            return self.platform.call(service, method, request, token=token, timeout=timeout)
        except SessionEnded:
            # An access token can be refused before its printed expiry (revoked, clock skew): one
            # refresh and one retry, then the session is over.
            if self.credentials is None:
                raise
            self.refresh(token)
            return self.platform.call(service, method, request, token=self.token(), timeout=timeout)

    def stream(self, service: str, method: str, request: Any, timeout: float = 3600.0) -> Iterator[Any]:
        return self.platform.stream(service, method, request, token=self.token(), timeout=timeout)


class _Service:
    def __init__(self, api: Api, name: str) -> None:
        self._api, self._name = api, name

    def __getattr__(self, method: str) -> Callable[..., Any]:
        def call(request: Any, timeout: float = 0) -> Any:
            return self._api.invoke(self._name, method, request, timeout)

        return call
