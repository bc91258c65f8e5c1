"""Yahoo Finance chart API v8: the S&P 500 (^GSPC) and Nasdaq Composite (^IXIC) last session.

`chartPreviousClose` is the close before the requested range, not before the last session, so
the previous close is read from the daily series itself. Yahoo needs a browser User-Agent.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

from explainers.errors import BadResponse
from explainers.models import IndexQuote
from explainers.settings import SourceSettings
from explainers.sources.http import (
    BROWSER_USER_AGENT,
    from_s,
    get_json,
    number,
    optional_number,
)

SOURCE = "Yahoo Finance"

IndexKey = Literal["spx", "ndx"]
#: our key -> (Yahoo symbol, URL path segment, display name)
SYMBOLS: dict[str, tuple[str, str, str]] = {
    "spx": ("^GSPC", "%5EGSPC", "S&P 500"),
    "ndx": ("^IXIC", "%5EIXIC", "Nasdaq Composite"),
}


async def fetch_index(client: httpx.AsyncClient, cfg: SourceSettings, key: IndexKey) -> IndexQuote:
    """The index's last price against the previous session's close."""
    _, path, _ = SYMBOLS[key]
    # an unknown symbol answers 404 with a JSON error; get() reports it as a refused request
    body = await get_json(
        client,
        SOURCE,
        f"{cfg.yahoo_url}/v8/finance/chart/{path}",
        params={"range": "5d", "interval": "1d"},
        headers={"User-Agent": BROWSER_USER_AGENT},
    )
    return parse_chart(body, key)


def parse_chart(body: Any, key: IndexKey) -> IndexQuote:
    """A v8 chart body (range=5d, interval=1d) to the last session's quote."""
    chart = body.get("chart") if isinstance(body, dict) else None
    if not isinstance(chart, dict):
        raise BadResponse(SOURCE, "chart is missing")
    results = chart.get("result")
    if not results:
        error = chart.get("error")
        detail = error.get("description") if isinstance(error, dict) else None
        raise BadResponse(SOURCE, str(detail or "no chart data"))
    result = results[0]
    meta = result.get("meta") if isinstance(result, dict) else None
    if not isinstance(meta, dict):
        raise BadResponse(SOURCE, "meta is missing")
    last = number(meta.get("regularMarketPrice"), SOURCE, "regularMarketPrice")
    market_time = from_s(meta.get("regularMarketTime"), SOURCE, "regularMarketTime")
    sessions = _sessions(result)
    if not sessions:
        raise BadResponse(SOURCE, "the daily series is empty")
    last_ts = sessions[-1][0]
    previous = [close for _, close in sessions[:-1] if close is not None]
    if previous:
        previous_close = previous[-1]
    else:
        previous_close = number(meta.get("previousClose"), SOURCE, "previousClose")
    _, _, name = SYMBOLS[key]
    return IndexQuote(
        source=SOURCE,
        as_of=market_time,
        symbol=key,
        name=name,
        last=last,
        previous_close=previous_close,
        change_pct=(last - previous_close) / previous_close * 100,
        session=_exchange_date(last_ts, meta),
        market_open=_is_open(meta, market_time),
    )


def _sessions(result: dict[str, Any]) -> list[tuple[int, float | None]]:
    """(timestamp, close) pairs of the daily series; a close may be null for a live session."""
    stamps = result.get("timestamp")
    quotes = (result.get("indicators") or {}).get("quote") or [{}]
    closes = quotes[0].get("close") if isinstance(quotes[0], dict) else None
    if not isinstance(stamps, list) or not isinstance(closes, list) or len(stamps) != len(closes):
        raise BadResponse(SOURCE, "the daily series is missing")
    return [
        (int(number(t, SOURCE, "timestamp")), optional_number(c))
        for t, c in zip(stamps, closes, strict=True)
    ]


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
