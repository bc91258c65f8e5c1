"""Stooq daily CSV (fallback for the indices): ^spx and ^ndq, change from the last two closes.

The daily history (`/q/d/l/`: Date,Open,High,Low,Close,Volume) and the quote CSV (`/q/l/`:
Symbol,Date,Time,Open,...) are read by one header-based reader. A symbol without data comes
back as a row of "N/D". Daily bars carry no time: a session's `as_of` is the end of its day
(00:00 UTC of the next day).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

import httpx
from pydantic import SecretStr

from explainers.errors import BadResponse, SourceError
from explainers.models import IndexQuote
from explainers.sources import bounds
from explainers.sources.http import USER_AGENT, csv_body, get
from explainers.sources.stocks import StockQuote, close_label

SOURCE = "Stooq"
LOOKBACK_DAYS = 14  # a few sessions are enough; bounds the download

IndexKey = Literal["spx", "ndx"]
#: our key -> (Stooq symbol, display name)
SYMBOLS: dict[str, tuple[str, str]] = {
    "spx": ("^spx", "S&P 500"),
    "ndx": ("^ndq", "Nasdaq Composite"),
}


@dataclass(frozen=True)
class Bar:
    day: date
    close: float


def parse_stooq_csv(text: str) -> list[Bar]:
    """Daily-history or quote CSV rows to bars, oldest first; an N/D row means no data."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    fields = [f.strip() for f in reader.fieldnames or []]
    if "Date" not in fields or "Close" not in fields:
        # Stooq answers plain text (e.g. a hit-limit notice) instead of CSV
        raise BadResponse(SOURCE, "not a price CSV")
    reader.fieldnames = fields
    bars: list[Bar] = []
    for row in reader:
        raw_date = (row.get("Date") or "").strip()
        raw_close = (row.get("Close") or "").strip()
        if raw_date == "N/D" or raw_close == "N/D":
            raise BadResponse(SOURCE, "no data")
        try:
            day = date.fromisoformat(raw_date)
        except ValueError as err:
            raise BadResponse(SOURCE, "a row has no valid date") from err
        bounds.day(day, SOURCE, "Date")
        bars.append(Bar(day=day, close=bounds.index_level(raw_close, SOURCE, "Close")))
    if not bars:
        raise BadResponse(SOURCE, "no data")
    return sorted(bars, key=lambda b: b.day)


def quote_from_bars(bars: list[Bar], key: IndexKey) -> IndexQuote:
    """The last bar against the one before it."""
    if len(bars) < 2:
        raise BadResponse(SOURCE, "fewer than two sessions")
    previous, last = bars[-2], bars[-1]
    _, name = SYMBOLS[key]
    return IndexQuote(
        source=SOURCE,
        as_of=datetime.combine(last.day + timedelta(days=1), time(), UTC),
        symbol=key,
        name=name,
        last=last.close,
        previous_close=previous.close,
        change_pct=bounds.check(
            bounds.market_change,
            (last.close - previous.close) / previous.close * 100,
            SOURCE,
            "day change",
        ),
        session=last.day,
    )


# --- keyed (Stooq's CSV downloads now want a key: without one, Stooq is never called) --------

#: query parameter carrying the key (not confirmed against a recorded keyed request)
KEY_PARAM = "apikey"
#: the header columns `parse_stooq_csv` reads (for `shape.check_csv_header`)
CSV_COLUMNS = ("Date", "Close")


async def fetch_quote(
    client: httpx.AsyncClient,
    base_url: str,
    key: IndexKey,
    api_key: SecretStr | None,
    *,
    today: date | None = None,
) -> StockQuote:
    """The index's last daily close against the one before, with the user's Stooq key.

    Without a key this raises `SourceError` ("no API key is set") before any request. An HTML
    page served with HTTP 200 (a login or limit page) is a bad response, never parsed.
    """
    if api_key is None:
        raise SourceError(SOURCE, "no API key is set")
    symbol, _ = SYMBOLS[key]
    end = today or datetime.now(UTC).date()
    response = await get(
        client,
        SOURCE,
        f"{base_url}/q/d/l/",
        params={
            "s": symbol,
            "i": "d",
            "d1": (end - timedelta(days=LOOKBACK_DAYS)).strftime("%Y%m%d"),
            "d2": end.strftime("%Y%m%d"),
            KEY_PARAM: api_key.get_secret_value(),
        },
        headers={"User-Agent": USER_AGENT},
        # the key is in the query: a redirect would carry it to wherever it points
        follow_redirects=False,
    )
    quote = quote_from_bars(parse_stooq_csv(csv_body(response, SOURCE)), key)
    return StockQuote(**quote.model_dump(), session_label=close_label(quote.session))
