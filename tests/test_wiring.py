"""The new sources wired end to end, over recorded bodies: open interest across venues, the
USDT-cleaned premium, stocks with their sessions, Kalshi beside Polymarket, Farside's challenge,
and `whydown sources` as a doctor (one drifted body, one local websocket venue)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bot.config import Settings
from bot.doctor import doctor
from explainers import drivers, render
from explainers.collect import Collector
from explainers.explain import explain
from explainers.history import MemoryHistory
from explainers.lookback import lookback, remember
from explainers.models import Candle, Candles
from explainers.settings import SourceSettings, Thresholds
from explainers.sources import fred, kalshi, usdt, yahoo
from explainers.streams import BybitLiquidations, LiquidationStream
from tests import factories as f
from tests.ws_venue import FakeClock, FakeVenue, fixture

API = Path(__file__).parent / "fixtures" / "api"
T = Thresholds()

#: request (host, path) -> recorded body
BODIES = {
    ("www.okx.com", "/api/v5/public/open-interest"): "okx_open_interest.json",
    ("api.bybit.com", "/v5/market/tickers"): "bybit_tickers_linear.json",
    ("fapi.binance.com", "/fapi/v1/openInterest"): "binance_open_interest.json",
    ("fapi.binance.com", "/fapi/v1/premiumIndex"): "binance_premium_index.json",
    ("api.hyperliquid.xyz", "/info"): "hyperliquid_meta_and_asset_ctxs.json",
    ("api.kraken.com", "/0/public/Ticker"): "kraken_ticker_usdtusd.json",
}


def _recorded(overrides: dict[tuple[str, str], str] | None = None) -> httpx.MockTransport:
    bodies = {**BODIES, **(overrides or {})}

    def handle(request: httpx.Request) -> httpx.Response:
        name = bodies.get((request.url.host, request.url.path))
        if name is None:
            return httpx.Response(404, text="not recorded")
        text = (API / name).read_text() if name.endswith((".json", ".csv")) else name
        return httpx.Response(200, text=text)

    return httpx.MockTransport(handle)


def _cfg() -> SourceSettings:
    return SourceSettings(open_interest_coins=["BTC"], retry_backoff_s=0)


# --- 3. open interest across venues ---------------------------------------------------------


async def test_open_interest_is_summed_across_venues_and_compared_an_hour_later() -> None:
    history = MemoryHistory()
    now = [datetime(2026, 4, 1, 12, tzinfo=UTC)]
    async with httpx.AsyncClient(transport=_recorded()) as client:
        collector = Collector(client, _cfg(), clock=lambda: now[0])
        first = await collector.collect()
        remember(first, history)
        now[0] += timedelta(hours=1)
        second = await collector.collect()
    venues = sorted({v.venue for v in second.venue_open_interest})
    assert venues == ["Binance", "Bybit", "Hyperliquid", "OKX"]
    # every venue answered (the recorded bodies' own times make some of them stale here)
    for key in ("oi_okx", "oi_bybit", "oi_binance", "oi_hyperliquid"):
        assert second.statuses[key].state in ("ok", "stale"), key
    lb = lookback(second, history, T)
    assert set(lb.oi_venues_1h_ago_usd) == set(venues)
    result = drivers.liquidations.evaluate(second, lb, T)
    text = render.text(explain(second, [result], lb, T, now=now[0]))
    assert "BTC open interest +0.0% in 1h across 4 venues" in text
    lines = [(e.label, e.source) for e in result.evidence]
    assert lines[0][0] == "BTC open interest, 1h, 4 venues"
    assert sorted(lines[0][1].split(", ")) == venues
    for venue in venues:
        assert (f"BTC open interest, {venue}", venue) in lines


# --- 4. clean premium -----------------------------------------------------------------------


def _candles(source: str, symbol: str, closes: list[float]) -> Candles:
    start = f.NOW - timedelta(minutes=len(closes))
    return Candles(
        source=source,
        as_of=f.NOW,
        symbol=symbol,
        granularity_s=60,
        candles=[Candle(start=start + timedelta(minutes=i), close=c) for i, c in enumerate(closes)],
    )


def test_premium_converts_okx_usdt_to_usd_and_names_the_rate() -> None:
    body = json.loads((API / "kraken_ticker_usdtusd.json").read_text())
    quote = usdt.parse_kraken_ticker(body, now=f.NOW)
    s = f.snapshot(
        coinbase_btc=_candles("Coinbase", "BTC-USD", [60000.0, 60000.0, 60000.0]),
        okx_btc=_candles("OKX", "BTC-USDT", [60000.0, 60000.0, 60000.0]),
        usdt=quote,
    )
    lb = lookback(s, MemoryHistory(), T)
    expected = (60000.0 - 60000.0 * quote.rate) / (60000.0 * quote.rate) * 100
    assert lb.premium_samples[-1] == expected
    result = drivers.institutional.evaluate(s, lb, T)
    lines = [(e.label, e.value, e.source, e.as_of) for e in result.evidence]
    assert lines[0][0] == "Coinbase premium (BTC-USD vs OKX BTC-USDT in USD)"
    assert lines[1] == ("USDT-USD rate used", f"{quote.rate:.4f} USD per USDT", "Kraken", f.NOW)


def test_premium_without_a_usdt_quote_says_it_is_unadjusted() -> None:
    s = f.snapshot(
        coinbase_btc=_candles("Coinbase", "BTC-USD", [59940.0] * 3),
        okx_btc=_candles("OKX", "BTC-USDT", [60000.0] * 3),
    )
    lb = lookback(s, MemoryHistory(), T)
    result = drivers.institutional.evaluate(s, lb, T)
    assert result.state == "fired"
    labels = [e.label for e in result.evidence]
    assert labels == ["Coinbase premium (BTC-USD vs OKX BTC-USDT, unadjusted: no USDT-USD quote)"]


# --- 5. stocks that survive -----------------------------------------------------------------


def test_every_stocks_line_names_its_session() -> None:
    spx = yahoo.parse_quote(json.loads((API / "yahoo_chart_gspc.json").read_text()), "spx")
    ndx = fred.index_close_from_series((API / "fred_nasdaqcom_fredgraph.csv").read_text(), "ndx")
    s = f.snapshot(markets=f.markets(), indices={"spx": spx, "ndx": ndx})
    lb = f.lookback()
    result = drivers.stocks.evaluate(s, lb, T)
    text = render.text(explain(s, [result], lb, T, now=f.NOW))
    assert f"S&P 500 {spx.change_pct:+.2f}% ({spx.session_label})" in text
    assert f"Nasdaq {ndx.change_pct:+.2f}% ({ndx.session_label})" in text
    assert ndx.session_label.startswith("close of ")
    labels = [(e.label, e.source) for e in result.evidence]
    assert (f"Nasdaq Composite, {ndx.session_label}", "FRED") in labels
    assert (f"S&P 500, {spx.session_label}", "Yahoo Finance") in labels


async def test_stocks_fall_back_to_fred_and_never_call_stooq_without_a_key() -> None:
    asked: list[str] = []
    sp500 = (API / "fred_sp500_fredgraph.csv").read_text()
    ndq = (API / "fred_nasdaqcom_fredgraph.csv").read_text()

    def handle(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.host)
        if request.url.host == "fred.stlouisfed.org":
            body = sp500 if request.url.params.get("id") == "SP500" else ndq
            return httpx.Response(200, text=body)
        if "yahoo" in request.url.host:
            return httpx.Response(429, headers={"Retry-After": "600"})
        return httpx.Response(404)

    now = datetime(2021, 4, 7, 12, tzinfo=UTC)
    async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
        snapshot = await Collector(client, _cfg(), clock=lambda: now).collect()
    assert snapshot.indices["spx"].source == "FRED"
    assert snapshot.statuses["fred_spx"].state == "ok"
    assert snapshot.statuses["stooq_spx"].state == "disabled"
    assert snapshot.statuses["stooq_spx"].reason == "no API key set"
    assert "stooq.com" not in asked
    result = drivers.stocks.evaluate(snapshot, f.lookback(), T)
    assert "S&P 500, close of 6 Apr 2021: -0.10% (4,073.94)" in [
        f"{e.label}: {e.value}" for e in result.evidence
    ]


# --- 6. Fed odds from two markets ---------------------------------------------------------


def _kalshi() -> kalshi.FedCutOdds:
    markets, _ = kalshi.markets_of(json.loads((API / "kalshi_markets_kxfed.json").read_text()))
    return kalshi.cut_odds(markets, 4.5, f.NOW)


def test_fed_shows_both_markets_when_both_answer() -> None:
    odds = _kalshi()
    s = f.snapshot(cut_odds=f.cut_odds(0.6), kalshi_odds=odds)
    lb = f.lookback(cut_odds_7d_ago=0.5)
    result = drivers.fed.evaluate(s, lb, T)
    text = render.text(explain(s, [result], lb, T, now=f.NOW))
    assert "cut odds 60% (+10 pts in 7 days) on Polymarket, 72% on Kalshi" in text
    lines = [(e.label, e.value, e.source) for e in result.evidence]
    assert ("Cut odds, FOMC Apr 28, 2027", "72% (mid of KXFED-27APR-T4.25)", "Kalshi") in lines
    assert ("Cut odds, Fed Decision in December?", "60% (+10 pts in 7 days)", "Polymarket") in lines


def test_fed_with_kalshi_alone_shows_its_odds() -> None:
    s = f.snapshot(kalshi_odds=_kalshi(), yields=f.yields(4.0, 4.0, 4.0, 4.0, 4.0, 4.1))
    result = drivers.fed.evaluate(s, f.lookback(two_year_5d_ago=4.0), T)
    text = render.text(explain(s, [result], f.lookback(), T, now=f.NOW))
    assert "Fed uncertainty: cut odds 72% on Kalshi; 2-year yield 4.10%" in text


# --- 7. ETF flows -------------------------------------------------------------------------


async def test_farside_challenge_is_reported_as_blocked() -> None:
    page = "<!DOCTYPE html><html><head><title>Just a moment...</title></head></html>"

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.host == "farside.co.uk":
            return httpx.Response(403, text=page, headers={"cf-mitigated": "challenge"})
        return httpx.Response(404)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
        snapshot = await Collector(client, _cfg()).collect()
    status = snapshot.statuses["farside"]
    assert status.state == "blocked"
    assert "bot challenge" in (status.reason or "")
    assert snapshot.statuses["sosovalue"].reason == "no API key set"


# --- 8. the doctor ------------------------------------------------------------------------


async def test_doctor_names_a_drifted_body_and_the_fitting_ones() -> None:
    drifted = (
        (API / "bybit_tickers_linear.json")
        .read_text()
        .replace('"openInterestValue"', '"openInterestVal"')
    )
    settings = Settings(_env_file=None, sources=_cfg())
    lines, code = await doctor(
        settings, 0, transport=_recorded({("api.bybit.com", "/v5/market/tickers"): drifted})
    )
    assert code == 1  # a drifted body fails the check
    assert lines[0].split() == ["source", "status", "latency", "as", "of", "shape", "note"]
    bybit = next(line for line in lines if line.startswith("Bybit open interest"))
    assert " DRIFT " in bybit
    assert "result.list[0].openInterestValue is missing (has: openInterestVal)" in bybit
    hyperliquid = next(line for line in lines if line.startswith("Hyperliquid open interest"))
    assert " ok " in hyperliquid and " fits " in hyperliquid and " ms " in hyperliquid
    stooq = next(line for line in lines if line.startswith("Stooq S&P 500"))
    assert "disabled" in stooq and "no API key set" in stooq
    assert not any(line.startswith("streams") for line in lines)  # --listen 0


async def test_doctor_listens_to_a_stream() -> None:
    async def script(conn: object) -> None:
        from tests.ws_venue import Connection

        assert isinstance(conn, Connection)
        await conn.recv()
        await conn.send(
            fixture("bybit_ws_subscribe_ack_linear.json"),
            fixture("bybit_all_liquidation_ws.json"),
            fixture("bybit_all_liquidation_ws_live.json"),
        )
        await conn.answer_pings(lambda t: '"ping"' in t, fixture("bybit_ws_pong_linear.json"))

    async def until_two_events(seconds: float, clients: list[LiquidationStream]) -> None:
        await asyncio.wait_for(clients[0].wait_for(lambda s: s.events_total >= 2), 5)

    from explainers.doctor import listen, stream_table

    clock = FakeClock()
    async with FakeVenue([script]) as venue:
        checks = await listen(
            60,
            urls={"bybit": venue.url},
            streams=(BybitLiquidations,),
            wait=until_two_events,
            clock=clock,
        )
    (bybit,) = checks
    assert (bybit.venue, bybit.connected, bybit.events) == ("bybit", True, 2)
    assert bybit.last_frame_age_s == 0.0
    lines = stream_table(checks)
    assert lines[0] == "streams (listened 60 s):"
    assert lines[2].split()[:6] == ["bybit", "yes", "0.0", "s", "ago", "2.0"]
