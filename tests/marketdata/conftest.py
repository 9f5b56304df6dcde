"""Fixtures: a fresh simulator per test (paused: tests drive the market clock) with its own symbol."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.exchangesim.app import Simulator
from tests.marketdata.helpers import start_sim, unique_symbol


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
