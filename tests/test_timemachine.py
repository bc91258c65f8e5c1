"""`/why <date>`, the archive and the backtest, over each source's recorded history around
5 August 2024 (explainers/demo/aug-2024-history, served through MockTransport)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from bot import cli
from bot.alerts import AlertEngine, AlertSettings
from bot.config import Settings
from bot.jobs import Jobs
from bot.store import Store
from explainers import render, timemachine
from explainers.backtest import MemoryArchive, TimeMachine, backtest, preview_text
from explainers.models import DriverResult, Explanation
from explainers.replay import Scenario
from explainers.settings import SourceSettings, Thresholds
from explainers.sources import okx, past, yahoo
from explainers.timemachine import BadDate, PastDay, is_day, parse_day
from tests.replay_helpers import Upstream

GOLDEN = Path(__file__).parent / "golden"
HISTORY = cli.HISTORY_DEMO
DAY = date(2024, 8, 5)


def check(name: str, actual: str) -> None:
    path = GOLDEN / name
    if os.environ.get("WHYDOWN_UPDATE_GOLDEN"):
        path.write_text(actual)
    assert actual == path.read_text(), f"{name} changed; regenerate with WHYDOWN_UPDATE_GOLDEN=1"


def machine(scenario: Scenario, client: httpx.AsyncClient, **kw: object) -> TimeMachine:
    return TimeMachine(
        client,
        SourceSettings(),
        Thresholds(),
        clock=lambda: scenario.now,
        **kw,  # type: ignore[arg-type]
    )


async def past_answer(coin: str | None = None) -> Explanation:
    scenario = Scenario.load(HISTORY)
    async with httpx.AsyncClient(transport=scenario.transport()) as client:
        return await machine(scenario, client).answer(DAY, coin)


# --- dates ------------------------------------------------------------------------------------


def test_date_forms() -> None:
    today = date(2024, 8, 12)
    assert parse_day("2024-08-05", today) == DAY
    assert parse_day("yesterday", today) == date(2024, 8, 11)
    assert parse_day("3d", today) == date(2024, 8, 9)
    assert parse_day(" 7 days ago ", today) == DAY
    assert is_day("2024-08-05") and is_day("3d") and is_day("yesterday")
    assert not is_day("sol") and not is_day("eth")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("2024-08-13", "2024-08-13 is in the future: ask about a day that has begun"),
        (
            "5 August",
            '"5 August" is not a date: use YYYY-MM-DD (2024-08-05), "yesterday" or "3d" for '
            "three days ago",
        ),
        (
            "2014-12-31",
            "2014-12-31 is before any source's history (the earliest is 2015-07-20)",
        ),
    ],
)
def test_bad_dates_say_why(text: str, reason: str) -> None:
    with pytest.raises(BadDate) as err:
        parse_day(text, date(2024, 8, 12))
    assert err.value.reason == reason


def test_cli_refuses_a_bad_date(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["demo", "--at", "2099-01-01"]) == 2
    assert capsys.readouterr().err == (
        "No answer for that date: 2099-01-01 is in the future: ask about a day that has begun.\n"
    )


# --- the rebuilt answer -----------------------------------------------------------------------


async def test_why_2024_08_05_text_html_and_discord() -> None:
    e = await past_answer()
    assert e.past is not None and e.past.origin == "rebuilt"
    assert {d.key: d.state for d in e.drivers} == {
        "institutional": "fired",
        "fear": "fired",
        "stocks": "fired",
        "etf": "fired",
        "fed": "quiet",
        "liquidations": "unknown",
    }
    check("why_2024-08-05.txt", render.text(e))
    check("why_2024-08-05.telegram.html", render.telegram_html(e))
    check(
        "why_2024-08-05.discord.json",
        json.dumps(render.discord_embed(e), indent=2, ensure_ascii=False) + "\n",
    )
    text = render.text(e)
    assert text.startswith("As of the end of 5 Aug 2024 (UTC), rebuilt from each source's history.")
    assert (
        "- Liquidation cascade: not tracked then: whydown's archive has no record of that day"
        in text
    )


async def test_a_coin_and_a_date() -> None:
    e = await past_answer("SOL")
    assert e.coin is not None and e.coin.symbol == "SOL"
    assert render.text(e).split("\n")[3].startswith("Solana (SOL): -8.9% in 24h")


def test_demo_at_replays_the_history(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["demo", "--at", "2024-08-05"]) == 0
    out = capsys.readouterr().out
    assert out.startswith('REPLAY of "Yen carry-trade unwind, looked back on" (5 Aug 2024)')
    assert "Crypto was down on 5 Aug 2024: BTC -6.9% (-0.1% in 1h)." in out


async def test_coingecko_beyond_365_days_falls_back_to_coinbase_daily_candles() -> None:
    scenario = Scenario.load(HISTORY)
    async with httpx.AsyncClient(transport=scenario.transport()) as client:
        tm = TimeMachine(
            client,
            SourceSettings(),
            Thresholds(),
            clock=lambda: scenario.now + timedelta(days=400),
        )
        e = await tm.answer(DAY)
    hosts = {r.url.host for r in scenario.requests}
    assert "api.coingecko.com" not in hosts  # not asked: older than its keyless 365 days
    # the recording has no daily Coinbase candles: the move is unknown, said plainly
    assert render.text(e).split("\n")[2] == (
        "The market's move on 5 Aug 2024 is unknown: no price history answered."
    )


# --- preview and backtest ---------------------------------------------------------------------


async def test_preview_counts_on_the_recorded_window() -> None:
    scenario = Scenario.load(HISTORY)
    async with httpx.AsyncClient(transport=scenario.transport()) as client:
        tm = machine(scenario, client)
        result = await backtest(tm, 14, 3)
        cold = len(scenario.requests)
        again = await backtest(tm, 14, 3)
    assert preview_text(result) == (
        "With 3 drivers, this chat would have been alerted on 3 days in the last 14: "
        "2 Aug, 4 Aug, 5 Aug; with 2, on 3.\n"
        "It could judge 5 of the 6 drivers on most of those days (liquidations only from "
        "whydown's archive: 0 of 14 days)."
    )
    assert result.first == date(2024, 7, 29) and result.last == date(2024, 8, 11)
    # one read per source over the whole range (hourly candles paged by the upstream's cap); the
    # cut odds: Gamma's open and resolved Fed events (2), then the price history of each cut
    # market of the two meetings that were next during the range (July, September: 2 each)
    assert cold == result.requests == 19
    # the second preview reads the cache: no upstream request
    assert len(scenario.requests) == cold and again.requests == 0
    assert again.alert_days() == result.alert_days()


def test_backtest_cli_json_and_chart(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    chart = tmp_path / "bt.png"
    assert cli.main(["backtest", "--demo", "--days", "14", "--json", "--chart", str(chart)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["alert_days"] == ["2024-08-02", "2024-08-04", "2024-08-05"]
    assert summary["drivers_judged_typical"] == 5
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- the archive ------------------------------------------------------------------------------


async def test_archive_round_trip_through_the_refresh_path(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, database=tmp_path / "whydown.db")
    store = Store(settings.database)
    okx.CONTRACT_VALUES.clear()
    upstream = Upstream()
    async with upstream.client(settings) as client:
        explainer = upstream.explainer(client, settings, history=store.history)
        jobs = Jobs(explainer, store, AlertEngine(store, AlertSettings(), {}))
        await jobs.refresh()
    live = explainer.latest
    assert live is not None
    archived_day = live.explanation.data_time.date()
    # a whole day of refreshes: one row an hour plus the day's worst stays under 50 KB
    midnight = live.explanation.data_time.replace(hour=0, minute=0, second=0)
    for hour in range(24):
        if hour != live.explanation.data_time.hour:
            earlier = midnight + timedelta(hours=hour, minutes=59)
            if earlier < live.explanation.data_time:
                store.archive.record(live.explanation.model_copy(update={"data_time": earlier}))
    store.archive.record(live.explanation)  # the refresh path's row stays the hour's last
    assert store.archive.day_bytes(archived_day) <= 50_000
    scenario = Scenario.load(HISTORY)
    async with httpx.AsyncClient(transport=scenario.transport()) as client:
        tm = machine(scenario, client, archive=store.archive)
        e = await tm.answer(archived_day)
    assert scenario.served == 0  # the archive answered: no upstream asked
    assert e.past is not None and e.past.origin == "archive"
    liquidations = next(d for d in e.drivers if d.key == "liquidations")
    assert liquidations.state == live.explanation.drivers[0].state == "fired"
    assert e.headlines == live.explanation.headlines and e.headlines
    assert render.text(e).startswith(
        "REPLAY of"  # the demo recording's label travels with the archived answer
    )
    assert "As of the end of 5 Aug 2024 (UTC), as whydown answered then (from its archive)." in (
        render.text(e)
    )
    store.close()


def test_memory_archive_reads_rebuilt_days_back() -> None:
    archive = MemoryArchive()
    assert archive.rebuilt(DAY, DAY) == {}
    assert archive.answered(DAY) is None


# --- Fed odds from the market that covered the day ----------------------------------------------


def overriding(
    scenario: Scenario, answer: Callable[[httpx.Request], httpx.Response | None]
) -> httpx.MockTransport:
    """The recorded history, except where `answer` gives its own response."""

    def handle(request: httpx.Request) -> httpx.Response:
        return answer(request) or scenario.handle(request)

    return httpx.MockTransport(handle)


async def rebuilt(day: date, transport: httpx.AsyncBaseTransport | None = None) -> PastDay:
    scenario = Scenario.load(HISTORY)
    async with httpx.AsyncClient(transport=transport or scenario.transport()) as client:
        h = await timemachine.fetch_history(
            client, SourceSettings(), day, day, today=scenario.now.date()
        )
    return timemachine.past_snapshot(h, day, Thresholds())


def fed(e: Explanation) -> DriverResult:
    return next(d for d in e.drivers if d.key == "fed")


async def test_fed_odds_are_read_from_the_market_that_covered_the_day() -> None:
    scenario = Scenario.load(HISTORY)
    async with httpx.AsyncClient(transport=scenario.transport()) as client:
        e = await machine(scenario, client).answer(DAY)
    # the September meeting's cut markets (25 and 50+ bps) summed at the day's last 12-hour point
    odds = fed(e)
    assert odds.figures.model_dump()["cut_odds"] == pytest.approx(98.5)
    assert odds.figures.model_dump()["cut_odds_change_7d"] == pytest.approx(6.6, abs=0.1)
    assert odds.note is None
    assert odds.evidence[0].label == "Cut odds, Fed Decision in September?"
    assert odds.evidence[0].url == "https://polymarket.com/event/fed-decision-in-september"
    assert e.past is not None and timemachine.FED_ODDS_GAP not in e.past.gaps
    gamma = [r for r in scenario.requests if r.url.host == "gamma-api.polymarket.com"]
    # open and resolved events both asked (Gamma gives only settled events without `closed`)
    assert sorted(r.url.params["closed"] for r in gamma) == ["false", "true"]
    assert all(r.url.params["end_date_min"] == "2024-08-05T00:00:00Z" for r in gamma)
    clob = [r for r in scenario.requests if r.url.host == "clob.polymarket.com"]
    # resolved markets are served at 12-hour fidelity at best: asked at that, over start/end
    assert {r.url.params["fidelity"] for r in clob} == {"720"}
    assert all("interval" not in r.url.params for r in clob)
    assert {r.url.params["endTs"] for r in clob} == {str(int(past.day_end(DAY).timestamp()))}


async def test_a_resolved_market_whose_history_is_no_longer_served_leaves_odds_unknown() -> None:
    # 29 July: the July meeting was next; the recording serves its markets an empty history
    sliced = await rebuilt(date(2024, 7, 29))
    assert sliced.snapshot.cut_odds is None and sliced.lookback.cut_odds_7d_ago is None
    assert timemachine.FED_ODDS_GAP in sliced.gaps
    # the same for 5 August when September's markets answer empty too
    scenario = Scenario.load(HISTORY)
    empty = overriding(
        scenario,
        lambda r: (
            httpx.Response(200, json={"history": []})
            if r.url.host == "clob.polymarket.com"
            else None
        ),
    )
    async with httpx.AsyncClient(transport=empty) as client:
        e = await machine(scenario, client).answer(DAY)
    assert fed(e).note == "cut odds not rebuilt (no history served)"
    assert fed(e).state == "quiet"  # still judged, on the 2-year yield alone
    assert fed(e).figures.model_dump()["cut_odds"] is None
    assert e.past is not None and timemachine.FED_ODDS_GAP in e.past.gaps


async def test_no_fed_market_found_leaves_odds_unknown() -> None:
    scenario = Scenario.load(HISTORY)
    none = overriding(
        scenario,
        lambda r: (
            httpx.Response(200, json=[]) if r.url.host == "gamma-api.polymarket.com" else None
        ),
    )
    sliced = await rebuilt(DAY, none)
    assert sliced.snapshot.cut_odds is None
    assert timemachine.FED_NO_MARKET_GAP in sliced.gaps
    assert "polymarket" not in sliced.snapshot.statuses


# --- stocks: Yahoo's daily chart when FRED does not answer ---------------------------------------

YAHOO_1Y = Path(__file__).parent / "fixtures" / "api" / "yahoo_chart_gspc_1y_daily.json"
YAHOO_404 = Path(__file__).parent / "fixtures" / "api" / "yahoo_chart_error_404.json"


def fred_down_yahoo_up(seen: list[httpx.Request]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        host, path = request.url.host, request.url.path
        if host == "fred.stlouisfed.org":
            return httpx.Response(503, text="Service Unavailable")
        if host == "fc.yahoo.com":
            return httpx.Response(
                404, headers={"Set-Cookie": "A3=d=AQABBTEST&S=AQAAATEST; Domain=.yahoo.com; Path=/"}
            )
        if path == "/v1/test/getcrumb":
            return httpx.Response(200, text="Tq7bQ1pLm.a")
        if path == "/v8/finance/chart/^GSPC":
            return httpx.Response(200, content=YAHOO_1Y.read_bytes())
        if path.startswith("/v8/finance/chart/"):
            return httpx.Response(404, content=YAHOO_404.read_bytes())
        return httpx.Response(404, text="not recorded")

    return httpx.MockTransport(handle)


async def test_stocks_fall_back_to_yahoo_daily_chart_when_fred_does_not_answer() -> None:
    seen: list[httpx.Request] = []
    day = date(2025, 5, 13)  # the recorded 1y body's rows: 9, 12, 13, 14 and 15 May 2025
    async with httpx.AsyncClient(transport=fred_down_yahoo_up(seen)) as client:
        h = await timemachine.fetch_history(
            client, SourceSettings(), day, day, today=date(2025, 5, 20)
        )
    sliced = timemachine.past_snapshot(h, day, Thresholds())
    spx = sliced.snapshot.indices["spx"]
    assert (spx.source, spx.session) == ("Yahoo Finance", day)
    assert spx.previous_close == pytest.approx(5844.18994140625)
    assert spx.last == pytest.approx(5886.5498046875)
    assert spx.change_pct == pytest.approx(0.7248, abs=1e-4)
    assert sliced.snapshot.statuses["yahoo_spx"].state == "ok"
    # ^IXIC answers Yahoo's JSON 404: unknown, with FRED's failure or Yahoo's said
    assert "ndx" not in sliced.snapshot.indices
    assert sliced.snapshot.statuses["yahoo_ndx"].state == "failed"
    chart = next(r for r in seen if r.url.path == "/v8/finance/chart/^GSPC")
    # the range by period1/period2 (UTC day bounds, lead days included), through the crumb
    assert dict(chart.url.params) == {
        "period1": str(int(datetime(2025, 5, 3, tzinfo=UTC).timestamp())),
        "period2": str(int(datetime(2025, 5, 14, tzinfo=UTC).timestamp())),
        "interval": "1d",
        "crumb": "Tq7bQ1pLm.a",
    }
    assert chart.headers["Cookie"] == "A3=d=AQABBTEST&S=AQAAATEST"


def test_yahoo_daily_closes_use_exchange_dates_and_skip_holiday_rows() -> None:
    vix = json.loads((YAHOO_1Y.parent / "yahoo_chart_vix_1y_daily_nulls.json").read_text())
    rows = yahoo.parse_daily_closes(vix, date(2025, 1, 1), date(2026, 1, 1))
    days = [d for d, _ in rows]
    assert date(2025, 5, 26) not in days  # Memorial Day: an all-null row
    assert days == sorted(days) and len(days) == 4
    gspc = json.loads(YAHOO_1Y.read_text())
    assert [d for d, _ in yahoo.parse_daily_closes(gspc, date(2025, 5, 12), date(2025, 5, 14))] == [
        date(2025, 5, 12),
        date(2025, 5, 13),
        date(2025, 5, 14),
    ]
