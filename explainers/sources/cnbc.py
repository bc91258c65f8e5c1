"""CNBC's quote service: a second keyless intraday source for the stock indices.

`GET {base}/quote-html-webservice/restQuote/symbolType/symbol?symbols=.SPX&output=json` answers
`{"FormattedQuoteResult": {"FormattedQuote": [{...}]}}` without a key or cookie. The format is
the one public quote scrapers read (no recording of ours): numbers are strings with thousands
separators ("7,738.79"), `change_pct` carries a "%", `code` is 0 for a known symbol,
`curmktstatus` says which session `last` belongs to (`REG_MKT` while the regular session runs;
`PRE_MKT`, `POST_MKT` or `CLOSED` outside it, when `last` is the last regular close) and
`last_time` is ISO 8601 with the exchange's offset ("2026-09-11T11:17:11.000-0400").
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import httpx

from explainers.errors import BadResponse
from explainers.sources import bounds
from explainers.sources.http import get_json
from explainers.sources.shape import Shape, require_shape
from explainers.sources.stocks import StockQuote, live_label
from explainers.sources.yahoo import IndexKey

SOURCE = "CNBC"
#: our key -> (CNBC's symbol, display name)
SYMBOLS: dict[str, tuple[str, str]] = {
    "spx": (".SPX", "S&P 500"),
    "ndx": (".IXIC", "Nasdaq Composite"),
}
QUOTE_SHAPE: Shape = (
    "FormattedQuoteResult.FormattedQuote[].last",
    "FormattedQuoteResult.FormattedQuote[].previous_day_closing",
    "FormattedQuoteResult.FormattedQuote[].last_time",
)
#: the session state while the regular session is trading
REGULAR = "REG_MKT"
#: the query the public scrapers send; `exthrs=1` adds an `ExtendedMktQuote` we do not read
PARAMS = {"requestMethod": "itv", "noform": "1", "partnerId": "2", "fund": "1", "output": "json"}


async def fetch_quote(client: httpx.AsyncClient, base_url: str, key: IndexKey) -> StockQuote:
    """The index's last price against the previous regular close, with its session named."""
    symbol, _ = SYMBOLS[key]
    body = await get_json(
        client,
        SOURCE,
        f"{base_url}/quote-html-webservice/restQuote/symbolType/symbol",
        params={"symbols": symbol, **PARAMS},
    )
    return parse_quote(body, key)


def _figure(value: Any, field: str) -> float:
    """ "7,738.79" -> 7738.79, as a stock index level."""
    text = value.replace(",", "").strip() if isinstance(value, str) else value
    return bounds.index_level(text, SOURCE, field)


def _session(raw: Any) -> tuple[date, datetime]:
    """`last_time` -> (the session's day in the exchange's own time, the moment in UTC). A bare
    date ("2026-08-17") is that day's regular close, taken as its end in UTC."""
    if isinstance(raw, str) and len(raw) == 10:
        try:
            day = date.fromisoformat(raw)
        except ValueError as err:
            raise BadResponse(SOURCE, "last_time is not a date") from err
        return bounds.day(day, SOURCE, "last_time"), datetime(
            day.year, day.month, day.day, 21, tzinfo=UTC
        )
    if not isinstance(raw, str):
        raise BadResponse(SOURCE, "last_time is missing")
    try:
        local = datetime.fromisoformat(raw)
    except ValueError as err:
        raise BadResponse(SOURCE, "last_time is not an ISO time") from err
    moment = bounds.iso_time(raw, SOURCE, "last_time")
    return local.date(), moment


def parse_quote(body: Any, key: IndexKey) -> StockQuote:
    """A restQuote body -> the quote of `key`'s symbol."""
    require_shape(body, QUOTE_SHAPE, SOURCE)
    symbol, name = SYMBOLS[key]
    quotes = body["FormattedQuoteResult"]["FormattedQuote"]
    quote = next((q for q in quotes if isinstance(q, dict) and q.get("symbol") == symbol), None)
    if quote is None:
        raise BadResponse(SOURCE, f"no quote for {symbol}")
    if str(quote.get("code", 0)) != "0":
        raise BadResponse(SOURCE, f"{symbol} is not known (code {quote.get('code')})")
    last = _figure(quote.get("last"), "last")
    previous = _figure(quote.get("previous_day_closing"), "previous_day_closing")
    change = bounds.check(bounds.market_change, (last / previous - 1) * 100, SOURCE, "change")
    day, moment = _session(quote.get("last_time"))
    market_open = quote.get("curmktstatus") == REGULAR
    return StockQuote(
        source=SOURCE,
        as_of=moment,
        symbol=key,
        name=name,
        last=last,
        previous_close=previous,
        change_pct=change,
        session=day,
        market_open=market_open,
        session_label=live_label(day, market_open),
    )
