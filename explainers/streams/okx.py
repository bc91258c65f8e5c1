"""OKX public `liquidation-orders` (instType SWAP): sampled (at most one order per contract per
second, per OKX's docs).

The channel takes only `instType` and pushes every swap, so frames are filtered by `instId`
here. Recorded push (tests/fixtures/api/okx_liquidation_orders_ws_live.json):
``{"arg":{"channel":"liquidation-orders","instType":"SWAP"},"data":[{"instId":"BTC-USDT-SWAP",
"details":[{"bkPx","side","posSide","sz","ts",...}],...}]}``. `sz` is in CONTRACTS: coins =
sz x ctVal (BTC-USDT-SWAP 0.01, ETH 0.1, SOL 1). `posSide` is the closed position (`net` in
one-way mode: then `side` decides, `sell` closes a long). Subscribing with an `instId` is
refused with code 60018 (okx_ws_error_60018.json). Heartbeat: the plain TEXT `ping` when idle,
answered by the plain text `pong`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
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

URL = "wss://ws.okx.com:8443/ws/v5/public"
CHANNEL = "liquidation-orders"
#: coins per contract of the USDT swaps (OKX /api/v5/public/instruments `ctVal`)
CONTRACT_VALUES: dict[str, float] = {"BTC": 0.01, "ETH": 0.1, "SOL": 1.0}


def okx_swap(coin: str) -> str:
    return f"{coin.upper()}-USDT-SWAP"


def _side(detail: dict[str, Any]) -> Side:
    position = detail.get("posSide")
    if position == "long":
        return "long"
    if position == "short":
        return "short"
    order = detail.get("side")  # net mode: a forced sell closes a long, a forced buy a short
    if order == "sell":
        return "long"
    if order == "buy":
        return "short"
    raise Malformed("neither posSide nor side tells the position")


class OkxLiquidations(LiquidationStream):
    venue: ClassVar[Venue] = "okx"
    coverage: ClassVar[Coverage] = "sampled"
    default_url: ClassVar[str] = URL
    ping_text: ClassVar[str | None] = "ping"
    ping_when_idle: ClassVar[bool] = True
    default_ping_interval: ClassVar[float | None] = 25.0

    def __init__(
        self, *args: Any, contract_values: Mapping[str, float] | None = None, **kwargs: Any
    ) -> None:
        """contract_values: coins per contract by coin ("BTC": 0.01), defaults CONTRACT_VALUES."""
        super().__init__(*args, **kwargs)
        values = {k.upper(): v for k, v in (contract_values or CONTRACT_VALUES).items()}
        missing = [coin for coin in self.coins if coin not in values]
        if missing:
            raise ValueError(f"no OKX contract value for {', '.join(missing)}")
        self.contract_values: dict[str, float] = {k: float(v) for k, v in values.items()}
        self.instruments = {okx_swap(coin): (coin, float(values[coin])) for coin in self.coins}

    def add_contract_values(self, values: Mapping[str, float]) -> None:
        """Coins per contract of more swaps (coin -> value), for coins added later."""
        self.contract_values.update({k.upper(): float(v) for k, v in values.items()})

    def streamable(self, coins: Sequence[str]) -> tuple[list[str], dict[str, str]]:
        kept = [coin for coin in coins if coin in self.contract_values]
        skipped = {coin: "no contract value" for coin in coins if coin not in self.contract_values}
        return kept, skipped

    def coins_changed(self) -> None:
        self.instruments = {
            okx_swap(coin): (coin, self.contract_values[coin]) for coin in self.coins
        }

    def subscribe_messages(self) -> list[str]:
        return [json.dumps({"op": "subscribe", "args": [{"channel": CHANNEL, "instType": "SWAP"}]})]

    def parse(self, text: str) -> Parsed:
        if text == "pong":
            return Parsed("pong")
        try:
            message = json.loads(text)
        except ValueError:
            return Parsed("malformed", detail="not JSON")
        if not isinstance(message, dict):
            return Parsed("malformed", detail="not an object")
        event = message.get("event")
        if event == "subscribe":
            return Parsed("ack")
        if event == "error":
            code = str(message.get("code") or "?")
            text_ = str(message.get("msg") or "")[:160]
            return Parsed("rejected", detail=f"code {code}: {text_}")
        if event is not None:
            return Parsed("unknown", detail=f"event {str(event)[:40]}")
        arg = message.get("arg")
        if not isinstance(arg, dict) or arg.get("channel") != CHANNEL:
            return Parsed("unknown", detail="not a liquidation-orders push")
        data = message.get("data")
        if not isinstance(data, list):
            return Parsed("malformed", detail="data is not a list")
        events: list[LiquidationEvent] = []
        bad = 0
        detail = ""
        for item in data:
            if not isinstance(item, dict):
                bad += 1
                detail = "item is not an object"
                continue
            inst_id = item.get("instId")
            if not isinstance(inst_id, str):
                bad += 1
                detail = "instId is missing"
                continue
            if inst_id not in self.instruments:
                continue  # a swap not asked for
            details = item.get("details")
            if not isinstance(details, list):
                bad += 1
                detail = "details is not a list"
                continue
            for entry in details:
                try:
                    events.append(self._event(inst_id, entry))
                except Malformed as err:
                    bad += 1
                    detail = str(err)
        if not events and not bad:
            return Parsed("ignored", detail="no configured swap")
        return Parsed("events", events, bad, detail)

    def _event(self, inst_id: str, entry: Any) -> LiquidationEvent:
        if not isinstance(entry, dict):
            raise Malformed("detail is not an object")
        coin, contract_value = self.instruments[inst_id]
        contracts = positive(entry.get("sz"), "sz")
        price = price_of(entry.get("bkPx"), "bkPx")
        side = _side(entry)
        at = ms_time(entry.get("ts"), "ts")
        quantity = contracts * contract_value
        return LiquidationEvent(
            venue=self.venue,
            coin=coin,
            side=side,
            usd=usd_of(quantity, price),
            price=price,
            quantity=quantity,
            at=at,
            event_id=(
                f"okx:{inst_id}:{entry.get('ts')}:{entry.get('posSide')}:{entry.get('side')}"
                f":{entry.get('sz')}:{entry.get('bkPx')}"
            ),
        )
