"""Bybit v5 public linear `allLiquidation.<SYMBOL>`: every liquidation (coverage "all").

Frames (recorded, tests/fixtures/api/bybit_*): a push is
``{"topic":"allLiquidation.BTCUSDT","type":"snapshot","ts":...,"data":[{"T","s","S","v","p"}]}``
with several items per frame; `S` is the side of the liquidated POSITION (`Buy`: a long was
liquidated, the opposite of Binance's order side), `v` is in coins and `p` is the bankruptcy
price, both strings; `T` is milliseconds. Control frames carry no `topic`: the linear ack is
``{"success":true,"ret_msg":"","op":"subscribe",...}`` and the pong echoes ``"op":"ping"`` with
``"ret_msg":"pong"``. The client sends ``{"op":"ping"}`` every 20 s.

A coin added later (`set_coins`) is subscribed on the live socket in a request of its own,
``req_id`` ``watch:<COIN>``, so a refusal (a symbol Bybit does not list) names that coin and
drops it instead of ending the session; a dropped coin is unsubscribed (``drop:<COIN>``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
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

URL = "wss://stream.bybit.com/v5/public/linear"
TOPIC = "allLiquidation"
#: topics per subscribe request (Bybit caps the args of one request)
ARGS_PER_REQUEST = 10
SIDES: dict[str, Side] = {"Buy": "long", "Sell": "short"}
#: req_id prefixes of the requests for coins added and dropped after the start
WATCH = "watch:"
DROP = "drop:"


def bybit_symbol(coin: str) -> str:
    return f"{coin.upper()}USDT"


class BybitLiquidations(LiquidationStream):
    venue: ClassVar[Venue] = "bybit"
    coverage: ClassVar[Coverage] = "all"
    default_url: ClassVar[str] = URL
    ping_text: ClassVar[str | None] = json.dumps({"op": "ping"})
    ping_when_idle: ClassVar[bool] = False
    default_ping_interval: ClassVar[float | None] = 20.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.symbols = {bybit_symbol(coin): coin for coin in self.coins}

    def coins_changed(self) -> None:
        self.symbols = {bybit_symbol(coin): coin for coin in self.coins}

    def subscribe_messages(self) -> list[str]:
        topics = [
            f"{TOPIC}.{bybit_symbol(coin)}" for coin in self.coins if coin in self.configured_coins
        ]
        batches = [
            json.dumps(
                {
                    "req_id": "liquidations",
                    "op": "subscribe",
                    "args": topics[i : i + ARGS_PER_REQUEST],
                }
            )
            for i in range(0, len(topics), ARGS_PER_REQUEST)
        ]
        added = [coin for coin in self.coins if coin not in self.configured_coins]
        return batches + self.change_messages(added, [])

    def change_messages(self, added: Sequence[str], removed: Sequence[str]) -> list[str]:
        return [_request("unsubscribe", DROP, coin) for coin in removed] + [
            _request("subscribe", WATCH, coin) for coin in added
        ]

    def parse(self, text: str) -> Parsed:
        try:
            message = json.loads(text)
        except ValueError:
            return Parsed("malformed", detail="not JSON")
        if not isinstance(message, dict):
            return Parsed("malformed", detail="not an object")
        topic = message.get("topic")
        if topic is None:
            return _control(message)
        if not isinstance(topic, str) or not topic.startswith(f"{TOPIC}."):
            return Parsed("unknown", detail=f"topic {str(topic)[:40]}")
        items = message.get("data")
        if not isinstance(items, list):
            return Parsed("malformed", detail="data is not a list")
        events: list[LiquidationEvent] = []
        bad = 0
        detail = ""
        for item in items:
            try:
                event = self._event(item)
            except Malformed as err:
                bad += 1
                detail = str(err)
                continue
            if event is not None:
                events.append(event)
        if not events and not bad:
            return Parsed("ignored", detail="no configured symbol")
        return Parsed("events", events, bad, detail)

    def _event(self, item: Any) -> LiquidationEvent | None:
        if not isinstance(item, dict):
            raise Malformed("item is not an object")
        symbol = item.get("s")
        if not isinstance(symbol, str):
            raise Malformed("s is missing")
        if symbol not in self.symbols:
            return None  # a symbol not asked for
        side = SIDES.get(str(item.get("S")))
        if side is None:
            raise Malformed("S is not Buy or Sell")
        quantity = positive(item.get("v"), "v")
        price = price_of(item.get("p"), "p")
        at = ms_time(item.get("T"), "T")
        return LiquidationEvent(
            venue=self.venue,
            coin=self.symbols[symbol],
            side=side,
            usd=usd_of(quantity, price),
            price=price,
            quantity=quantity,
            at=at,
            event_id=f"bybit:{symbol}:{item.get('T')}:{item.get('S')}:{item.get('v')}:{item.get('p')}",
        )


def _request(op: str, prefix: str, coin: str) -> str:
    return json.dumps(
        {"req_id": f"{prefix}{coin}", "op": op, "args": [f"{TOPIC}.{bybit_symbol(coin)}"]}
    )


def _control(message: dict[str, Any]) -> Parsed:
    op = message.get("op")
    if op in ("ping", "pong") or message.get("ret_msg") == "pong":
        return Parsed("pong")
    req_id = message.get("req_id")
    if op == "subscribe":
        if message.get("success") is True:
            return Parsed("ack")
        if isinstance(req_id, str) and req_id.startswith(WATCH):
            return Parsed("coin_refused", detail=req_id.removeprefix(WATCH))
        return Parsed("rejected", detail=str(message.get("ret_msg") or "no reason given")[:200])
    if op == "unsubscribe":
        return Parsed("ignored", detail="unsubscribed")
    return Parsed("unknown", detail=f"control op {str(op)[:40]}")
