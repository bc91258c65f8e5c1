"""CNBC's keyless quote service, the second intraday source for the stock indices.

There is no recorded CNBC body among the upstream samples: the bodies here follow the format
public quote scrapers parse (`FormattedQuoteResult.FormattedQuote[]`, string numbers with
thousands separators, `change_pct` with "%", ISO `last_time` with the exchange's offset,
`curmktstatus` naming the session), written in test code rather than passed off as recordings.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest

from explainers.collect import Collector
from explainers.errors import BadResponse
from explainers.settings import SourceSettings
from explainers.sources import cnbc
from explainers.sources.checks import CHECKS


def _quote(**fields: Any) -> dict[str, Any]:
    quote = {
        "symbol": ".SPX",
        "code": 0,
        "name": "S&P 500 Index",
        "last": "5,346.56",
        "change": "-100.12",
        "change_pct": "-1.84%",
        "previous_day_closing": "5,446.68",
        "last_time": "2026-09-11T11:17:11.000-0400",
        "curmktstatus": "REG_MKT",
    }
    quote.update(fields)
    return quote


def _body(*quotes: dict[str, Any]) -> dict[str, Any]:
    return {"FormattedQuoteResult": {"FormattedQuote": list(quotes)}}


def test_a_regular_session_quote_is_read_with_its_session() -> None:
    q = cnbc.parse_quote(_body(_quote()), "spx")
    assert (q.source, q.name, q.last, q.previous_close) == ("CNBC", "S&P 500", 5346.56, 5446.68)
    assert q.change_pct == pytest.approx(-1.8382, abs=1e-4)
    assert q.session == date(2026, 9, 11)  # the exchange's own day, not UTC's
    assert q.as_of == datetime(2026, 9, 11, 15, 17, 11, tzinfo=UTC)
    assert q.market_open is True
    assert q.session_label == "regular session 11 Sep, open"


def test_outside_the_session_the_last_close_is_named_closed() -> None:
    body = _body(
        _quote(symbol=".IXIC", last="16,776.16", previous_day_closing="17,194.15"),
        _quote(curmktstatus="POST_MKT", last_time="2026-09-11T16:59:59.000-0400"),
    )
    q = cnbc.parse_quote(body, "spx")
    assert (q.market_open, q.session_label) == (False, "regular session 11 Sep, closed")
    ndx = cnbc.parse_quote(body, "ndx")
    assert (ndx.name, ndx.last) == ("Nasdaq Composite", 16776.16)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (_body(_quote(code=1)), ".SPX is not known (code 1)"),
        (_body(_quote(symbol=".DJI")), "no quote for .SPX"),
        (_body(_quote(last="NaN")), "last is not a finite number"),
        (_body(_quote(last="-5")), "last -5 is implausible"),
        (_body(_quote(previous_day_closing="1.0")), "change 534556 is implausible"),
        (_body(_quote(last_time="2099-01-01T10:00:00.000-0500")), "is in the future"),
        ({"QuoteResult": {}}, "FormattedQuoteResult is missing"),
    ],
)
def test_a_quote_that_cannot_be_a_figure_is_a_bad_response(
    body: dict[str, Any], problem: str
) -> None:
    with pytest.raises(BadResponse, match=problem.replace("(", r"\(").replace(")", r"\)")):
        cnbc.parse_quote(body, "spx")


async def test_an_html_page_with_status_200_is_a_bad_response() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html><body>Access denied</body></html>")

    async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
        with pytest.raises(BadResponse):
            await cnbc.fetch_quote(client, "https://quote.cnbc.com", "spx")


async def test_cnbc_answers_when_yahoo_refuses_and_fred_is_not_asked() -> None:
    asked: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        asked.append(f"{request.url.host} {request.url.params.get('id', '')}".strip())
        if "yahoo" in request.url.host:
            return httpx.Response(429, headers={"Retry-After": "600"})
        if request.url.host == "quote.cnbc.com":
            symbol = request.url.params["symbols"]
            ndx = _quote(symbol=".IXIC", last="17,000.00", previous_day_closing="17,194.15")
            quote = _quote() if symbol == ".SPX" else ndx
            return httpx.Response(200, json=_body(quote))
        return httpx.Response(404)

    now = datetime(2026, 9, 11, 16, tzinfo=UTC)
    cfg = SourceSettings(open_interest_coins=["BTC"], retry_backoff_s=0)
    async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
        snapshot = await Collector(client, cfg, clock=lambda: now).collect()
    assert snapshot.indices["spx"].source == "CNBC"
    assert snapshot.indices["ndx"].last == 17000.0
    assert snapshot.statuses["cnbc_spx"].state == "ok"
    # FRED's index closes are the next fallback: not asked while CNBC answers
    assert not {"fred.stlouisfed.org SP500", "fred.stlouisfed.org NASDAQCOM"} & set(asked)
    assert not [host for host in asked if host.startswith("stooq.com")]


def test_the_doctor_names_a_renamed_field() -> None:
    quote = _quote()
    quote["previous_close"] = quote.pop("previous_day_closing")
    drift = CHECKS["cnbc_quote"](json.dumps(_body(quote)))
    assert drift == [
        "FormattedQuoteResult.FormattedQuote[0].previous_day_closing is missing"
        " (has: previous_close)"
    ]
