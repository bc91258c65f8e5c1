"""mempool.space (keyless): Bitcoin's hash rate and its next difficulty adjustment.

Units are traps: hash-rate `timestamp`s are SECONDS and the hash rates H/s floats beyond 2^53;
in the difficulty adjustment `estimatedRetargetDate` is MILLISECONDS (`previousTime` is seconds
and not read).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from statistics import fmean
from typing import Any

import httpx

from explainers.errors import BadResponse
from explainers.models import DifficultyAdjustment, HashRate
from explainers.sources import bounds
from explainers.sources.http import USER_AGENT, get_json

SOURCE = "mempool.space"

HASHRATE_SHAPE = ("hashrates[].timestamp", "hashrates[].avgHashrate")
DIFFICULTY_SHAPE = (
    "progressPercent",
    "difficultyChange",
    "estimatedRetargetDate",
    "remainingBlocks",
)

#: the short and long windows compared, and the daily points each needs at least
WEEK, MONTH = timedelta(days=7), timedelta(days=30)
MIN_WEEK_POINTS, MIN_MONTH_POINTS = 5, 20


async def fetch_hash_rate(client: httpx.AsyncClient, base_url: str) -> HashRate:
    """The 7-day mean hash rate against the 30-day mean, from the last month's daily averages."""
    body = await get_json(
        client,
        SOURCE,
        f"{base_url}/api/v1/mining/hashrate/1m",
        headers={"User-Agent": USER_AGENT},
    )
    return hash_rate(hash_rate_points(body))


async def fetch_difficulty(
    client: httpx.AsyncClient, base_url: str, now: datetime
) -> DifficultyAdjustment:
    body = await get_json(
        client,
        SOURCE,
        f"{base_url}/api/v1/difficulty-adjustment",
        headers={"User-Agent": USER_AGENT},
    )
    return parse_difficulty(body, now)


def hash_rate_points(body: Any) -> list[tuple[datetime, float]]:
    """`hashrates` as (day, H/s), oldest first."""
    items = body.get("hashrates") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        raise BadResponse(SOURCE, "no hash rates")
    points: dict[datetime, float] = {}
    for item in items:
        if not isinstance(item, dict):
            raise BadResponse(SOURCE, "unexpected hash rate item")
        ts = bounds.from_s(item.get("timestamp"), SOURCE, "hashrates.timestamp")
        points[ts] = bounds.hash_rate(item.get("avgHashrate"), SOURCE, "hashrates.avgHashrate")
    return sorted(points.items())


def hash_rate(points: list[tuple[datetime, float]]) -> HashRate:
    """Mean of the days within 7 days of the newest against the mean within 30 days; too few
    days for either window is a bad response (a mean of three days is not a 7-day mean)."""
    if not points:
        raise BadResponse(SOURCE, "no hash rates")
    newest = points[-1][0]
    week = [v for ts, v in points if ts > newest - WEEK]
    month = [v for ts, v in points if ts > newest - MONTH]
    if len(week) < MIN_WEEK_POINTS or len(month) < MIN_MONTH_POINTS:
        raise BadResponse(SOURCE, f"only {len(month)} of 30 days of hash rate")
    return HashRate(
        source=SOURCE, as_of=newest, mean_7d=fmean(week), mean_30d=fmean(month), days=len(month)
    )


def parse_difficulty(body: Any, now: datetime) -> DifficultyAdjustment:
    """The estimate as read at `now` (it is live: the body carries no time of its own)."""
    if not isinstance(body, dict):
        raise BadResponse(SOURCE, "unexpected difficulty-adjustment shape")
    remaining = bounds.number(body.get("remainingBlocks"), SOURCE, "remainingBlocks")
    if not 0 <= remaining <= 2016 or remaining != int(remaining):
        raise BadResponse(SOURCE, f"remainingBlocks {remaining:g} is implausible")
    return DifficultyAdjustment(
        source=SOURCE,
        as_of=now,
        change_pct=bounds.difficulty_change(
            body.get("difficultyChange"), SOURCE, "difficultyChange"
        ),
        retarget_at=bounds.from_epoch(
            body.get("estimatedRetargetDate"),
            SOURCE,
            "estimatedRetargetDate",
            scale=1000.0,
            future_ok=True,
        ),
        remaining_blocks=int(remaining),
        progress_pct=bounds.progress_pct(body.get("progressPercent"), SOURCE, "progressPercent"),
    )
