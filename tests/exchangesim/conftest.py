"""A simulator on a free port per test, with its clock paused so tests drive time themselves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import aiohttp
import pytest

from services.exchangesim.app import SimConfig, Simulator


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(
        SimConfig(port=0, paused=True, seed=7, funding_rate=Decimal("0.0001"), idle_timeout_s=30)
    )
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
