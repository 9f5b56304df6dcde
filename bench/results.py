"""One way to record a benchmark: print the figures and write bench/results/<name>.json."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def write_result(name: str, figures: dict[str, Any]) -> Path:
    """Write one benchmark's figures (each with its baseline and ratio) and echo them."""
    RESULTS.mkdir(exist_ok=True)
    payload = {
        "benchmark": name,
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine()},
        **figures,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    print(json.dumps(figures, indent=2, sort_keys=True))
    print(f"-> {path.relative_to(RESULTS.parent.parent)}")
    return path
