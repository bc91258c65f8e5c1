"""US Treasury daily par yield curve (CSV): the 2-year and 10-year yields, in percent.

Columns are read by header name because the Treasury adds maturities over time (a "1.5 Month"
column appeared in 2025). Rows come newest first; results are oldest first. A session's `as_of`
is the end of that day (00:00 UTC of the next day): the curve is published after the close.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, time, timedelta

import httpx

from explainers.errors import BadResponse
from explainers.models import YieldDay, Yields
from explainers.settings import SourceSettings
from explainers.sources import bounds
from explainers.sources.http import USER_AGENT, get, text_body

SOURCE = "US Treasury"
MIN_SESSIONS = 6  # enough for a 5-session comparison


async def fetch_yields(client: httpx.AsyncClient, cfg: SourceSettings, today: date) -> Yields:
    """The year's daily par yields; early in January the previous year's too."""
    days = await _year(client, cfg, today.year, may_be_empty=today.month == 1)
    if len(days) < MIN_SESSIONS and today.month == 1:
        days = await _year(client, cfg, today.year - 1, may_be_empty=False) + days
    if not days:
        raise BadResponse(SOURCE, "no yield rows")
    by_day = {d.day: d for d in days}
    ordered = [by_day[d] for d in sorted(by_day)]
    return Yields(
        source=SOURCE,
        as_of=datetime.combine(ordered[-1].day + timedelta(days=1), time(), UTC),
        days=ordered,
    )


async def _year(
    client: httpx.AsyncClient, cfg: SourceSettings, year: int, *, may_be_empty: bool
) -> list[YieldDay]:
    response = await get(
        client,
        SOURCE,
        f"{cfg.treasury_url}/resource-center/data-chart-center/interest-rates/"
        f"daily-treasury-rates.csv/{year}/all",
        params={
            "type": "daily_treasury_yield_curve",
            "field_tdr_date_value": str(year),
            "page": "",
            "_format": "csv",
        },
        headers={"User-Agent": USER_AGENT},
    )
    # in the first days of January the new year has no sessions yet
    if may_be_empty and not response.text.strip():
        return []
    return parse_treasury_csv(text_body(response, SOURCE))


def parse_treasury_csv(text: str) -> list[YieldDay]:
    """Rows of the par-yield CSV to YieldDays (oldest first), by the "2 Yr" and "10 Yr" headers."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    fields = [f.strip() for f in reader.fieldnames or []]
    if "Date" not in fields or ("2 Yr" not in fields and "10 Yr" not in fields):
        raise BadResponse(SOURCE, "the yield CSV has no Date, 2 Yr or 10 Yr column")
    reader.fieldnames = fields
    days: list[YieldDay] = []
    for row in reader:
        try:
            day = datetime.strptime((row.get("Date") or "").strip(), "%m/%d/%Y").date()
        except ValueError as err:
            raise BadResponse(SOURCE, "a row has no valid date") from err
        bounds.day(day, SOURCE, "Date")
        days.append(
            YieldDay(
                day=day,
                two_year=bounds.optional(bounds.rate_pct, _cell(row.get("2 Yr")), SOURCE, "2 Yr"),
                ten_year=bounds.optional(bounds.rate_pct, _cell(row.get("10 Yr")), SOURCE, "10 Yr"),
            )
        )
    return sorted(days, key=lambda d: d.day)


def _cell(raw: str | None) -> str | None:
    """A yield cell; empty or "N/A" (a maturity not quoted that day) is None, never 0."""
    value = (raw or "").strip()
    return None if value.upper() in ("", "N/A") else value
