"""Errors a caller can act on: each names the field, parameter or input row at fault."""

from __future__ import annotations


class StrategyInputError(ValueError):
    """Bad input to the trading core (parameters, template, candles). `field` names what is wrong."""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class ParameterError(StrategyInputError):
    """A strategy parameter or template is unknown, of the wrong type or out of range."""


class CandleError(StrategyInputError):
    """Candle data that cannot be used as given: unsorted, duplicated, missing or impossible values."""
