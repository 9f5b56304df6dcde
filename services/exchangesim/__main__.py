"""python -m services.exchangesim: run the Bybit V5 simulator as a process."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from decimal import Decimal
from pathlib import Path

from services.common.logs import configure_logging
from services.exchangesim.app import BUNDLED, SimConfig, Simulator


def parse_args(argv: list[str] | None = None) -> SimConfig:
    parser = argparse.ArgumentParser(
        prog="python -m services.exchangesim",
        description="Protocol-faithful Bybit V5 simulator: REST, streams and /admin/ on one port.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=8900, help="port to bind, 0 for any free port (default 8900)"
    )
    parser.add_argument(
        "--data",
        type=Path,
        action="append",
        default=None,
        help="OHLCV CSV to replay (timestamp,open,high,low,close,volume); symbol = file name "
        "before '-'; repeat for several symbols (default: bundled SOLUSDT and XRPUSDT hourly)",
    )
    parser.add_argument("--no-data", action="store_true", help="replay no files (use --random-walk only)")
    parser.add_argument(
        "--random-walk",
        action="append",
        default=[],
        metavar="SYMBOL=PRICE",
        help="add a seeded random-walk symbol starting at PRICE, e.g. BTCUSDT=60000",
    )
    parser.add_argument("--speed", type=float, default=2.0, help="wall seconds per base candle (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="seed for every random choice (default 0)")
    parser.add_argument(
        "--history",
        type=int,
        default=200,
        help="base candles of history before the clock's start (default 200)",
    )
    parser.add_argument("--paused", action="store_true", help="start with the market clock paused")
    parser.add_argument(
        "--funding-rate",
        type=Decimal,
        default=None,
        help="charge funding every 8 simulated hours at this rate (default off)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=60.0,
        help="close streams silent for this many seconds (default 60)",
    )
    parser.add_argument("--admin-token", default=None, help="require X-Admin-Token on /admin/ calls")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    configure_logging("exchangesim", args.log_level.upper())
    walks = {}
    for item in args.random_walk:
        symbol, _, price = item.partition("=")
        if not price:
            parser.error(f"--random-walk expects SYMBOL=PRICE, got {item!r}")
        walks[symbol.upper()] = Decimal(price)
    files = () if args.no_data else tuple(args.data or BUNDLED)
    return SimConfig(
        host=args.host,
        port=args.port,
        data_files=files,
        random_walk=walks,
        seconds_per_candle=args.speed,
        seed=args.seed,
        paused=args.paused,
        history_candles=args.history,
        funding_rate=args.funding_rate,
        idle_timeout_s=args.idle_timeout,
        admin_token=args.admin_token,
    )


async def run(config: SimConfig) -> None:
    sim = Simulator(config)
    await sim.start()
    print(f"exchangesim listening on {sim.http_url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await sim.stop()


def main(argv: list[str] | None = None) -> None:
    asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    main()
