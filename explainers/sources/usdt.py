"""A USDT-USD quote (Coinbase Exchange, Kraken as fallback) and the Coinbase premium it cleans.

OKX quotes BTC in USDT. Comparing Coinbase BTC-USD with OKX BTC-USDT as if USDT were a dollar
mixes a stablecoin discount into the premium; `coinbase_premium` converts the OKX price to USD
first. A quote outside the plausibility bounds (0.9..1.1 by default) is refused as a bad quote.

Coinbase `/products/USDT-USD/ticker`: {"price", "bid", "ask", "time" (ISO), ...}, numbers as
strings. Kraken `/0/public/Ticker?pair=USDTUSD` answers under its own pair name (`USDTZUSD`):
the first key of `result`; `c[0]` is the last price; `error` is a list; no time in the body.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from explainers.errors import BadResponse, SourceError
from explainers.models import Model, UsdtQuote
from explainers.sources import bounds as bounds_
from explainers.sources.http import USER_AGENT, get_json, number
from explainers.sources.shape import Shape

HEADERS = {"User-Agent": USER_AGENT, "Accept": "application/json"}
COINBASE = "Coinbase"
KRAKEN = "Kraken"
COINBASE_PRODUCT = "USDT-USD"
KRAKEN_PAIR = "USDTUSD"
DEFAULT_BOUNDS = (0.9, 1.1)

#: the fields each parser reads
COINBASE_TICKER_SHAPE: Shape = ("price", "time")
KRAKEN_TICKER_SHAPE: Shape = ("error", "result")


class Premium(Model):
    """Coinbase BTC-USD against OKX BTC-USDT converted to USD, in percent."""

    pct: float
    coinbase_usd: float
    okx_usdt: float
    okx_usd: float
    usdt: UsdtQuote


def plausible(quote: UsdtQuote, bounds: tuple[float, float] = DEFAULT_BOUNDS) -> UsdtQuote:
    low, high = bounds
    if not low <= quote.rate <= high:
        raise BadResponse(quote.source, f"USDT-USD quote {quote.rate:g} is outside {low}..{high}")
    return quote


def parse_coinbase_ticker(body: Any, bounds: tuple[float, float] = DEFAULT_BOUNDS) -> UsdtQuote:
    """Coinbase Exchange product ticker -> UsdtQuote (last trade `price` at its `time`)."""
    if not isinstance(body, dict):
        raise BadResponse(COINBASE, "response is not an object")
    if "message" in body and "price" not in body:
        # Coinbase errors are {"message": "NotFound"} with a 4xx; keep the short code only
        raise BadResponse(COINBASE, f"error {str(body['message'])[:60]}")
    rate = number(body.get("price"), COINBASE, "price")
    at = bounds_.iso_time(body.get("time"), COINBASE, "time")
    return plausible(UsdtQuote(rate=rate, source=COINBASE, at=at), bounds)


def parse_kraken_ticker(
    body: Any, now: datetime | None = None, bounds: tuple[float, float] = DEFAULT_BOUNDS
) -> UsdtQuote:
    """Kraken ticker (USDTZUSD) -> UsdtQuote; the body has no time, so `now` is it."""
    if not isinstance(body, dict):
        raise BadResponse(KRAKEN, "response is not an object")
    errors = body.get("error")
    if errors:
        first = errors[0] if isinstance(errors, list) else errors
        raise BadResponse(KRAKEN, f"error {str(first)[:80]}")
    result = body.get("result")
    if not isinstance(result, dict) or not result:
        raise BadResponse(KRAKEN, "result is missing")
    # the key is Kraken's pair name (USDTZUSD), not the one asked (USDTUSD)
    ticker = next(iter(result.values()))
    last = ticker.get("c") if isinstance(ticker, dict) else None
    if not isinstance(last, list) or not last:
        raise BadResponse(KRAKEN, "c (last trade) is missing")
    rate = number(last[0], KRAKEN, "c[0]")
    return plausible(UsdtQuote(rate=rate, source=KRAKEN, at=now or datetime.now(UTC)), bounds)


async def fetch_coinbase_usdt(
    client: httpx.AsyncClient, base_url: str, bounds: tuple[float, float] = DEFAULT_BOUNDS
) -> UsdtQuote:
    """USDT-USD from Coinbase Exchange (https://api.exchange.coinbase.com)."""
    body = await get_json(
        client, COINBASE, f"{base_url}/products/{COINBASE_PRODUCT}/ticker", headers=HEADERS
    )
    return parse_coinbase_ticker(body, bounds)


async def fetch_kraken_usdt(
    client: httpx.AsyncClient,
    base_url: str,
    now: datetime | None = None,
    bounds: tuple[float, float] = DEFAULT_BOUNDS,
) -> UsdtQuote:
    """USDT-USD from Kraken (https://api.kraken.com)."""
    body = await get_json(
        client,
        KRAKEN,
        f"{base_url}/0/public/Ticker",
        params={"pair": KRAKEN_PAIR},
        headers=HEADERS,
    )
    return parse_kraken_ticker(body, now, bounds)


async def fetch_usdt_quote(
    client: httpx.AsyncClient,
    coinbase_url: str,
    kraken_url: str,
    now: datetime | None = None,
    bounds: tuple[float, float] = DEFAULT_BOUNDS,
) -> UsdtQuote:
    """Coinbase's USDT-USD, or Kraken's when Coinbase fails (the Coinbase error is raised when
    both fail: it is the primary)."""
    try:
        return await fetch_coinbase_usdt(client, coinbase_url, bounds)
    except SourceError as primary:
        try:
            return await fetch_kraken_usdt(client, kraken_url, now, bounds)
        except SourceError:
            raise primary from None


def coinbase_premium(coinbase_btc_usd: float, okx_btc_usdt: float, usdt: UsdtQuote) -> Premium:
    """(Coinbase BTC-USD - OKX BTC-USDT x USD per USDT) / that, in percent."""
    if coinbase_btc_usd <= 0 or okx_btc_usdt <= 0:
        raise ValueError("prices must be positive")
    okx_usd = okx_btc_usdt * usdt.rate
    return Premium(
        pct=(coinbase_btc_usd - okx_usd) / okx_usd * 100,
        coinbase_usd=coinbase_btc_usd,
        okx_usdt=okx_btc_usdt,
        okx_usd=okx_usd,
        usdt=usdt,
    )
