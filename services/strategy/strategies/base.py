"""The strategy API: typed parameters, named templates, indicators, entry/exit signals, reasons.

A strategy is stateless: it turns candles and validated parameters into indicator columns and signal
arrays (batch, for backtests and warm-up) and supplies a vectorised step for many live bots of one
symbol and timeframe (`live_kernel`). The backtester and the live bank own positions, stops, cooldown
and sizing, so the same rules serve both.

The parameter schema (`Strategy.schema()`) is plain data: what `ListStrategies` returns and what the
dashboard renders as a form.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import numpy.typing as npt

from services.strategy.candles import Candles
from services.strategy.errors import ParameterError

if TYPE_CHECKING:
    from services.strategy.live.kernel import LiveKernel

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
ParamValue = int | float | bool
ParamValues = dict[str, ParamValue]

_TYPE_NAMES: dict[type, str] = {int: "int", float: "float", bool: "bool"}


@dataclass(frozen=True)
class Param:
    """One typed, bounded strategy parameter."""

    name: str
    type: type
    default: ParamValue
    description: str
    unit: str = ""
    minimum: float | None = None
    maximum: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": _TYPE_NAMES[self.type],
            "default": self.default,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "unit": self.unit,
            "description": self.description,
        }

    def coerce(self, value: Any) -> ParamValue:
        """The value as this parameter's type; text (command line, forms) is parsed. Names the field."""
        if isinstance(value, str):
            value = self._parse(value.strip())
        if self.type is bool:
            if not isinstance(value, bool | np.bool_):
                raise ParameterError(f"must be true or false, got {value!r}", field=self.name)
            return bool(value)
        if isinstance(value, bool | np.bool_) or not isinstance(
            value, int | float | np.integer | np.floating
        ):
            raise ParameterError(
                f"must be a number ({_TYPE_NAMES[self.type]}), got {value!r}", field=self.name
            )
        if self.type is int:
            if float(value) != math.floor(float(value)):
                raise ParameterError(f"must be a whole number, got {value!r}", field=self.name)
            number: ParamValue = int(value)
        else:
            number = float(value)
            if not math.isfinite(number):
                raise ParameterError(f"must be a finite number, got {value!r}", field=self.name)
        if self.minimum is not None and number < self.minimum:
            raise ParameterError(f"must be >= {self.minimum}, got {number}", field=self.name)
        if self.maximum is not None and number > self.maximum:
            raise ParameterError(f"must be <= {self.maximum}, got {number}", field=self.name)
        return number

    def _parse(self, text: str) -> Any:
        if self.type is bool:
            lowered = text.lower()
            if lowered in {"true", "1", "yes", "on"}:
                return True
            if lowered in {"false", "0", "no", "off"}:
                return False
            raise ParameterError(f"must be true or false, got {text!r}", field=self.name)
        try:
            return int(text) if self.type is int and text.lstrip("+-").isdigit() else float(text)
        except ValueError:
            raise ParameterError(
                f"must be a number ({_TYPE_NAMES[self.type]}), got {text!r}", field=self.name
            ) from None


@dataclass(frozen=True)
class Signals:
    """What the rules say, bar by bar (batch) or bot by bot (live step)."""

    long_entry: BoolArray
    short_entry: BoolArray
    long_exit: BoolArray
    short_exit: BoolArray
    stop_distance: FloatArray
    # Why: each rule's result and the indicator values it read, bar by bar (batch form only).
    long_conditions: Mapping[str, BoolArray] = field(default_factory=dict)
    short_conditions: Mapping[str, BoolArray] = field(default_factory=dict)
    values: Mapping[str, FloatArray] = field(default_factory=dict)

    def reasons_at(self, bars: npt.NDArray[np.int64], sides: FloatArray) -> list[dict[str, Any]]:
        """The reasons behind the signals at `bars` (+1 long, -1 short), gathered for all at once."""
        taken = {
            1: {name: held[bars].tolist() for name, held in self.long_conditions.items()},
            -1: {name: held[bars].tolist() for name, held in self.short_conditions.items()},
        }
        values = {name: col[bars].tolist() for name, col in self.values.items()}
        out = []
        for j, side in enumerate(sides.tolist()):
            s = 1 if side > 0 else -1
            out.append(
                {
                    "conditions": {name: bool(held[j]) for name, held in taken[s].items()},
                    "values": {
                        name: (None if math.isnan(v) else v)
                        for name, v in ((n, c[j]) for n, c in values.items())
                    },
                }
            )
        return out


class Strategy(ABC):
    """Base of every strategy. Subclasses declare the class attributes and implement the hooks."""

    name: ClassVar[str]
    title: ClassVar[str]
    description: ClassVar[str]
    params: ClassVar[tuple[Param, ...]]
    templates: ClassVar[Mapping[str, Mapping[str, ParamValue]]]
    default_template: ClassVar[str]
    # Names of the indicator columns `indicators()` returns, in export order.
    indicator_columns: ClassVar[tuple[str, ...]]

    def schema(self) -> dict[str, Any]:
        """Parameters and templates as plain data (gRPC `ListStrategies`, dashboard forms)."""
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "params": [p.to_dict() for p in self.params],
            "templates": {name: dict(values) for name, values in self.templates.items()},
            "default_template": self.default_template,
            "indicators": list(self.indicator_columns),
        }

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise ParameterError(
            f"unknown parameter for {self.name}; known: {', '.join(p.name for p in self.params)}", field=name
        )

    def resolve(self, template: str | None = None, overrides: Mapping[str, Any] | None = None) -> ParamValues:
        """Template values plus overrides, every value validated; errors name the field."""
        chosen = self.default_template if template is None else template
        if chosen not in self.templates:
            raise ParameterError(
                f"unknown template {chosen!r} for {self.name}; known: {', '.join(self.templates)}",
                field="template",
            )
        values: ParamValues = {p.name: p.default for p in self.params}
        values.update(self.templates[chosen])
        for name, value in (overrides or {}).items():
            values[name] = self.param(name).coerce(value)
        return self.validate(values)

    def validate(self, values: Mapping[str, Any]) -> ParamValues:
        """Check a complete parameter set: known names, types, ranges, then cross-field rules."""
        for name in values:
            self.param(name)
        missing = [p.name for p in self.params if p.name not in values]
        if missing:
            raise ParameterError("missing parameter", field=missing[0])
        checked = {p.name: p.coerce(values[p.name]) for p in self.params}
        self.check_relations(checked)
        return checked

    @abstractmethod
    def check_relations(self, values: ParamValues) -> None:
        """Cross-field rules (e.g. slow > fast); raise ParameterError naming the field."""

    @abstractmethod
    def warmup_bars(self, params: ParamValues) -> int:
        """Bars before every indicator the rules read is defined."""

    @abstractmethod
    def indicators(self, candles: Candles, params: ParamValues) -> dict[str, FloatArray]:
        """Indicator columns over all candles (batch form)."""

    @abstractmethod
    def signals(
        self,
        candles: Candles,
        columns: Mapping[str, FloatArray],
        params: ParamValues,
        *,
        shorts_allowed: bool,
    ) -> Signals:
        """Entry/exit signals at each bar's close, from the indicator columns."""

    @abstractmethod
    def explain(
        self, columns: Mapping[str, FloatArray], close: FloatArray, t: int, side: int, params: ParamValues
    ) -> dict[str, Any]:
        """Why the rules for `side` (+1 long, -1 short) did or did not fire at bar t."""

    @abstractmethod
    def live_kernel(self, bots: list[ParamValues], *, shorts_allowed: bool) -> LiveKernel:
        """A vectorised step over many bots of one symbol and timeframe."""

    def exit_plan(self, params: ParamValues) -> ExitPlan:
        """Take-profit, cooldown and sizing inputs the backtester and live bank apply."""
        return ExitPlan(
            tp_rr=float(params["tp_rr"]),
            cooldown_bars=int(params["cooldown_bars"]),
            risk_per_trade=float(params["risk_per_trade"]),
            leverage=float(params["leverage"]),
            max_position_notional=float(params["max_position_notional"]),
        )


@dataclass(frozen=True)
class ExitPlan:
    tp_rr: float
    cooldown_bars: int
    risk_per_trade: float
    leverage: float
    max_position_notional: float
