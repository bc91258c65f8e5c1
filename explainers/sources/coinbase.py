"""Coinbase Exchange: BTC-USD 1-minute candles (for the Coinbase premium) and 24h stats (fallback)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from explainers.errors import BadResponse
from explainers.models import Candle, Candles, SpotPrice
from explainers.settings import SourceSettings
from explainers.sources.http import USER_AGENT, from_s, get_json, number

SOURCE = "Coinbase"
HEADERS = {"User-Agent": USER_AGENT, "Accept": "application/json"}
CANDLE_SECONDS = 60


def parse_candles(body: Any, product: str, limit: int = 5, now: datetime | None = None) -> Candles:
    """candles body (rows [time, low, high, open, close, volume], newest first) -> closed candles.

    Coinbase includes the minute still in progress; it is dropped when its start lies in the
    current minute of `now`.
    """
    if not isinstance(body, list):
        raise BadResponse(SOURCE, "candles are not a list")
    current_minute = (now or datetime.now(UTC)).replace(second=0, microsecond=0)
    candles: list[Candle] = []
    for row in body:
        if not isinstance(row, list) or len(row) < 5:
            raise BadResponse(SOURCE, "candle row has an unexpected shape")
        start = from_s(row[0], SOURCE, "time")
        if start >= current_minute:
            continue
        candles.append(Candle(start=start, close=number(row[4], SOURCE, "close")))
    candles.sort(key=lambda c: c.start)
    candles = candles[-limit:]
    if not candles:
        raise BadResponse(SOURCE, "no closed candles")
    return Candles(
        source=SOURCE,
        as_of=candles[-1].start + timedelta(seconds=CANDLE_SECONDS),
        symbol=product,
        granularity_s=CANDLE_SECONDS,
        candles=candles,
    )


def parse_stats(body: Any, product: str, now: datetime | None = None) -> SpotPrice:
    """stats body (24h open, high, low, last) -> SpotPrice; the body has no time, so `now` is it."""
    if not isinstance(body, dict):
        raise BadResponse(SOURCE, "stats are not an object")
    last = number(body.get("last"), SOURCE, "last")
    open_24h = number(body.get("open"), SOURCE, "open")
    return SpotPrice(
        source=SOURCE,
        as_of=now or datetime.now(UTC),
        symbol=product,
        price=last,
        change_24h_pct=(last - open_24h) / open_24h * 100 if open_24h > 0 else None,
    )


async def fetch_candles(
    client: httpx.AsyncClient,
    cfg: SourceSettings,
    product: str = "BTC-USD",
    limit: int = 5,
    now: datetime | None = None,
) -> Candles:
    """The last `limit` closed 1-minute candles of a product."""
    body = await get_json(
        client,
        SOURCE,
        f"{cfg.coinbase_url}/products/{product}/candles",
        params={"granularity": str(CANDLE_SECONDS)},
        headers=HEADERS,
    )
    return parse_candles(body, product, limit, now)


async def fetch_stats(
    client: httpx.AsyncClient,
    cfg: SourceSettings,
    product: str = "BTC-USD",
    now: datetime | None = None,
) -> SpotPrice:
    """Last price and the change against the price 24 hours ago."""
    body = await get_json(
        client, SOURCE, f"{cfg.coinbase_url}/products/{product}/stats", headers=HEADERS
    )
    return parse_stats(body, product, now)
