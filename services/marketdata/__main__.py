"""`python -m services.marketdata`: run the marketdata service alone (settings from the environment)."""

from services.common.runtime import run_service
from services.marketdata.server import Settings, setup

run_service("marketdata", Settings, setup)
