"""blockchain.info charts (keyless): confirmed Bitcoin transactions per day.

`/charts/n-transactions?timespan=60days&format=json` answers `values: [{x, y}]`: `x` is UNIX
SECONDS (not ms), `y` a count that may come in scientific notation (`1.46277E7`, a float once
decoded). The latest day is compared with the mean of the 30 days it ends (matched by date).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from statistics import fmean
from typing import Any

import httpx

from explainers.errors import BadResponse
from explainers.models import Transactions
from explainers.sources import bounds
from explainers.sources.http import USER_AGENT, get_json

SOURCE = "blockchain.info"

CHART_SHAPE = ("values[].x", "values[].y")
#: days the mean spans, and the days it needs at least
WINDOW_DAYS, MIN_DAYS = 30, 20


async def fetch_transactions(
    client: httpx.AsyncClient, base_url: str, now: datetime
) -> Transactions:
    body = await get_json(
        client,
        SOURCE,
        f"{base_url}/charts/n-transactions",
        params={"timespan": "60days", "format": "json"},
        headers={"User-Agent": USER_AGENT},
    )
    return transactions(chart_points(body), now)


def chart_points(body: Any) -> dict[date, float]:
    """`values` as day -> transactions."""
    if not isinstance(body, dict) or body.get("status", "ok") != "ok":
        raise BadResponse(SOURCE, "unexpected chart shape")
    values = body.get("values")
    if not isinstance(values, list) or not values:
        raise BadResponse(SOURCE, "no chart values")
    points: dict[date, float] = {}
    for item in values:
        if not isinstance(item, dict):
            raise BadResponse(SOURCE, "unexpected chart value")
        day = bounds.from_s(item.get("x"), SOURCE, "values.x").date()
        points[day] = bounds.tx_per_day(item.get("y"), SOURCE, "values.y")
    return points


def transactions(points: dict[date, float], now: datetime) -> Transactions:
    """The latest complete day (today's count, still growing, is left out) against the mean of
    the 30 days it ends."""
    points = {d: v for d, v in points.items() if d < now.date()}
    if not points:
        raise BadResponse(SOURCE, "no chart values")
    last = max(points)
    window = [v for d, v in points.items() if last - timedelta(days=WINDOW_DAYS) < d <= last]
    if len(window) < MIN_DAYS:
        raise BadResponse(SOURCE, f"only {len(window)} of {WINDOW_DAYS} days of transactions")
    return Transactions(
        source=SOURCE,
        # a day's count is complete at the end of the day
        as_of=datetime.combine(last + timedelta(days=1), time(), UTC),
        day=last,
        count=points[last],
        mean_30d=fmean(window),
    )
