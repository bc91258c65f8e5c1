"""FRED's keyless fredgraph CSV: 2-year (DGS2) and 10-year (DGS10) Treasury yields, in percent.

"." marks a date without a value (a bond-market holiday): None, never 0. The header of the date
column is "observation_date" (older files: "DATE").
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

import httpx

from explainers.errors import BadResponse
from explainers.models import MacroKey, MacroQuote, YieldDay, Yields
from explainers.settings import SourceSettings
from explainers.sources import bounds
from explainers.sources.http import USER_AGENT, csv_body, get, text_body
from explainers.sources.shape import check_csv_header
from explainers.sources.stocks import StockQuote, close_label

SOURCE = "FRED"
LOOKBACK_DAYS = 45  # bounds the download; enough sessions for a 5-day comparison

IndexKey = Literal["spx", "ndx"]


async def _download(
    client: httpx.AsyncClient, base_url: str, series: str, today: date | None
) -> httpx.Response:
    """fredgraph.csv of one or more series ("DGS2,DGS10"), the last LOOKBACK_DAYS only."""
    since = (today or datetime.now(UTC).date()) - timedelta(days=LOOKBACK_DAYS)
    return await get(
        client,
        SOURCE,
        f"{base_url}/graph/fredgraph.csv",
        params={"id": series, "cosd": since.isoformat()},
        headers={"User-Agent": USER_AGENT},
    )


async def fetch_yields(
    client: httpx.AsyncClient, cfg: SourceSettings, *, today: date | None = None
) -> Yields:
    """Recent DGS2 and DGS10 observations, oldest first."""
    response = await _download(client, cfg.fred_url, "DGS2,DGS10", today)
    days = parse_fredgraph_csv(text_body(response, SOURCE))
    reported = [d.day for d in days if d.two_year is not None or d.ten_year is not None]
    if not reported:
        raise BadResponse(SOURCE, "no yield observations")
    # daily series are published after the session: as of the end of the latest day
    as_of = datetime.combine(max(reported) + timedelta(days=1), time(), UTC)
    return Yields(source=SOURCE, as_of=as_of, days=days)


def parse_fredgraph_csv(text: str) -> list[YieldDay]:
    """fredgraph.csv rows to YieldDays, oldest first; a series absent from the file is None."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    fields = [f.strip() for f in reader.fieldnames or []]
    date_col = next((f for f in fields if f in ("observation_date", "DATE")), None)
    if date_col is None or ("DGS2" not in fields and "DGS10" not in fields):
        raise BadResponse(SOURCE, "the CSV has no date, DGS2 or DGS10 column")
    reader.fieldnames = fields
    days: list[YieldDay] = []
    for row in reader:
        try:
            day = date.fromisoformat((row.get(date_col) or "").strip())
        except ValueError as err:
            raise BadResponse(SOURCE, "a row has no valid date") from err
        bounds.day(day, SOURCE, "observation_date")
        days.append(
            YieldDay(
                day=day,
                two_year=_yield(row.get("DGS2"), "DGS2"),
                ten_year=_yield(row.get("DGS10"), "DGS10"),
            )
        )
    return sorted(days, key=lambda d: d.day)


def _yield(raw: str | None, field: str) -> float | None:
    """A yield in percent; FRED's "." (no value that day) is None, never 0."""
    value = (raw or "").strip()
    if value == ".":
        return None
    return bounds.optional(bounds.rate_pct, value, SOURCE, field)


# --- one series (the stock indices' end-of-day fallback) ------------------------------------
#
# fredgraph.csv?id=SP500 (or NASDAQCOM): current downloads have the header
# `observation_date,<ID>` and an EMPTY value on market holidays (`2021-04-02,`); older files use
# `DATE` and "." (both mean missing: None, never 0). NASDAQCOM has 3 decimals. Series differ in
# calendar, so they are never joined by row.

#: our index key -> (FRED series, display name)
INDEX_SERIES: dict[str, tuple[str, str]] = {
    "spx": ("SP500", "S&P 500"),
    "ndx": ("NASDAQCOM", "Nasdaq Composite"),
}


def series_columns(series_id: str) -> tuple[str, ...]:
    """The header columns `parse_series` reads (for `shape.check_csv_header`)."""
    return ("observation_date|DATE", series_id)


def parse_series(text: str, series_id: str) -> list[tuple[date, float | None]]:
    """One fredgraph series: (date, value or None when missing), oldest first."""
    problems = check_csv_header(text, series_columns(series_id))
    if problems:
        raise BadResponse(SOURCE, problems[0])
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    reader.fieldnames = [f.strip() for f in reader.fieldnames or []]
    date_col = "observation_date" if "observation_date" in reader.fieldnames else "DATE"
    rows: dict[date, float | None] = {}
    for row in reader:
        raw_day = (row.get(date_col) or "").strip()
        if not raw_day:
            continue  # a trailing blank line
        try:
            day = date.fromisoformat(raw_day)
        except ValueError as err:
            raise BadResponse(SOURCE, "a row has no valid date") from err
        bounds.day(day, SOURCE, "observation_date")
        value = (row.get(series_id) or "").strip()
        # "." and "" mark a day without a value: None; anything else must be a finite number
        rows[day] = (
            None if value == "." else bounds.optional(bounds.number, value, SOURCE, series_id)
        )
    return sorted(rows.items())


def index_close_from_series(text: str, key: IndexKey) -> StockQuote:
    """The daily change between the last two valid observations of the index's series."""
    series_id, name = INDEX_SERIES[key]
    valid = [(day, value) for day, value in parse_series(text, series_id) if value is not None]
    if len(valid) < 2:
        raise BadResponse(SOURCE, f"fewer than two {series_id} observations")
    (_, previous), (day, last) = valid[-2], valid[-1]
    bounds.check(bounds.index_level, previous, SOURCE, series_id)
    bounds.check(bounds.index_level, last, SOURCE, series_id)
    return StockQuote(
        source=SOURCE,
        # an end-of-day figure: as of the end of its day
        as_of=datetime.combine(day + timedelta(days=1), time(), UTC),
        symbol=key,
        name=name,
        last=last,
        previous_close=previous,
        change_pct=bounds.check(
            bounds.market_change, (last - previous) / previous * 100, SOURCE, "day change"
        ),
        session=day,
        market_open=False,
        session_label=close_label(day),
    )


async def fetch_index_close(
    client: httpx.AsyncClient, base_url: str, key: IndexKey, *, today: date | None = None
) -> StockQuote:
    """The index's last daily close on FRED against the one before (end-of-day fallback)."""
    series_id, _ = INDEX_SERIES[key]
    response = await _download(client, base_url, series_id, today)
    return index_close_from_series(csv_body(response, SOURCE), key)


async def fetch_latest(
    client: httpx.AsyncClient, base_url: str, series_id: str, *, today: date | None = None
) -> tuple[date, float]:
    """The latest valid observation of one series (e.g. DFEDTARU, the target range's upper
    bound, for Kalshi's cut odds)."""
    response = await _download(client, base_url, series_id, today)
    valid = [
        (day, value)
        for day, value in parse_series(csv_body(response, SOURCE), series_id)
        if value is not None
    ]
    if not valid:
        raise BadResponse(SOURCE, f"no {series_id} observation")
    return valid[-1]


# --- markets outside crypto: VIX, the broad dollar index, USD/JPY ---------------------------
#
# Each series is read on its own (their calendars differ: DTWEXBGS has values on some US
# holidays, DEXJPUS multi-week blank runs, VIXCLS blanks on US holidays), so nothing is joined
# by row. The day's change is against the previous observation, only if that is at most
# MAX_GAP_DAYS before (after a blank run the change is unknown, never 0).

#: our key -> FRED series
MACRO_SERIES: dict[MacroKey, str] = {"vix": "VIXCLS", "dollar": "DTWEXBGS", "usdjpy": "DEXJPUS"}
MAX_GAP_DAYS = 5


def macro_quote(text: str, key: MacroKey) -> MacroQuote:
    """The latest observation of the series and the one before it (within MAX_GAP_DAYS)."""
    series_id = MACRO_SERIES[key]
    valid = [
        (day, bounds.check(bounds.macro_level, value, SOURCE, series_id))
        for day, value in parse_series(text, series_id)
        if value is not None
    ]
    if not valid:
        raise BadResponse(SOURCE, f"no {series_id} observation")
    day, value = valid[-1]
    previous = valid[-2] if len(valid) > 1 else None
    if previous is not None and (day - previous[0]).days > MAX_GAP_DAYS:
        previous = None
    return MacroQuote(
        source=SOURCE,
        as_of=datetime.combine(day + timedelta(days=1), time(), UTC),
        key=key,
        series=series_id,
        day=day,
        value=value,
        previous_day=previous[0] if previous else None,
        previous=previous[1] if previous else None,
    )


async def fetch_macro(
    client: httpx.AsyncClient, base_url: str, key: MacroKey, *, today: date | None = None
) -> MacroQuote:
    series_id = MACRO_SERIES[key]
    response = await _download(client, base_url, series_id, today)
    return macro_quote(csv_body(response, SOURCE), key)
