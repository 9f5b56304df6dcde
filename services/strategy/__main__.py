"""`python -m services.strategy`: run the strategy service alone (settings from the environment)."""

from services.common.runtime import run_service
from services.strategy.server import Settings, setup

run_service("strategy", Settings, setup)
