"""Coinbase Exchange: BTC-USD 1-minute candles (for the Coinbase premium), 24h stats (fallback) and
hourly candles (price history for charts when CoinGecko fails)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from explainers.errors import BadResponse
from explainers.models import Candle, Candles, PricePoint, PriceSeries, SpotPrice
from explainers.settings import SourceSettings
from explainers.sources import bounds
from explainers.sources.http import USER_AGENT, from_s, get_json

SOURCE = "Coinbase"
HEADERS = {"User-Agent": USER_AGENT, "Accept": "application/json"}
CANDLE_SECONDS = 60
HOUR_SECONDS = 3600


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
        candles.append(Candle(start=start, close=bounds.price(row[4], SOURCE, "close")))
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


def parse_hourly(
    body: Any, product: str, now: datetime | None = None, hours: int = 24
) -> PriceSeries:
    """hourly candles body (rows [time, low, high, open, close, volume], newest first) -> the
    closing price of each hour of the last `hours`, oldest first.

    Each point is stamped at its hour's end; the hour still in progress is stamped `now`, its
    close being the latest trade.
    """
    if not isinstance(body, list):
        raise BadResponse(SOURCE, "candles are not a list")
    moment = now or datetime.now(UTC)
    since = moment - timedelta(hours=hours)
    points: list[PricePoint] = []
    for row in body:
        if not isinstance(row, list) or len(row) < 5:
            raise BadResponse(SOURCE, "candle row has an unexpected shape")
        end = min(from_s(row[0], SOURCE, "time") + timedelta(seconds=HOUR_SECONDS), moment)
        if end > since:
            points.append(PricePoint(ts=end, price=bounds.price(row[4], SOURCE, "close")))
    if not points:
        raise BadResponse(SOURCE, "no candles in the last day")
    points.sort(key=lambda p: p.ts)
    return PriceSeries(source=SOURCE, as_of=points[-1].ts, symbol=product, points=points)


def parse_stats(body: Any, product: str, now: datetime | None = None) -> SpotPrice:
    """stats body (24h open, high, low, last) -> SpotPrice; the body has no time, so `now` is it."""
    if not isinstance(body, dict):
        raise BadResponse(SOURCE, "stats are not an object")
    last = bounds.price(body.get("last"), SOURCE, "last")
    open_24h = bounds.price(body.get("open"), SOURCE, "open")
    return SpotPrice(
        source=SOURCE,
        as_of=now or datetime.now(UTC),
        symbol=product,
        price=last,
        change_24h_pct=bounds.check(
            bounds.pct_change, (last - open_24h) / open_24h * 100, SOURCE, "24h change"
        ),
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


async def fetch_hourly(
    client: httpx.AsyncClient,
    cfg: SourceSettings,
    product: str = "BTC-USD",
    now: datetime | None = None,
) -> PriceSeries:
    """The last 24 hourly closes of a product (price history when CoinGecko fails)."""
    body = await get_json(
        client,
        SOURCE,
        f"{cfg.coinbase_url}/products/{product}/candles",
        params={"granularity": str(HOUR_SECONDS)},
        headers=HEADERS,
    )
    return parse_hourly(body, product, now)
