"""Fault injection for chaos and resilience tests.

A rule fires on matching REST calls either for the next `count` calls or at random with
probability `rate` (seeded). Kinds:
- `error`: answer Bybit retCode `code` (e.g. 10006, 10016) with HTTP 200;
- `http`: answer HTTP `status` (e.g. 500, 502, 503) with a plain body;
- `delay`: wait `delay_ms`, then serve normally;
- `hang`: wait `delay_ms` (past the client's timeout), then drop the connection unserved;
- `accept_timeout`: serve the request (the order is accepted), then wait `delay_ms` and drop
  the connection instead of replying.
Dropping stream connections and skewing the server clock are immediate actions, not rules.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any

KINDS = ("error", "http", "delay", "hang", "accept_timeout")


@dataclass
class Rule:
    kind: str
    code: int = 10016
    status: int = 503
    delay_ms: int = 0
    rate: float = 1.0
    count: int | None = None
    path: str = "/v5/"

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> Rule:
        unknown = set(raw) - {"kind", "code", "status", "delay_ms", "rate", "count", "path"}
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        rule = cls(**raw)
        if rule.kind not in KINDS:
            raise ValueError(f"fault kind must be one of {', '.join(KINDS)}")
        if not 0 <= rule.rate <= 1:
            raise ValueError("rate must lie between 0 and 1")
        if rule.kind in ("hang", "accept_timeout") and rule.delay_ms <= 0:
            rule.delay_ms = 30_000
        return rule


class Faults:
    def __init__(self, seed: int) -> None:
        self.rules: list[Rule] = []
        self._rng = random.Random(f"{seed}:faults")

    def add(self, rule: Rule) -> None:
        self.rules.append(rule)

    def clear(self) -> None:
        self.rules.clear()

    def describe(self) -> list[dict[str, Any]]:
        return [asdict(r) for r in self.rules]

    def fire(self, path: str) -> list[Rule]:
        """Rules that fire on this call (counted rules are used up)."""
        fired = []
        for rule in list(self.rules):
            if not path.startswith(rule.path):
                continue
            if rule.count is not None:
                rule.count -= 1
                if rule.count <= 0:
                    self.rules.remove(rule)
                fired.append(rule)
            elif self._rng.random() < rule.rate:
                fired.append(rule)
        return fired
