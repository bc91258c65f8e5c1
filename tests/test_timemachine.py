"""`/why <date>`, the archive and the backtest, over each source's recorded history around
5 August 2024 (explainers/demo/aug-2024-history, served through MockTransport)."""

from __future__ import annotations

import json
import os
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest

from bot import cli
from bot.alerts import AlertEngine, AlertSettings
from bot.config import Settings
from bot.runner import Jobs
from bot.store import Store
from explainers import render
from explainers.backtest import MemoryArchive, TimeMachine, backtest, preview_text
from explainers.models import Explanation
from explainers.replay import Scenario
from explainers.settings import SourceSettings, Thresholds
from explainers.sources import okx
from explainers.timemachine import BadDate, is_day, parse_day
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
    # one read per source over the whole range (hourly candles paged by the upstream's cap)
    assert cold == result.requests == 13
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
