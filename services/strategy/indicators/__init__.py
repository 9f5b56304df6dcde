"""Technical indicators, each in a batch form and an O(1) streaming form that agree exactly."""

from services.strategy.indicators.base import Indicator, IndicatorStream
from services.strategy.indicators.heikin_ashi import HeikinAshi
from services.strategy.indicators.momentum import EWO, RSI, StochRSI
from services.strategy.indicators.moving_averages import EMA, RMA, SMA
from services.strategy.indicators.ut_bot import UTBot
from services.strategy.indicators.volatility import ATR, TR

__all__ = [
    "ATR",
    "EMA",
    "EWO",
    "RMA",
    "RSI",
    "SMA",
    "TR",
    "HeikinAshi",
    "Indicator",
    "IndicatorStream",
    "StochRSI",
    "UTBot",
]
