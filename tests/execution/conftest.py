"""Fixtures: a fresh paused simulator with its own symbol, and the execution service in-process on its
own schema and consumer names, per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.exchangesim.app import Simulator
from tests.execution.helpers import Harness, start_harness, start_sim, unique_symbol
from tests.helpers.infra import Infra


@pytest.fixture
def symbol() -> str:
    return unique_symbol()


@pytest.fixture
async def sim(symbol: str) -> AsyncIterator[Simulator]:
    simulator = await start_sim(symbol)
    try:
        yield simulator
    finally:
        await simulator.stop()


@pytest.fixture
async def harness(infra: Infra, sim: Simulator) -> AsyncIterator[Harness]:
    running = await start_harness(infra, sim, EXECUTION_ACCOUNT_STREAMS="true")
    try:
        yield running
    finally:
        await running.stop()
