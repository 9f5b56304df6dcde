"""Errors a caller can act on: each names the field, parameter or input row at fault.

They are the platform's INVALID_ARGUMENT (`services.common.errors.InvalidArgument`), so a validation
error raised anywhere in the trading core reaches a gRPC caller as INVALID_ARGUMENT naming the field
with no translation in the service layer; they stay ValueErrors for library and CLI callers.
"""

from __future__ import annotations

from services.common.errors import InvalidArgument


class StrategyInputError(InvalidArgument, ValueError):
    """Bad input to the trading core (parameters, template, candles). `field` names what is wrong."""


class ParameterError(StrategyInputError):
    """A strategy parameter or template is unknown, of the wrong type or out of range."""


class CandleError(StrategyInputError):
    """Candle data that cannot be used as given: unsorted, duplicated, missing or impossible values."""
