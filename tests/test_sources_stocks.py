"""Stocks that survive: Yahoo through its cookie + crumb flow behind a 429 breaker, FRED's
end-of-day closes, and Stooq only with a key."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from explainers.errors import BadResponse, RateLimited, SourceBlocked, SourceError
from explainers.settings import SourceSettings
from explainers.sources import fred, stooq, yahoo
from explainers.sources.http import BROWSER_USER_AGENT
from explainers.sources.shape import check_csv_header, check_shape

API = Path(__file__).parent / "fixtures" / "api"
Q1 = "https://query1.finance.yahoo.com"
Q2 = "https://query2.finance.yahoo.com"
FC = "https://fc.yahoo.com"
# a cookie and crumb of the documented form (no live exchange is recorded)
SET_COOKIE = "A3=d=AQABBKx1&S=AQAAAl; Expires=Wed, 1 Dec 2027 09:00:00 GMT; Domain=.yahoo.com; Path=/; Secure; HttpOnly; SameSite=None"
CRUMB = "Xq3eDsnCUai"


def raw(name: str, status: int = 200) -> httpx.Response:
    return httpx.Response(status, content=(API / name).read_bytes())


def load(name: str) -> Any:
    return json.loads((API / name).read_bytes())


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeYahoo:
    """fc.yahoo.com, getcrumb and chart, each answer overridable; every request recorded."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.cookie_reply = httpx.Response(404, headers={"Set-Cookie": SET_COOKIE}, text="")
        self.crumb_replies: dict[str, httpx.Response] = {}
        self.chart_replies: list[httpx.Response] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.host == "fc.yahoo.com":
            return self.cookie_reply
        if request.url.path == "/v1/test/getcrumb":
            assert request.headers["Cookie"] == "A3=d=AQABBKx1&S=AQAAAl"
            assert request.headers["User-Agent"] == BROWSER_USER_AGENT
            return self.crumb_replies.get(request.url.host, httpx.Response(200, text=CRUMB))
        if request.url.path.startswith("/v8/finance/chart/"):
            assert request.url.params["crumb"] == CRUMB
            assert request.headers["Cookie"] == "A3=d=AQABBKx1&S=AQAAAl"
            return self.chart_replies.pop(0) if self.chart_replies else raw("yahoo_chart_gspc.json")
        return httpx.Response(404, text="not recorded")

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handle))

    def kinds(self) -> list[str]:
        return [
            "cookie"
            if r.url.host == "fc.yahoo.com"
            else "crumb"
            if r.url.path.endswith("getcrumb")
            else "chart"
            for r in self.requests
        ]


def session(clock: Clock | None = None) -> yahoo.YahooSession:
    return yahoo.YahooSession(FC, [Q1, Q2], breaker_s=900, clock=clock or Clock())


# --- Yahoo ------------------------------------------------------------------------------------


async def test_crumb_flow_sends_the_cookie_and_crumb_and_reads_the_session() -> None:
    fake, yh = FakeYahoo(), session()
    async with fake.client() as client:
        quote = await yahoo.fetch_quote(client, Q1, "spx", session=yh)
        again = await yahoo.fetch_quote(client, Q1, "spx", session=yh)
    assert fake.kinds() == ["cookie", "crumb", "chart", "chart"]  # the crumb is kept
    assert fake.requests[2].url.raw_path.startswith(b"/v8/finance/chart/%5EGSPC?")
    assert quote == again
    assert quote.last == 7177.54
    assert quote.previous_close == 7135.9501953125  # 29 Apr, not chartPreviousClose 7108.4
    assert quote.change_pct == pytest.approx((7177.54 - 7135.9501953125) / 7135.9501953125 * 100)
    assert quote.session == date(2026, 4, 30)
    assert quote.market_open is True
    assert quote.session_label == "regular session 30 Apr, open"
    assert quote.as_of == datetime.fromtimestamp(1777569322, UTC)


async def test_query2_gives_the_crumb_when_query1_answers_a_page() -> None:
    fake, yh = FakeYahoo(), session()
    fake.crumb_replies["query1.finance.yahoo.com"] = httpx.Response(
        200, text="<!DOCTYPE html><html><body>Oops</body></html>"
    )
    async with fake.client() as client:
        await yahoo.fetch_quote(client, Q1, "spx", session=yh)
    crumb_hosts = [r.url.host for r in fake.requests if r.url.path.endswith("getcrumb")]
    assert crumb_hosts == ["query1.finance.yahoo.com", "query2.finance.yahoo.com"]


async def test_a_refused_crumb_is_fetched_again_once() -> None:
    fake, yh = FakeYahoo(), session()
    refused = {
        "finance": {
            "result": None,
            "error": {"code": "Unauthorized", "description": "Invalid Crumb"},
        }
    }
    fake.chart_replies = [httpx.Response(401, json=refused)]
    async with fake.client() as client:
        quote = await yahoo.fetch_quote(client, Q1, "spx", session=yh)
    assert fake.kinds() == ["cookie", "crumb", "chart", "cookie", "crumb", "chart"]
    assert quote.symbol == "spx"


async def test_two_refusals_are_a_bad_response() -> None:
    fake, yh = FakeYahoo(), session()
    fake.chart_replies = [httpx.Response(401, text="{}"), httpx.Response(401, text="{}")]
    async with fake.client() as client:
        with pytest.raises(BadResponse, match="crumb was refused"):
            await yahoo.fetch_quote(client, Q1, "spx", session=yh)


@pytest.mark.parametrize("crumb", ["", "   ", "<html><body>Will be right back</body></html>"])
async def test_no_usable_crumb_on_any_host_is_a_bad_response(crumb: str) -> None:
    fake, yh = FakeYahoo(), session()
    fake.crumb_replies = {
        "query1.finance.yahoo.com": httpx.Response(200, text=crumb),
        "query2.finance.yahoo.com": httpx.Response(200, text=crumb),
    }
    async with fake.client() as client:
        with pytest.raises(BadResponse):
            await yahoo.fetch_quote(client, Q1, "spx", session=yh)
    assert "chart" not in fake.kinds()


async def test_no_cookie_is_a_bad_response() -> None:
    fake, yh = FakeYahoo(), session()
    fake.cookie_reply = httpx.Response(404, text="")
    async with fake.client() as client:
        with pytest.raises(BadResponse, match="no session cookie"):
            await yahoo.fetch_quote(client, Q1, "spx", session=yh)


async def test_429_opens_the_breaker_and_no_request_is_made_while_open() -> None:
    clock = Clock()
    fake, yh = FakeYahoo(), session(clock)
    fake.chart_replies = [httpx.Response(429, headers={"Retry-After": "60"})]
    async with fake.client() as client:
        with pytest.raises(RateLimited):
            await yahoo.fetch_quote(client, Q1, "spx", session=yh)
        sent = len(fake.requests)
        clock.now += 899
        with pytest.raises(RateLimited) as caught:
            await yahoo.fetch_quote(client, Q1, "ndx", session=yh)
        assert len(fake.requests) == sent  # refused at once, nothing sent
        assert caught.value.retry_after == pytest.approx(1)
        clock.now += 1
        quote = await yahoo.fetch_quote(client, Q1, "spx", session=yh)
    assert quote.last == 7177.54


async def test_a_long_retry_after_keeps_the_breaker_open_longer() -> None:
    clock = Clock()
    fake, yh = FakeYahoo(), session(clock)
    fake.crumb_replies = {
        "query1.finance.yahoo.com": httpx.Response(429, headers={"Retry-After": "3600"})
    }
    async with fake.client() as client:
        with pytest.raises(RateLimited):
            await yahoo.fetch_quote(client, Q1, "spx", session=yh)
        clock.now += 1800
        assert yh.breaker.remaining() == pytest.approx(1800)
        with pytest.raises(RateLimited, match="paused after a rate limit"):
            await yahoo.fetch_quote(client, Q1, "spx", session=yh)
    # a 429 on the crumb is not retried on query2: the breaker covers all of Yahoo
    assert fake.kinds() == ["cookie", "crumb"]


async def test_unknown_symbol_404_gives_yahoos_description() -> None:
    fake, yh = FakeYahoo(), session()
    fake.chart_replies = [raw("yahoo_chart_error_404.json", 404)]
    async with fake.client() as client:
        with pytest.raises(BadResponse, match="symbol may be delisted"):
            await yahoo.fetch_quote(client, Q1, "spx", session=yh)


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (httpx.Response(200, text="<!DOCTYPE html><html><body>Yahoo</body></html>"), BadResponse),
        (httpx.Response(200, text='{"chart": {"result": [{"meta": '), BadResponse),
        (httpx.Response(503, text="down"), SourceError),
    ],
)
async def test_chart_faults(reply: httpx.Response, error: type[Exception]) -> None:
    fake, yh = FakeYahoo(), session()
    fake.chart_replies = [reply]
    async with fake.client() as client:
        with pytest.raises(error):
            await yahoo.fetch_quote(client, Q1, "spx", session=yh)


def test_holiday_rows_of_nulls_are_skipped_and_dates_are_the_exchanges() -> None:
    body = load("yahoo_chart_vix_1y_daily_nulls.json")
    result = body["chart"]["result"][0]
    closes = yahoo.daily_closes(result, result["meta"])
    # 07:00Z session starts are dates in America/Chicago; 26 May 2025 (Memorial Day) is all null
    assert [d for d, _ in closes] == [
        date(2025, 5, 22),
        date(2025, 5, 23),
        date(2025, 5, 27),
        date(2025, 5, 28),
    ]
    assert closes[2][1] == 18.959999084472656


def test_a_series_that_stops_short_of_the_session_is_refused() -> None:
    # the 1y body is trimmed to its first 5 rows while meta is of May 2026
    with pytest.raises(BadResponse, match="does not reach the last session"):
        yahoo.parse_quote(load("yahoo_chart_gspc_1y_daily.json"), "spx")


def test_chart_shape_names_the_drift() -> None:
    body = load("yahoo_chart_gspc.json")
    assert check_shape(body, yahoo.CHART_SHAPE) == []
    meta = body["chart"]["result"][0]["meta"]
    meta["regularMarketPrise"] = meta.pop("regularMarketPrice")
    assert check_shape(body, yahoo.CHART_SHAPE) == [
        "chart.result[0].meta.regularMarketPrice is missing (has: regularMarketPrise)"
    ]
    with pytest.raises(BadResponse, match="regularMarketPrice is missing"):
        yahoo.parse_quote(body, "spx")


def test_session_from_settings() -> None:
    yh = yahoo.YahooSession.from_settings(SourceSettings())
    assert yh.cookie_url == "https://fc.yahoo.com"
    assert yh.crumb_hosts == [Q1, Q2]
    assert yh.breaker.open_for_s == 900


# --- FRED -------------------------------------------------------------------------------------


def test_fred_sp500_change_between_the_last_two_valid_closes() -> None:
    quote = fred.index_close_from_series((API / "fred_sp500_fredgraph.csv").read_text(), "spx")
    assert (quote.last, quote.previous_close) == (4073.94, 4077.91)
    assert quote.change_pct == pytest.approx((4073.94 - 4077.91) / 4077.91 * 100)
    assert quote.session == date(2021, 4, 6)
    assert quote.session_label == "close of 6 Apr 2021"
    assert quote.as_of == datetime(2021, 4, 7, tzinfo=UTC)
    assert quote.source == "FRED" and quote.name == "S&P 500"


def test_fred_empty_value_is_missing_not_zero() -> None:
    series = fred.parse_series((API / "fred_nasdaqcom_fredgraph.csv").read_text(), "NASDAQCOM")
    assert (date(2020, 4, 10), None) in series
    assert series[-1] == (date(2020, 4, 14), 8515.74)


def test_fred_last_value_missing_uses_the_two_before() -> None:
    text = (API / "fred_nasdaqcom_fredgraph.csv").read_text() + "2020-04-15,\n"
    quote = fred.index_close_from_series(text, "ndx")
    assert quote.session == date(2020, 4, 14)
    assert quote.change_pct == pytest.approx((8515.74 - 8192.42) / 8192.42 * 100)
    assert quote.name == "Nasdaq Composite"


def test_fred_old_header_and_dot() -> None:
    text = "DATE,SP500\n2024-01-03,4704.81\n2024-01-04,.\n2024-01-05,4697.24\n"
    quote = fred.index_close_from_series(text, "spx")
    assert (quote.previous_close, quote.last) == (4704.81, 4697.24)


def test_fred_shape_names_the_missing_series_column() -> None:
    text = (API / "fred_dgs10_fredgraph.csv").read_text()
    assert check_csv_header(text, fred.series_columns("SP500")) == ["column SP500 is missing"]
    with pytest.raises(BadResponse, match="column SP500 is missing"):
        fred.index_close_from_series(text, "spx")


async def test_fred_fetch_asks_one_series() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return raw("fred_sp500_fredgraph.csv")

    async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
        quote = await fred.fetch_index_close(
            client, "https://fred.stlouisfed.org", "spx", today=date(2021, 4, 7)
        )
    assert seen[0].url.path == "/graph/fredgraph.csv"
    assert dict(seen[0].url.params) == {"id": "SP500", "cosd": "2021-02-21"}
    assert quote.last == 4073.94


async def test_fred_html_page_with_200_is_a_bad_response() -> None:
    page = httpx.Response(200, text="<!DOCTYPE html><html><body>Error</body></html>")
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda r: page)) as client:
        with pytest.raises(BadResponse, match="HTML page instead of CSV"):
            await fred.fetch_index_close(client, "https://fred.stlouisfed.org", "spx")


# --- Stooq ------------------------------------------------------------------------------------


async def test_stooq_without_a_key_is_never_called() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
        with pytest.raises(SourceError, match="no API key is set"):
            await stooq.fetch_quote(client, "https://stooq.com", "spx", None)
    assert seen == []
    assert SourceSettings().stooq_api_key is None


DAILY = "Date,Open,High,Low,Close,Volume\n2026-05-07,7300,7360,7290,7351.2,1\n2026-05-08,7363,7401.5,7363,7398.9,1\n"


async def test_stooq_with_a_key_sends_it_and_names_the_session() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, text=DAILY)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
        quote = await stooq.fetch_quote(
            client, "https://stooq.com", "spx", SecretStr("k3y"), today=date(2026, 5, 10)
        )
    assert seen[0].url.params["apikey"] == "k3y"
    assert seen[0].url.params["s"] == "^spx"
    assert quote.session_label == "close of 8 May 2026"
    assert quote.change_pct == pytest.approx((7398.9 - 7351.2) / 7351.2 * 100)


@pytest.mark.parametrize(
    ("reply", "error", "detail"),
    [
        (httpx.Response(200, text="<html><body>Login</body></html>"), BadResponse, "HTML page"),
        (raw("stooq_nd_placeholder.csv"), BadResponse, "no data"),
        (httpx.Response(200, text="Exceeded the daily hits limit"), BadResponse, "not a price CSV"),
        (httpx.Response(429), RateLimited, "429"),
        (httpx.Response(403, text="Forbidden"), SourceBlocked, "403"),
    ],
)
async def test_stooq_keyed_faults(
    reply: httpx.Response, error: type[Exception], detail: str
) -> None:
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda r: reply)) as client:
        with pytest.raises(error, match=detail):
            await stooq.fetch_quote(client, "https://stooq.com", "ndx", SecretStr("k"))


def test_stooq_real_quote_csv_keeps_its_shape() -> None:
    assert check_csv_header((API / "stooq_spx.csv").read_text(), stooq.CSV_COLUMNS) == []
