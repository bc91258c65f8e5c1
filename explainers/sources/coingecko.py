"""CoinGecko: the top coins by market cap with 1h/24h/7d changes, the whole market's figures, and a
coin's price over the last day (for charts)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from explainers.errors import BadResponse, RateLimited
from explainers.models import CoinMarket, GlobalMarket, Markets, PricePoint, PriceSeries
from explainers.settings import SourceSettings
from explainers.sources import bounds
from explainers.sources.bounds import optional
from explainers.sources.http import USER_AGENT, from_ms, from_s, get_json

SOURCE = "CoinGecko"

MARKETS_PARAMS = {
    "vs_currency": "usd",
    "order": "market_cap_desc",
    "per_page": "100",
    "page": "1",
    "price_change_percentage": "1h,24h,7d",
}


def _headers(cfg: SourceSettings) -> dict[str, str]:
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if cfg.coingecko_api_key is not None:
        headers[cfg.coingecko_key_header] = cfg.coingecko_api_key.get_secret_value()
    return headers


def _follow(cfg: SourceSettings) -> bool | None:
    """Never follow a redirect while the key header is sent: it would go to the new host too."""
    return False if cfg.coingecko_api_key is not None else None


def _check_status(body: Any) -> None:
    """CoinGecko reports errors as {"status": {"error_code", "error_message"}}, sometimes with 200."""
    if not isinstance(body, dict) or not isinstance(body.get("status"), dict):
        return
    code = body["status"].get("error_code")
    if code == 429:
        raise RateLimited(SOURCE, "rate limited")
    if code is not None:
        raise BadResponse(SOURCE, f"error code {code}")


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    # CoinGecko's times are UTC; one without an offset must not become a naive (local) time
    parsed = parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    return bounds.moment(parsed, SOURCE, "last_updated")


def _coin(item: Any) -> CoinMarket:
    if not isinstance(item, dict):
        raise BadResponse(SOURCE, "a market entry is not an object")
    names = [item.get(key) for key in ("id", "symbol", "name")]
    if not all(isinstance(name, str) and name for name in names):
        raise BadResponse(SOURCE, "a market entry has no id, symbol or name")

    def change(field: str) -> float | None:
        return optional(bounds.pct_change, item.get(field), SOURCE, field)

    change_24h = change("price_change_percentage_24h_in_currency")
    if change_24h is None:
        change_24h = change("price_change_percentage_24h")
    return CoinMarket(
        id=item["id"],
        symbol=item["symbol"],
        name=item["name"],
        rank=optional(bounds.rank, item.get("market_cap_rank"), SOURCE, "market_cap_rank"),
        price=optional(bounds.price, item.get("current_price"), SOURCE, "current_price"),
        market_cap=optional(bounds.market_cap, item.get("market_cap"), SOURCE, "market_cap"),
        change_1h=change("price_change_percentage_1h_in_currency"),
        change_24h=change_24h,
        change_7d=change("price_change_percentage_7d_in_currency"),
        last_updated=_time(item.get("last_updated")),
    )


def parse_markets(body: Any) -> Markets:
    """/coins/markets body -> Markets, as of the newest `last_updated`."""
    _check_status(body)
    if not isinstance(body, list) or not body:
        raise BadResponse(SOURCE, "no market data")
    coins = [_coin(item) for item in body]
    times = [c.last_updated for c in coins if c.last_updated is not None]
    if not times:
        raise BadResponse(SOURCE, "market data has no update time")
    return Markets(source=SOURCE, as_of=max(times), coins=coins)


def parse_global(body: Any) -> GlobalMarket:
    """/global body -> GlobalMarket (CoinGecko gives no 1h change for the whole market)."""
    _check_status(body)
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise BadResponse(SOURCE, "no global market data")
    caps = data.get("total_market_cap")
    shares = data.get("market_cap_percentage")
    result = GlobalMarket(
        source=SOURCE,
        as_of=from_s(data.get("updated_at"), SOURCE, "updated_at"),
        total_market_cap_usd=optional(
            bounds.total_market_cap, caps.get("usd"), SOURCE, "total_market_cap.usd"
        )
        if isinstance(caps, dict)
        else None,
        market_cap_change_24h_pct=optional(
            bounds.market_change,
            data.get("market_cap_change_percentage_24h_usd"),
            SOURCE,
            "market_cap_change_percentage_24h_usd",
        ),
        btc_dominance=optional(
            bounds.share_pct, shares.get("btc"), SOURCE, "market_cap_percentage.btc"
        )
        if isinstance(shares, dict)
        else None,
    )
    if (
        result.total_market_cap_usd is None
        and result.market_cap_change_24h_pct is None
        and result.btc_dominance is None
    ):
        raise BadResponse(SOURCE, "global market figures are missing")
    return result


def parse_market_chart(body: Any, coin_id: str) -> PriceSeries:
    """/coins/{id}/market_chart body ({"prices": [[ms, price], ...]}) -> PriceSeries, oldest first.

    A null price is a gap in the series, not a zero: that point is left out.
    """
    _check_status(body)
    prices = body.get("prices") if isinstance(body, dict) else None
    if not isinstance(prices, list):
        raise BadResponse(SOURCE, "no price history")
    points: list[PricePoint] = []
    for row in prices:
        if not isinstance(row, list) or len(row) < 2:
            raise BadResponse(SOURCE, "a price point has an unexpected shape")
        price = optional(bounds.price, row[1], SOURCE, "price")
        if price is not None:
            points.append(PricePoint(ts=from_ms(row[0], SOURCE, "price time"), price=price))
    if not points:
        raise BadResponse(SOURCE, "price history is empty")
    points.sort(key=lambda p: p.ts)
    return PriceSeries(source=SOURCE, as_of=points[-1].ts, symbol=coin_id, points=points)


async def fetch_markets(client: httpx.AsyncClient, cfg: SourceSettings) -> Markets:
    """The top 100 coins by market cap."""
    body = await get_json(
        client,
        SOURCE,
        f"{cfg.coingecko_url}/coins/markets",
        params=MARKETS_PARAMS,
        headers=_headers(cfg),
        follow_redirects=_follow(cfg),
    )
    return parse_markets(body)


async def fetch_global(client: httpx.AsyncClient, cfg: SourceSettings) -> GlobalMarket:
    """Total market cap, its 24h change, and BTC dominance."""
    body = await get_json(
        client,
        SOURCE,
        f"{cfg.coingecko_url}/global",
        headers=_headers(cfg),
        follow_redirects=_follow(cfg),
    )
    return parse_global(body)


async def fetch_market_chart(
    client: httpx.AsyncClient, cfg: SourceSettings, coin_id: str, days: int = 1
) -> PriceSeries:
    """A coin's USD price over the last `days` (CoinGecko gives 5-minute points for one day)."""
    if not coin_id or not all(ch.isalnum() or ch in "-_." for ch in coin_id):
        # ids come from CoinGecko's own market list; anything else must not reach the URL path
        raise ValueError("not a CoinGecko coin id")
    body = await get_json(
        client,
        SOURCE,
        f"{cfg.coingecko_url}/coins/{coin_id}/market_chart",
        params={"vs_currency": "usd", "days": str(days)},
        headers=_headers(cfg),
        follow_redirects=_follow(cfg),
    )
    return parse_market_chart(body, coin_id)
