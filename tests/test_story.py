"""The summary at the top of every answer: in the order whydown saw the drivers start (from the
states stored after each refresh), else by role; and the compact answer it leads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.config import Settings
from explainers import drivers, lookback, render
from explainers.explain import explain
from explainers.history import MemoryHistory
from explainers.models import Explanation, Onset
from explainers.settings import Thresholds
from tests import factories as f
from tests.replay_helpers import Upstream
from tests.test_golden import demo

T = Thresholds()
AT = datetime(2024, 8, 5, 8, 0, tzinfo=UTC)


def states(history: MemoryHistory, key: str, *values: tuple[int, float]) -> None:
    """Store a driver's state at minutes before AT: (minutes_ago, 1 fired / 0 quiet)."""
    for minutes_ago, value in values:
        history.add_figures(AT - timedelta(minutes=minutes_ago), {f"driver_{key}": value})


def test_a_start_is_seen_only_right_after_a_stored_quiet_state() -> None:
    history = MemoryHistory()
    states(history, "stocks", (45, 0), (30, 1), (15, 1), (0, 1))
    states(history, "liquidations", (30, 0), (15, 1), (0, 1))
    # firing since the first stored state: its start was not seen
    states(history, "fear", (45, 1), (30, 1), (0, 1))
    # quiet before a hole longer than 15 minutes: it may have begun anywhere in between
    states(history, "etf", (60, 0), (44, 1), (0, 1))
    # fired, then quiet again now: no current streak
    states(history, "fed", (30, 0), (15, 1), (0, 0))
    keys = ["stocks", "liquidations", "fear", "etf", "fed"]
    assert lookback.onsets(history, keys, AT) == [
        Onset(key="stocks", at=AT - timedelta(minutes=30)),
        Onset(key="liquidations", at=AT - timedelta(minutes=15)),
    ]


def test_a_start_exactly_15_minutes_after_the_quiet_state_is_seen() -> None:
    history = MemoryHistory()
    states(history, "stocks", (15, 0), (0, 1))
    states(history, "etf", (16, 0), (0, 1))
    assert lookback.onsets(history, ["stocks", "etf"], AT) == [Onset(key="stocks", at=AT)]


async def test_the_demo_tells_its_drivers_by_role_when_no_start_was_seen() -> None:
    e = await demo()
    assert e.onsets == []
    assert [d.key for d in e.fired] == ["etf", "institutional", "stocks", "liquidations", "fear"]
    assert (
        "The drop came with US spot-Bitcoin ETF outflows, US selling on Coinbase and falling "
        "stocks, together; long liquidations amplified it as open interest fell 6.9% in 1h. "
        "Sentiment answered with fear (Fear & Greed 26, -48 in 7 days), and altcoins fell harder "
        "than BTC (median -17.9% vs -13.1% in 24h)."
    ) in render.text(e)


def _with_onsets(e: Explanation, **minutes_ago: int) -> Explanation:
    seen = [Onset(key=k, at=e.data_time - timedelta(minutes=m)) for k, m in minutes_ago.items()]
    return e.model_copy(update={"onsets": seen})


async def test_the_summary_follows_the_order_the_starts_were_seen_in() -> None:
    e = _with_onsets(await demo(), stocks=30, liquidations=15)
    assert (
        "Falling stocks came first, from 07:30 UTC; long liquidations followed from 07:45 UTC as "
        "open interest fell 6.9% in 1h and amplified the drop; US spot-Bitcoin ETF outflows and "
        "US selling on Coinbase were firing too, their start not seen. Sentiment answered with "
        "fear"
    ) in render.text(e, full=False)


async def test_drivers_seen_starting_at_one_refresh_started_together() -> None:
    e = _with_onsets(await demo(), stocks=30, etf=30, institutional=15, liquidations=15)
    assert (
        "US spot-Bitcoin ETF outflows and falling stocks came first, together, from 07:30 UTC; "
        "US selling on Coinbase and long liquidations followed from 07:45 UTC together as open "
        "interest fell 6.9% in 1h and amplified the drop."
    ) in render.text(e, full=False)


async def test_one_start_seen_is_no_order_to_tell() -> None:
    e = _with_onsets(await demo(), stocks=30)
    assert "The drop came with US spot-Bitcoin ETF outflows" in render.text(e, full=False)
    assert "first" not in render.text(e, full=False)


async def test_the_refresh_reads_the_starts_back_from_the_stored_states() -> None:
    settings = Settings(_env_file=None)
    upstream = Upstream()
    history = MemoryHistory()
    async with upstream.client(settings) as client:
        explainer = upstream.explainer(client, settings, history=history)
        now = upstream.clock()
        # at the refresh before, stocks and liquidations were quiet; liquidations fired before
        # that too, so only its current streak counts
        history.add_figures(now - timedelta(minutes=5), {"driver_stocks": 0, "driver_etf": 0})
        e = await explainer.explain()
    assert [(o.key, o.at) for o in e.onsets] == [("etf", e.data_time), ("stocks", e.data_time)]
    # both seen starting at this refresh: one step, no order to tell
    assert "The drop came with US spot-Bitcoin ETF outflows" in render.text(e)


def test_a_role_orders_firing_drivers_before_severity() -> None:
    s = f.snapshot(
        markets=f.markets(btc_24h=-8.0, btc_1h=-1.0),
        global_market=f.global_market(-8.0),
        indices={"spx": f.index("spx", -3.0), "ndx": f.index("ndx", -4.0)},
        fear_greed=f.fear_greed(70, 66, 60, 55, 45, 40, 30, 10),
    )
    lb = f.lookback(**f.liquidation_totals(300e6, 10e6, 900e6, 50e6))
    fired = [d for d in drivers.evaluate(s, lb, T) if d.state == "fired"]
    # fear and liquidations are far past their thresholds, stocks less so: roles come first
    assert [(d.key, d.role) for d in fired] == [
        ("stocks", "set_off"),
        ("liquidations", "amplifier"),
        ("fear", "sentiment"),
    ]
    assert fired[0].severity < fired[1].severity


def test_unknown_figures_in_the_summary_are_said_unknown_never_zero() -> None:
    s = f.snapshot(markets=f.markets(btc_24h=-6.0, btc_1h=-1.0, alts=[]), global_market=None)
    lb = f.lookback()
    e = explain(s, drivers.evaluate(s, lb, T), lb, T, now=f.NOW).model_copy(
        update={"altcoins": None, "sentiment": None}
    )
    out = render.text(e, full=False)
    assert (
        "Not explained by the data we read: none of the 6 drivers is firing, so no cause is "
        "named. How altcoins fared is unknown.\n\nUnknown: Liquidation cascade (not enough data "
        "yet); ETF outflows (not enough data yet);"
    ) in out
    assert "0.0%" not in out and "$0" not in out
