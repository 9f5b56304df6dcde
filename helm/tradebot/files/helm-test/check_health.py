"""`helm test`: every gRPC service reports SERVING on the standard health service; HTTP checks answer 200.

Arguments are `grpc=<host:port>` or `http=<url>`; run with the Tradebot image's own Python, so the
check uses the same grpcio as the services. Exits 1 naming every target that failed.
"""

from __future__ import annotations

import sys
import time
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ATTEMPTS = 10
PAUSE_SECONDS = 3.0


def grpc_serving(address: str) -> str:
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def http_status(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return "SERVING" if response.status == 200 else f"HTTP {response.status}"


def check(target: str) -> str:
    kind, _, where = target.partition("=")
    probe = {"grpc": grpc_serving, "http": http_status}.get(kind)
    if probe is None or not where:
        return f"bad target {target!r} (expected grpc=host:port or http=url)"
    try:
        return probe(where)
    except (grpc.RpcError, OSError) as error:
        return f"unreachable: {error.__class__.__name__}"


def main(targets: list[str], attempts: int = ATTEMPTS, pause: float = PAUSE_SECONDS) -> int:
    failing = list(targets)
    for attempt in range(attempts):
        results = {target: check(target) for target in failing}
        failing = [target for target, status in results.items() if status != "SERVING"]
        for target, status in results.items():
            print(f"{target}: {status}", flush=True)
        if not failing:
            return 0
        if attempt + 1 < attempts:
            time.sleep(pause)
    print("not serving: " + ", ".join(failing), file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
