"""Macro, ETF, sentiment and news sources against recorded real bodies, served by MockTransport."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from explainers.drivers import HEADLINE_PATTERNS
from explainers.errors import BadResponse, SourceError, SourceUnavailable
from explainers.models import Headlines
from explainers.replay import Scenario
from explainers.settings import SourceSettings
from explainers.sources import (
    farside,
    feargreed,
    fred,
    news,
    polymarket,
    sosovalue,
    stooq,
    treasury,
    yahoo,
)
from explainers.sources.http import BROWSER_USER_AGENT, USER_AGENT

API = Path(__file__).parent / "fixtures" / "api"
CFG = SourceSettings()
HTML_PAGE = "<!DOCTYPE html><html><head><title>Just a moment...</title></head><body></body></html>"

Handler = Callable[[httpx.Request], httpx.Response]


def text(name: str) -> str:
    return (API / name).read_text()


def load(name: str) -> Any:
    return json.loads(text(name))


def serving(handler: Handler) -> tuple[httpx.AsyncClient, list[httpx.Request]]:
    """A client whose every request is answered by `handler`, and the requests it saw."""
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    return httpx.AsyncClient(transport=httpx.MockTransport(record)), seen


def body(content: str | bytes, status: int = 200) -> Handler:
    return lambda _request: httpx.Response(status, content=content)


# --- Farside ---------------------------------------------------------------------------------


def test_farside_structural_fixture_reads_negatives_and_skips_summary_rows() -> None:
    days = farside.parse_farside_html(text("farside_btc.html"))
    assert [d.day for d in days] == [date(2026, 4, 21), date(2026, 4, 22), date(2026, 4, 23)]
    assert days[1].total_musd == -16.9
    assert days[1].funds == {"IBIT": -10.0, "FBTC": 5.0}
    # the Average (125.7) and Total (377.0) rows are not days
    assert all(d.total_musd not in (125.7, 377.0) for d in days)


def test_farside_real_values_from_the_text_extract() -> None:
    days = farside.parse_farside_html(text("farside_btc_built_from_text_extract.html"))
    assert [d.day for d in days] == [date(2026, 4, 13), date(2026, 4, 14)]
    apr13, apr14 = days
    assert apr13.total_musd == -291.0
    assert apr13.funds["FBTC"] == -229.2
    assert apr13.funds["BTCO"] == 0.0  # a reported zero stays zero
    assert sum(v for v in apr13.funds.values() if v is not None) == pytest.approx(-291.0)
    assert apr14.total_musd == 146.0
    assert apr14.funds["IBIT"] is None  # "-": not reported yet, never 0
    assert apr14.funds["ARKB"] == 113.1
    assert len(apr14.funds) == 12


def test_farside_built_fixture_matches_the_text_extract() -> None:
    """The built fixture carries exactly the real extract's figures, in column order."""
    lines = text("farside_btc_text.txt").splitlines()[1:]
    extract = {lines[i]: lines[i + 1 : i + 14] for i in range(0, 28, 14)}
    for day in farside.parse_farside_html(text("farside_btc_built_from_text_extract.html")):
        cells = [*day.funds.values(), day.total_musd]
        expected = extract[day.day.strftime("%d %b %Y")]
        assert [_musd(c) for c in expected] == cells


def _musd(cell: str) -> float | None:
    if cell == "-":
        return None
    return -float(cell.strip("()")) if cell.startswith("(") else float(cell)


async def test_farside_fetch_reads_the_wordpress_json_with_a_browser_agent() -> None:
    page = [
        {"slug": "btc", "content": {"rendered": text("farside_btc_built_from_text_extract.html")}}
    ]
    client, seen = serving(body(json.dumps(page)))
    async with client:
        flows = await farside.fetch_etf_flows(client, CFG)
    assert seen[0].url.path == "/wp-json/wp/v2/pages"
    assert seen[0].url.params["slug"] == "btc"
    assert seen[0].headers["User-Agent"] == BROWSER_USER_AGENT
    assert flows.source == "Farside"
    assert flows.url == "https://farside.co.uk/btc/"
    assert flows.days[-1].total_musd == 146.0
    assert flows.as_of == datetime(2026, 4, 15, tzinfo=UTC)  # end of the latest reported day


def test_farside_as_of_skips_a_day_without_a_total() -> None:
    html = """<table class="etf"><thead><tr><th></th><th>IBIT</th><th>Total</th></tr></thead>
    <tbody><tr><td>01 Aug 2024</td><td>(5.0)</td><td>(5.0)</td></tr>
    <tr><td>02 Aug 2024</td><td>-</td><td>-</td></tr></tbody></table>"""
    flows = farside.flows_from_days(farside.parse_farside_html(html))
    assert flows.days[-1].total_musd is None
    assert flows.as_of == datetime(2024, 8, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        # a challenge page is blocked, not a bad response (tests/test_sources_etf.py)
        (
            "<!DOCTYPE html><html><body><p>Down for maintenance</p></body></html>",
            "an HTML page instead of JSON",
        ),
        ("", "empty response"),
        ("[]", "the ETF flow page was not found"),
        ('[{"slug": "btc"}]', "content.rendered is missing"),
        ('[{"content": {"rendered": "<p>No table today</p>"}}]', "no ETF flow table in the page"),
    ],
)
async def test_farside_faults(content: str, detail: str) -> None:
    client, _ = serving(body(content))
    async with client:
        with pytest.raises(BadResponse) as caught:
            await farside.fetch_etf_flows(client, CFG)
    assert caught.value.source == "Farside"
    assert caught.value.detail == detail


def test_farside_table_without_total_column_is_a_bad_response() -> None:
    html = '<table class="etf"><tr><th></th><th>IBIT</th></tr><tr><td>01 Aug 2024</td><td>1.0</td></tr></table>'
    with pytest.raises(BadResponse, match="no Total column"):
        farside.parse_farside_html(html)


# --- SoSoValue -------------------------------------------------------------------------------


async def test_sosovalue_converts_usd_to_millions_and_sends_the_key_header() -> None:
    client, seen = serving(body(text("sosovalue_etf_summary_history.json")))
    cfg = SourceSettings(sosovalue_api_key=SecretStr("test-key"))
    async with client:
        flows = await sosovalue.fetch_etf_flows(client, cfg)
    assert flows.days[0].day == date(2026, 5, 18)
    assert flows.days[0].total_musd == -648.6
    assert flows.as_of == datetime(2026, 5, 19, tzinfo=UTC)
    assert seen[0].headers["x-soso-api-key"] == "test-key"
    assert "test-key" not in str(seen[0].url)
    assert seen[0].url.params["symbol"] == "BTC"


def test_sosovalue_reads_the_camelcase_list_shape_oldest_first() -> None:
    shape = {
        "code": 0,
        "msg": None,
        "data": {
            "list": [
                {"date": "2024-04-12", "totalNetInflow": -55066297.0},
                {"date": "2024-04-11", "totalNetInflow": 91269283.0},
            ]
        },
    }
    days = sosovalue.parse_summary_history(shape)
    assert [(d.day, d.total_musd) for d in days] == [
        (date(2024, 4, 11), 91.3),
        (date(2024, 4, 12), -55.1),
    ]


async def test_sosovalue_without_a_key_is_a_source_error() -> None:
    client, seen = serving(body("{}"))
    async with client:
        with pytest.raises(SourceError, match="no API key"):
            await sosovalue.fetch_etf_flows(client, CFG)
    assert seen == []


async def test_sosovalue_does_not_carry_its_key_through_a_redirect() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "elsewhere.example":
            return httpx.Response(200, content=text("sosovalue_etf_summary_history.json"))
        return httpx.Response(301, headers={"Location": "https://elsewhere.example/etf"})

    cfg = SourceSettings(sosovalue_api_key=SecretStr("test-key"))
    transport = httpx.MockTransport(handle)
    async with httpx.AsyncClient(transport=transport, follow_redirects=True) as client:
        with pytest.raises(BadResponse, match=r"redirected \(HTTP 301\)"):
            await sosovalue.fetch_etf_flows(client, cfg)
    assert [r.url.host for r in seen] == ["openapi.sosovalue.com"]


@pytest.mark.parametrize(
    "content",
    [HTML_PAGE, "", '{"code": 1, "msg": "invalid key", "data": null}', '{"code": 0, "data": []}'],
)
async def test_sosovalue_faults(content: str) -> None:
    client, _ = serving(body(content))
    async with client:
        with pytest.raises(BadResponse):
            await sosovalue.fetch_etf_flows(
                client, SourceSettings(sosovalue_api_key=SecretStr("k"))
            )


# --- US Treasury ------------------------------------------------------------------------------


def test_treasury_reads_2yr_and_10yr_by_header_oldest_first() -> None:
    days = treasury.parse_treasury_csv(text("treasury_yield.csv"))
    assert days[0].day == date(2023, 6, 26)
    assert (days[0].two_year, days[0].ten_year) == (4.65, 3.72)
    assert days[-1].day == date(2023, 7, 7)
    assert (days[-1].two_year, days[-1].ten_year) == (4.94, 4.06)


def test_treasury_survives_a_new_column() -> None:
    csv_text = (
        'Date,"1 Mo","1.5 Month","2 Mo","3 Mo","4 Mo","6 Mo","1 Yr","2 Yr","3 Yr","5 Yr","7 Yr",'
        '"10 Yr","20 Yr","30 Yr"\n'
        "04/14/2026,3.71,3.70,3.69,3.68,3.66,3.62,3.55,3.41,3.44,3.60,3.79,4.02,4.61,4.66\n"
        "04/13/2026,3.72,3.71,3.70,3.69,3.67,3.63,3.56,3.44,3.46,3.62,3.81,N/A,4.63,4.68\n"
    )
    days = treasury.parse_treasury_csv(csv_text)
    assert [(d.day, d.two_year, d.ten_year) for d in days] == [
        (date(2026, 4, 13), 3.44, None),  # "N/A" is unknown, not 0
        (date(2026, 4, 14), 3.41, 4.02),
    ]


async def test_treasury_fetch_asks_for_the_year() -> None:
    client, seen = serving(body(text("treasury_yield.csv")))
    async with client:
        yields = await treasury.fetch_yields(client, CFG, date(2023, 7, 10))
    assert len(seen) == 1
    assert seen[0].url.path.endswith("/daily-treasury-rates.csv/2023/all")
    assert seen[0].url.params["type"] == "daily_treasury_yield_curve"
    assert seen[0].url.params["field_tdr_date_value"] == "2023"
    assert seen[0].url.params["_format"] == "csv"
    assert yields.source == "US Treasury"
    assert yields.as_of == datetime(2023, 7, 8, tzinfo=UTC)


@pytest.mark.parametrize("current_year", ['Date,"2 Yr","10 Yr"\n01/02/2024,4.33,3.95\n', ""])
async def test_treasury_in_early_january_also_reads_the_previous_year(current_year: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if "/2024/" in request.url.path:
            return httpx.Response(200, text=current_year)
        return httpx.Response(200, text=text("treasury_yield.csv"))

    client, seen = serving(handler)
    async with client:
        yields = await treasury.fetch_yields(client, CFG, date(2024, 1, 3))
    assert len(seen) == 2
    assert len(yields.days) >= 6
    assert [d.day for d in yields.days] == sorted(d.day for d in yields.days)
    assert yields.days[0].day == date(2023, 6, 26)


@pytest.mark.parametrize("content", [HTML_PAGE, "", "Date,Foo\n07/07/2023,1\n"])
async def test_treasury_faults(content: str) -> None:
    client, _ = serving(body(content))
    async with client:
        with pytest.raises(BadResponse):
            await treasury.fetch_yields(client, CFG, date(2023, 7, 10))


# --- FRED -----------------------------------------------------------------------------------


def test_fred_dot_is_none() -> None:
    days = fred.parse_fredgraph_csv(text("fred_dgs10_fredgraph.csv"))
    assert [(d.day, d.ten_year) for d in days] == [
        (date(2024, 1, 2), 3.95),
        (date(2024, 1, 3), 3.91),
        (date(2024, 1, 4), None),
        (date(2024, 1, 5), 4.02),
    ]
    assert all(d.two_year is None for d in days)  # DGS2 is not in this file


async def test_fred_fetch_reads_both_series_with_the_old_date_header() -> None:
    csv_text = "DATE,DGS2,DGS10\n2024-08-01,4.16,3.99\n2024-08-02,3.88,.\n"
    client, seen = serving(body(csv_text))
    async with client:
        yields = await fred.fetch_yields(client, CFG, today=date(2024, 8, 5))
    assert seen[0].url.params["id"] == "DGS2,DGS10"
    assert seen[0].url.params["cosd"] == "2024-06-21"
    assert [(d.two_year, d.ten_year) for d in yields.days] == [(4.16, 3.99), (3.88, None)]
    assert yields.as_of == datetime(2024, 8, 3, tzinfo=UTC)


@pytest.mark.parametrize("content", [HTML_PAGE, "", "observation_date,DGS10\n"])
async def test_fred_faults(content: str) -> None:
    client, _ = serving(body(content))
    async with client:
        with pytest.raises(BadResponse):
            await fred.fetch_yields(client, CFG, today=date(2024, 1, 8))


# --- Polymarket -------------------------------------------------------------------------------

SEPT_15_2026 = datetime(2026, 9, 15, 12, tzinfo=UTC)


def test_polymarket_sums_the_decrease_markets_from_json_in_json() -> None:
    meeting = polymarket.parse_next_meeting([load("polymarket_event_fed.json")], SEPT_15_2026)
    assert meeting.title == "Fed Decision in September?"
    assert meeting.probability == pytest.approx(0.0015 + 0.0005)
    assert meeting.end == datetime(2026, 9, 16, tzinfo=UTC)
    assert meeting.yes_tokens[0].startswith("577481380850")


def test_polymarket_no_open_meeting_is_a_bad_response() -> None:
    after = datetime(2026, 9, 17, tzinfo=UTC)
    with pytest.raises(BadResponse, match="no open Fed decision market"):
        polymarket.parse_next_meeting([load("polymarket_event_fed.json")], after)


async def test_polymarket_fetch_adds_the_hourly_history_of_the_cut_markets() -> None:
    event = load("polymarket_event_fed.json")
    tokens = [json.loads(m["clobTokenIds"])[0] for m in event["markets"]]
    histories = {
        tokens[0]: {"history": [{"t": 1789200003, "p": 0.01}, {"t": 1789203607, "p": 0.002}]},
        tokens[1]: {"history": [{"t": 1789200001, "p": 0.004}, {"t": 1789203602, "p": 0.001}]},
    }

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/events":
            return httpx.Response(200, json=[event])
        return httpx.Response(200, json=histories[request.url.params["market"]])

    client, seen = serving(handler)
    async with client:
        odds = await polymarket.fetch_cut_odds(client, CFG, SEPT_15_2026)
    assert seen[0].url.params["tag_slug"] == "fed"
    assert seen[0].url.params["closed"] == "false"
    assert {r.url.params.get("interval") for r in seen[1:]} == {"1w"}
    assert odds.meeting_date == date(2026, 9, 16)
    assert odds.url == "https://polymarket.com/event/fed-decision-in-september-762"
    assert [p.probability for p in odds.history] == [0.014, 0.003]
    assert odds.history[0].ts == datetime(2026, 9, 12, 8, tzinfo=UTC)


async def test_polymarket_odds_stand_when_the_history_fails() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/events":
            return httpx.Response(200, json=[load("polymarket_event_fed.json")])
        return httpx.Response(503)

    client, _ = serving(handler)
    async with client:
        odds = await polymarket.fetch_cut_odds(client, CFG, SEPT_15_2026)
    assert odds.probability == pytest.approx(0.002)
    assert odds.history == []


def clob(answer: Callable[[httpx.Request], Any]) -> httpx.AsyncClient:
    """Gamma answers the recorded event; `answer` (async) answers each CLOB history call."""
    event = load("polymarket_event_fed.json")

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/events":
            return httpx.Response(200, json=[event])
        return await answer(request)

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


async def test_polymarket_history_calls_are_in_flight_together() -> None:
    tokens = polymarket.parse_next_meeting(
        [load("polymarket_event_fed.json")], SEPT_15_2026
    ).yes_tokens
    arrived: list[str] = []
    all_in = asyncio.Event()

    async def answer(request: httpx.Request) -> httpx.Response:
        arrived.append(request.url.params["market"])
        if len(arrived) == len(tokens):
            all_in.set()
        await all_in.wait()  # no call is answered before every call has been made
        return httpx.Response(200, json={"history": [{"t": 1789200003, "p": 0.01}]})

    # the guard only stops a sequential reader from hanging the suite
    async with clob(answer) as client, asyncio.timeout(30):
        odds = await polymarket.fetch_cut_odds(client, CFG, SEPT_15_2026)
    assert sorted(arrived) == sorted(tokens)
    assert [p.probability for p in odds.history] == [0.02]


async def test_polymarket_history_that_never_answers_leaves_the_odds_without_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    never = asyncio.Event()

    async def answer(request: httpx.Request) -> httpx.Response:
        await never.wait()
        return httpx.Response(200, json={"history": []})

    cfg = SourceSettings(timeout_s=0.2)
    async with clob(answer) as client, asyncio.timeout(30):
        odds = await polymarket.fetch_cut_odds(client, cfg, SEPT_15_2026)
    assert odds.probability == pytest.approx(0.002)
    assert odds.history == []
    assert "polymarket price history: no answer in time" in caplog.text


@pytest.mark.parametrize(
    "content",
    [
        HTML_PAGE,
        "",
        '[{"title": "Fed Decision in October?", "slug": "x"}]',
        '[{"title": "Fed Decision in October?", "markets": [{"endDate": "2099-01-01T00:00:00Z",'
        ' "groupItemTitle": "25 bps decrease", "outcomes": "[\\"Yes\\", \\"No\\"]",'
        ' "outcomePrices": "not json"}]}]',
    ],
)
async def test_polymarket_faults(content: str) -> None:
    client, _ = serving(body(content))
    async with client:
        with pytest.raises(BadResponse):
            await polymarket.fetch_cut_odds(client, CFG, SEPT_15_2026)


# --- Yahoo Finance ----------------------------------------------------------------------------


def with_yahoo_session(chart: Handler) -> Handler:
    """Yahoo's session cookie and its crumb; the chart requests answered by `chart`."""

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.host == "fc.yahoo.com":
            return httpx.Response(404, headers={"Set-Cookie": "A3=d=AQABBKx1; Path=/"})
        if request.url.path.endswith("/getcrumb"):
            return httpx.Response(200, text="Qx7dyH1bWbU")
        return chart(request)

    return handle


async def yahoo_quote(client: httpx.AsyncClient, key: yahoo.IndexKey) -> Any:
    return await yahoo.fetch_quote(
        client, CFG.yahoo_url, key, session=yahoo.YahooSession.from_settings(CFG)
    )


async def test_yahoo_previous_close_comes_from_the_series() -> None:
    client, requests = serving(with_yahoo_session(body(text("yahoo_chart_gspc.json"))))
    async with client:
        quote = await yahoo_quote(client, "spx")
    seen = [r for r in requests if "/v8/finance/chart/" in r.url.path]
    assert seen[0].url.raw_path.startswith(b"/v8/finance/chart/%5EGSPC?")
    assert seen[0].url.params["range"] == "5d"
    assert seen[0].headers["User-Agent"] == BROWSER_USER_AGENT
    assert quote.last == 7177.54
    # the session before the last one, not chartPreviousClose (7108.4, before the range)
    assert quote.previous_close == pytest.approx(7135.95, abs=0.01)
    assert quote.change_pct == pytest.approx(0.5828, abs=1e-3)
    assert quote.session == date(2026, 4, 30)
    assert quote.market_open is True
    assert quote.name == "S&P 500"


def test_yahoo_stock_chart_has_the_same_shape() -> None:
    quote = yahoo.parse_quote(load("yahoo_chart.json"), "ndx")
    assert quote.previous_close == pytest.approx(321.66, abs=0.01)
    assert quote.session == date(2026, 7, 24)


def test_yahoo_error_body_gives_its_description() -> None:
    with pytest.raises(BadResponse) as caught:
        yahoo.parse_quote(load("yahoo_chart_error_404.json"), "spx")
    assert caught.value.detail == "No data found, symbol may be delisted"


async def test_yahoo_404_is_a_bad_response() -> None:
    client, _ = serving(with_yahoo_session(body(text("yahoo_chart_error_404.json"), status=404)))
    async with client:
        with pytest.raises(BadResponse) as caught:
            await yahoo_quote(client, "ndx")
    assert caught.value.source == "Yahoo Finance"


@pytest.mark.parametrize(
    "content",
    [HTML_PAGE, "", '{"chart": {"result": [{"meta": {"symbol": "^GSPC"}}], "error": null}}'],
)
async def test_yahoo_faults(content: str) -> None:
    client, _ = serving(with_yahoo_session(body(content)))
    async with client:
        with pytest.raises(BadResponse):
            await yahoo_quote(client, "spx")


# --- Stooq ------------------------------------------------------------------------------------


def test_stooq_quote_csv_shapes() -> None:
    spx = stooq.parse_stooq_csv(text("stooq_spx.csv"))
    ndq = stooq.parse_stooq_csv(text("stooq_ndq.csv"))
    assert (spx[0].day, spx[0].close) == (date(2026, 5, 8), 7398.9)
    assert ndq[0].close == 26247.08
    with pytest.raises(BadResponse, match="fewer than two sessions"):
        stooq.quote_from_bars(spx, "spx")  # a quote row alone has no previous close


def test_stooq_nd_row_is_no_data() -> None:
    with pytest.raises(BadResponse) as caught:
        stooq.parse_stooq_csv(text("stooq_nd_placeholder.csv"))
    assert caught.value.detail == "no data"


async def test_stooq_daily_history_gives_the_last_change() -> None:
    history = (
        "Date,Open,High,Low,Close,Volume\n"
        "2024-08-01,5537.84,5566.16,5410.42,5446.68,4459370000\n"
        "2024-08-02,5376.63,5376.63,5234.32,5346.56,4793620000\n"
    )
    client, seen = serving(body(history))
    async with client:
        quote = await stooq.fetch_quote(
            client, CFG.stooq_url, "spx", SecretStr("k"), today=date(2024, 8, 5)
        )
    assert seen[0].url.path == "/q/d/l/"
    assert seen[0].url.params["s"] == "^spx"
    assert seen[0].url.params["i"] == "d"
    assert quote.change_pct == pytest.approx(-1.838, abs=1e-3)
    assert quote.session == date(2024, 8, 2)
    assert quote.source == "Stooq"


@pytest.mark.parametrize("content", [HTML_PAGE, "", "Exceeded the daily hits limit"])
async def test_stooq_faults(content: str) -> None:
    client, _ = serving(body(content))
    async with client:
        with pytest.raises(BadResponse):
            await stooq.fetch_quote(client, CFG.stooq_url, "ndx", SecretStr("k"))


# --- alternative.me ---------------------------------------------------------------------------


async def test_fear_greed_points_oldest_first() -> None:
    client, seen = serving(body(text("alternative_fng.json")))
    async with client:
        index = await feargreed.fetch_fear_greed(client, CFG, days=2)
    assert seen[0].url.params["limit"] == "2"
    assert [(p.value, p.label) for p in index.points] == [(47, "Neutral"), (40, "Fear")]
    assert index.as_of == datetime.fromtimestamp(1551157200, UTC)


def test_fear_greed_live_sample() -> None:
    index = feargreed.parse_fng(load("alternative_fng_live.json"))
    assert (index.points[-1].value, index.points[-1].label) == (28, "Fear")
    assert index.points[-1].day == date(2026, 5, 23)


@pytest.mark.parametrize(
    "content",
    [
        HTML_PAGE,
        "",
        '{"name": "Fear and Greed Index", "data": [], "metadata": {"error": "Limit exceeded"}}',
        '{"name": "Fear and Greed Index", "data": [{"value": "40"}], "metadata": {"error": null}}',
    ],
)
async def test_fear_greed_faults(content: str) -> None:
    client, _ = serving(body(content))
    async with client:
        with pytest.raises(BadResponse):
            await feargreed.fetch_fear_greed(client, CFG)


# --- RSS --------------------------------------------------------------------------------------


def feed(key: str) -> news.Feed:
    return next(f for f in news.feeds(CFG) if f.key == key)


async def read_feed(key: str, content: bytes) -> Headlines:
    client, _ = serving(body(content))
    async with client:
        return await news.fetch_feed(client, feed(key), HEADLINE_PATTERNS)


async def test_coindesk_feed_without_media_namespace() -> None:
    result = await read_feed("coindesk", (API / "coindesk_rss.xml").read_bytes())
    first = result.items[0]
    assert first.feed == "CoinDesk"
    assert first.title.startswith("Traders price in 4 Fed rate hikes")
    assert first.published == datetime(2026, 9, 24, 10, 11, 51, tzinfo=UTC)
    assert first.drivers == ["fed"]
    assert result.items[1].drivers == []
    assert result.as_of == datetime(2026, 9, 24, 14, 49, 28, tzinfo=UTC)


async def test_cointelegraph_links_lose_utm_parameters() -> None:
    result = await read_feed("cointelegraph", (API / "cointelegraph_rss.xml").read_bytes())
    assert [h.link for h in result.items] == [
        "https://cointelegraph.com/news/what-happened-in-crypto-today",
        "https://cointelegraph.com/news/solana-validators-approve-proposal-to-accelerate-sol-disinflation",
    ]


async def test_theblock_feed() -> None:
    result = await read_feed("theblock", (API / "theblock_rss.xml").read_bytes())
    assert len(result.items) == 2
    assert result.items[0].link == (
        "https://www.theblock.co/post/408670/multicoin-capital-hyperliquid-ecosystem-investment-trasia"
    )
    assert result.items[0].published == datetime(2026, 7, 16, 16, 0, 2, tzinfo=UTC)  # -0400


async def test_fed_feed_is_tagged_fed() -> None:
    result = await read_feed("fed", (API / "fed_press_monetary_rss.xml").read_bytes())
    assert result.items[0].feed == "Federal Reserve"
    assert result.items[0].drivers == ["fed"]
    assert result.items[1].title.startswith("Minutes of the Board's discount rate")


@pytest.mark.parametrize(
    ("title", "drivers"),
    [
        ("Over $1B in longs liquidated as Ether tanks", ["liquidations"]),
        ("Bitcoin ETF outflows hit $237M", ["etf"]),
        ("Whales and institutions sell as Coinbase premium flips", ["institutional"]),
        ("Powell hints at a rate cut in September", ["fed"]),
        ("Traders fed up with memecoins", []),  # "Fed" only as the central bank
        ("S&P 500 and Nasdaq slide on recession fears", ["stocks", "fear"]),
        ("Nikkei crashes 12%; panic spreads to crypto", ["stocks", "fear"]),
        ("Miners capitulate as hashprice falls", ["fear"]),
    ],
)
def test_tag(title: str, drivers: list[str]) -> None:
    assert news.tag(title, "", HEADLINE_PATTERNS) == drivers


SYNDICATED = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>A syndicating feed (test body)</title>
<item><title>Traders Price In 4 Fed Rate Hikes by June 2027, as Bitcoin Slides Below $83,000</title>
<link>https://syndicate.example/markets/traders-rate-hikes?utm_source=partner</link>
<pubDate>Thu, 24 Sep 2026 11:00:00 +0000</pubDate></item>
<item><title>Crypto for Advisors: a different story</title>
<link>https://coindesk.com/coindesk-indices/2026/09/24/crypto-for-advisors-the-hidden-costs-of-holding-your-own-bitcoin/?utm_medium=rss</link>
<pubDate>Thu, 24 Sep 2026 15:00:00 +0000</pubDate></item>
<item><title>Solana validators approve faster disinflation</title>
<link>https://syndicate.example/solana</link>
<pubDate>Fri, 28 Aug 2026 21:00:00 +0000</pubDate></item>
</channel></rss>"""


async def test_merge_dedupes_across_feeds_newest_first() -> None:
    coindesk = news.parse_feed(
        (API / "coindesk_rss.xml").read_bytes(), "CoinDesk", HEADLINE_PATTERNS
    )
    syndicated = news.parse_feed(SYNDICATED, "Syndicate", HEADLINE_PATTERNS)
    merged = news.merge([syndicated, coindesk])
    # one entry per story, the original (earliest) copy kept: the advisors story shares its
    # link (after utm, www. and a trailing slash), the rate-hikes story its title up to case
    # and punctuation
    assert [(h.feed, h.title[:22]) for h in merged] == [
        ("CoinDesk", "Crypto for Advisors:Th"),
        ("CoinDesk", "Traders price in 4 Fed"),
        ("Syndicate", "Solana validators appr"),
    ]
    assert news.merge([coindesk, syndicated], limit=2) == merged[:2]


@pytest.mark.parametrize("content", [HTML_PAGE.encode(), b"", b'{"items": []}'])
async def test_feed_faults(content: bytes) -> None:
    with pytest.raises(BadResponse) as caught:
        await read_feed("decrypt", content)
    assert caught.value.source == "Decrypt"


async def test_feed_server_error_is_unavailable() -> None:
    client, _ = serving(body(b"", status=502))
    async with client:
        with pytest.raises(SourceUnavailable):
            await news.fetch_feed(client, feed("theblock"), HEADLINE_PATTERNS)


def test_feeds_come_from_the_settings() -> None:
    cfg = SourceSettings(decrypt_feed="https://mirror.example/decrypt.xml")
    listed = {f.key: (f.label, f.url) for f in news.feeds(cfg)}
    assert listed["decrypt"] == ("Decrypt", "https://mirror.example/decrypt.xml")
    assert [f.label for f in news.feeds(cfg)] == [
        "CoinDesk",
        "Cointelegraph",
        "Decrypt",
        "The Block",
        "Federal Reserve",
    ]


async def test_plain_sources_send_the_descriptive_agent() -> None:
    client, seen = serving(body(text("alternative_fng.json")))
    async with client:
        await feargreed.fetch_fear_greed(client, CFG)
    assert seen[0].headers["User-Agent"] == USER_AGENT


# --- the demo recording -----------------------------------------------------------------------


async def test_demo_recording_gives_the_scenario_figures() -> None:
    scenario = Scenario.load()
    now = scenario.now
    async with httpx.AsyncClient(transport=scenario.transport()) as client:
        etf = await farside.fetch_etf_flows(client, CFG)
        yields = await treasury.fetch_yields(client, CFG, now.date())
        odds = await polymarket.fetch_cut_odds(client, CFG, now)
        spx = await yahoo_quote(client, "spx")
        ndx = await yahoo_quote(client, "ndx")
        fear = await feargreed.fetch_fear_greed(client, CFG, days=8)
        headlines = news.merge(
            [await news.fetch_feed(client, f, HEADLINE_PATTERNS) for f in news.feeds(CFG)]
        )

    latest = etf.days[-1]
    assert (latest.day, latest.total_musd) == (date(2024, 8, 2), -237.4)
    assert sum(v for v in latest.funds.values() if v is not None) == pytest.approx(-237.4)
    assert sum(d.total_musd or 0.0 for d in etf.days[-3:]) == pytest.approx(-267.5)
    assert [d.total_musd for d in etf.days[-5:]] == [124.1, 18.3, 50.6, -80.7, -237.4]

    by_day = {d.day: d for d in yields.days}
    assert (by_day[date(2024, 7, 26)].two_year, by_day[date(2024, 8, 2)].two_year) == (4.39, 3.88)
    assert (by_day[date(2024, 7, 26)].ten_year, by_day[date(2024, 8, 2)].ten_year) == (4.20, 3.79)

    assert odds.meeting == "Fed Decision in September?"
    assert odds.meeting_date == date(2024, 9, 18)
    assert odds.probability == pytest.approx(0.99)
    week_ago = next(p for p in odds.history if p.ts >= now - timedelta(days=7))
    assert week_ago.probability == pytest.approx(0.90, abs=0.01)

    assert (spx.last, spx.session, spx.market_open) == (5346.56, date(2024, 8, 2), False)
    assert round(spx.change_pct, 2) == -1.84
    assert ndx.last == 16776.16
    assert round(ndx.change_pct, 2) == -2.43

    assert fear.points[-1].value == 26
    assert fear.points[-1].day == date(2024, 8, 5)
    assert fear.points[0].value == 74
    assert fear.points[0].day == date(2024, 7, 29)

    for result in (etf, yields, spx, ndx, fear):
        assert result.as_of <= now
    assert all(p.ts <= now for p in odds.history)
    assert headlines and all(h.published is not None and h.published <= now for h in headlines)
    assert {"liquidations", "etf", "stocks", "fear"} <= {d for h in headlines for d in h.drivers}
