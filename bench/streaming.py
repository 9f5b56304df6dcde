"""One live step for 10,000 bots with distinct parameters over 100 symbols (100 bots per symbol).

Each symbol has one BotBank (state as arrays across its bots, one compiled step per candle). Goal:
under 20 ms for all 10,000 bots and at most 20 KiB of state per bot. Baseline: the same bots as one
object each (a bank of one), updated one at a time; measured on BASELINE_BOTS bots and scaled.
"""

from __future__ import annotations

import statistics
import time
from decimal import Decimal

from bench.indicators import random_walk
from bench.results import write_result
from services.strategy.live.bank import BotBank
from services.strategy.registry import get_strategy
from services.strategy.sizing import Instrument
from services.strategy.strategies.base import ParamValues

SYMBOLS = 100
BOTS_PER_SYMBOL = 100
WARMUP = 300
STEPS = 15
BASELINE_BOTS = 200


def bot_params(i: int) -> ParamValues:
    strategy = get_strategy("ppp_vishva")
    template = ("conservative", "moderate", "aggressive")[i % 3]
    return strategy.resolve(
        template,
        {"ema_len": 50 + i % 100, "ut_key": 1.0 + (i // 100) * 0.05, "stoch_oversold": 15 + i % 10},
    )


def main() -> None:
    strategy = get_strategy("ppp_vishva")
    params = [bot_params(i) for i in range(BOTS_PER_SYMBOL)]
    bars = [random_walk(WARMUP + STEPS, seed=s) for s in range(SYMBOLS)]
    banks = []
    for s in range(SYMBOLS):
        distinct = [p | {"ut_key": 1.0 + s * 0.01} for p in params]  # every bot differs across symbols too
        bank = BotBank(strategy, distinct, Instrument(), [Decimal(10_000)] * BOTS_PER_SYMBOL)
        op, hi, lo, cl = bars[s]
        for t in range(WARMUP):
            bank.step(op[t], hi[t], lo[t], cl[t])
        banks.append(bank)
    per_step = []
    for t in range(WARMUP, WARMUP + STEPS):
        start = time.perf_counter()
        for s, bank in enumerate(banks):
            op, hi, lo, cl = bars[s]
            bank.step(op[t], hi[t], lo[t], cl[t])
        per_step.append(time.perf_counter() - start)
    ours_ms = statistics.median(per_step) * 1000
    state_per_bot = sum(b.state_bytes() for b in banks) / (SYMBOLS * BOTS_PER_SYMBOL)

    singles = [
        BotBank(strategy, [params[i % BOTS_PER_SYMBOL]], Instrument(), [Decimal(10_000)])
        for i in range(BASELINE_BOTS)
    ]
    op, hi, lo, cl = bars[0]
    for t in range(WARMUP):
        for single in singles:
            single.step(op[t], hi[t], lo[t], cl[t])
    base = []
    for t in range(WARMUP, WARMUP + 5):
        start = time.perf_counter()
        for single in singles:
            single.step(op[t], hi[t], lo[t], cl[t])
        base.append(time.perf_counter() - start)
    base_ms = statistics.median(base) * 1000 * (SYMBOLS * BOTS_PER_SYMBOL / BASELINE_BOTS)
    write_result(
        "streaming",
        {
            "bots": SYMBOLS * BOTS_PER_SYMBOL,
            "symbols": SYMBOLS,
            "distinct_parameter_sets": SYMBOLS * BOTS_PER_SYMBOL,
            "ours_step_ms": round(ours_ms, 3),
            "state_bytes_per_bot": round(state_per_bot),
            "baseline": f"one bot object at a time, {BASELINE_BOTS} bots measured, scaled to 10,000",
            "baseline_step_ms": round(base_ms, 1),
            "ratio": round(base_ms / ours_ms, 1),
            "goal_step_ms_under": 20,
            "goal_state_bytes_per_bot_at_most": 20 * 1024,
            "goal_met": ours_ms < 20 and state_per_bot <= 20 * 1024,
            "note": f"median of {STEPS} steps after {WARMUP} warm-up candles; np.random seeded per symbol",
        },
    )


if __name__ == "__main__":
    main()
