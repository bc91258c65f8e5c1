"""Yahoo Finance chart API v8: the S&P 500 (^GSPC) and Nasdaq Composite (^IXIC) last session.

`chartPreviousClose` is the close before the requested range, not before the last session, so
the previous close is read from the daily series itself. Yahoo needs a browser User-Agent.
"""

from __future__ import annotations

import re
import time as monotonic_time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

from explainers.errors import BadResponse, RateLimited, SourceError
from explainers.settings import SourceSettings
from explainers.sources import bounds
from explainers.sources.http import (
    BROWSER_USER_AGENT,
    CircuitBreaker,
    check_status,
    from_s,
    get,
    json_body,
    optional_number,
    send,
)
from explainers.sources.shape import Shape, require_shape
from explainers.sources.stocks import StockQuote, live_label

SOURCE = "Yahoo Finance"

IndexKey = Literal["spx", "ndx"]
#: our key -> (Yahoo symbol, URL path segment, display name)
SYMBOLS: dict[str, tuple[str, str, str]] = {
    "spx": ("^GSPC", "%5EGSPC", "S&P 500"),
    "ndx": ("^IXIC", "%5EIXIC", "Nasdaq Composite"),
}


def _sessions(result: dict[str, Any]) -> list[tuple[int, float | None]]:
    """(timestamp, close) pairs of the daily series; a close may be null for a live session."""
    stamps = result.get("timestamp")
    quotes = (result.get("indicators") or {}).get("quote") or [{}]
    closes = quotes[0].get("close") if isinstance(quotes[0], dict) else None
    if not isinstance(stamps, list) or not isinstance(closes, list) or len(stamps) != len(closes):
        raise BadResponse(SOURCE, "the daily series is missing")
    return [
        (
            int(from_s(t, SOURCE, "timestamp").timestamp()),
            bounds.optional(bounds.index_level, c, SOURCE, "close"),
        )
        for t, c in zip(stamps, closes, strict=True)
    ]


def _change(last: float, previous_close: float) -> float:
    return bounds.check(
        bounds.market_change, (last - previous_close) / previous_close * 100, SOURCE, "day change"
    )


def _exchange_date(ts: int, meta: dict[str, Any]) -> date:
    """A timestamp's date in the exchange's own time zone (a session date)."""
    moment = datetime.fromtimestamp(ts, UTC)
    try:
        return moment.astimezone(ZoneInfo(str(meta.get("exchangeTimezoneName")))).date()
    except (ZoneInfoNotFoundError, ValueError):
        offset = optional_number(meta.get("gmtoffset")) or 0.0
        return moment.astimezone(timezone(timedelta(seconds=offset))).date()


def _is_open(meta: dict[str, Any], market_time: datetime) -> bool:
    regular = (meta.get("currentTradingPeriod") or {}).get("regular") or {}
    start = optional_number(regular.get("start"))
    end = optional_number(regular.get("end"))
    if start is None or end is None:
        return False
    return start <= market_time.timestamp() < end


# --- crumb-authenticated chart with a 429 circuit breaker -----------------------------------
#
# Yahoo increasingly answers bare chart requests with 401 "Invalid Crumb" or 429. The flow that
# survives: GET a page that sets Yahoo's session cookie (fc.yahoo.com, any status, e.g. `A3`),
# GET /v1/test/getcrumb on query1 (query2 as fallback) with that cookie and a browser agent (the
# body is the crumb as plain text; an HTML page or an empty body is a failure), then pass
# `crumb=` and the same cookie on the chart request. A 401/403 means a stale crumb: fetch a new
# one once. A 429 opens the breaker: Yahoo is not asked again until it closes.

#: the fields `parse_quote` reads
CHART_SHAPE: Shape = (
    "chart.result[0].meta.regularMarketPrice",
    "chart.result[0].meta.regularMarketTime",
    "chart.result[0].meta.exchangeTimezoneName|gmtoffset",
    "chart.result[0].timestamp",
    "chart.result[0].indicators.quote[0].close",
)
#: a crumb is a short token; anything else is a page or an error text
_CRUMB = re.compile(r"^[A-Za-z0-9./_\-]{4,64}$")
#: the previous close must be within this many days of the session (a longer gap is a hole)
MAX_SESSION_GAP_DAYS = 10


class YahooSession:
    """Yahoo's cookie and crumb, and the breaker that stops asking after a 429.

    One per process, shared by every Yahoo request; `clock` (monotonic seconds) is for tests.
    """

    def __init__(
        self,
        cookie_url: str,
        crumb_hosts: Sequence[str],
        breaker_s: float,
        clock: Callable[[], float] = monotonic_time.monotonic,
    ) -> None:
        self.cookie_url = cookie_url
        self.crumb_hosts = list(crumb_hosts)
        self.breaker = CircuitBreaker(breaker_s, clock)
        self.cookie: str | None = None
        self.crumb: str | None = None

    @classmethod
    def from_settings(cls, cfg: SourceSettings) -> YahooSession:
        return cls(
            cfg.yahoo_cookie_url, [cfg.yahoo_url, cfg.yahoo_fallback_url], cfg.yahoo_breaker_s
        )

    def forget(self) -> None:
        self.cookie = None
        self.crumb = None

    async def credentials(self, client: httpx.AsyncClient) -> tuple[str, str]:
        """(Cookie header, crumb), fetched once and kept until Yahoo refuses them."""
        if self.cookie is None or self.crumb is None:
            self.cookie = await self._cookie(client)
            self.crumb = await self._crumb(client, self.cookie)
        return self.cookie, self.crumb

    async def _cookie(self, client: httpx.AsyncClient) -> str:
        # any status will do (fc.yahoo.com answers 404): only its Set-Cookie matters
        response = await send(
            client,
            SOURCE,
            "GET",
            self.cookie_url,
            headers={"User-Agent": BROWSER_USER_AGENT},
            follow_redirects=False,
        )
        if response.status_code == 429:
            check_status(response, SOURCE)
        cookies = [f"{c.name}={c.value}" for c in response.cookies.jar if c.value]
        if not cookies:
            raise BadResponse(SOURCE, "no session cookie was set")
        return "; ".join(cookies)

    async def _crumb(self, client: httpx.AsyncClient, cookie: str) -> str:
        failure: SourceError | None = None
        for host in self.crumb_hosts:
            try:
                response = await get(
                    client,
                    SOURCE,
                    f"{host}/v1/test/getcrumb",
                    headers={"User-Agent": BROWSER_USER_AGENT, "Cookie": cookie},
                )
                return parse_crumb(response.text)
            except RateLimited:
                raise
            except SourceError as err:
                failure = failure or err
        raise failure or BadResponse(SOURCE, "no crumb host")


def parse_crumb(text: str) -> str:
    """The getcrumb body: the crumb as plain text; a page or an empty body is a failure."""
    crumb = text.strip()
    if not crumb:
        raise BadResponse(SOURCE, "empty crumb")
    if crumb[:1] == "<":
        raise BadResponse(SOURCE, "an HTML page instead of a crumb")
    if not _CRUMB.match(crumb):
        raise BadResponse(SOURCE, "the crumb has an unexpected form")
    return crumb


async def fetch_quote(
    client: httpx.AsyncClient, base_url: str, key: IndexKey, *, session: YahooSession
) -> StockQuote:
    """The index's last session against the previous close, through the crumb flow.

    While the breaker is open this raises `RateLimited` at once, without a request.
    """
    session.breaker.check(SOURCE)
    try:
        return parse_quote(await _chart(client, base_url, key, session), key)
    except RateLimited as err:
        session.breaker.trip(err.retry_after)
        raise


async def _chart(
    client: httpx.AsyncClient,
    base_url: str,
    key: IndexKey,
    session: YahooSession,
    params: dict[str, str] | None = None,
) -> Any:
    _, path, _ = SYMBOLS[key]
    query = params or {"range": "5d", "interval": "1d"}
    for attempt in (1, 2):
        cookie, crumb = await session.credentials(client)
        response = await send(
            client,
            SOURCE,
            "GET",
            f"{base_url}/v8/finance/chart/{path}",
            params={**query, "crumb": crumb},
            headers={"User-Agent": BROWSER_USER_AGENT, "Cookie": cookie},
        )
        if response.status_code in (401, 403) and attempt == 1:
            session.forget()  # a stale crumb or cookie: one fresh pair
            continue
        if response.status_code == 401:
            raise BadResponse(SOURCE, "the crumb was refused (HTTP 401)")
        if response.status_code == 404:
            # an unknown symbol answers a JSON error whose description says so
            body = json_body(response, SOURCE)
            parse_quote(body, key)
        return json_body(check_status(response, SOURCE), SOURCE)
    raise AssertionError("unreachable")


def _chart_result(body: Any) -> tuple[Any, Any]:
    """A v8 chart body's first result and its meta; its error's description when it has none."""
    chart = body.get("chart") if isinstance(body, dict) else None
    if not isinstance(chart, dict):
        raise BadResponse(SOURCE, "chart is missing")
    if not chart.get("result"):
        error = chart.get("error")
        detail = error.get("description") if isinstance(error, dict) else None
        raise BadResponse(SOURCE, str(detail or "no chart data"))
    require_shape(body, CHART_SHAPE, SOURCE)
    result = chart["result"][0]
    return result, result["meta"]


def parse_quote(body: Any, key: IndexKey) -> StockQuote:
    """A v8 chart body (interval=1d) -> the session of `regularMarketTime` against the last
    close of an earlier session; all-null holiday rows are skipped, dates are the exchange's."""
    result, meta = _chart_result(body)
    last = bounds.index_level(meta.get("regularMarketPrice"), SOURCE, "regularMarketPrice")
    market_time = from_s(meta.get("regularMarketTime"), SOURCE, "regularMarketTime")
    session_day = _exchange_date(int(market_time.timestamp()), meta)
    earlier = [(day, close) for day, close in daily_closes(result, meta) if day < session_day]
    if not earlier:
        raise BadResponse(SOURCE, "no close before the last session")
    previous_day, previous_close = earlier[-1]
    if (session_day - previous_day).days > MAX_SESSION_GAP_DAYS:
        raise BadResponse(SOURCE, "the daily series does not reach the last session")
    market_open = _is_open(meta, market_time)
    _, _, name = SYMBOLS[key]
    return StockQuote(
        source=SOURCE,
        as_of=market_time,
        symbol=key,
        name=name,
        last=last,
        previous_close=previous_close,
        change_pct=_change(last, previous_close),
        session=session_day,
        market_open=market_open,
        session_label=live_label(session_day, market_open),
    )


def daily_closes(result: dict[str, Any], meta: dict[str, Any]) -> list[tuple[date, float]]:
    """(exchange date, close) of each row with a close, oldest first. `timestamp` is the
    session START in seconds (13:30Z for ^GSPC, 07:00Z for ^VIX), not midnight."""
    return [
        (_exchange_date(ts, meta), close)
        for ts, close in sorted(_sessions(result))
        if close is not None
    ]


async def fetch_daily_closes(
    client: httpx.AsyncClient,
    base_url: str,
    key: IndexKey,
    first: date,
    last: date,
    *,
    session: YahooSession,
) -> list[tuple[date, float]]:
    """The index's daily closes of the sessions in [first, last] (exchange dates), from the
    chart with `period1`/`period2` (UTC day bounds) through the crumb flow. A session still
    trading is left out: its close is not known yet."""
    session.breaker.check(SOURCE)
    start = datetime.combine(first, time(), UTC)
    end = datetime.combine(last + timedelta(days=1), time(), UTC)
    params = {
        "period1": str(int(start.timestamp())),
        "period2": str(int(end.timestamp())),
        "interval": "1d",
    }
    try:
        body = await _chart(client, base_url, key, session, params)
    except RateLimited as err:
        session.breaker.trip(err.retry_after)
        raise
    return parse_daily_closes(body, first, last)


def parse_daily_closes(body: Any, first: date, last: date) -> list[tuple[date, float]]:
    """A v8 chart body (interval=1d, any range) -> (exchange date, close) in [first, last];
    all-null holiday rows are skipped, and the live session while the market is open."""
    result, meta = _chart_result(body)
    rows = daily_closes(result, meta)
    market_time = from_s(meta.get("regularMarketTime"), SOURCE, "regularMarketTime")
    if _is_open(meta, market_time):
        live = _exchange_date(int(market_time.timestamp()), meta)
        rows = [(d, c) for d, c in rows if d != live]
    rows = [(d, c) for d, c in rows if first <= d <= last]
    if not rows:
        raise BadResponse(SOURCE, "no session in the range")
    return rows
