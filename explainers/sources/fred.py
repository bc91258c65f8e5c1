"""FRED's keyless fredgraph CSV: 2-year (DGS2) and 10-year (DGS10) Treasury yields, in percent.

"." marks a date without a value (a bond-market holiday): None, never 0. The header of the date
column is "observation_date" (older files: "DATE").
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, time, timedelta

import httpx

from explainers.errors import BadResponse
from explainers.models import YieldDay, Yields
from explainers.settings import SourceSettings
from explainers.sources.http import USER_AGENT, get, optional_number, text_body

SOURCE = "FRED"
LOOKBACK_DAYS = 45  # bounds the download; enough sessions for a 5-day comparison


async def fetch_yields(
    client: httpx.AsyncClient, cfg: SourceSettings, *, today: date | None = None
) -> Yields:
    """Recent DGS2 and DGS10 observations, oldest first."""
    since = (today or datetime.now(UTC).date()) - timedelta(days=LOOKBACK_DAYS)
    response = await get(
        client,
        SOURCE,
        f"{cfg.fred_url}/graph/fredgraph.csv",
        params={"id": "DGS2,DGS10", "cosd": since.isoformat()},
        headers={"User-Agent": USER_AGENT},
    )
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
        # optional_number turns FRED's "." into None
        days.append(
            YieldDay(
                day=day,
                two_year=optional_number(row.get("DGS2")),
                ten_year=optional_number(row.get("DGS10")),
            )
        )
    return sorted(days, key=lambda d: d.day)
