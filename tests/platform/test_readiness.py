"""A service is ready only once it can check access tokens: started before tenants, it reports
NOT_SERVING (its authenticated calls could only fail) until it has tenants' signing keys, and from the
moment it reports SERVING its first authenticated call succeeds, with no retry."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import grpc

from services.devstack.platform import REPO, grpc_health, plan_services
from services.devstack.processes import free_port
from tests.helpers.infra import Infra
from tests.helpers.tokens import access_token
from tests.platform.slow_service import WHO_AM_I


def who_am_i(address: str, token: str) -> bytes:
    with grpc.insecure_channel(address) as channel:
        call = channel.unary_unary(WHO_AM_I, request_serializer=None, response_deserializer=None)
        return bytes(call(b"", metadata=(("authorization", f"Bearer {token}"),), timeout=10))


def test_a_service_started_before_tenants_serves_only_once_it_can_check_tokens(
    infra: Infra, tmp_path: Path
) -> None:
    tenants = next(
        s
        for s in plan_services(infra.env, tmp_path, infra.vault.service_tokens, base_port=0)
        if s.name == "tenants"
    )
    tenants.extra_env = {"DB_SCHEMA": f"tenants_r{uuid.uuid4().hex[:8]}"}
    port = free_port()
    service = subprocess.Popen(
        [sys.executable, "-m", "tests.platform.slow_service"],
        cwd=REPO,
        env={**os.environ, "GRPC_PORT": str(port), "TENANTS_ADDR": tenants.address, "METRICS_PORT": "0"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    address = f"127.0.0.1:{port}"
    token = access_token(infra.vault, tenant_id=str(uuid.uuid4()), role="viewer", user_id="reader-1")
    try:
        # Up (its port answers health checks) but not ready: tenants is not there to give the keys.
        deadline = time.monotonic() + 60
        while grpc_health(address) == "STARTING":
            assert service.poll() is None and time.monotonic() < deadline, "the service did not start"
            time.sleep(0.1)
        for _ in range(10):
            assert grpc_health(address) == "NOT_SERVING"
            time.sleep(0.2)
        try:
            who_am_i(address, token)
            raise AssertionError("an authenticated call succeeded without the signing keys")
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.UNAVAILABLE, error
        assert grpc_health(address) == "NOT_SERVING"

        tenants.start()
        deadline = time.monotonic() + 120
        while grpc_health(address) != "SERVING":
            assert service.poll() is None, "the service exited"
            assert time.monotonic() < deadline, "the service never served after tenants came up"
            time.sleep(0.1)
        # At once: the first authenticated call after SERVING is verified (no retry).
        assert who_am_i(address, token) == b"reader-1"
    finally:
        service.terminate()
        service.wait(timeout=30)
        tenants.stop()
