"""The parameter form, generated from a strategy's schema (StrategyService.ListStrategies): one input
per ParameterSpec with its range, unit and description, grouped under the schema's headings; and the
warnings shown when settings look risky (advice only: the platform validates and enforces limits)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import streamlit as st
from tradebot.common.v1 import common_pb2 as common
from tradebot.strategy.v1 import strategy_service_pb2 as sp


def plain(value: common.ParameterValue) -> Any:
    kind = value.WhichOneof("kind")
    return getattr(value, kind) if kind else None


def typed(spec: sp.ParameterSpec, value: Any) -> common.ParameterValue:
    if spec.type == sp.PARAMETER_TYPE_INT:
        return common.ParameterValue(int_value=int(value))
    if spec.type == sp.PARAMETER_TYPE_BOOL:
        return common.ParameterValue(bool_value=bool(value))
    if spec.type == sp.PARAMETER_TYPE_ENUM:
        return common.ParameterValue(enum_value=str(value))
    return common.ParameterValue(float_value=float(value))


def starting_values(strategy: sp.Strategy, template: str) -> dict[str, Any]:
    """Defaults overlaid with the chosen built-in template."""
    values = {p.name: plain(p.default_value) for p in strategy.parameters}
    for t in strategy.templates:
        if t.name == template:
            values.update({k: plain(v) for k, v in t.values.items()})
    return values


def render(strategy: sp.Strategy, values: Mapping[str, Any], key: str) -> dict[str, common.ParameterValue]:
    """Inputs for every parameter; returns the typed values as entered."""
    groups: dict[str, list[sp.ParameterSpec]] = {}
    for spec in strategy.parameters:
        groups.setdefault(spec.group or "Parameters", []).append(spec)
    out: dict[str, common.ParameterValue] = {}
    for group, specs in groups.items():
        with st.expander(group):
            for spec in specs:
                out[spec.name] = typed(spec, _input(spec, values.get(spec.name), f"{key}:{spec.name}"))
    return out


def _input(spec: sp.ParameterSpec, value: Any, key: str) -> Any:
    title = f"{spec.name} ({spec.unit})" if spec.unit else spec.name
    low, high = (
        plain(spec.min) if spec.HasField("min") else None,
        plain(spec.max) if spec.HasField("max") else None,
    )
    if value is None:
        value = plain(spec.default_value)
    if spec.type == sp.PARAMETER_TYPE_BOOL:
        return st.checkbox(title, value=bool(value), help=spec.description, key=key)
    if spec.type == sp.PARAMETER_TYPE_ENUM:
        options = list(spec.enum_values)
        return st.selectbox(
            title,
            options,
            index=options.index(value) if value in options else 0,
            help=spec.description,
            key=key,
        )
    if spec.type == sp.PARAMETER_TYPE_INT:
        return st.number_input(
            title,
            min_value=None if low is None else int(low),
            max_value=None if high is None else int(high),
            value=int(value),
            step=1,
            help=spec.description,
            key=key,
        )
    return st.number_input(
        title,
        min_value=None if low is None else float(low),
        max_value=None if high is None else float(high),
        value=float(value),
        help=spec.description,
        format="%.4f",
        key=key,
    )


def warnings(values: Mapping[str, common.ParameterValue], mode: int, capital: str) -> list[str]:
    """Settings that deserve a second look, as sentences."""
    v = {k: plain(x) for k, x in values.items()}
    found = []
    if (v.get("risk_per_trade") or 0) > 0.02:
        found.append(f"Each trade risks {100 * v['risk_per_trade']:.1f} % of equity; 1 % or less is usual.")
    if (v.get("leverage") or 1) > 3:
        found.append(f"Leverage {v['leverage']:g}x: a small move against you costs a lot.")
    if (v.get("sl_atr_mult") or 2) < 1:
        found.append("The stop-loss is closer than one ATR: normal noise may stop trades out.")
    if (v.get("tp_rr") or 2) < 1:
        found.append("The take-profit is closer than the stop-loss: winners earn less than losers cost.")
    if v.get("ha_confirm") is False and (v.get("ut_key") or 2) < 1.5:
        found.append(
            "A tight UT Bot key without Heikin Ashi confirmation trades often, with more false signals."
        )
    if mode == common.TRADING_MODE_LIVE:
        found.append("This bot trades real money on your exchange account.")
    try:
        if capital and Decimal(capital) > Decimal("100000"):
            found.append(f"Capital allocation {capital} is large; check it is what you mean.")
    except ArithmeticError:
        pass
    return found
