"""alternative.me Crypto Fear & Greed index with its recent daily history."""

from __future__ import annotations

from typing import Any

import httpx

from explainers.errors import BadResponse
from explainers.models import FearGreed, FearGreedPoint
from explainers.settings import SourceSettings
from explainers.sources import bounds
from explainers.sources.http import USER_AGENT, from_s, get_json

SOURCE = "alternative.me"


async def fetch_fear_greed(
    client: httpx.AsyncClient, cfg: SourceSettings, days: int = 8
) -> FearGreed:
    """The index for the last `days` days (8 covers a 7-day comparison)."""
    body = await get_json(
        client,
        SOURCE,
        f"{cfg.feargreed_url}/fng/",
        params={"limit": days},
        headers={"User-Agent": USER_AGENT},
    )
    return parse_fng(body)


def parse_fng(body: Any) -> FearGreed:
    """The /fng/ body (newest first) to points oldest first, as of the newest point."""
    if not isinstance(body, dict):
        raise BadResponse(SOURCE, "unexpected response shape")
    metadata = body.get("metadata")
    error = metadata.get("error") if isinstance(metadata, dict) else None
    if error:
        raise BadResponse(SOURCE, f"error from the API: {str(error)[:80]}")
    data = body.get("data")
    if not isinstance(data, list) or not data:
        raise BadResponse(SOURCE, "no index values")
    stamped = []
    for item in data:
        if not isinstance(item, dict):
            raise BadResponse(SOURCE, "unexpected item shape")
        ts = from_s(item.get("timestamp"), SOURCE, "timestamp")
        label = item.get("value_classification")
        if not isinstance(label, str) or not label:
            raise BadResponse(SOURCE, "value_classification is missing")
        value = bounds.index_0_100(item.get("value"), SOURCE, "value")
        stamped.append((ts, FearGreedPoint(day=ts.date(), value=round(value), label=label)))
    stamped.sort(key=lambda pair: pair[0])
    return FearGreed(source=SOURCE, as_of=stamped[-1][0], points=[p for _, p in stamped])
