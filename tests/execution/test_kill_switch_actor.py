"""Who last changed a kill switch is the KillSwitch's `changed_by` (the user id from the verified
token), as ListKillSwitches and GetAccountSummary show it, for engaging and for releasing."""

from __future__ import annotations

from typing import Any

from tradebot.common.v1 import common_pb2 as common
from tradebot.execution.v1 import execution_service_pb2 as pb

from services.common.context import Role
from services.exchangesim.app import Simulator
from tests.execution.helpers import Harness, as_caller, unique

NO_CONTEXT: Any = None


async def test_the_actor_of_a_kill_switch_is_listed_and_summarised(harness: Harness, sim: Simulator) -> None:
    tenant, bot = unique("t-"), unique("b-")
    servicer = harness.execution.servicer
    as_caller(tenant, Role.TRADER, user_id="u-alice")
    await servicer.SetKillSwitch(
        pb.SetKillSwitchRequest(scope=pb.KILL_SWITCH_SCOPE_TENANT, engaged=True, reason="drill"), NO_CONTEXT
    )
    as_caller(tenant, Role.TRADER, user_id="u-bob")
    await servicer.SetKillSwitch(
        pb.SetKillSwitchRequest(scope=pb.KILL_SWITCH_SCOPE_BOT, bot_id=bot, engaged=True, reason="odd fills"),
        NO_CONTEXT,
    )

    as_caller(tenant, Role.VIEWER, user_id="u-carol")  # whoever reads sees who acted, not themselves
    listed = await servicer.ListKillSwitches(pb.ListKillSwitchesRequest(), NO_CONTEXT)
    assert [(s.scope, s.changed_by) for s in listed.kill_switches] == [
        (pb.KILL_SWITCH_SCOPE_TENANT, "u-alice"),
        (pb.KILL_SWITCH_SCOPE_BOT, "u-bob"),
    ]
    summary = await servicer.GetAccountSummary(
        pb.GetAccountSummaryRequest(mode=common.TRADING_MODE_PAPER), NO_CONTEXT
    )
    assert sorted((s.scope, s.changed_by) for s in summary.kill_switches) == sorted(
        [(pb.KILL_SWITCH_SCOPE_TENANT, "u-alice"), (pb.KILL_SWITCH_SCOPE_BOT, "u-bob")]
    )

    # Released by someone else: the switch now names who released it.
    as_caller(tenant, Role.TRADER, user_id="u-dave")
    await servicer.SetKillSwitch(
        pb.SetKillSwitchRequest(scope=pb.KILL_SWITCH_SCOPE_TENANT, engaged=False, reason="drill over"),
        NO_CONTEXT,
    )
    as_caller(tenant, Role.VIEWER, user_id="u-carol")
    every = await servicer.ListKillSwitches(pb.ListKillSwitchesRequest(include_released=True), NO_CONTEXT)
    tenant_switch = next(s for s in every.kill_switches if s.scope == pb.KILL_SWITCH_SCOPE_TENANT)
    assert not tenant_switch.engaged and tenant_switch.changed_by == "u-dave"
    summary = await servicer.GetAccountSummary(
        pb.GetAccountSummaryRequest(mode=common.TRADING_MODE_LIVE), NO_CONTEXT
    )
    assert [(s.scope, s.changed_by) for s in summary.kill_switches] == [(pb.KILL_SWITCH_SCOPE_BOT, "u-bob")]
