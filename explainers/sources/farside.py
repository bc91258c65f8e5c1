"""Farside: US spot-Bitcoin-ETF daily net flows per fund and in total (US$ millions).

Farside serves its table page through the WordPress REST API as JSON whose `content.rendered`
holds the page HTML. Cells read "(12.3)" for an outflow and "-" for a day not reported yet, which
is unknown (None), never 0. A day's `as_of` is the end of that day: 00:00 UTC of the next day,
because Farside completes a day's row only after the US close.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import httpx
from selectolax.lexbor import LexborHTMLParser, LexborNode

from explainers.errors import BadResponse
from explainers.models import EtfDay, EtfFlows
from explainers.settings import SourceSettings
from explainers.sources import bounds
from explainers.sources.http import BROWSER_USER_AGENT, get, json_body

SOURCE = "Farside"
PAGE_URL = "https://farside.co.uk/btc/"

_SUMMARY_ROWS = {"total", "average", "maximum", "minimum"}
_TICKER = re.compile(r"^[A-Z]{2,5}$")
# dashes Farside uses for "no figure yet": hyphen, en dash, em dash
_NOT_REPORTED = {"", "-", "\u2013", "\u2014"}


async def fetch_etf_flows(client: httpx.AsyncClient, cfg: SourceSettings) -> EtfFlows:
    """Read the Farside Bitcoin ETF flow table."""
    return await fetch_flows(client, cfg.farside_url)


async def fetch_flows(client: httpx.AsyncClient, base_url: str) -> EtfFlows:
    """Read the Farside Bitcoin ETF flow table from `base_url` (https://farside.co.uk).

    Farside sits behind Cloudflare: its "Just a moment..." bot challenge, served with HTTP 200
    or 403 and no table, is `SourceBlocked` with the reason "bot challenge", not a parse failure.
    """
    response = await get(
        client,
        SOURCE,
        f"{base_url}/wp-json/wp/v2/pages",
        params={"slug": "btc"},
        # Farside's CDN refuses non-browser agents
        headers={"User-Agent": BROWSER_USER_AGENT},
        challenge_blocks=True,
    )
    return flows_from_days(parse_farside_html(_rendered_html(json_body(response, SOURCE))))


def check_html(html: str) -> list[str]:
    """Drift of the flow page from what the parser reads ([] = fine), for a doctor."""
    try:
        parse_farside_html(html)
    except BadResponse as err:
        return [err.detail]
    return []


def _rendered_html(body: Any) -> str:
    """The page HTML inside the WordPress REST answer (a list of matching pages)."""
    if not isinstance(body, list) or not body:
        raise BadResponse(SOURCE, "the ETF flow page was not found")
    page = body[0]
    content = page.get("content") if isinstance(page, dict) else None
    html = content.get("rendered") if isinstance(content, dict) else None
    if not isinstance(html, str) or not html.strip():
        raise BadResponse(SOURCE, "content.rendered is missing")
    return html


def flows_from_days(days: list[EtfDay]) -> EtfFlows:
    """Wrap parsed days; as of the end of the latest day with a reported total."""
    reported = [d.day for d in days if d.total_musd is not None]
    if not reported:
        raise BadResponse(SOURCE, "no day has a reported total yet")
    as_of = datetime.combine(max(reported) + timedelta(days=1), time(), UTC)
    return EtfFlows(source=SOURCE, as_of=as_of, days=days, url=PAGE_URL)


def parse_farside_html(html: str) -> list[EtfDay]:
    """Parse the flow table: one EtfDay per dated row, oldest first; summary rows skipped."""
    table = _flow_table(LexborHTMLParser(html))
    tickers: dict[int, str] = {}
    total_col: int | None = None
    days: dict[date, EtfDay] = {}
    for row in table.css("tr"):
        cells = _expanded_cells(row)
        if not cells:
            continue
        day = _row_date(cells[0])
        if day is not None:
            bounds.day(day, SOURCE, "flow date")
        if day is None:
            if cells[0].lower() in _SUMMARY_ROWS or days:
                continue  # Total/Average/... rows and anything after the data rows
            for col, text in enumerate(cells):
                if col and _TICKER.match(text):
                    tickers[col] = text
                elif col and text.lower() == "total":
                    total_col = col
            continue
        if total_col is None:
            raise BadResponse(SOURCE, "the flow table has no Total column")
        days[day] = EtfDay(
            day=day,
            total_musd=_flow(cells, total_col),
            funds={ticker: _flow(cells, col) for col, ticker in tickers.items()},
        )
    if not days:
        raise BadResponse(SOURCE, "the flow table has no dated rows")
    return [days[d] for d in sorted(days)]


def _flow_table(tree: LexborHTMLParser) -> LexborNode:
    table = tree.css_first("table.etf")
    if table is not None:
        return table
    for candidate in tree.css("table"):
        if any(_row_date(_cell_text(td)) for td in candidate.css("tr > td:first-child")):
            return candidate
    raise BadResponse(SOURCE, "no ETF flow table in the page")


def _expanded_cells(row: LexborNode) -> list[str]:
    """Cell texts with colspans expanded, so header and data rows share column positions."""
    texts: list[str] = []
    for cell in row.iter():
        if cell.tag not in ("td", "th"):
            continue
        try:
            span = max(1, int(cell.attributes.get("colspan") or 1))
        except ValueError:
            span = 1
        texts.extend([_cell_text(cell)] * span)
    return texts


def _cell_text(cell: LexborNode) -> str:
    return " ".join(cell.text(deep=True).split())


def _row_date(text: str) -> date | None:
    try:
        return datetime.strptime(text, "%d %b %Y").date()
    except ValueError:
        return None


def _flow(cells: list[str], col: int) -> float | None:
    """One cell in US$m: "(x)" is negative, a dash is not reported yet (None)."""
    text = cells[col].replace(",", "").strip() if col < len(cells) else ""
    if text in _NOT_REPORTED:
        return None
    negative = text.startswith("(") and text.endswith(")")
    try:
        value = float(text.strip("()"))
    except ValueError as err:
        raise BadResponse(SOURCE, "a flow cell is not a number") from err
    return bounds.check(bounds.etf_flow_musd, -value if negative else value, SOURCE, "a flow cell")
