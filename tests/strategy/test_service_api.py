"""The strategy service's RPCs through a running process: roles and tenants on every RPC, INVALID_ARGUMENT
naming the field for bad bots and backtests, the lifecycle and its NATS events, and backtests streamed,
stored and listed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from tradebot.common.v1 import common_pb2
from tradebot.strategy.v1 import events_pb2
from tradebot.strategy.v1 import strategy_service_pb2 as pb

from services.strategy import convert
from tests.helpers.infra import Platform
from tests.strategy.service_slice import Slice, create_request, start_slice

READ = ("ListStrategies", "GetBot", "ListBots", "ListSignals", "GetBacktest", "ListBacktests")
CONTROL = ("CreateBot", "UpdateBot", "StartBot", "PauseBot", "StopBot", "DeleteBot", "RunBacktest")


@pytest.fixture(scope="module")
async def slice_(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Slice]:
    running = await start_slice(platform, tmp_path_factory.mktemp("strategy-api"), history=300)
    yield running
    await running.stop()


def backtest_config(slice_: Slice, **fields: Any) -> pb.BacktestConfig:
    first = int(slice_.data_file.read_text().splitlines()[1].split(",")[0])
    config = pb.BacktestConfig(
        strategy_id="ppp_vishva",
        template="aggressive",
        category=common_pb2.CATEGORY_LINEAR,
        symbol=slice_.symbol,
        interval=common_pb2.INTERVAL_1_HOUR,
        initial_capital="10000",
    )
    config.time_range.start.FromMilliseconds(first + 120 * 3_600_000)
    config.time_range.end.FromMilliseconds(first + 290 * 3_600_000)
    for name, value in fields.items():
        setattr(config, name, value)
    return config


async def call(
    slice_: Slice, method: str, request: Any, tenant: str = "tenant-a", role: str = "owner"
) -> Any:
    stub = slice_.stub()
    metadata = slice_.token(tenant, role) if role else None
    if method == "RunBacktest":
        return [m async for m in stub.RunBacktest(request, metadata=metadata)]
    return await getattr(stub, method)(request, metadata=metadata)


async def refused(slice_: Slice, method: str, request: Any, **who: str) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(slice_, method, request, **who)
    return caught.value


@pytest.fixture(scope="module")
async def resources(slice_: Slice) -> dict[str, str]:
    """A bot and a finished backtest of tenant-a, for the table below."""
    bot = (await call(slice_, "CreateBot", create_request(slice_.symbol))).bot
    messages = await call(slice_, "RunBacktest", pb.RunBacktestRequest(config=backtest_config(slice_)))
    return {"bot": bot.id, "backtest": messages[-1].backtest_id}


def requests(slice_: Slice, ids: dict[str, str]) -> dict[str, Any]:
    return {
        "ListStrategies": pb.ListStrategiesRequest(),
        "GetBot": pb.GetBotRequest(bot_id=ids["bot"]),
        "ListBots": pb.ListBotsRequest(),
        "ListSignals": pb.ListSignalsRequest(bot_id=ids["bot"]),
        "GetBacktest": pb.GetBacktestRequest(backtest_id=ids["backtest"]),
        "ListBacktests": pb.ListBacktestsRequest(),
        "CreateBot": create_request(slice_.symbol),
        "UpdateBot": pb.UpdateBotRequest(
            bot_id=ids["bot"], bot=events_pb2.Bot(name="renamed"), update_mask=FieldMask(paths=["name"])
        ),
        "StartBot": pb.StartBotRequest(bot_id=ids["bot"]),
        "PauseBot": pb.PauseBotRequest(bot_id=ids["bot"]),
        "StopBot": pb.StopBotRequest(bot_id=ids["bot"]),
        "DeleteBot": pb.DeleteBotRequest(bot_id=ids["bot"]),
        "RunBacktest": pb.RunBacktestRequest(config=backtest_config(slice_)),
    }


@pytest.mark.parametrize("method", READ + CONTROL)
async def test_every_rpc_needs_a_token(slice_: Slice, resources: dict[str, str], method: str) -> None:
    error = await refused(slice_, method, requests(slice_, resources)[method], role="")
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("method", CONTROL)
async def test_viewers_cannot_control(slice_: Slice, resources: dict[str, str], method: str) -> None:
    error = await refused(slice_, method, requests(slice_, resources)[method], role="viewer")
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED, error.details()


@pytest.mark.parametrize("method", READ)
async def test_viewers_read(slice_: Slice, resources: dict[str, str], method: str) -> None:
    await call(slice_, method, requests(slice_, resources)[method], role="viewer")


@pytest.mark.parametrize("method", READ + CONTROL)
async def test_another_tenant_sees_nothing_of_tenant_a(
    slice_: Slice, resources: dict[str, str], method: str
) -> None:
    request = requests(slice_, resources)[method]
    if method in ("ListStrategies", "CreateBot", "RunBacktest"):
        await call(slice_, method, request, tenant="tenant-b", role="trader")  # its own, not A's
        return
    if method in ("ListBots", "ListSignals", "ListBacktests"):
        reply = await call(slice_, method, request, tenant="tenant-b", role="owner")
        listed = {"ListBots": "bots", "ListSignals": "signals", "ListBacktests": "backtests"}[method]
        assert all(item.tenant_id == "tenant-b" for item in getattr(reply, listed))
        return
    error = await refused(slice_, method, request, tenant="tenant-b", role="owner")
    assert error.code() == grpc.StatusCode.NOT_FOUND, error.details()


async def test_lifecycle_with_its_events_for_traders(slice_: Slice) -> None:
    events: list[events_pb2.BotLifecycleEvent] = []

    async def got(msg: Any) -> None:
        events.append(events_pb2.BotLifecycleEvent.FromString(msg.data))

    sub = await slice_.nc.subscribe("bot.lifecycle.tenant-a.>", cb=got)
    bot = (await call(slice_, "CreateBot", create_request(slice_.symbol), role="trader")).bot
    assert bot.status == events_pb2.BOT_STATUS_CREATED and bot.parameters["ema_len"].int_value == 100
    steps = [
        ("StartBot", pb.StartBotRequest(bot_id=bot.id), events_pb2.BOT_STATUS_RUNNING),
        ("PauseBot", pb.PauseBotRequest(bot_id=bot.id), events_pb2.BOT_STATUS_PAUSED),
        ("StartBot", pb.StartBotRequest(bot_id=bot.id), events_pb2.BOT_STATUS_RUNNING),
        ("StopBot", pb.StopBotRequest(bot_id=bot.id), events_pb2.BOT_STATUS_STOPPED),
    ]
    for method, request, status in steps:
        assert (await call(slice_, method, request, role="trader")).bot.status == status
    error = await refused(slice_, "PauseBot", pb.PauseBotRequest(bot_id=bot.id))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    await call(slice_, "DeleteBot", pb.DeleteBotRequest(bot_id=bot.id), role="trader")
    await slice_.nc.flush()
    mine = [e for e in events if e.bot.id == bot.id]
    assert [e.bot.status for e in mine][:5] == [
        events_pb2.BOT_STATUS_CREATED,
        events_pb2.BOT_STATUS_RUNNING,
        events_pb2.BOT_STATUS_PAUSED,
        events_pb2.BOT_STATUS_RUNNING,
        events_pb2.BOT_STATUS_STOPPED,
    ]
    assert mine[-1].deleted and mine[1].previous_status == events_pb2.BOT_STATUS_CREATED
    await sub.unsubscribe()


def with_params(slice_: Slice, **params: Any) -> pb.CreateBotRequest:
    request = create_request(slice_.symbol)
    for name, value in params.items():
        request.parameters[name].CopyFrom(convert.parameter_value(value))
    return request


@pytest.mark.parametrize(
    ("case", "field"),
    [
        ({"params": {"ewo_slow": 5}}, "ewo_slow"),
        ({"params": {"no_such_thing": 1}}, "no_such_thing"),
        ({"params": {"ema_len": 1.5}}, "ema_len"),
        ({"params": {"ema_len": 0}}, "ema_len"),
        ({"strategy_id": "moon_shot"}, "strategy_id"),
        ({"symbol": "NOPEUSDT"}, "symbol"),
        ({"interval": common_pb2.INTERVAL_UNSPECIFIED}, "interval"),
        ({"category": common_pb2.CATEGORY_UNSPECIFIED}, "category"),
        ({"mode": common_pb2.TRADING_MODE_UNSPECIFIED}, "mode"),
        ({"template": "reckless"}, "template"),
        ({"capital_allocation": "lots"}, "capital_allocation"),
        ({"name": ""}, "name"),
    ],
)
async def test_bad_bots_are_refused_naming_the_field(slice_: Slice, case: dict[str, Any], field: str) -> None:
    fields = dict(case)
    request = with_params(slice_, **fields.pop("params", {}))
    for name, value in fields.items():
        setattr(request, name, value)
    error = await refused(slice_, "CreateBot", request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (error.details() or ""), error.details()


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"strategy_id": "moon_shot"}, "strategy_id"),
        ({"symbol": "NOPEUSDT"}, "symbol"),
        ({"interval": common_pb2.INTERVAL_UNSPECIFIED}, "interval"),
        ({"initial_capital": "-5"}, "initial_capital"),
    ],
)
async def test_bad_backtests_are_refused_naming_the_field(
    slice_: Slice, fields: dict[str, Any], field: str
) -> None:
    error = await refused(
        slice_, "RunBacktest", pb.RunBacktestRequest(config=backtest_config(slice_, **fields))
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (error.details() or ""), error.details()


async def test_backtests_stream_progress_then_the_report_and_are_stored(slice_: Slice) -> None:
    messages = await call(
        slice_, "RunBacktest", pb.RunBacktestRequest(config=backtest_config(slice_)), role="trader"
    )
    assert messages[0].WhichOneof("event") == "progress"
    assert messages[-1].WhichOneof("event") == "report"
    assert len({m.backtest_id for m in messages}) == 1
    report = messages[-1].report
    assert report.metrics.final_equity and report.equity_curve
    got = await call(
        slice_, "GetBacktest", pb.GetBacktestRequest(backtest_id=messages[-1].backtest_id), role="viewer"
    )
    assert got.backtest.status == pb.BACKTEST_STATUS_SUCCEEDED and got.report == report
    assert got.backtest.config.parameters["ema_len"].int_value == 100  # stored fully resolved
    listed = await call(slice_, "ListBacktests", pb.ListBacktestsRequest(page_size=1), role="viewer")
    assert len(listed.backtests) == 1 and listed.next_page_token
    assert not listed.backtests[0].HasField("finish_time") or listed.backtests[0].metrics.final_equity
