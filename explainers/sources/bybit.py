"""Bybit linear perpetual open interest (optional, off by default: its CDN answers 403 in the US).

Bybit publishes liquidations only on its websocket (`allLiquidation` topic); there is no REST
endpoint for them, so this module reads open interest only.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpx

from explainers.errors import BadResponse, RateLimited
from explainers.models import OpenInterest
from explainers.settings import SourceSettings
from explainers.sources import bounds
from explainers.sources.http import USER_AGENT, from_ms, get_json
from explainers.sources.open_interest import VenueOpenInterest
from explainers.sources.shape import Shape

SOURCE = "Bybit"
HEADERS = {"User-Agent": USER_AGENT, "Accept": "application/json"}
#: Bybit's "too many visits" return code
RATE_LIMIT_CODE = 10006


#: the fields the ticker parsers read
TICKERS_SHAPE: Shape = (
    "retCode",
    "time",
    "result.list[].symbol",
    "result.list[].openInterestValue",
)


def _tickers(body: Any) -> list[Any]:
    """The ticker list of a /v5/market/tickers body, raising for an error `retCode`."""
    if not isinstance(body, dict):
        raise BadResponse(SOURCE, "response is not an object")
    code = body.get("retCode")
    if code is None:
        raise BadResponse(SOURCE, "retCode is missing")
    if code != 0:
        if code == RATE_LIMIT_CODE:
            raise RateLimited(SOURCE, f"rate limited (code {code})")
        raise BadResponse(SOURCE, f"error code {code}")
    result = body.get("result")
    items = result.get("list") if isinstance(result, dict) else None
    if not isinstance(items, list):
        raise BadResponse(SOURCE, "no ticker list in response")
    return items


def parse_open_interest(body: Any, symbol: str) -> OpenInterest:
    """/v5/market/tickers body -> open interest in USD (`openInterestValue`)."""
    items = _tickers(body)
    item = next((i for i in items if isinstance(i, dict) and i.get("symbol") == symbol), None)
    if item is None:
        raise BadResponse(SOURCE, f"no ticker for {symbol}")
    return OpenInterest(
        source=SOURCE,
        as_of=from_ms(body.get("time"), SOURCE, "time"),
        instrument=symbol,
        oi_usd=bounds.open_interest_usd(item.get("openInterestValue"), SOURCE, "openInterestValue"),
    )


async def fetch_open_interest(
    client: httpx.AsyncClient, cfg: SourceSettings, symbol: str = "BTCUSDT"
) -> OpenInterest:
    """Open interest of one linear perpetual, in USD."""
    body = await get_json(
        client,
        SOURCE,
        f"{cfg.bybit_url}/v5/market/tickers",
        params={"category": "linear", "symbol": symbol},
        headers=HEADERS,
    )
    return parse_open_interest(body, symbol)


def parse_venue_open_interest(body: Any, coins: Iterable[str]) -> list[VenueOpenInterest]:
    """Linear tickers body (category=linear, all symbols) -> USD open interest per coin.

    Reads each coin's USDT perpetual (`{COIN}USDT`). On linear tickers `openInterestValue` is
    USD; on INVERSE tickers it is in coins (and `openInterest` in USD contracts), so inverse
    bodies are not read here. `/v5/market/open-interest` gives contracts only, no USD.
    """
    wanted = [c.upper() for c in coins]
    by_symbol = {str(item.get("symbol")): item for item in _tickers(body) if isinstance(item, dict)}
    at = from_ms(body.get("time"), SOURCE, "time")
    out: list[VenueOpenInterest] = []
    for coin in wanted:
        item = by_symbol.get(f"{coin}USDT")
        if item is None:
            continue
        out.append(
            VenueOpenInterest(
                venue=SOURCE,
                coin=coin,
                usd=bounds.open_interest_usd(
                    item.get("openInterestValue"), SOURCE, "openInterestValue"
                ),
                at=at,
                instruments=[f"{coin}USDT"],
            )
        )
    return out


async def fetch_venue_open_interest(
    client: httpx.AsyncClient, base_url: str, coins: Iterable[str] = ("BTC", "ETH", "SOL")
) -> list[VenueOpenInterest]:
    """USD open interest of each coin's USDT perpetual (one request for all linear tickers)."""
    body = await get_json(
        client,
        SOURCE,
        f"{base_url}/v5/market/tickers",
        params={"category": "linear"},
        headers=HEADERS,
    )
    return parse_venue_open_interest(body, coins)
