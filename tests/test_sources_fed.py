"""Fed cut odds from Kalshi's keyless market data, on recorded bodies."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from explainers.errors import BadResponse, RateLimited
from explainers.sources import fred, kalshi
from explainers.sources.shape import check_shape

API = Path(__file__).parent / "fixtures" / "api"
BASE = "https://api.elections.kalshi.com/trade-api/v2"
NOW = datetime(2026, 7, 18, 12, 0, tzinfo=UTC)


def load(name: str) -> Any:
    return json.loads((API / name).read_bytes())


def test_cut_odds_read_the_market_one_step_below_the_current_upper_bound() -> None:
    markets, cursor = kalshi.markets_of(load("kalshi_markets_kxfed.json"))
    assert cursor == "CgwIj66QxwYQsOCSqgMSEUtYRkVELTI3QVBSLVQ0LjI1"
    # upper bound 4.50%: a cut leaves it NOT above 4.25%; yes bid 0.27 / ask 0.28 -> mid 0.275
    odds = kalshi.cut_odds(markets, 4.50, NOW)
    assert odds.cut_pct == 72.5
    assert (odds.yes_price, odds.price_basis) == (pytest.approx(0.275), "mid")
    assert odds.ticker == "KXFED-27APR-T4.25"
    assert odds.event_ticker == "KXFED-27APR"
    assert odds.meeting == "FOMC Apr 28, 2027"
    assert odds.meeting_date == date(2027, 4, 28)
    assert odds.title.startswith("Will the upper bound of the federal funds rate be above 4.25%")
    assert odds.as_of == NOW and odds.source == "Kalshi"


def test_no_market_at_the_needed_strike_is_a_bad_response() -> None:
    markets, _ = kalshi.markets_of(load("kalshi_markets_kxfed.json"))
    with pytest.raises(BadResponse, match=r"no market above 4\.50% for KXFED-27APR"):
        kalshi.cut_odds(markets, 4.75, NOW)


def test_a_meeting_already_closed_is_not_the_next_one() -> None:
    markets, _ = kalshi.markets_of(load("kalshi_markets_kxfed.json"))
    with pytest.raises(BadResponse, match="no open FOMC meeting market"):
        kalshi.cut_odds(markets, 4.50, datetime(2027, 4, 28, 18, 0, tzinfo=UTC))


def test_next_meeting_is_the_soonest_closing_event() -> None:
    event = load("kalshi_event_fedfunds.json")
    april = load("kalshi_markets_kxfed.json")["markets"]
    ticker, group = kalshi.next_meeting(event["markets"] + april, NOW)
    assert ticker == "KXFED-27APR"  # closes 2027-04-28, before the 2037 year-end event
    assert [m["ticker"] for m in group] == ["KXFED-27APR-T4.25"]


def test_without_a_meeting_date_in_the_title_the_close_time_names_it() -> None:
    event = load("kalshi_event_fedfunds.json")
    # a wide quote (0.67 / 0.91) still gives a mid; 1.25% is one step below 1.50%
    odds = kalshi.cut_odds(event["markets"], 1.50, NOW)
    assert odds.ticker == "KXFEDFUNDSYEAR-37JAN01-T1.25"
    assert odds.yes_price == pytest.approx(0.79)
    assert odds.cut_pct == 21.0
    assert odds.meeting_date == date(2037, 1, 1)


def test_last_price_stands_in_when_a_side_is_missing() -> None:
    market = dict(load("kalshi_markets_kxfed.json")["markets"][0])
    del market["yes_ask_dollars"]
    assert kalshi.yes_price(market) == (0.28, "last")
    market["last_price_dollars"] = "0.0000"
    with pytest.raises(BadResponse, match="no quote"):
        kalshi.yes_price(market)


def test_orderbook_sides_are_bids_and_the_yes_ask_is_one_minus_the_best_no_bid() -> None:
    assert kalshi.parse_orderbook(load("kalshi_orderbook_kxfed.json")) == (0.27, 0.28)
    assert kalshi.parse_orderbook({"orderbook_fp": {"yes_dollars": [], "no_dollars": None}}) == (
        None,
        None,
    )


def test_shapes() -> None:
    assert check_shape(load("kalshi_markets_kxfed.json"), kalshi.MARKETS_SHAPE) == []
    assert check_shape(load("kalshi_orderbook_kxfed.json"), kalshi.ORDERBOOK_SHAPE) == []
    # the old integer-cent fields are gone; a body that still had only them shows the drift
    old = {"markets": [{**load("kalshi_markets_kxfed.json")["markets"][0]}]}
    old["markets"][0]["yes_bid"] = 27
    del old["markets"][0]["yes_bid_dollars"]
    (problem,) = check_shape(old, kalshi.MARKETS_SHAPE)
    assert problem.startswith("markets[0].yes_bid_dollars is missing")
    assert (
        check_shape(
            {"markets": load("kalshi_event_fedfunds.json")["markets"]}, kalshi.MARKETS_SHAPE
        )
        == []
    )


async def test_fetch_follows_the_cursor_until_it_is_empty() -> None:
    first = (API / "kalshi_markets_kxfed.json").read_bytes()
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if "cursor" in request.url.params:
            return httpx.Response(200, json={"cursor": "", "markets": []})
        return httpx.Response(200, content=first)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
        odds = await kalshi.fetch_cut_odds(client, BASE, 4.50, NOW)
    assert [r.url.path for r in seen] == ["/trade-api/v2/markets"] * 2
    assert dict(seen[0].url.params) == {"series_ticker": "KXFED", "status": "open", "limit": "200"}
    assert seen[1].url.params["cursor"] == "CgwIj66QxwYQsOCSqgMSEUtYRkVELTI3QVBSLVQ0LjI1"
    assert "Authorization" not in seen[0].headers  # keyless
    assert odds.cut_pct == 72.5


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (httpx.Response(200, text="<html><body>CloudFront</body></html>"), BadResponse),
        (httpx.Response(200, text='{"markets": [{"ticker"'), BadResponse),
        (httpx.Response(200, json={"error": {"code": "not_found"}}), BadResponse),
        (httpx.Response(429, headers={"Retry-After": "2"}), RateLimited),
    ],
)
async def test_faults(reply: httpx.Response, error: type[Exception]) -> None:
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda r: reply)) as client:
        with pytest.raises(error):
            await kalshi.fetch_cut_odds(client, BASE, 4.50, NOW)


async def test_orderbook_fetch() -> None:
    body = (API / "kalshi_orderbook_kxfed.json").read_bytes()
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=body)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
        assert await kalshi.fetch_orderbook(client, BASE, "KXFED-27APR-T4.25") == (0.27, 0.28)
    assert str(seen[0].url) == f"{BASE}/markets/KXFED-27APR-T4.25/orderbook?depth=3"


async def test_current_upper_bound_from_fred() -> None:
    # fredgraph format as recorded for other series (no DFEDTARU body is recorded)
    csv = "observation_date,DFEDTARU\n2026-07-15,4.50\n2026-07-16,4.50\n2026-07-17,\n"
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(lambda r: httpx.Response(200, text=csv))
    ) as client:
        latest = await fred.fetch_latest(client, "https://fred.stlouisfed.org", "DFEDTARU")
    assert latest == (date(2026, 7, 16), 4.5)
