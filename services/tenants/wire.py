"""Registering the servicer so that undecodable request bytes are the caller's error.

gRPC's generated registration parses requests before any interceptor runs, and a parse failure is
reported as UNKNOWN. Here each request type is parsed leniently: bytes that are not the message
become a `Malformed` marker, which the handlers answer with INVALID_ARGUMENT.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from tradebot.tenants.v1 import tenants_service_pb2 as pb

from services.common.errors import InvalidArgument

SERVICE = pb.DESCRIPTOR.services_by_name["TenantsService"]


@dataclass(frozen=True)
class Malformed:
    type_name: str

    def error(self) -> InvalidArgument:
        return InvalidArgument(f"the request is not a valid {self.type_name} message")


def _lenient(cls: Any) -> Callable[[bytes], Any]:
    def parse(raw: bytes) -> Any:
        try:
            return cls.FromString(raw)
        except DecodeError:
            return Malformed(cls.DESCRIPTOR.full_name)

    return parse


def add_to_server(servicer: Any, server: grpc.aio.Server) -> str:
    """Register every RPC of TenantsService; returns the service's full name (for health/reflection)."""
    handlers = {
        method.name: grpc.unary_unary_rpc_method_handler(
            getattr(servicer, method.name),
            request_deserializer=_lenient(getattr(pb, method.input_type.name)),
            response_serializer=getattr(pb, method.output_type.name).SerializeToString,
        )
        for method in SERVICE.methods
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE.full_name, handlers),))
    return str(SERVICE.full_name)
