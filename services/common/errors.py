"""Domain errors and their gRPC status codes: the one place that mapping is written.

Service code raises these with a message a person can act on; the server interceptor turns them into
the matching status. Anything else becomes INTERNAL with a correlation id, never UNKNOWN, and its
details go to the log, not to the caller.
"""

from __future__ import annotations

import grpc


class TradebotError(Exception):
    """Base of errors a caller can act on. `code` is the gRPC status they are reported with."""

    code = grpc.StatusCode.INTERNAL

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class InvalidArgument(TradebotError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(TradebotError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(TradebotError):
    code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(TradebotError):
    code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(TradebotError):
    code = grpc.StatusCode.UNAUTHENTICATED


class FailedPrecondition(TradebotError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class ResourceExhausted(TradebotError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(TradebotError):
    code = grpc.StatusCode.UNAVAILABLE
