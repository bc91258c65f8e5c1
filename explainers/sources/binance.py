"""Binance USDⓈ-M futures open interest (optional, off by default: refuses US addresses with 451).

Binance publishes liquidations only on its websocket (`forceOrder` streams); there is no REST
endpoint for them, so this module reads open interest only.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from explainers.errors import BadResponse
from explainers.models import OpenInterest
from explainers.settings import SourceSettings
from explainers.sources.http import USER_AGENT, from_ms, get_json, number

SOURCE = "Binance"
HEADERS = {"User-Agent": USER_AGENT, "Accept": "application/json"}


def parse_open_interest(oi_body: Any, premium_body: Any, symbol: str) -> OpenInterest:
    """openInterest (in coins) and premiumIndex (mark price) bodies -> open interest in USD."""
    if not isinstance(oi_body, dict) or not isinstance(premium_body, dict):
        raise BadResponse(SOURCE, "response is not an object")
    contracts = number(oi_body.get("openInterest"), SOURCE, "openInterest")
    mark = number(premium_body.get("markPrice"), SOURCE, "markPrice")
    return OpenInterest(
        source=SOURCE,
        as_of=from_ms(oi_body.get("time"), SOURCE, "time"),
        instrument=str(oi_body.get("symbol") or symbol),
        oi_usd=contracts * mark,
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
