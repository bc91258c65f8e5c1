"""Comparisons over time: a source's own history first, stored figures when it has none."""

from __future__ import annotations

from datetime import timedelta

from explainers import lookback
from explainers.history import MemoryHistory
from explainers.models import Liquidation, OddsPoint, OpenInterestPoint
from explainers.settings import Thresholds
from tests import factories as f

T = Thresholds()


def test_premium_from_candles_of_both_venues() -> None:
    s = f.snapshot(
        coinbase_btc=f.candles("Coinbase", [100.0, 99.9, 99.8, 99.9]),
        okx_btc=f.candles("OKX", [100.0, 100.0, 100.0, 100.0]),
    )
    samples = lookback.lookback(s, MemoryHistory(), T).premium_samples
    assert [round(v, 3) for v in samples] == [-0.1, -0.2, -0.1]


def test_premium_falls_back_to_stored_samples_without_candles() -> None:
    history = MemoryHistory()
    for minutes, value in ((3, -0.08), (2, -0.07), (1, -0.09)):
        history.add_figures(f.NOW - timedelta(minutes=minutes), {"premium_pct": value})
    samples = lookback.lookback(f.snapshot(), history, T).premium_samples
    assert samples == [-0.08, -0.07, -0.09]


def test_open_interest_an_hour_ago_prefers_the_exchange_history() -> None:
    oi = f.open_interest(90e9).model_copy(
        update={"history": [OpenInterestPoint(ts=f.NOW - timedelta(hours=1), oi_usd=100e9)]}
    )
    history = MemoryHistory()
    history.add_figures(f.NOW - timedelta(hours=1), {"oi_usd": 50e9})
    assert lookback.lookback(f.snapshot(open_interest=[oi]), history, T).oi_1h_ago_usd == 100e9


def test_open_interest_an_hour_ago_from_stored_figures() -> None:
    history = MemoryHistory()
    history.add_figures(f.NOW - timedelta(minutes=62), {"oi_usd": 95e9})
    lb = lookback.lookback(f.snapshot(open_interest=[f.open_interest(90e9)]), history, T)
    assert lb.oi_1h_ago_usd == 95e9


def test_cut_odds_a_week_ago_from_source_history_or_store() -> None:
    odds = f.cut_odds(0.4).model_copy(
        update={"history": [OddsPoint(ts=f.NOW - timedelta(days=7), probability=0.6)]}
    )
    assert lookback.lookback(f.snapshot(cut_odds=odds), MemoryHistory(), T).cut_odds_7d_ago == 0.6
    history = MemoryHistory()
    history.add_figures(f.NOW - timedelta(days=7, hours=2), {"cut_odds": 0.55})
    assert (
        lookback.lookback(f.snapshot(cut_odds=f.cut_odds(0.4)), history, T).cut_odds_7d_ago == 0.55
    )


def test_nothing_to_compare_is_unknown_not_zero() -> None:
    lb = lookback.lookback(f.snapshot(open_interest=[f.open_interest(90e9)]), MemoryHistory(), T)
    assert lb.oi_1h_ago_usd is None
    assert lb.cut_odds_7d_ago is None
    assert lb.liquidations_1h is None  # nothing tracked yet


def test_liquidation_totals_count_each_event_once_across_polls() -> None:
    history = MemoryHistory()
    event = Liquidation(
        exchange="OKX",
        instrument="BTC-USDT-SWAP",
        position_side="long",
        price=50000.0,
        size=100.0,
        usd=50e6,
        ts=f.NOW - timedelta(minutes=5),
    )
    old = event.model_copy(
        update={"ts": f.NOW - timedelta(hours=3), "position_side": "short", "usd": 1e6}
    )
    for _ in range(3):  # the same recent orders are listed at every poll
        history.add_liquidations([event, old], polled_at=f.NOW, covered_since=old.ts)
    lb = lookback.lookback(f.snapshot(), history, T)
    assert (lb.liquidations_1h.long_usd, lb.liquidations_1h.short_usd) == (50e6, 0.0)
    assert (lb.liquidations_24h.long_usd, lb.liquidations_24h.short_usd) == (50e6, 1e6)
    assert lb.liquidations_24h.tracked_since == old.ts


def test_only_figures_that_are_read_back_are_stored() -> None:
    s = f.snapshot(
        markets=f.markets(),
        global_market=f.global_market(),
        coinbase_btc=f.candles("Coinbase", [99.9]),
        okx_btc=f.candles("OKX", [100.0]),
        open_interest=[f.open_interest(90e9)],
        cut_odds=f.cut_odds(0.4),
        yields=f.yields(4.0, 4.1),
        fear_greed=f.fear_greed(30),
    )
    assert set(lookback.figures_of(s)) == {"premium_pct", "oi_usd", "cut_odds"}
