"""SoSoValue: US spot-Bitcoin-ETF daily net inflow in total (second ETF source; needs a free key).

GET /openapi/v1/etfs/summary-history?symbol=BTC&country_code=US with the `x-soso-api-key`
header. Rows come newest first with USD figures; results are in US$ millions, oldest first.
The older POST /openapi/v2/etf/historicalInflowChart answers the same rows in camelCase under
`data.list`; the parser reads both shapes.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import httpx

from explainers.errors import BadResponse, SourceError
from explainers.models import EtfDay, EtfFlows
from explainers.settings import SourceSettings
from explainers.sources import bounds
from explainers.sources.http import USER_AGENT, get_json

SOURCE = "SoSoValue"
PAGE_URL = "https://sosovalue.com/assets/etf/us-btc-spot"
PATH = "/openapi/v1/etfs/summary-history"


async def fetch_etf_flows(client: httpx.AsyncClient, cfg: SourceSettings) -> EtfFlows:
    """Daily total net inflow of the US spot-Bitcoin ETFs."""
    if cfg.sosovalue_api_key is None:
        raise SourceError(SOURCE, "no API key is set")
    body = await get_json(
        client,
        SOURCE,
        f"{cfg.sosovalue_url}{PATH}",
        params={"symbol": "BTC", "country_code": "US", "limit": 10},
        headers={
            "User-Agent": USER_AGENT,
            "x-soso-api-key": cfg.sosovalue_api_key.get_secret_value(),
        },
        # a redirect would carry the key header to the new host
        follow_redirects=False,
    )
    days = parse_summary_history(body)
    reported = [d.day for d in days if d.total_musd is not None]
    if not reported:
        raise BadResponse(SOURCE, "no day has a reported total")
    # a day's flow is complete only after the US close: as of the end of that day
    as_of = datetime.combine(max(reported) + timedelta(days=1), time(), UTC)
    return EtfFlows(source=SOURCE, as_of=as_of, days=days, url=PAGE_URL)


def parse_summary_history(body: Any) -> list[EtfDay]:
    """Rows of {date, total_net_inflow (USD)} to EtfDays in US$ millions, oldest first."""
    if not isinstance(body, dict):
        raise BadResponse(SOURCE, "unexpected response shape")
    if body.get("code") not in (0, "0"):
        raise BadResponse(SOURCE, f"request rejected (code {body.get('code')})")
    rows = body.get("data")
    if isinstance(rows, dict):
        rows = rows.get("list")
    if not isinstance(rows, list) or not rows:
        raise BadResponse(SOURCE, "no ETF flow rows")
    days: dict[date, EtfDay] = {}
    for row in rows:
        if not isinstance(row, dict):
            raise BadResponse(SOURCE, "unexpected row shape")
        try:
            day = date.fromisoformat(str(row.get("date")))
        except ValueError as err:
            raise BadResponse(SOURCE, "a row has no valid date") from err
        bounds.day(day, SOURCE, "date")
        usd = bounds.optional(
            bounds.number,
            row.get("total_net_inflow", row.get("totalNetInflow")),
            SOURCE,
            "total_net_inflow",
        )
        musd = (
            None
            if usd is None
            else bounds.check(bounds.etf_flow_musd, round(usd / 1e6, 1), SOURCE, "total_net_inflow")
        )
        days[day] = EtfDay(day=day, total_musd=musd)
    return [days[d] for d in sorted(days)]
