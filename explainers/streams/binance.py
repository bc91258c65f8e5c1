"""Binance USD-M futures `!forceOrder@arr`: sampled (Binance pushes at most one liquidation per
symbol per second, so cascades are undercounted).

Frames: the bare event on `/ws/...` (binance_force_order_ws_raw_live.json) or wrapped as
``{"stream":..., "data": {...}}`` on `/stream?streams=` (binance_force_order_ws_live.json): both
are accepted. ``o.S`` is the side of the forced ORDER (`SELL`: a long was liquidated); the filled
notional is ``o.ap`` (average price) x ``o.z`` (filled quantity; ``o.l`` is only the last fill).
The stream is named in the URL (no subscribe message, no ack); the server pings and the
websocket library answers. Since 2026-04-23 Binance serves this stream on the `/market` tier
(`wss://fstream.binance.com/market/ws/...`); the legacy `/ws/...` path was retired. From a US
address the handshake is refused with HTTP 451: the client reports "blocked" and waits hours.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from explainers.streams.base import (
    LiquidationStream,
    Malformed,
    Parsed,
    ms_time,
    positive,
    usd_of,
)
from explainers.streams.base import (
    price as price_of,
)
from explainers.streams.events import Coverage, LiquidationEvent, Side, Venue

URL = "wss://fstream.binance.com/market/ws/!forceOrder@arr"
SIDES: dict[str, Side] = {"SELL": "long", "BUY": "short"}


def binance_symbol(coin: str) -> str:
    return f"{coin.upper()}USDT"


class BinanceLiquidations(LiquidationStream):
    venue: ClassVar[Venue] = "binance"
    coverage: ClassVar[Coverage] = "sampled"
    default_url: ClassVar[str] = URL
    needs_ack: ClassVar[bool] = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Binance pings the client; client pings too, so a dead socket is noticed even when no
        # liquidation happens (Binance answers protocol pings)
        kwargs.setdefault("keepalive_interval", 30.0)
        super().__init__(*args, **kwargs)
        self.symbols = {binance_symbol(coin): coin for coin in self.coins}

    def coins_changed(self) -> None:
        self.symbols = {binance_symbol(coin): coin for coin in self.coins}

    def subscribe_messages(self) -> list[str]:
        return []

    def parse(self, text: str) -> Parsed:
        try:
            message = json.loads(text)
        except ValueError:
            return Parsed("malformed", detail="not JSON")
        if not isinstance(message, dict):
            return Parsed("malformed", detail="not an object")
        if "stream" in message and "data" in message:
            message = message["data"]
            if not isinstance(message, dict):
                return Parsed("malformed", detail="data is not an object")
        if "result" in message and "id" in message:
            return Parsed("ignored", detail="request answer")
        if message.get("e") != "forceOrder":
            return Parsed("unknown", detail=f"event {str(message.get('e'))[:40]}")
        order = message.get("o")
        if not isinstance(order, dict):
            return Parsed("malformed", detail="o is not an object")
        symbol = order.get("s")
        if not isinstance(symbol, str):
            return Parsed("malformed", detail="o.s is missing")
        if symbol not in self.symbols:
            return Parsed("ignored", detail="symbol not asked for")
        try:
            event = self._event(symbol, order, message)
        except Malformed as err:
            return Parsed("malformed", detail=str(err))
        return Parsed("events", [event])

    def _event(
        self, symbol: str, order: dict[str, Any], message: dict[str, Any]
    ) -> LiquidationEvent:
        side = SIDES.get(str(order.get("S")))
        if side is None:
            raise Malformed("o.S is not BUY or SELL")
        price = price_of(order.get("ap"), "o.ap")
        quantity = positive(order.get("z"), "o.z")
        trade_time = order.get("T", message.get("E"))
        at = ms_time(trade_time, "o.T")
        return LiquidationEvent(
            venue=self.venue,
            coin=self.symbols[symbol],
            side=side,
            usd=usd_of(quantity, price),
            price=price,
            quantity=quantity,
            at=at,
            event_id=f"binance:{symbol}:{trade_time}:{order.get('S')}:{order.get('z')}:{order.get('ap')}",
        )
