"""`python -m services.execution`: run the execution service alone (settings from the environment)."""

from services.common.runtime import run_service
from services.execution.server import Settings, setup

run_service("execution", Settings, setup)
