"""Tenants' saved parameter templates, validated against the strategy's own parameter schema.

The schema comes from the trading core (services/strategy/strategies), the same code that runs the
bots, so a template saved here is one the strategy accepts. A new tenant starts with copies of the
PPP Vishva templates (conservative, moderate, aggressive) to adjust.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from tradebot.common.v1 import common_pb2

from services.common.errors import InvalidArgument
from services.strategy.errors import ParameterError
from services.strategy.registry import STRATEGIES
from services.tenants.models import SavedTemplate

NAME = re.compile(r"^[a-z0-9_-]{1,64}$")
STARTER_STRATEGY = "ppp_vishva"


def starter_templates(tenant_id: str) -> list[SavedTemplate]:
    strategy = STRATEGIES[STARTER_STRATEGY]
    return [
        SavedTemplate(
            tenant_id=tenant_id,
            strategy_id=strategy.name,
            name=name,
            description=f"Starting point: a copy of the built-in {name} template, yours to adjust.",
            values=dict(values),
            create_time=datetime.now(UTC),
        )
        for name, values in strategy.templates.items()
    ]


def _value(value: common_pb2.ParameterValue) -> Any:
    kind = value.WhichOneof("kind")
    if kind is None:
        return None
    return getattr(value, kind)


def validate(template: common_pb2.ParameterTemplate) -> dict[str, Any]:
    """Checked values of a template to save; errors name the parameter."""
    if template.built_in:
        raise InvalidArgument(
            "must be false: built-in templates come with the strategy", field="template.built_in"
        )
    strategy = STRATEGIES.get(template.strategy_id)
    if strategy is None:
        raise InvalidArgument(
            f"unknown strategy; known: {', '.join(STRATEGIES)}", field="template.strategy_id"
        )
    if not NAME.match(template.name):
        raise InvalidArgument("must be 1 to 64 lower case letters, digits, '_' or '-'", field="template.name")
    if len(template.description) > 500:
        raise InvalidArgument("must be at most 500 characters", field="template.description")
    values: dict[str, Any] = {}
    try:
        for name, given in template.values.items():
            raw = _value(given)
            if raw is None:
                raise ParameterError("has no value", field=name)
            values[name] = strategy.param(name).coerce(raw)
        # The full set (defaults filled in) must pass the strategy's cross-field rules too.
        strategy.validate({**{p.name: p.default for p in strategy.params}, **values})
    except ParameterError as error:
        raise InvalidArgument(error.message, field=f"template.values.{error.field}") from None
    return values


def to_proto(row: SavedTemplate) -> common_pb2.ParameterTemplate:
    message = common_pb2.ParameterTemplate(
        name=row.name, strategy_id=row.strategy_id, description=row.description, built_in=False
    )
    for name, value in row.values.items():
        slot = message.values[name]
        if isinstance(value, bool):
            slot.bool_value = value
        elif isinstance(value, int):
            slot.int_value = value
        elif isinstance(value, float):
            slot.float_value = value
        else:
            slot.enum_value = str(value)
    return message
