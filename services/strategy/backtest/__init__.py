"""Backtests: candles in; trades, equity curve and metrics out; JSON/HTML/PNG reports."""
