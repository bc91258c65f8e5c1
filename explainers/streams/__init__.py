"""Streamed liquidations from Bybit (every one), OKX and Binance (sampled), normalised.

sink = MySink()                       # on_events(list[LiquidationEvent]), on_gap(StreamGap)
clients = [BybitLiquidations(sink), OkxLiquidations(sink), BinanceLiquidations(sink)]
tasks = [c.start() for c in clients]
...
[c.status() for c in clients]         # StreamStatus per venue
await asyncio.gather(*(c.stop() for c in clients))
"""

from explainers.streams.base import LiquidationStream, RecentKeys
from explainers.streams.binance import BinanceLiquidations
from explainers.streams.bybit import BybitLiquidations
from explainers.streams.events import (
    DEFAULT_COINS,
    Coverage,
    LiquidationEvent,
    LiquidationSink,
    Side,
    StreamGap,
    StreamState,
    StreamStatus,
    Venue,
)
from explainers.streams.okx import OkxLiquidations

__all__ = [
    "DEFAULT_COINS",
    "BinanceLiquidations",
    "BybitLiquidations",
    "Coverage",
    "LiquidationEvent",
    "LiquidationSink",
    "LiquidationStream",
    "OkxLiquidations",
    "RecentKeys",
    "Side",
    "StreamGap",
    "StreamState",
    "StreamStatus",
    "Venue",
]
