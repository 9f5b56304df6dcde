"""Live evaluation: many bots of one symbol and timeframe stepped together, one vectorised step per candle."""
