"""Kraken public ticker: a fallback last price for BTC (and ETH)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from explainers.errors import BadResponse
from explainers.models import SpotPrice
from explainers.settings import SourceSettings
from explainers.sources import bounds
from explainers.sources.http import USER_AGENT, get_json

SOURCE = "Kraken"
HEADERS = {"User-Agent": USER_AGENT, "Accept": "application/json"}


def parse_ticker(body: Any, pair: str, now: datetime | None = None) -> SpotPrice:
    """Ticker body -> SpotPrice (last trade price); the body has no time, so `now` is it."""
    if not isinstance(body, dict):
        raise BadResponse(SOURCE, "response is not an object")
    errors = body.get("error")
    if errors:
        # Kraken's messages are short codes such as "EQuery:Unknown asset pair"
        first = errors[0] if isinstance(errors, list) else errors
        raise BadResponse(SOURCE, f"error {str(first)[:80]}")
    result = body.get("result")
    if not isinstance(result, dict) or not result:
        raise BadResponse(SOURCE, "no ticker in response")
    # Kraken answers under its own pair name (XBTUSD -> XXBTZUSD): take the one result
    if pair in result:
        ticker = result[pair]
    elif len(result) == 1:
        ticker = next(iter(result.values()))
    else:
        raise BadResponse(SOURCE, "several tickers for one pair")
    if not isinstance(ticker, dict) or not isinstance(ticker.get("c"), list) or not ticker["c"]:
        raise BadResponse(SOURCE, "ticker has no last trade")
    return SpotPrice(
        source=SOURCE,
        as_of=now or datetime.now(UTC),
        symbol=pair,
        price=bounds.price(ticker["c"][0], SOURCE, "last price"),
        # the REST ticker has no 24h change: `o` is today's open (since 00:00 UTC), and its
        # `h`/`l`/`p` are today and rolling-24h pairs without the price 24h ago. Unknown, not
        # a "change since midnight" passed off as 24h.
        change_24h_pct=None,
    )


async def fetch_ticker(
    client: httpx.AsyncClient,
    cfg: SourceSettings,
    pair: str = "XBTUSD",
    now: datetime | None = None,
) -> SpotPrice:
    """The last trade price of one pair."""
    body = await get_json(
        client, SOURCE, f"{cfg.kraken_url}/0/public/Ticker", params={"pair": pair}, headers=HEADERS
    )
    return parse_ticker(body, pair, now)
