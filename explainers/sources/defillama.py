"""DefiLlama stablecoins (keyless): the total stablecoin supply in USD, day by day.

`/stablecoincharts/all` is a list of daily points, oldest first: `date` is a STRING of epoch
seconds (00:00 UTC) and `totalCirculatingUSD` maps each peg (`peggedUSD`, `peggedEUR`, ...) to
its supply in USD; the total is their sum. The newest point is compared with the point of the
day 7 days before (matched by date, never by position: a day can be missing).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import httpx

from explainers.errors import BadResponse
from explainers.models import StablecoinSupply
from explainers.sources import bounds
from explainers.sources.http import USER_AGENT, get_json

SOURCE = "DefiLlama"

CHART_SHAPE = ("[].date", "[].totalCirculatingUSD")


async def fetch_supply(client: httpx.AsyncClient, base_url: str) -> StablecoinSupply:
    body = await get_json(
        client, SOURCE, f"{base_url}/stablecoincharts/all", headers={"User-Agent": USER_AGENT}
    )
    return parse_chart(body)


def parse_chart(body: Any) -> StablecoinSupply:
    if not isinstance(body, list) or not body:
        raise BadResponse(SOURCE, "no stablecoin supply points")
    days: dict[date, tuple[Any, float]] = {}
    for item in body:
        if not isinstance(item, dict):
            raise BadResponse(SOURCE, "unexpected point shape")
        ts = bounds.from_s(item.get("date"), SOURCE, "date")
        pegs = item.get("totalCirculatingUSD")
        if not isinstance(pegs, dict) or not pegs:
            raise BadResponse(SOURCE, "totalCirculatingUSD is missing")
        total = sum(
            bounds.market_cap(v, SOURCE, f"totalCirculatingUSD.{k}") for k, v in pegs.items()
        )
        days[ts.date()] = (ts, bounds.check(bounds.total_market_cap, total, SOURCE, "total"))
    newest = max(days)
    as_of, total = days[newest]
    week_ago = days.get(newest - timedelta(days=7))
    return StablecoinSupply(
        source=SOURCE,
        as_of=as_of,
        total_usd=total,
        week_ago_usd=week_ago[1] if week_ago else None,
    )
