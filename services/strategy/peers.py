"""What the strategy service asks other services about a bot, with its own identity.

Before StartBot lets a bot run, so a start that cannot trade is refused at once instead of failing
later, signal by signal, in execution:

- Kill switches (execution's, service-only `ListKillSwitches` for the tenant): an engaged GLOBAL or
  TENANT switch, or one on this bot, refuses any start, PAPER or LIVE.
- Exchange keys (tenants', service-only `GetExchangeCredentialsStatus` for the tenant): a LIVE bot needs a
  stored key that can trade.

Both are asked concurrently. A service that does not answer refuses the start with UNAVAILABLE:
starting a bot nobody could check is the silent failure this is here to prevent.

Before StopBot closes a bot's position: the position execution holds for the bot (service-only
`ListPositions` for the tenant), which is what the exchange has, not what the strategy's bank believes.
Here an unanswered question does not refuse anything (server.py: the stop goes ahead on the bank's view).

A service whose address is not configured (the strategy service running alone, as in its own tests) is
not asked.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc
from tradebot.common.v1 import common_pb2
from tradebot.execution.v1 import execution_service_pb2 as ex
from tradebot.execution.v1 import execution_service_pb2_grpc as ex_rpc
from tradebot.tenants.v1 import tenants_service_pb2 as tn
from tradebot.tenants.v1 import tenants_service_pb2_grpc as tn_rpc

from services.common.errors import FailedPrecondition, Unavailable
from services.common.service_identity import platform_channel
from services.strategy.models import BotRow

log = logging.getLogger("tradebot.strategy.peers")
Metadata = Callable[[], Awaitable[tuple[tuple[str, str], ...]]]
TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class HeldPosition:
    side: int  # +1 long, -1 short
    mark_price: float


class Peers:
    def __init__(self, tenants_addr: str, execution_addr: str, metadata: Metadata | None) -> None:
        self.tenants_addr = tenants_addr if metadata else ""
        self.execution_addr = execution_addr if metadata else ""
        self.metadata = metadata
        self._channels: dict[str, grpc.aio.Channel] = {}
        for name, addr in (("kill switches", self.execution_addr), ("exchange keys", self.tenants_addr)):
            if not addr:
                log.warning("bot starts are not checked for %s: no service to ask is configured", name)

    def _channel(self, addr: str) -> grpc.aio.Channel:
        if addr not in self._channels:
            self._channels[addr] = platform_channel(addr)
        return self._channels[addr]

    async def require(self, row: BotRow) -> None:
        """Raise FailedPrecondition naming why this bot cannot start, or Unavailable if it cannot be told."""
        checks = [self._kill_switches(row)]
        if row.mode == "live":
            checks.append(self._exchange_keys(row))
        await asyncio.gather(*checks)

    async def _kill_switches(self, row: BotRow) -> None:
        if not self.execution_addr or self.metadata is None:
            return
        stub = ex_rpc.ExecutionServiceStub(self._channel(self.execution_addr))
        try:
            reply = await stub.ListKillSwitches(
                ex.ListKillSwitchesRequest(tenant_id=row.tenant_id),
                metadata=await self.metadata(),
                timeout=TIMEOUT_SECONDS,
            )
        except grpc.aio.AioRpcError as error:
            log.warning("kill switches not checked", extra={"code": error.code().name})
            raise Unavailable(
                "cannot check the kill switches with the execution service; the bot was not started, retry"
            ) from None
        for switch in reply.kill_switches:
            if not switch.engaged:
                continue
            why = f" ({switch.reason})" if switch.reason else ""
            if switch.scope == ex.KILL_SWITCH_SCOPE_GLOBAL:
                raise FailedPrecondition(
                    f"the platform-wide kill switch is engaged{why}: no bot can start until it is released"
                )
            if switch.scope == ex.KILL_SWITCH_SCOPE_TENANT:
                raise FailedPrecondition(
                    f"your organisation's kill switch is engaged{why}: release it before starting bots"
                )
            if switch.scope == ex.KILL_SWITCH_SCOPE_BOT and switch.bot_id == row.id:
                raise FailedPrecondition(
                    f"this bot's kill switch is engaged{why}: release it before starting the bot"
                )

    async def _exchange_keys(self, row: BotRow) -> None:
        if not self.tenants_addr or self.metadata is None:
            return
        stub = tn_rpc.TenantsServiceStub(self._channel(self.tenants_addr))
        try:
            reply = await stub.GetExchangeCredentialsStatus(
                tn.GetExchangeCredentialsStatusRequest(tenant_id=row.tenant_id),
                metadata=await self.metadata(),
                timeout=TIMEOUT_SECONDS,
            )
        except grpc.aio.AioRpcError as error:
            log.warning("exchange keys not checked", extra={"code": error.code().name})
            raise Unavailable(
                "cannot check your exchange keys with the tenants service; the bot was not started, retry"
            ) from None
        if not reply.status.present:
            raise FailedPrecondition(
                "a LIVE bot trades with your organisation's Bybit API key and none is stored: add one "
                "(PutExchangeCredentials, or the dashboard's Account page) or run the bot in PAPER mode"
            )
        if reply.status.read_only:
            raise FailedPrecondition(
                "the stored Bybit API key is read-only and cannot place orders: replace it with a trading key"
            )

    @property
    def knows_positions(self) -> bool:
        return bool(self.execution_addr)

    async def position(self, row: BotRow) -> HeldPosition | None:
        """The bot's open position as execution has it, or None when it holds none."""
        assert self.metadata is not None and self.execution_addr
        stub = ex_rpc.ExecutionServiceStub(self._channel(self.execution_addr))
        mode = common_pb2.TRADING_MODE_LIVE if row.mode == "live" else common_pb2.TRADING_MODE_PAPER
        try:
            reply = await stub.ListPositions(
                ex.ListPositionsRequest(tenant_id=row.tenant_id, bot_id=row.id, symbol=row.symbol, mode=mode),
                metadata=await self.metadata(),
                timeout=TIMEOUT_SECONDS,
            )
        except grpc.aio.AioRpcError as error:
            log.warning("position not read", extra={"code": error.code().name})
            raise Unavailable("cannot ask the execution service for the bot's position") from None
        for position in reply.positions:
            side = {common_pb2.SIDE_BUY: 1, common_pb2.SIDE_SELL: -1}.get(position.side, 0)
            if side and position.size and float(position.size) > 0:
                return HeldPosition(side, float(position.mark_price or "nan"))
        return None

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close(None)
        self._channels.clear()
