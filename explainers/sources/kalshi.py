"""Kalshi (keyless public market data): the odds of a rate cut at the next FOMC meeting.

Series KXFED has one event per meeting (KXFED-27APR) with one binary market per strike: "Will
the upper bound of the federal funds rate be above 4.25% following the Fed's Apr 28, 2027
meeting?" (`strike_type` "greater", `floor_strike` 4.25). With the current upper bound U, a cut
means the new upper bound is NOT above U - 0.25, so P(cut) = 1 - P(yes) of the U - 0.25 market.
Kalshi does not state U; the caller passes it (FRED series DFEDTARU: `fred.fetch_latest`).

REST market data needs no key (CloudFront caches it ~15 s). Prices are `*_dollars` strings
(0..1), sizes `*_fp` strings; integer-cent fields are gone. `status=open` answers
`"status": "active"`. Pages follow `cursor` until it is empty. An orderbook lists resting BIDS
per side: a no-bid at 0.72 is a yes-ask at 0.28.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import httpx

from explainers.errors import BadResponse
from explainers.models import FedCutOdds
from explainers.sources import bounds
from explainers.sources.http import USER_AGENT, get_json
from explainers.sources.shape import Shape

SOURCE = "Kalshi"
HEADERS = {"User-Agent": USER_AGENT, "Accept": "application/json"}
PAGE_LIMIT = 200
MAX_PAGES = 10
#: one FOMC step; strikes are listed every quarter point
STEP_PCT = 0.25

#: the fields `cut_odds` reads from each market
MARKETS_SHAPE: Shape = (
    "markets[].ticker",
    "markets[].event_ticker",
    "markets[].title",
    "markets[].strike_type",
    "markets[].floor_strike",
    "markets[].close_time",
    "markets[].yes_bid_dollars",
    "markets[].yes_ask_dollars",
    "markets[].last_price_dollars",
)
ORDERBOOK_SHAPE: Shape = ("orderbook_fp.yes_dollars", "orderbook_fp.no_dollars")

_MEETING = re.compile(r"following the Fed's ([A-Z][a-z]{2} \d{1,2}, \d{4}) meeting")


def _close_time(market: dict[str, Any]) -> datetime:
    # a market closes in the future: only its age is bounded
    return bounds.iso_time(market.get("close_time"), SOURCE, "close_time", future_ok=True)


def markets_of(body: Any) -> tuple[list[dict[str, Any]], str]:
    """One /markets page -> (its markets, the next cursor or "")."""
    if not isinstance(body, dict):
        raise BadResponse(SOURCE, "response is not an object")
    markets = body.get("markets")
    if not isinstance(markets, list) or not all(isinstance(m, dict) for m in markets):
        raise BadResponse(SOURCE, "markets is missing")
    return markets, str(body.get("cursor") or "")


def next_meeting(
    markets: Sequence[dict[str, Any]], now: datetime
) -> tuple[str, list[dict[str, Any]]]:
    """The event (meeting) whose markets close soonest after `now`, with its markets."""
    events: dict[str, list[dict[str, Any]]] = {}
    for market in markets:
        ticker = market.get("event_ticker")
        if not isinstance(ticker, str) or not ticker:
            raise BadResponse(SOURCE, "event_ticker is missing")
        events.setdefault(ticker, []).append(market)
    upcoming = {
        ticker: min(_close_time(m) for m in group)
        for ticker, group in events.items()
        if min(_close_time(m) for m in group) > now
    }
    if not upcoming:
        raise BadResponse(SOURCE, "no open FOMC meeting market")
    chosen = min(upcoming, key=lambda t: upcoming[t])
    return chosen, events[chosen]


def yes_price(market: dict[str, Any]) -> tuple[float, str]:
    """The yes price: the bid/ask mid when both sides are quoted, else the last trade."""
    bid = bounds.optional(bounds.probability, market.get("yes_bid_dollars"), SOURCE, "yes_bid")
    ask = bounds.optional(bounds.probability, market.get("yes_ask_dollars"), SOURCE, "yes_ask")
    if bid is not None and ask is not None and 0 <= bid <= ask <= 1 and ask > 0:
        return (bid + ask) / 2, "mid"
    last = bounds.optional(
        bounds.probability, market.get("last_price_dollars"), SOURCE, "last_price"
    )
    if last is not None and 0 < last <= 1:
        return last, "last"
    raise BadResponse(SOURCE, "the market has no quote and no last price")


def cut_odds(
    markets: Sequence[dict[str, Any]], current_upper_pct: float, now: datetime
) -> FedCutOdds:
    """P(cut) at the next meeting = 1 - P(upper bound above U - 0.25%), in percent."""
    event_ticker, group = next_meeting(markets, now)
    strike = round(current_upper_pct - STEP_PCT, 4)
    market = next(
        (
            m
            for m in group
            if m.get("strike_type") == "greater"
            and abs(bounds.rate_pct(m.get("floor_strike"), SOURCE, "floor_strike") - strike) < 1e-6
        ),
        None,
    )
    if market is None:
        raise BadResponse(SOURCE, f"no market above {strike:.2f}% for {event_ticker}")
    price, basis = yes_price(market)
    title = str(market.get("title") or "")
    found = _MEETING.search(title)
    if found:
        meeting_date = datetime.strptime(found.group(1), "%b %d, %Y").date()
        meeting = f"FOMC {found.group(1)}"
    else:
        meeting_date = _close_time(market).date()
        meeting = f"FOMC {meeting_date:%b} {meeting_date.day}, {meeting_date.year}"
    ticker = str(market.get("ticker") or "")
    return FedCutOdds(
        source=SOURCE,
        as_of=now,
        cut_pct=round((1 - price) * 100, 2),
        meeting=meeting,
        meeting_date=meeting_date,
        event_ticker=event_ticker,
        ticker=ticker,
        title=title,
        yes_price=price,
        price_basis=basis,
        current_upper_pct=current_upper_pct,
    )


async def fetch_markets(
    client: httpx.AsyncClient, base_url: str, series: str = "KXFED"
) -> list[dict[str, Any]]:
    """Every open market of a series, following `cursor` (at most MAX_PAGES pages)."""
    markets: list[dict[str, Any]] = []
    cursor = ""
    for _ in range(MAX_PAGES):
        params: dict[str, Any] = {"series_ticker": series, "status": "open", "limit": PAGE_LIMIT}
        if cursor:
            params["cursor"] = cursor
        page, cursor = markets_of(
            await get_json(client, SOURCE, f"{base_url}/markets", params=params, headers=HEADERS)
        )
        markets.extend(page)
        if not cursor or not page:
            break
    return markets


async def fetch_cut_odds(
    client: httpx.AsyncClient,
    base_url: str,
    current_upper_pct: float,
    now: datetime,
    series: str = "KXFED",
) -> FedCutOdds:
    """Cut odds at the next FOMC meeting, given the current upper bound of the target range."""
    return cut_odds(await fetch_markets(client, base_url, series), current_upper_pct, now)


def parse_orderbook(body: Any) -> tuple[float | None, float | None]:
    """/markets/{ticker}/orderbook -> (best yes bid, best yes ask); None for an empty side.

    Both sides are resting bids: the best yes ask is 1 - the best no bid.
    """
    book = body.get("orderbook_fp") if isinstance(body, dict) else None
    if not isinstance(book, dict):
        raise BadResponse(SOURCE, "orderbook_fp is missing")

    def best(side: str) -> float | None:
        levels = book.get(side)
        if levels is None:
            return None  # Kalshi leaves out (or nulls) an empty side
        if not isinstance(levels, list):
            raise BadResponse(SOURCE, f"{side} is not a list")
        prices = [
            bounds.probability(level[0], SOURCE, side)
            for level in levels
            if isinstance(level, list)
            and len(level) >= 2
            and bounds.holding(level[1], SOURCE, side) > 0
        ]
        return max(prices) if prices else None

    yes_bid, no_bid = best("yes_dollars"), best("no_dollars")
    return yes_bid, (None if no_bid is None else round(1 - no_bid, 4))


async def fetch_orderbook(
    client: httpx.AsyncClient, base_url: str, ticker: str, depth: int = 3
) -> tuple[float | None, float | None]:
    """Best yes bid and ask of one market (evidence for the odds' price)."""
    body = await get_json(
        client,
        SOURCE,
        f"{base_url}/markets/{ticker}/orderbook",
        params={"depth": depth},
        headers=HEADERS,
    )
    return parse_orderbook(body)
