"""Binance USDⓈ-M futures open interest (optional, off by default: refuses US addresses with 451).

Binance publishes liquidations only on its websocket (`forceOrder` streams); there is no REST
endpoint for them, so this module reads open interest only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any

import httpx

from explainers.errors import BadResponse
from explainers.models import OpenInterest
from explainers.settings import SourceSettings
from explainers.sources import bounds
from explainers.sources.http import USER_AGENT, from_ms, get_json
from explainers.sources.open_interest import VenueOpenInterest
from explainers.sources.shape import Shape

SOURCE = "Binance"
HEADERS = {"User-Agent": USER_AGENT, "Accept": "application/json"}


def parse_open_interest(oi_body: Any, premium_body: Any, symbol: str) -> OpenInterest:
    """openInterest (in coins) and premiumIndex (mark price) bodies -> open interest in USD."""
    if not isinstance(oi_body, dict) or not isinstance(premium_body, dict):
        raise BadResponse(SOURCE, "response is not an object")
    contracts = bounds.holding(oi_body.get("openInterest"), SOURCE, "openInterest")
    mark = bounds.price(premium_body.get("markPrice"), SOURCE, "markPrice")
    return OpenInterest(
        source=SOURCE,
        as_of=from_ms(oi_body.get("time"), SOURCE, "time"),
        instrument=str(oi_body.get("symbol") or symbol),
        oi_usd=bounds.check(
            bounds.open_interest_usd, contracts * mark, SOURCE, "openInterest x markPrice"
        ),
    )


async def fetch_open_interest(
    client: httpx.AsyncClient, cfg: SourceSettings, symbol: str = "BTCUSDT"
) -> OpenInterest:
    """Open interest of one perpetual, valued at its mark price."""
    params = {"symbol": symbol}
    oi_body, premium_body = await asyncio.gather(
        get_json(
            client,
            SOURCE,
            f"{cfg.binance_url}/fapi/v1/openInterest",
            params=params,
            headers=HEADERS,
        ),
        get_json(
            client,
            SOURCE,
            f"{cfg.binance_url}/fapi/v1/premiumIndex",
            params=params,
            headers=HEADERS,
        ),
    )
    return parse_open_interest(oi_body, premium_body, symbol)


#: the fields `parse_venue_open_interest` reads, per body
OPEN_INTEREST_SHAPE: Shape = ("openInterest", "symbol", "time")
PREMIUM_INDEX_SHAPE: Shape = ("symbol", "markPrice")


def parse_venue_open_interest(
    oi_bodies: Sequence[Any], premium_body: Any
) -> list[VenueOpenInterest]:
    """openInterest bodies (one per symbol, in coins) and a premiumIndex body (one object, or the
    list of every symbol when asked without one) -> USD open interest per coin at the mark price.

    The as-of is the openInterest `time` (the premiumIndex `time` may differ by a moment).
    """
    premiums = premium_body if isinstance(premium_body, list) else [premium_body]
    marks = {
        str(p.get("symbol")): bounds.price(p.get("markPrice"), SOURCE, "markPrice")
        for p in premiums
        if isinstance(p, dict) and p.get("symbol")
    }
    out: list[VenueOpenInterest] = []
    for body in oi_bodies:
        if not isinstance(body, dict):
            raise BadResponse(SOURCE, "response is not an object")
        symbol = str(body.get("symbol") or "")
        if not symbol.endswith("USDT"):
            raise BadResponse(SOURCE, "symbol is missing")
        if symbol not in marks:
            raise BadResponse(SOURCE, f"no mark price for {symbol}")
        coins = bounds.holding(body.get("openInterest"), SOURCE, "openInterest")
        out.append(
            VenueOpenInterest(
                venue=SOURCE,
                coin=symbol.removesuffix("USDT"),
                usd=bounds.check(
                    bounds.open_interest_usd,
                    coins * marks[symbol],
                    SOURCE,
                    "openInterest x markPrice",
                ),
                at=from_ms(body.get("time"), SOURCE, "time"),
                instruments=[symbol],
            )
        )
    return out


async def fetch_venue_open_interest(
    client: httpx.AsyncClient, base_url: str, coins: Iterable[str] = ("BTC", "ETH", "SOL")
) -> list[VenueOpenInterest]:
    """USD open interest of each coin's USDT perpetual: one openInterest request per coin and
    one premiumIndex request (all symbols) for the mark prices."""
    symbols = [f"{c.upper()}USDT" for c in coins]
    bodies = await asyncio.gather(
        get_json(client, SOURCE, f"{base_url}/fapi/v1/premiumIndex", headers=HEADERS),
        *(
            get_json(
                client,
                SOURCE,
                f"{base_url}/fapi/v1/openInterest",
                params={"symbol": symbol},
                headers=HEADERS,
            )
            for symbol in symbols
        ),
    )
    return parse_venue_open_interest(bodies[1:], bodies[0])
