"""Watching for the demo's first trade of this run, so a newcomer sees the platform trade.

Polls execution's ListFills as the demo client (the same API the dashboard uses) and reports the first
fill that was not there when the watch began, with the seconds since the launcher started.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from tradebot.common.v1 import common_pb2 as common
from tradebot.execution.v1 import execution_service_pb2 as ex
from tradebot.execution.v1 import execution_service_pb2_grpc as ex_rpc
from tradebot.tenants.v1 import tenants_service_pb2 as tp
from tradebot.tenants.v1 import tenants_service_pb2_grpc as tp_rpc

from services.devstack.demo import Demo

POLL_SECONDS = 1.0


@dataclass
class FirstTrade:
    seconds: float  # since the launcher started
    side: str
    qty: str
    symbol: str
    price: str
    mode: str

    def describe(self) -> str:
        return (
            f"first simulated trade after {self.seconds:.1f}s: {self.side} {self.qty} {self.symbol} "
            f"at {self.price} ({self.mode.lower()})"
        )


class FirstTradeWatch:
    """A daemon thread; `result` is set (and `done` set) at the first new fill of the demo tenant."""

    def __init__(
        self,
        addresses: dict[str, str],
        demo: Demo,
        started: float,
        on_trade: Callable[[FirstTrade], None],
        *,
        late_after: float = 180.0,
        on_late: Callable[[float], None] = lambda seconds: None,
    ) -> None:
        self.addresses, self.demo, self.started, self.on_trade = addresses, demo, started, on_trade
        self.late_after, self.on_late = late_after, on_late
        self.result: FirstTrade | None = None
        self.done = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="first-trade", daemon=True)

    def start(self) -> FirstTradeWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        with (
            grpc.insecure_channel(self.addresses["tenants"]) as tenants_channel,
            grpc.insecure_channel(self.addresses["execution"]) as execution_channel,
        ):
            tenants = tp_rpc.TenantsServiceStub(tenants_channel)
            execution = ex_rpc.ExecutionServiceStub(execution_channel)
            token = ""
            seen: set[str] | None = None
            late = False
            while not self._stop.is_set():
                if not late and time.monotonic() - self.started > self.late_after:
                    late = True  # said once; the watch goes on
                    self.on_late(self.late_after)
                try:
                    token = token or self._sign_in(tenants)
                    fills = self._fills(execution, token)
                except grpc.RpcError as error:
                    if error.code() == grpc.StatusCode.UNAUTHENTICATED:
                        token = ""  # the access token expired: sign in again
                    self._stop.wait(POLL_SECONDS)
                    continue
                if seen is None:
                    seen = {fill.exec_id for fill in fills}
                new = [fill for fill in fills if fill.exec_id not in seen]
                if new:
                    first = min(new, key=lambda fill: fill.exec_time.ToNanoseconds())
                    self.result = FirstTrade(
                        seconds=time.monotonic() - self.started,
                        side=common.Side.Name(first.side).removeprefix("SIDE_").capitalize(),
                        qty=first.exec_qty,
                        symbol=first.symbol,
                        price=first.exec_price,
                        mode=common.TradingMode.Name(first.mode).removeprefix("TRADING_MODE_"),
                    )
                    self.on_trade(self.result)
                    self.done.set()
                    return
                self._stop.wait(POLL_SECONDS)

    def _sign_in(self, tenants: tp_rpc.TenantsServiceStub) -> str:
        logins = self.demo.logins
        reply = tenants.Login(tp.LoginRequest(email=logins.email, password=logins.password), timeout=30)
        return str(reply.tokens.access_token)

    def _fills(self, execution: ex_rpc.ExecutionServiceStub, token: str) -> list[ex.Fill]:
        reply = execution.ListFills(
            ex.ListFillsRequest(mode=self.demo.mode, page_size=50),
            metadata=(("authorization", f"Bearer {token}"),),
            timeout=10,
        )
        return list(reply.fills)
