"""`make bench`: run every benchmark module (or those named on the command line).

Each module in BENCHMARKS exposes `main()`, measures our code and a baseline side by side in one run,
and writes bench/results/<name>.json through bench.results.write_result.
"""

from __future__ import annotations

import importlib
import sys

BENCHMARKS: list[str] = []


def main(argv: list[str]) -> int:
    chosen = argv or BENCHMARKS
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
        return 2
    for name in chosen:
        print(f"== bench {name}")
        importlib.import_module(f"bench.{name}").main()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
