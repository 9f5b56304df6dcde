"""Session fixtures: real PostgreSQL, NATS and OpenBao on free ports, and the running platform."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers.infra import Infra, Platform, start_infra, start_platform


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infra]:
    running = start_infra(tmp_path_factory.mktemp("infra"))
    yield running
    running.stop()


@pytest.fixture(scope="session")
def platform(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    running = start_platform(infra, tmp_path_factory.mktemp("platform-logs"))
    yield running
    running.stop()
