"""Liquidations as per-minute sums: polled and streamed events, venues, gaps and coverage."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlite_utils

from bot.store import SCHEMA_VERSION, Store, migrate
from bot.store.history import SqliteHistory
from bot.store.rows import stamp
from explainers import lookback
from explainers.history import History, MemoryHistory
from explainers.models import Liquidation
from explainers.settings import Thresholds
from tests import factories as f

NOW = f.NOW  # 14:00 UTC


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "whydown.db") as opened:
        yield opened


@pytest.fixture(params=["memory", "sqlite"])
def history(request: pytest.FixtureRequest, store: Store) -> History:
    return MemoryHistory() if request.param == "memory" else store.history


def event(
    seconds_ago: float,
    usd: float,
    side: str = "long",
    exchange: str = "OKX",
    instrument: str = "BTC-USDT-SWAP",
) -> Liquidation:
    return Liquidation(
        exchange=exchange,
        instrument=instrument,
        position_side=side,
        price=60000.0,
        size=usd / 60000.0,
        usd=usd,
        ts=NOW - timedelta(seconds=seconds_ago),
    )


def totals_24h(history: History) -> tuple[float, float, list[str], bool] | None:
    lb = lookback.lookback(f.snapshot(), history, Thresholds())
    t = lb.liquidations_24h
    return None if t is None else (t.long_usd, t.short_usd, t.exchanges, t.partial)


def test_migration_folds_stored_events_into_minutes_with_totals_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "whydown.db"
    old = sqlite_utils.Database(path)
    migrate(old, target=2)  # the schema before v3 folded events into minute sums
    events = [
        event(30, 1e6),
        event(40, 2e6),  # same minute (13:59) as the one above
        event(50, 4e6, "short"),
        event(3 * 3600, 8e6, instrument="ETH-USDT-SWAP"),
    ]
    old.conn.executemany(
        "INSERT INTO liquidation_events (key, exchange, instrument, side, price, size, usd, ts) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (e.key, e.exchange, e.instrument, e.position_side, e.price, e.size, e.usd, stamp(e.ts))
            for e in events
        ],
    )
    old.conn.executemany(
        "INSERT INTO meta (key, value) VALUES (?, ?)",
        [
            ("liquidations_tracked_since", stamp(NOW - timedelta(hours=5))),
            ("liquidations_last_poll", stamp(NOW)),
        ],
    )
    old.conn.commit()
    old.close()

    with Store(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        rows = store.db.execute(
            "SELECT minute, instrument, side, usd, events FROM liquidation_minutes ORDER BY minute"
        ).fetchall()
        assert rows == [
            ("2026-11-20T11:00", "ETH-USDT-SWAP", "long", 8e6, 1),
            ("2026-11-20T13:59", "BTC-USDT-SWAP", "long", 3e6, 2),
            ("2026-11-20T13:59", "BTC-USDT-SWAP", "short", 4e6, 1),
        ]
        assert store.liquidation_totals(NOW - timedelta(hours=1), NOW) == (3e6, 4e6)
        assert store.liquidation_totals(NOW - timedelta(hours=24), NOW) == (11e6, 4e6)
        assert totals_24h(store.history) == (11e6, 4e6, ["OKX"], True)
        # the migrated events still de-duplicate the next poll
        assert store.add_liquidations(events, polled_at=NOW, covered_since=NOW) == 0
        assert store.liquidation_totals(NOW - timedelta(hours=24), NOW) == (11e6, 4e6)


def test_five_thousand_streamed_events_in_one_minute_sum_exactly(history: History) -> None:
    events = [
        event(60 - i % 60, 1000.0 + i, "long" if i % 3 else "short", exchange="Bybit")
        for i in range(5000)
    ]
    # streams deliver in small batches
    added = sum(history.add_streamed_liquidations(events[i : i + 100]) for i in range(0, 5000, 100))
    assert added == 5000
    long_usd = sum(e.usd for e in events if e.position_side == "long")
    short_usd = sum(e.usd for e in events if e.position_side == "short")
    assert history.liquidation_totals(NOW - timedelta(minutes=1), NOW) == (long_usd, short_usd)
    [hour] = history.liquidation_hours(NOW - timedelta(hours=1))
    assert (hour.long_usd, hour.short_usd) == (long_usd, short_usd)
    assert history.liquidations(NOW - timedelta(hours=1)) == []  # streamed events are not kept


def test_streamed_events_are_one_row_per_minute_venue_instrument_and_side(store: Store) -> None:
    store.add_streamed_liquidations([event(s, 10.0, exchange="Bybit") for s in range(1, 121)])
    rows = store.db.execute(
        "SELECT minute, usd, events FROM liquidation_minutes ORDER BY minute"
    ).fetchall()
    assert rows == [("2026-11-20T13:58", 600.0, 60), ("2026-11-20T13:59", 600.0, 60)]


def test_the_same_poll_twice_is_counted_once(history: History) -> None:
    poll = [event(30, 1e6), event(90, 2e6, "short"), event(600, 4e6)]
    covered = NOW - timedelta(minutes=10)
    assert history.add_liquidations(poll, polled_at=NOW, covered_since=covered) == 3
    assert history.add_liquidations(poll, polled_at=NOW, covered_since=covered) == 0
    later = [*poll, event(5, 8e6)]
    assert history.add_liquidations(later, polled_at=NOW, covered_since=covered) == 1
    assert history.liquidation_totals(NOW - timedelta(hours=1), NOW) == (13e6, 2e6)
    assert totals_24h(history) == (13e6, 2e6, ["OKX"], True)  # tracked for 10 minutes only


def test_a_poll_reaching_past_the_deduplication_window_ignores_what_it_cannot_check(
    history: History,
) -> None:
    too_old = event(49 * 3600, 1e6)
    assert history.add_liquidations([too_old], polled_at=NOW, covered_since=too_old.ts) == 0
    assert history.liquidation_totals(NOW - timedelta(days=3), NOW) == (0.0, 0.0)


def test_totals_across_venues(history: History) -> None:
    history.record_liquidation_gap("Bybit", NOW - timedelta(days=2), NOW - timedelta(days=2))
    history.add_streamed_liquidations(
        [event(60, 5e6, exchange="Bybit"), event(7200, 1e6, "short", exchange="Bybit")]
    )
    history.add_liquidations(
        [event(120, 2e6), event(30, 3e6, "short", instrument="ETH-USDT-SWAP")],
        polled_at=NOW - timedelta(minutes=1),
        covered_since=NOW - timedelta(days=1, hours=1),
    )
    assert history.liquidation_totals(NOW - timedelta(hours=1), NOW) == (7e6, 3e6)
    lb = lookback.lookback(f.snapshot(), history, Thresholds())
    assert lb.liquidations_1h is not None and lb.liquidations_24h is not None
    assert (lb.liquidations_1h.long_usd, lb.liquidations_1h.short_usd) == (7e6, 3e6)
    assert (lb.liquidations_24h.long_usd, lb.liquidations_24h.short_usd) == (7e6, 4e6)
    assert lb.liquidations_24h.exchanges == ["Bybit", "OKX"]
    assert not lb.liquidations_24h.partial
    hours = history.liquidation_hours(NOW - timedelta(hours=3))
    assert [(h.hour.hour, h.long_usd, h.short_usd, h.instruments) for h in hours] == [
        (12, 0.0, 1e6, ["BTC-USDT-SWAP"]),
        (13, 7e6, 3e6, ["BTC-USDT-SWAP", "ETH-USDT-SWAP"]),
    ]


def test_a_gap_inside_the_window_makes_the_totals_partial(history: History) -> None:
    history.record_liquidation_gap("Bybit", NOW - timedelta(days=2), NOW - timedelta(days=2))
    history.record_liquidation_gap("Bybit", NOW - timedelta(hours=3), NOW - timedelta(hours=2))
    history.add_streamed_liquidations([event(600, 5e6, exchange="Bybit")])

    day = history.liquidation_coverage(NOW - timedelta(hours=24), NOW)
    [bybit] = day.venues
    assert bybit.exchange == "Bybit" and bybit.tracked_since == NOW - timedelta(hours=2)
    assert bybit.gap_in_window and day.partial
    hour = history.liquidation_coverage(NOW - timedelta(hours=1), NOW)
    assert not hour.venues[0].gap_in_window and not hour.partial

    lb = lookback.lookback(f.snapshot(), history, Thresholds())
    assert lb.liquidations_1h is not None and not lb.liquidations_1h.partial
    assert lb.liquidations_24h is not None and lb.liquidations_24h.partial
    # counted from when the venue came back, and said so
    assert lb.liquidations_24h.tracked_since == NOW - timedelta(hours=2)
    assert lb.liquidations_24h.long_usd == 5e6


def test_a_venue_still_down_is_not_tracked_and_alone_gives_no_totals(history: History) -> None:
    history.record_liquidation_gap("Bybit", NOW - timedelta(days=2), NOW - timedelta(days=2))
    history.add_streamed_liquidations([event(3000, 5e6, exchange="Bybit")])
    history.record_liquidation_gap("Bybit", NOW - timedelta(minutes=20), None)  # disconnected
    [bybit] = history.liquidation_coverage(NOW - timedelta(hours=1), NOW).venues
    assert bybit.tracked_since is None and bybit.gap_in_window
    lb = lookback.lookback(f.snapshot(), history, Thresholds())
    assert lb.liquidations_1h is None  # unknown, not zero
    # back at 13:50: the same gap gets its end
    history.record_liquidation_gap(
        "Bybit", NOW - timedelta(minutes=20), NOW - timedelta(minutes=10)
    )
    [bybit] = history.liquidation_coverage(NOW - timedelta(hours=1), NOW).venues
    assert bybit.tracked_since == NOW - timedelta(minutes=10)


def test_gaps_and_sums_survive_a_restart_and_old_gaps_are_pruned(tmp_path: Path) -> None:
    path = tmp_path / "whydown.db"
    with Store(path) as store:
        store.record_liquidation_gap("Bybit", NOW - timedelta(days=3), NOW - timedelta(days=3))
        store.record_liquidation_gap("Bybit", NOW - timedelta(days=2), NOW - timedelta(days=2))
        store.add_streamed_liquidations([event(30, 5e6, exchange="Bybit")])
        store.prune(NOW)
        assert store.db.execute("SELECT count(*) FROM liquidation_gaps").fetchone() == (1,)
    with Store(path) as store:
        [bybit] = store.liquidation_coverage(NOW - timedelta(hours=1), NOW).venues
        assert bybit.tracked_since == NOW - timedelta(days=2) and not bybit.gap_in_window
        assert store.liquidation_totals(NOW - timedelta(hours=1), NOW) == (5e6, 0.0)


def test_totals_over_any_window_match_the_events_minute_by_minute(store: Store) -> None:
    # one streamed event every 7 minutes over 5 hours, with whole-dollar sizes (exact sums)
    events = [
        event(m * 60 + 13, 1000.0 * (m + 1), "long" if m % 2 else "short", exchange="Bybit")
        for m in range(0, 300, 7)
    ]
    memory = MemoryHistory()
    for history in (memory, store.history):
        history.add_streamed_liquidations(events)
    for since_m, until_m in [(300, 0), (61, 0), (60, 1), (119, 59), (200, 130), (5, 3), (301, 240)]:
        since, until = NOW - timedelta(minutes=since_m), NOW - timedelta(minutes=until_m)
        first, last = since.replace(second=0), until.replace(second=0)
        expected = (
            sum(
                e.usd
                for e in events
                if first <= e.ts.replace(second=0) <= last and e.position_side == "long"
            ),
            sum(
                e.usd
                for e in events
                if first <= e.ts.replace(second=0) <= last and e.position_side == "short"
            ),
        )
        assert store.liquidation_totals(since, until) == expected, (since_m, until_m)
        assert memory.liquidation_totals(since, until) == expected, (since_m, until_m)
    assert store.liquidation_hours(NOW - timedelta(hours=6)) == memory.liquidation_hours(
        NOW - timedelta(hours=6)
    )


def _streams_with_a_binance_drop(history: History) -> None:
    """Bybit, OKX and Binance streamed since 14:02 yesterday; Binance dropped 13:10-13:12."""
    for exchange in ("Bybit", "OKX", "Binance"):
        history.record_liquidation_gap(
            exchange, NOW - timedelta(hours=24, minutes=-1), NOW - timedelta(hours=23, minutes=58)
        )
    history.record_liquidation_gap(
        "Binance", NOW - timedelta(minutes=50), NOW - timedelta(minutes=48)
    )
    history.add_streamed_liquidations(
        [
            event(600, 5e6, exchange="Bybit", instrument="BTCUSDT"),
            event(300, 2e6, exchange="OKX"),
            event(60, 1e6, "short", exchange="Binance", instrument="ETHUSDT"),
        ]
    )


def test_the_answer_names_each_venue_read_how_completely_and_a_gap_in_the_window(
    history: History,
) -> None:
    from explainers import drivers, render
    from explainers.explain import explain

    _streams_with_a_binance_drop(history)
    modes = {"Bybit": "all", "OKX": "sampled", "Binance": "sampled"}
    snapshot = f.snapshot()
    lb = lookback.lookback(snapshot, history, Thresholds(), modes)  # type: ignore[arg-type]
    assert lb.liquidations_1h is not None
    # the 1h figures sum the three venues, counted since Binance came back at 13:12
    assert (lb.liquidations_1h.long_usd, lb.liquidations_1h.short_usd) == (7e6, 1e6)
    assert lb.liquidations_1h.exchanges == ["Bybit", "OKX", "Binance"]
    [result] = [r for r in drivers.evaluate(snapshot, lb, Thresholds()) if r.key == "liquidations"]
    [one_hour] = [e for e in result.evidence if e.label.startswith("Long liquidations, ")][:1]
    assert one_hour.value == (
        "$7.00M of $8.00M (88% longs) (partial: Binance disconnected 13:10-13:12 UTC)"
    )
    assert one_hour.source == "Bybit, OKX, Binance"
    answer = render.text(explain(snapshot, [result], lb, Thresholds(), now=NOW))
    assert "Liquidations tracked since 20 Nov 13:12 UTC: Bybit all; OKX, Binance sampled." in answer
    assert "$7.00M of longs liquidated in 1h across 3 venues (88% of all)" in answer


def test_a_venue_down_now_is_named_and_no_longer_counted_as_read(history: History) -> None:
    _streams_with_a_binance_drop(history)
    history.record_liquidation_gap("Binance", NOW - timedelta(seconds=30), None)
    from explainers import drivers

    lb = lookback.lookback(f.snapshot(), history, Thresholds())
    # what Binance delivered before it dropped still counts; it is no longer a venue read
    assert lb.liquidations_1h is not None and lb.liquidations_1h.exchanges == ["Bybit", "OKX"]
    [result] = [
        r for r in drivers.evaluate(f.snapshot(), lb, Thresholds()) if r.key == "liquidations"
    ]
    assert result.evidence[0].value == (
        "$7.00M of $8.00M (88% longs) (partial: Binance disconnected 13:10-13:12 UTC, "
        "Binance down since 13:59 UTC)"
    )


def test_the_one_shot_answer_says_okx_is_sampled_by_rest(history: History) -> None:
    from explainers import render
    from explainers.explain import explain

    history.add_liquidations(
        [event(120, 2e6)], polled_at=NOW, covered_since=NOW - timedelta(minutes=30)
    )
    snapshot = f.snapshot()
    lb = lookback.lookback(snapshot, history, Thresholds())
    answer = render.text(explain(snapshot, [], lb, Thresholds(), now=NOW))
    assert "Liquidations tracked since 20 Nov 13:30 UTC: OKX sampled (REST)." in answer


def test_a_coin_streamed_on_request_is_kept_aside_from_the_market_sums(
    history: MemoryHistory | SqliteHistory,
) -> None:
    history.add_streamed_liquidations([event(60, 4e6, exchange="Bybit", instrument="BTCUSDT")])
    history.add_streamed_liquidations(
        [
            event(30, 9e6, exchange="Bybit", instrument="DOGEUSDT"),
            event(20, 1e6, "short", exchange="Bybit", instrument="DOGEUSDT"),
        ],
        market=False,
    )
    hour_ago = NOW - timedelta(hours=1)
    assert history.liquidation_totals(hour_ago, NOW) == (4e6, 0.0)
    assert [(h.long_usd, h.instruments) for h in history.liquidation_hours(hour_ago)] == [
        (4e6, ["BTCUSDT"])
    ]
    assert history.instrument_totals(["DOGEUSDT"], hour_ago, NOW) == (9e6, 1e6)
    assert history.instrument_totals(["DOGEUSDT", "BTCUSDT"], hour_ago, NOW) == (13e6, 1e6)
    history.prune(NOW + timedelta(hours=26))  # past the minutes kept: gone with the rest
    assert history.instrument_totals(["DOGEUSDT"], hour_ago, NOW) == (0.0, 0.0)
