"""What every indicator offers: a batch form over whole arrays and a streaming form, one bar at a time.

Both forms run the same compiled step function (one per family, in the family's module), so they agree
bit for bit by construction; tests confirm it on real data. A step function reads and writes one row
of a float64 state array, which is why the same code also serves a bank of many instances at once
(see `services.strategy.live`): state is a 2-D array, one row per instance.

Warm-up: an output is NaN until it is defined (see the strategy spec); a rule that reads NaN is false.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

# Candle columns an indicator may read; `x` means "any series" (SMA/EMA/RMA take one).
INPUTS = ("open", "high", "low", "close", "x")


class Indicator(ABC):
    """An indicator with fixed parameters.

    Subclasses declare `inputs` and `outputs` and provide three things: the initial state row, the
    compiled step `step_kernel(state, row, *input values, *args) -> output or tuple of outputs` and the
    compiled batch loop `batch_kernel(*input arrays, *args, initial state row, out)`, which fills
    `out`, shaped (len(outputs) + scratch_rows, n), with the outputs in order and then its scratch rows.

    `batch` allocates that block with `output_block` rather than inside the compiled code (see there).
    """

    name: ClassVar[str]
    inputs: ClassVar[tuple[str, ...]] = ("close",)
    outputs: ClassVar[tuple[str, ...]] = ("value",)
    scratch_rows: ClassVar[int] = 0
    step_kernel: Callable[..., Any]
    batch_kernel: Callable[..., None]

    @abstractmethod
    def args(self) -> tuple[Any, ...]:
        """The parameters, in the order the compiled kernels take them."""

    @abstractmethod
    def initial_state(self) -> FloatArray:
        """One state row before any bar was seen."""

    def batch(self, *series: npt.ArrayLike) -> dict[str, FloatArray]:
        """All outputs over whole input arrays (one array per name in `inputs`)."""
        if len(series) != len(self.inputs):
            raise TypeError(f"{self.name} takes {', '.join(self.inputs)}")
        arrays = [np.ascontiguousarray(s, dtype=np.float64) for s in series]
        out = np.empty((len(self.outputs) + self.scratch_rows, arrays[0].size))
        self.batch_kernel(*arrays, *self.args(), self.initial_state(), out)
        return {name: out[j] for j, name in enumerate(self.outputs)}

    def stream(self) -> IndicatorStream:
        """A fresh streaming instance: O(1) time and memory per bar."""
        return IndicatorStream(self)


class IndicatorStream:
    """The streaming form of one indicator instance."""

    def __init__(self, indicator: Indicator) -> None:
        self.indicator = indicator
        self.state = indicator.initial_state().reshape(1, -1).copy()
        self._step = indicator.step_kernel
        self._args = indicator.args()

    def update(self, *values: float) -> dict[str, float]:
        """Take one new closed bar (the indicator's inputs, in order) and return every output."""
        out = self._step(self.state, 0, *map(float, values), *self._args)
        if not isinstance(out, tuple):
            out = (out,)
        return {name: float(v) for name, v in zip(self.indicator.outputs, out, strict=True)}


HUGE_PAGE = 2 << 20


def output_block(rows: int, n: int) -> FloatArray:
    """An uninitialised (rows, n) block for batch outputs, one C-contiguous row per output.

    First-touch page faults on a large fresh block cost more than the indicator arithmetic, so the block
    is allocated by NumPy (which asks the kernel for huge pages on large arrays; memory allocated inside
    compiled code gets no such advice) and, when it spans several huge pages, starts on a huge-page
    boundary so that all of it can be backed by them.
    """
    if rows * n * 8 < 2 * HUGE_PAGE:
        return np.empty((rows, n))
    raw = np.empty(rows * n + HUGE_PAGE // 8)
    start = (-raw.ctypes.data % HUGE_PAGE) // 8
    return raw[start : start + rows * n].reshape(rows, n)


def check_length(name: str, field: str, value: int, minimum: int = 1) -> int:
    """Indicator lengths are whole numbers of bars; refuse anything else early with the field name."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name}.{field}: must be an integer >= {minimum}, got {value!r}")
    return int(value)
