"""The strategies this service offers, by name."""

from __future__ import annotations

from services.strategy.errors import ParameterError
from services.strategy.strategies.base import Strategy
from services.strategy.strategies.ppp_vishva import PPPVishva

STRATEGIES: dict[str, Strategy] = {s.name: s for s in (PPPVishva(),)}


def get_strategy(name: str) -> Strategy:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ParameterError(
            f"unknown strategy {name!r}; known: {', '.join(STRATEGIES)}", field="strategy"
        ) from None
