"""Context, never a driver: fundamentals (hash rate, difficulty, stablecoin supply, transactions),
risk-off outside crypto (VIX, dollar, yen) and the calendar (FOMC, pending ETF flows).

Sources are read through MockTransport over real recorded bodies (tests/fixtures/api, copied
unedited). DefiLlama's `/stablecoincharts/all` has no recorded body: its bodies here are written
in this file after its documented shape (daily points, `date` a string of epoch seconds,
`totalCirculatingUSD` per peg); so are the 30-day hash-rate and 60-day transaction bodies, which
only exist as a 3-day and a 1-point doc example.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from explainers import drivers, render
from explainers.errors import BadResponse
from explainers.explain import decision_time, explain
from explainers.models import Explanation, Snapshot
from explainers.settings import Thresholds
from explainers.sources import blockchain_info, bounds, defillama, fred, mempool
from tests import factories as f

API = Path(__file__).parent / "fixtures" / "api"
T = Thresholds()


def serve(content: str, seen: list[httpx.Request] | None = None) -> httpx.AsyncClient:
    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return httpx.Response(200, text=content)

    return httpx.AsyncClient(transport=httpx.MockTransport(handle))


@pytest.fixture
def old_samples(monkeypatch: pytest.MonkeyPatch) -> None:
    """The FRED samples are real downloads from 1971, 1990 and 2006-07: earlier than the
    genesis-block bound live figures are held to, which is lifted for them here."""
    monkeypatch.setattr(bounds, "EARLIEST", datetime(1970, 1, 1, tzinfo=UTC))


# --- mempool.space -------------------------------------------------------------------------


def test_hash_rates_are_seconds_and_floats_beyond_2_53() -> None:
    points = mempool.hash_rate_points(json.loads((API / "mempool_hashrate_3d.json").read_text()))
    assert [ts for ts, _ in points] == [
        datetime(2022, 5, 14, tzinfo=UTC),
        datetime(2022, 5, 15, tzinfo=UTC),
        datetime(2022, 5, 16, tzinfo=UTC),
    ]
    assert points[0][1] == pytest.approx(2.364997621087718e20)


async def test_three_days_of_hash_rate_are_not_a_7_day_mean() -> None:
    async with serve((API / "mempool_hashrate_3d.json").read_text()) as client:
        with pytest.raises(BadResponse, match="only 3 of 30 days of hash rate"):
            await mempool.fetch_hash_rate(client, "https://mempool.space")


async def test_hash_rate_7_day_mean_against_30_day_mean() -> None:
    start = datetime(2026, 10, 21, tzinfo=UTC)
    body = {
        "hashrates": [
            {"timestamp": int((start + timedelta(days=i)).timestamp()), "avgHashrate": rate}
            for i, rate in enumerate([1.0e21] * 23 + [1.1e21] * 7)
        ],
        "currentHashrate": 1.1e21,
    }
    seen: list[httpx.Request] = []
    async with serve(json.dumps(body), seen) as client:
        hr = await mempool.fetch_hash_rate(client, "https://mempool.space")
    assert seen[0].url.path == "/api/v1/mining/hashrate/1m"
    assert hr.mean_7d == pytest.approx(1.1e21)
    assert hr.mean_30d == pytest.approx((23 * 1.0e21 + 7 * 1.1e21) / 30)
    assert hr.change_pct == pytest.approx(7.49, abs=0.01)


async def test_difficulty_retarget_date_is_milliseconds() -> None:
    now = datetime(2024, 4, 1, 12, tzinfo=UTC)
    text = (API / "mempool_difficulty_adjustment.json").read_text()
    async with serve(text) as client:
        d = await mempool.fetch_difficulty(client, "https://mempool.space", now)
    assert d.retarget_at == datetime(2024, 4, 10, 16, 31, 44, 114000, tzinfo=UTC)
    assert d.change_pct == pytest.approx(5.9148, abs=1e-3)
    assert d.remaining_blocks == 1606
    assert d.as_of == now


def test_difficulty_retarget_in_seconds_is_refused() -> None:
    body = json.loads((API / "mempool_difficulty_adjustment.json").read_text())
    body["estimatedRetargetDate"] = 1712766704  # seconds read as ms: January 1970
    with pytest.raises(BadResponse, match="estimatedRetargetDate"):
        mempool.parse_difficulty(body, datetime(2024, 4, 1, tzinfo=UTC))


# --- DefiLlama (test bodies after the documented shape) -------------------------------------


def stablecoin_chart(totals: dict[date, float]) -> list[dict[str, Any]]:
    return [
        {
            "date": str(int(datetime.combine(day, datetime.min.time(), UTC).timestamp())),
            "totalCirculating": {"peggedUSD": usd * 0.97, "peggedEUR": 1e8},
            "totalCirculatingUSD": {"peggedUSD": usd - 1e8, "peggedEUR": 1e8},
        }
        for day, usd in totals.items()
    ]


async def test_stablecoin_supply_sums_pegs_and_compares_7_days_by_date() -> None:
    days = {date(2026, 11, 12) + timedelta(days=i): 200e9 + i * 1e9 for i in range(9)}
    seen: list[httpx.Request] = []
    async with serve(json.dumps(stablecoin_chart(days)), seen) as client:
        supply = await defillama.fetch_supply(client, "https://stablecoins.llama.fi")
    assert str(seen[0].url) == "https://stablecoins.llama.fi/stablecoincharts/all"
    assert supply.total_usd == pytest.approx(208e9)
    assert supply.week_ago_usd == pytest.approx(201e9)
    assert supply.as_of == datetime(2026, 11, 20, tzinfo=UTC)


def test_stablecoin_change_is_unknown_without_the_day_a_week_before() -> None:
    days = {date(2026, 11, 12) + timedelta(days=i): 200e9 for i in range(9) if i != 1}
    supply = defillama.parse_chart(stablecoin_chart(days))
    assert supply.week_ago_usd is None and supply.change_7d_pct is None


# --- blockchain.info -----------------------------------------------------------------------


def test_transactions_doc_example_has_seconds_but_too_few_days() -> None:
    body = json.loads((API / "blockchain_info_charts_n_transactions.json").read_text())
    assert blockchain_info.chart_points(body) == {date(2015, 9, 18): 188330.0}
    with pytest.raises(BadResponse, match="only 1 of 30 days"):
        blockchain_info.transactions(
            blockchain_info.chart_points(body), datetime(2015, 9, 20, tzinfo=UTC)
        )


async def test_transactions_against_their_30_day_mean_in_scientific_notation() -> None:
    start = date(2026, 9, 22)
    rows = [
        f'{{"x": {int(datetime.combine(start + timedelta(days=i), datetime.min.time(), UTC).timestamp())}, "y": 4.0E5}}'
        for i in range(59)
    ]
    today = datetime.combine(f.NOW.date(), datetime.min.time(), UTC)
    rows[-1] = f'{{"x": {int((today - timedelta(days=1)).timestamp())}, "y": 4.12E5}}'
    rows.append(f'{{"x": {int(today.timestamp())}, "y": 1.5E5}}')  # today: still counting
    values = ",".join(rows)
    body = f'{{"status": "ok", "unit": "Transactions", "period": "day", "values": [{values}]}}'
    seen: list[httpx.Request] = []
    async with serve(body, seen) as client:
        tx = await blockchain_info.fetch_transactions(client, "https://api.blockchain.info", f.NOW)
    assert seen[0].url.params["timespan"] == "60days"
    assert tx.day == date(2026, 11, 19) and tx.count == 412000.0
    assert tx.change_pct == pytest.approx(2.9, abs=0.05)


# --- FRED: VIX, dollar index, USD/JPY (real downloads) ---------------------------------------


@pytest.mark.usefixtures("old_samples")
def test_vix_latest_close_against_the_one_before() -> None:
    q = fred.macro_quote((API / "fred_vixcls_fredgraph.csv").read_text(), "vix")
    assert (q.day, q.value, q.previous_day, q.previous) == (
        date(1990, 2, 21),
        23.89,
        date(1990, 2, 20),
        22.78,
    )


@pytest.mark.usefixtures("old_samples")
def test_dollar_index_skips_a_blank_day_by_date() -> None:
    q = fred.macro_quote((API / "fred_dtwexbgs_fredgraph.csv").read_text(), "dollar")
    assert (q.day, q.previous_day) == (date(2007, 1, 3), date(2007, 1, 1))
    assert q.change_pct == pytest.approx((97.1281 / 97.0323 - 1) * 100, abs=1e-6)


@pytest.mark.usefixtures("old_samples")
def test_usdjpy_trailing_zeros_and_blank_run() -> None:
    q = fred.macro_quote((API / "fred_dexjpus_fredgraph.csv").read_text(), "usdjpy")
    assert (q.day, q.value, q.previous_day, q.previous) == (
        date(1971, 2, 16),
        357.53,
        date(1971, 2, 11),
        357.50,
    )


def test_a_change_after_a_long_blank_run_is_unknown() -> None:
    csv = (
        "observation_date,DEXJPUS\n2026-10-30,150.10\n2026-11-02,\n2026-11-09,\n2026-11-10,148.20\n"
    )
    q = fred.macro_quote(csv, "usdjpy")
    assert q.previous is None and q.change_pct is None


# --- the answer: fundamentals -----------------------------------------------------------------


def answer(**fields: Any) -> Explanation:
    s: Snapshot = f.snapshot(markets=f.markets(btc_24h=1.2, btc_1h=0.1), **fields)
    lb = f.lookback()
    return explain(s, drivers.evaluate(s, lb, T), lb, T, now=f.NOW)


UNCHANGED = dict(
    hash_rate=f.hash_rate(0.4),
    stablecoins=f.stablecoins(205.3e9, 205.5e9),
    transactions=f.transactions(412_000, 400_000),
)


def test_fundamentals_unchanged_line_in_the_full_answer_only() -> None:
    e = answer(**UNCHANGED)
    line = (
        "Fundamentals unchanged: hash rate +0.4% vs 30-day mean, stablecoin supply $205.3B "
        "(-0.1% in 7 days), transactions +3% vs 30-day mean."
    )
    assert line in render.text(e)
    assert line in render.telegram_html(e)
    context = next(x for x in render.discord_embed(e)["fields"] if x["name"] == "Context")
    assert context["value"] == line
    assert "Fundamentals" not in render.text(e, full=False)


@pytest.mark.parametrize(("change", "falling"), [(-10.0, True), (-9.9, False)])
def test_hash_rate_threshold_edge(change: float, falling: bool) -> None:
    e = answer(**(UNCHANGED | {"hash_rate": f.hash_rate(change)}))
    assert e.fundamentals is not None and e.fundamentals.hash_rate_falling is falling
    compact = render.text(e, full=False)
    if falling:
        assert (
            "Fundamentals changed: hash rate -10.0% vs 30-day mean. Otherwise stablecoin supply "
            "$205.3B (-0.1% in 7 days), transactions +3% vs 30-day mean."
        ) in compact
    else:
        assert "Fundamentals" not in compact


@pytest.mark.parametrize(("week_ago", "leaving"), [(100e9, True), (99.99e9, False)])
def test_stablecoin_threshold_edge_names_capital_leaving(week_ago: float, leaving: bool) -> None:
    e = answer(**(UNCHANGED | {"stablecoins": f.stablecoins(99e9, week_ago)}))
    assert e.fundamentals is not None and e.fundamentals.capital_leaving is leaving
    text = render.text(e)
    if leaving:
        assert (
            "Fundamentals changed: stablecoin supply $99.0B (-1.0% in 7 days), capital leaving "
            "crypto. Otherwise hash rate +0.4% vs 30-day mean, transactions +3% vs 30-day mean."
        ) in text
        assert "capital leaving crypto" in render.telegram_html(e, full=False)
    else:
        assert "Fundamentals unchanged: " in text


def test_missing_fundamentals_are_unknown_never_zero() -> None:
    e = answer(hash_rate=f.hash_rate(0.4))
    assert e.fundamentals is not None
    assert e.fundamentals.stablecoin_usd is None and e.fundamentals.transactions_vs_30d is None
    assert (
        "Fundamentals unchanged where known: hash rate +0.4% vs 30-day mean, stablecoin supply "
        "unknown, transactions unknown."
    ) in render.text(e)
    week_unknown = answer(stablecoins=f.stablecoins(205.3e9, None))
    assert "stablecoin supply $205.3B (7-day change unknown)" in render.text(week_unknown)
    assert answer().fundamentals is None and "Fundamentals" not in render.text(answer())


def test_context_is_never_a_driver() -> None:
    calm = answer()
    moved = answer(
        hash_rate=f.hash_rate(-30.0),
        stablecoins=f.stablecoins(90e9, 100e9),
        macro={"vix": f.macro("vix", 60.0, 20.0)},
    )
    assert [d.key for d in moved.drivers] == [d.key for d in calm.drivers]
    assert [d.state for d in moved.drivers] == [d.state for d in calm.drivers]
    assert moved.fired == calm.fired == []


# --- the answer: risk-off outside crypto ----------------------------------------------------


def test_risk_off_line_names_only_the_notable_markets() -> None:
    e = answer(
        macro={
            "vix": f.macro("vix", 38.6, 23.4),
            "dollar": f.macro("dollar", 120.0, 119.9),
            "usdjpy": f.macro("usdjpy", 142.0, 146.4),
        }
    )
    line = (
        "Risk-off outside crypto: VIX 38.6 (+65%), yen +3.1% against the dollar "
        "(FRED, 19 Nov 2026)."
    )
    assert line in render.text(e)
    assert line in render.text(e, full=False)
    assert line in render.telegram_html(e)


@pytest.mark.parametrize(
    ("key", "value", "previous", "notable"),
    [
        ("vix", 25.0, 24.0, True),  # level at its threshold
        ("vix", 24.99, 24.0, False),
        ("vix", 14.4, 12.0, True),  # up 20%
        ("vix", 14.39, 12.0, False),
        ("dollar", 101.0, 100.0, True),  # up 1%
        ("dollar", 100.99, 100.0, False),
        ("usdjpy", 100.0, 102.0, True),  # yen up 2% against the dollar
        ("usdjpy", 100.0, 101.99, False),
    ],
)
def test_risk_off_threshold_edges(key: Any, value: float, previous: float, notable: bool) -> None:
    e = answer(macro={key: f.macro(key, value, previous)})
    assert e.risk_off is not None and bool(e.risk_off.notable) is notable
    assert ("Risk-off outside crypto" in render.text(e)) is notable


def test_a_quiet_outside_world_says_nothing_and_unknown_change_is_not_zero() -> None:
    e = answer(macro={"dollar": f.macro("dollar", 120.0, None)})
    assert e.risk_off is not None and e.risk_off.gauges[0].change_pct is None
    assert "Risk-off" not in render.text(e)


# --- the calendar ------------------------------------------------------------------------------


def test_decision_time_is_2_pm_eastern_in_utc() -> None:
    assert decision_time(date(2026, 12, 9)) == datetime(2026, 12, 9, 19, tzinfo=UTC)
    assert decision_time(date(2027, 6, 9)) == datetime(2027, 6, 9, 18, tzinfo=UTC)  # EDT


def test_fomc_from_the_market_read_with_its_cut_odds() -> None:
    e = answer(cut_odds=f.cut_odds(0.38, meeting_date=date(2026, 12, 9)))
    text = render.text(e)
    assert (
        "- FOMC decision in 19 days (9 Dec, 19:00 UTC): cut odds 38% [Polymarket, 20 Nov 14:00 UTC]"
        in text
    )
    assert "Cut odds, Fed Decision in December?" not in text


def test_fomc_from_the_fed_schedule_when_no_market_names_it() -> None:
    e = answer()
    assert e.calendar is not None and e.calendar.fomc is not None
    assert e.calendar.fomc.source == "Fed schedule"
    assert "- FOMC decision in 19 days (9 Dec, 19:00 UTC): cut odds unknown [Fed schedule" in (
        render.text(e)
    )


def test_pending_etf_flows_say_when() -> None:
    e = answer(etf=f.etf(120.0, 85.5, 40.2))
    assert "ETF net flow (12 Nov 2026); flows for today after the US close, in 7 h: +$40.2M" in (
        render.text(e)
    )


def alert_intro(at: datetime) -> str:
    s = Snapshot(taken_at=at)
    lb = f.lookback()
    e = explain(s, drivers.evaluate(s, lb, T), lb, T, now=at)
    return render.message("alert_intro", e=e)


@pytest.mark.parametrize(
    ("at", "intro"),
    [
        (
            datetime(2026, 12, 7, 19, tzinfo=UTC),
            "Crash alert: 0 sell-off drivers firing together; the FOMC decision is in 2 days "
            "(9 Dec, 19:00 UTC).",
        ),
        (
            datetime(2026, 12, 7, 18, 59, tzinfo=UTC),
            "Crash alert: 0 sell-off drivers firing together.",
        ),
        (
            datetime(2026, 12, 9, 22, tzinfo=UTC),
            "Crash alert: 0 sell-off drivers firing together; the FOMC decided 3 h ago "
            "(9 Dec, 19:00 UTC).",
        ),
        (
            datetime(2026, 12, 11, 19, 1, tzinfo=UTC),
            "Crash alert: 0 sell-off drivers firing together.",
        ),
    ],
)
def test_alerts_within_48_hours_of_a_decision_say_so(at: datetime, intro: str) -> None:
    assert alert_intro(at) == intro
