"""Polymarket: market-implied probability of a rate cut at the next FOMC meeting.

Gamma lists the "Fed Decision in <Month>?" events; each has one market per outcome ("25 bps
decrease", "No change", ...). The cut probability is the sum of the Yes prices of the decrease
markets. `outcomes` and `outcomePrices` are JSON strings inside the JSON. The CLOB's price
history of those markets, summed per hour, gives the odds over the last week.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from explainers.errors import BadResponse, SourceError
from explainers.models import CutOdds, OddsPoint
from explainers.settings import SourceSettings
from explainers.sources import bounds
from explainers.sources.http import USER_AGENT, from_s, get_json, number

SOURCE = "Polymarket"
EVENT_URL = "https://polymarket.com/event/"

_DECISION = re.compile(r"\bfed\b.*\b(decision|interest rates?)\b", re.IGNORECASE)
_CUT = re.compile(r"\b(decrease|cut)s?\b", re.IGNORECASE)
_HOUR = 3600
#: the share of a source's timeout the price-history calls may take
HISTORY_TIME_SHARE = 0.5

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Meeting:
    """The chosen FOMC event and its cut markets."""

    title: str
    slug: str
    end: datetime
    probability: float
    yes_tokens: list[str]


async def fetch_cut_odds(client: httpx.AsyncClient, cfg: SourceSettings, now: datetime) -> CutOdds:
    """Cut odds at the next meeting now, with the last week's hourly history where available."""
    body = await get_json(
        client,
        SOURCE,
        f"{cfg.polymarket_url}/events",
        # closed must be explicit: Gamma returns settled events when it is omitted
        params={"tag_slug": "fed", "closed": "false", "limit": 100},
        headers={"User-Agent": USER_AGENT},
    )
    meeting = parse_next_meeting(body, now)
    history = await _history(client, cfg, meeting.yes_tokens)
    return CutOdds(
        source=SOURCE,
        as_of=now,
        meeting=meeting.title,
        meeting_date=meeting.end.date(),
        probability=meeting.probability,
        history=history,
        url=f"{EVENT_URL}{meeting.slug}",
    )


async def _history(
    client: httpx.AsyncClient, cfg: SourceSettings, tokens: list[str]
) -> list[OddsPoint]:
    """The cut markets' summed hourly history, or [] when it cannot be read in time: the odds
    stand without it (the core falls back to its stored odds), so these calls get half the job's
    time, all at once, and never cost the odds themselves."""

    async def one(token: str) -> dict[int, float]:
        body = await get_json(
            client,
            SOURCE,
            f"{cfg.polymarket_clob_url}/prices-history",
            params={"market": token, "interval": "1w", "fidelity": 60},
            headers={"User-Agent": USER_AGENT},
        )
        return parse_price_history(body)

    try:
        async with asyncio.timeout(cfg.timeout_s * HISTORY_TIME_SHARE):
            # every call settles before we go on: none is left running after a failure
            results = await asyncio.gather(
                *(one(token) for token in tokens), return_exceptions=True
            )
    except TimeoutError:
        log.warning("polymarket price history: no answer in time")
        return []
    series: list[dict[int, float]] = []
    for result in results:
        if isinstance(result, SourceError):
            log.warning("polymarket price history %s: %s", result.kind, result.detail)
            return []
        if isinstance(result, BaseException):
            raise result
        series.append(result)
    return sum_histories(series)


def parse_next_meeting(body: Any, now: datetime) -> Meeting:
    """The Fed-decision event whose markets end soonest after `now`, with its cut probability."""
    events = body if isinstance(body, list) else [body]
    candidates: list[Meeting] = []
    for event in events:
        if not isinstance(event, dict) or not _DECISION.search(str(event.get("title", ""))):
            continue
        meeting = _meeting(event)
        if meeting is not None and meeting.end > now:
            candidates.append(meeting)
    if not candidates:
        raise BadResponse(SOURCE, "no open Fed decision market")
    return min(candidates, key=lambda m: m.end)


def past_meetings(body: Any) -> list[Meeting]:
    """Every Fed-decision event of a Gamma /events answer, resolved or not, with the Yes tokens
    of its cut markets (for the odds of a past day; `probability` is the latest price, which
    for a resolved market is its settlement)."""
    events = body if isinstance(body, list) else [body]
    meetings: list[Meeting] = []
    for event in events:
        if not isinstance(event, dict) or not _DECISION.search(str(event.get("title", ""))):
            continue
        meeting = _meeting(event, include_closed=True)
        if meeting is not None and meeting.yes_tokens:
            meetings.append(meeting)
    return meetings


def _meeting(event: dict[str, Any], *, include_closed: bool = False) -> Meeting | None:
    markets = event.get("markets")
    if not isinstance(markets, list):
        raise BadResponse(SOURCE, "an event has no markets")
    ends: list[datetime] = []
    probability = 0.0
    tokens: list[str] = []
    for market in markets:
        if not isinstance(market, dict) or (market.get("closed") is True and not include_closed):
            continue
        end = _end(market.get("endDate"))
        if end is not None:
            ends.append(end)
        label = f"{market.get('groupItemTitle') or ''} {market.get('question') or ''}"
        if not _CUT.search(label):
            continue
        index = _yes_index(market)
        probability += bounds.probability(
            _json_list(market, "outcomePrices")[index], SOURCE, "outcomePrices"
        )
        token_ids = _json_list(market, "clobTokenIds") if market.get("clobTokenIds") else []
        if len(token_ids) > index:
            tokens.append(str(token_ids[index]))
    if not ends:
        return None
    return Meeting(
        title=str(event.get("title")),
        slug=str(event.get("slug") or ""),
        end=min(ends),
        probability=min(1.0, probability),
        yes_tokens=tokens,
    )


def _json_list(market: dict[str, Any], field: str) -> list[Any]:
    """Gamma encodes these lists as JSON strings inside the JSON."""
    raw = market.get(field)
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError as err:
        raise BadResponse(SOURCE, f"{field} is not a JSON list") from err
    if not isinstance(value, list):
        raise BadResponse(SOURCE, f"{field} is missing")
    return value


def _yes_index(market: dict[str, Any]) -> int:
    outcomes = [str(o).strip().lower() for o in _json_list(market, "outcomes")]
    if "yes" not in outcomes:
        raise BadResponse(SOURCE, "a market has no Yes outcome")
    index = outcomes.index("yes")
    if len(_json_list(market, "outcomePrices")) <= index:
        raise BadResponse(SOURCE, "outcomePrices does not match outcomes")
    return index


def _end(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        end = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return end if end.tzinfo else end.replace(tzinfo=UTC)


def parse_price_history(body: Any) -> dict[int, float]:
    """CLOB {"history": [{"t": seconds, "p": price}]} to price by hour (the last in each hour)."""
    history = body.get("history") if isinstance(body, dict) else None
    if not isinstance(history, list) or not all(isinstance(p, dict) for p in history):
        raise BadResponse(SOURCE, "history is missing")
    points: dict[int, float] = {}
    for point in sorted(history, key=lambda p: number(p.get("t"), SOURCE, "t")):
        ts = from_s(point.get("t"), SOURCE, "t")
        points[int(ts.timestamp()) // _HOUR * _HOUR] = bounds.probability(
            point.get("p"), SOURCE, "p"
        )
    return points


def sum_histories(series: list[dict[int, float]]) -> list[OddsPoint]:
    """Add the cut markets' prices hour by hour, over the hours every market has."""
    if not series:
        return []
    hours = set.intersection(*(set(s) for s in series))
    return [
        OddsPoint(
            ts=datetime.fromtimestamp(hour, UTC),
            probability=min(1.0, round(sum(s[hour] for s in series), 4)),
        )
        for hour in sorted(hours)
    ]
