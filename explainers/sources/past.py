"""Each source's history over a range of days, for answers about a past day and backtests.

One call per source covers the whole range (paged only where the upstream caps a page), so a
365-day backtest costs about as many requests as one past day: the range is read once, then
sliced per day. Parsing reuses each source module's own parser.

History limits (documented by the providers): keyless CoinGecko serves the past 365 days only
(error 10012 beyond); Coinbase daily and hourly candles go back to July 2015 (300 per page);
OKX hourly `history-candles` 100 per page; alternative.me's index starts 1 February 2018 with
missing days; Farside's all-data table starts 11 January 2024; FRED's SP500 covers ten years
(Yahoo's daily chart is the fallback). Polymarket's CLOB serves a resolved market's price history
at 12-hour fidelity at best, and for some resolved markets not at all (an empty `history`):
those days' cut odds stay unknown.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import httpx

from explainers.errors import BadResponse, SourceError
from explainers.models import EtfFlows, FearGreed, OddsPoint, PricePoint, PriceSeries, YieldDay
from explainers.settings import SourceSettings
from explainers.sources import coingecko, farside, feargreed, fred, okx, polymarket, treasury, yahoo
from explainers.sources.http import (
    BROWSER_USER_AGENT,
    USER_AGENT,
    csv_body,
    from_s,
    get,
    get_json,
    json_body,
    number,
)

COINBASE_PAGE = 300  # candles per request
OKX_PAGE = 100
#: pages of one source requested at once
PAGES_AT_ONCE = 8
DAY_S = 86_400
HOUR_S = 3_600
FARSIDE_ALL_DATA_SLUG = "bitcoin-etf-flow-all-data"
FARSIDE_ALL_DATA_URL = "https://farside.co.uk/bitcoin-etf-flow-all-data/"
#: minutes per point of a cut market's price history: resolved markets are served at 12 hours
#: or coarser only (finer asks answer an empty history), and a day's odds need no more
ODDS_FIDELITY_MIN = 720
#: the FOMC meets every six to eight weeks: the meeting next after a range's last day ends
#: within this much of it
MEETING_HORIZON = timedelta(days=70)
#: days of a meeting's history before the first day it covers (the 7-day change, with slack)
ODDS_LEAD = timedelta(days=8)

#: an hour's close by the hour's start (UTC)
Hourly = dict[datetime, float]


def day_end(day: date) -> datetime:
    """The end of a UTC day (00:00 UTC of the next)."""
    return datetime.combine(day + timedelta(days=1), time(), UTC)


async def coingecko_range(
    client: httpx.AsyncClient, cfg: SourceSettings, coin_id: str, start: datetime, end: datetime
) -> PriceSeries:
    """/coins/{id}/market_chart/range: hourly points up to 90 days, daily (00:00 UTC) beyond.
    A keyless request older than 365 days fails (error 10012): the caller falls back."""
    if not coin_id or not all(ch.isalnum() or ch in "-_." for ch in coin_id):
        raise ValueError("not a CoinGecko coin id")
    body = await get_json(
        client,
        coingecko.SOURCE,
        f"{cfg.coingecko_url}/coins/{coin_id}/market_chart/range",
        params={
            "vs_currency": "usd",
            "from": str(int(start.timestamp())),
            "to": str(int(end.timestamp())),
        },
        headers=coingecko._headers(cfg),
        follow_redirects=coingecko._follow(cfg),
    )
    return coingecko.parse_market_chart(body, coin_id)


async def _pages(
    start: datetime,
    end: datetime,
    step: timedelta,
    fetch: Callable[[datetime, datetime], Awaitable[list[Any]]],
) -> list[Any]:
    """Every page of [start, end), at most PAGES_AT_ONCE in flight (a year of hourly candles is
    88 OKX pages: one after another they would take 88 round trips)."""
    bounds: list[tuple[datetime, datetime]] = []
    page_start = start
    while page_start < end:
        page_end = min(end, page_start + step)
        bounds.append((page_start, page_end))
        page_start = page_end
    gate = asyncio.Semaphore(PAGES_AT_ONCE)

    async def one(a: datetime, b: datetime) -> list[Any]:
        async with gate:
            return await fetch(a, b)

    pages = await asyncio.gather(*(one(a, b) for a, b in bounds))
    return [row for page in pages for row in page]


def _coinbase_rows(body: Any) -> list[tuple[datetime, float]]:
    if not isinstance(body, list):
        raise BadResponse("Coinbase", "candles are not a list")
    rows: list[tuple[datetime, float]] = []
    for row in body:
        if not isinstance(row, list) or len(row) < 5:
            raise BadResponse("Coinbase", "candle row has an unexpected shape")
        rows.append((from_s(row[0], "Coinbase", "time"), number(row[4], "Coinbase", "close")))
    return rows


async def coinbase_candles(
    client: httpx.AsyncClient,
    cfg: SourceSettings,
    product: str,
    start: datetime,
    end: datetime,
    granularity_s: int,
) -> dict[datetime, float]:
    """Closes by candle start over [start, end), 300 candles a request."""

    async def page(a: datetime, b: datetime) -> list[Any]:
        body = await get_json(
            client,
            "Coinbase",
            f"{cfg.coinbase_url}/products/{product}/candles",
            params={
                "granularity": str(granularity_s),
                "start": a.isoformat().replace("+00:00", "Z"),
                "end": (b - timedelta(seconds=1)).isoformat().replace("+00:00", "Z"),
            },
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        )
        return _coinbase_rows(body)

    rows = await _pages(start, end, timedelta(seconds=granularity_s * COINBASE_PAGE), page)
    return {ts: close for ts, close in rows if start <= ts < end}


async def coinbase_daily(
    client: httpx.AsyncClient, cfg: SourceSettings, product: str, start: datetime, end: datetime
) -> PriceSeries:
    """Daily closes as a price series stamped at each day's end (the CoinGecko fallback)."""
    closes = await coinbase_candles(client, cfg, product, start, end, DAY_S)
    if not closes:
        raise BadResponse("Coinbase", "no daily candles in the range")
    points = [PricePoint(ts=ts + timedelta(days=1), price=p) for ts, p in sorted(closes.items())]
    return PriceSeries(source="Coinbase", as_of=points[-1].ts, symbol=product, points=points)


async def okx_hourly(
    client: httpx.AsyncClient, cfg: SourceSettings, inst_id: str, start: datetime, end: datetime
) -> Hourly:
    """Confirmed 1-hour closes over [start, end) from `history-candles` (100 a request,
    newest first: each page asks for the candles older than `after`)."""

    async def page(a: datetime, b: datetime) -> list[Any]:
        body = await get_json(
            client,
            okx.SOURCE,
            f"{cfg.okx_url}/api/v5/market/history-candles",
            params={
                "instId": inst_id,
                "bar": "1H",
                "after": str(int(b.timestamp() * 1000)),
                "limit": str(OKX_PAGE),
            },
            headers=okx.HEADERS,
        )
        rows: list[tuple[datetime, float]] = []
        for row in okx.okx_data(body):
            if not isinstance(row, list) or len(row) < 9:
                raise BadResponse(okx.SOURCE, "candle row has an unexpected shape")
            if str(row[8]) == "1":
                rows.append(
                    (
                        datetime.fromtimestamp(int(row[0]) / 1000, UTC),
                        number(row[4], okx.SOURCE, "close"),
                    )
                )
        return rows

    rows = await _pages(start, end, timedelta(hours=OKX_PAGE), page)
    return {ts: close for ts, close in rows if start <= ts < end}


async def fear_greed_all(client: httpx.AsyncClient, cfg: SourceSettings) -> FearGreed:
    """The whole index history (`limit=0`), oldest first; days can be missing."""
    return await feargreed.fetch_fear_greed(client, cfg, 0)


async def etf_all(client: httpx.AsyncClient, cfg: SourceSettings) -> EtfFlows:
    """Farside's all-data table (every day since the ETFs launched), through WordPress's REST
    view of the page like the live table."""
    response = await get(
        client,
        farside.SOURCE,
        f"{cfg.farside_url}/wp-json/wp/v2/pages",
        params={"slug": FARSIDE_ALL_DATA_SLUG},
        headers={"User-Agent": BROWSER_USER_AGENT},
        challenge_blocks=True,
    )
    days = farside.parse_farside_html(farside._rendered_html(json_body(response, farside.SOURCE)))
    flows = farside.flows_from_days(days)
    return flows.model_copy(update={"url": FARSIDE_ALL_DATA_URL})


async def treasury_years(
    client: httpx.AsyncClient, cfg: SourceSettings, first: date, last: date
) -> list[YieldDay]:
    """Par yields of every calendar year the range touches (one CSV a year)."""
    days: dict[date, YieldDay] = {}
    for year in range(first.year, last.year + 1):
        for d in await treasury._year(client, cfg, year, may_be_empty=year == last.year):
            days[d.day] = d
    if not days:
        raise BadResponse(treasury.SOURCE, "no yield rows")
    return [days[d] for d in sorted(days)]


async def fred_csv(
    client: httpx.AsyncClient, cfg: SourceSettings, series: str, first: date, last: date
) -> str:
    response = await get(
        client,
        fred.SOURCE,
        f"{cfg.fred_url}/graph/fredgraph.csv",
        params={"id": series, "cosd": first.isoformat(), "coed": last.isoformat()},
        headers={"User-Agent": USER_AGENT},
    )
    return csv_body(response, fred.SOURCE)


async def fred_yields(
    client: httpx.AsyncClient, cfg: SourceSettings, first: date, last: date
) -> list[YieldDay]:
    return fred.parse_fredgraph_csv(await fred_csv(client, cfg, "DGS2,DGS10", first, last))


async def fred_index(
    client: httpx.AsyncClient, cfg: SourceSettings, key: fred.IndexKey, first: date, last: date
) -> list[tuple[date, float]]:
    """An index's daily closes (SP500 or NASDAQCOM); holidays (empty values) left out."""
    series_id, _ = fred.INDEX_SERIES[key]
    text = await fred_csv(client, cfg, series_id, first, last)
    return [(d, v) for d, v in fred.parse_series(text, series_id) if v is not None]


async def yahoo_index(
    client: httpx.AsyncClient,
    cfg: SourceSettings,
    key: yahoo.IndexKey,
    first: date,
    last: date,
    session: yahoo.YahooSession,
) -> list[tuple[date, float]]:
    """An index's daily closes from Yahoo's chart (`period1`/`period2`, daily) through the crumb
    session: the fallback when FRED does not answer for the range."""
    return await yahoo.fetch_daily_closes(client, cfg.yahoo_url, key, first, last, session=session)


@dataclass(frozen=True)
class MeetingOdds:
    """One FOMC meeting's cut markets and their summed price history over the days it was the
    next meeting; `history` is empty when Polymarket served none (`reason` says why)."""

    meeting: polymarket.Meeting
    history: list[OddsPoint]
    reason: str | None = None


async def polymarket_odds(
    client: httpx.AsyncClient, cfg: SourceSettings, first: date, last: date
) -> list[MeetingOdds]:
    """The cut odds at the next meeting over [first, last]: Gamma's Fed-decision events that
    end from `first` on (open and resolved: Gamma gives only settled events when `closed` is
    left out), then the CLOB's `prices-history` of each cut market's Yes token over the days
    its meeting was the next one, at 12-hour fidelity."""
    start = datetime.combine(first, time(), UTC)
    end = day_end(last)

    async def events(closed: str) -> list[polymarket.Meeting]:
        body = await get_json(
            client,
            polymarket.SOURCE,
            f"{cfg.polymarket_url}/events",
            params={
                "tag_slug": "fed",
                "closed": closed,
                "limit": 100,
                "end_date_min": start.isoformat().replace("+00:00", "Z"),
                "end_date_max": (end + MEETING_HORIZON).isoformat().replace("+00:00", "Z"),
            },
            headers={"User-Agent": USER_AGENT},
        )
        return polymarket.past_meetings(body)

    found: dict[str, polymarket.Meeting] = {}
    for batch in await asyncio.gather(events("false"), events("true")):
        for meeting in batch:
            found.setdefault(meeting.slug or meeting.title, meeting)
    meetings = sorted(found.values(), key=lambda m: m.end)
    # the meetings that were the next one at some moment of the range, each with its span
    spans: list[tuple[polymarket.Meeting, datetime, datetime]] = []
    since = start
    for meeting in meetings:
        if meeting.end <= start:
            continue
        spans.append((meeting, since, min(end, meeting.end)))
        if meeting.end >= end:
            break
        since = meeting.end
    if not spans:
        raise BadResponse(polymarket.SOURCE, "no Fed decision market for those days")
    gate = asyncio.Semaphore(PAGES_AT_ONCE)

    async def token_history(token: str, a: datetime, b: datetime) -> dict[int, float]:
        async with gate:
            body = await get_json(
                client,
                polymarket.SOURCE,
                f"{cfg.polymarket_clob_url}/prices-history",
                params={
                    "market": token,
                    "startTs": str(int((a - ODDS_LEAD).timestamp())),
                    "endTs": str(int(b.timestamp())),
                    "fidelity": str(ODDS_FIDELITY_MIN),
                },
                headers={"User-Agent": USER_AGENT},
            )
        return polymarket.parse_price_history(body)

    async def one(meeting: polymarket.Meeting, a: datetime, b: datetime) -> MeetingOdds:
        results = await asyncio.gather(
            *(token_history(t, a, b) for t in meeting.yes_tokens), return_exceptions=True
        )
        series: list[dict[int, float]] = []
        for result in results:
            if isinstance(result, SourceError):
                return MeetingOdds(meeting, [], f"price history: {result.detail}")
            if isinstance(result, BaseException):
                raise result
            series.append(result)
        if not all(series):
            return MeetingOdds(meeting, [], "no history served")
        return MeetingOdds(meeting, polymarket.sum_histories(series))

    return list(await asyncio.gather(*(one(m, a, b) for m, a, b in spans)))
