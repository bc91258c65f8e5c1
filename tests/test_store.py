"""The SQLite store: schema and migrations, the instance lock, subscriptions, history, pruning."""

from __future__ import annotations

import inspect
import sqlite3
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlite_utils

from bot.store import (
    SCHEMA_VERSION,
    AlreadyRunning,
    SqliteHistory,
    Store,
    migrate,
    schema_version,
)
from explainers.history import History, MemoryHistory
from explainers.models import Liquidation
from tests.alert_fakes import START, explanation

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "whydown.db") as opened:
        yield opened


def liquidation(minutes_ago: float, usd: float, side: str = "long") -> Liquidation:
    return Liquidation(
        exchange="okx",
        instrument="BTC-USDT-SWAP",
        position_side=side,
        price=60000.0,
        size=usd / 60000.0,
        usd=usd,
        ts=START - timedelta(minutes=minutes_ago),
    )


# --- schema -----------------------------------------------------------------------------------


def test_new_database_is_private_wal_and_current(tmp_path: Path) -> None:
    path = tmp_path / "data" / "nested" / "whydown.db"
    with Store(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert store.db.journal_mode == "wal"
        store.subscribe("telegram", "42", None, 3, "alice")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        wal = path.with_name(path.name + "-wal")
        assert stat.S_IMODE(wal.stat().st_mode) == 0o600


def test_migrates_a_database_from_the_previous_schema(tmp_path: Path) -> None:
    path = tmp_path / "whydown.db"
    old = sqlite_utils.Database(path)
    assert migrate(old, target=SCHEMA_VERSION - 1) == SCHEMA_VERSION - 1
    old.execute(
        "INSERT INTO subscriptions (platform, chat_id, topic_id, min_drivers, subscribed_by, "
        "subscribed_at, last_alert_at, last_alert_drivers, last_alert_drop) "
        "VALUES ('telegram', '-1001', 7, 4, 'bob', ?, ?, 4, -5.5)",
        (START.isoformat(), START.isoformat()),
    )
    old.execute(
        "INSERT INTO alerts (created_at, key, drivers, driver_count, market_change_24h, "
        "explanation) VALUES (?, 'k1', '[\"Etf\", \"Fear\"]', 2, -5.5, ?)",
        (START.isoformat(), explanation(2).model_dump_json()),
    )
    old.close()

    with Store(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        subscription = store.get_subscription("telegram", "-1001", 7)
        assert subscription is not None
        assert (subscription.min_drivers, subscription.last_alert_drivers) == (4, 4)
        assert subscription.alerting is False
        [summary] = store.recent_alerts(5)
        assert (summary.kind, summary.drivers, summary.btc_change_1h) == (
            "alert",
            ["Etf", "Fear"],
            None,
        )


def test_refuses_a_schema_newer_than_the_code(tmp_path: Path) -> None:
    path = tmp_path / "whydown.db"
    with Store(path) as store:
        store.db.execute(
            "INSERT INTO schema_version VALUES (?, ?)", (SCHEMA_VERSION + 1, START.isoformat())
        )
    with pytest.raises(RuntimeError, match="newer than this whydown"):
        Store(path)


def test_a_read_only_store_neither_migrates_nor_writes_nor_locks(tmp_path: Path) -> None:
    path = tmp_path / "whydown.db"
    old = sqlite_utils.Database(path)
    migrate(old, target=1)
    old.close()
    running = Store(tmp_path / "other.db", lock=True)  # a live bot on another database

    with Store(path, read_only=True) as store:
        assert store.schema_version == 1
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            store.set_meta("last_refresh", "now")
    with Store(tmp_path / "other.db", read_only=True) as live:  # the bot's lock is no obstacle
        assert live.schema_version == SCHEMA_VERSION
    running.close()

    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db", "other.db.lock", "whydown.db"]
    reopened = sqlite_utils.Database(path)
    assert schema_version(reopened) == 1
    reopened.close()


# --- single instance --------------------------------------------------------------------------


def test_second_instance_is_refused_until_the_first_closes(tmp_path: Path) -> None:
    path = tmp_path / "whydown.db"
    first = Store(path, lock=True)
    with pytest.raises(AlreadyRunning) as refused:
        Store(path, lock=True)
    message = str(refused.value)
    assert f"{path}.lock" in message
    assert "alert twice" in message
    first.close()
    Store(path, lock=True).close()


def test_lock_held_by_another_process_is_refused_and_freed_when_it_dies(tmp_path: Path) -> None:
    path = tmp_path / "whydown.db"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys
                sys.path.insert(0, {str(ROOT)!r})
                from bot.store import Store
                store = Store({str(path)!r}, lock=True)
                print("locked", flush=True)
                sys.stdin.read()
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(AlreadyRunning, match=f"held by process {holder.pid}"):
            Store(path, lock=True)
    finally:
        holder.kill()
        holder.wait()
    # the kernel drops the lock with the process: no stale lock after a crash
    Store(path, lock=True).close()


# --- subscriptions ----------------------------------------------------------------------------


def test_subscribe_update_unsubscribe_and_reactivate(store: Store) -> None:
    first = store.subscribe("telegram", "-100", None, 3, "alice", at=START)
    again = store.subscribe("telegram", "-100", None, 5, "alice")
    assert again.id == first.id and again.min_drivers == 5
    assert again.subscribed_at == START

    assert store.unsubscribe("telegram", "-100", None) is True
    assert store.unsubscribe("telegram", "-100", None) is False
    assert store.subscriptions() == []
    assert [s.active for s in store.subscriptions(active_only=False)] == [False]

    later = START + timedelta(days=1)
    back = store.subscribe("telegram", "-100", None, 2, "carol", cooldown_s=600, at=later)
    assert (back.id, back.active, back.subscribed_by, back.subscribed_at) == (
        first.id,
        True,
        "carol",
        later,
    )
    assert (back.min_drivers, back.cooldown_s) == (2, 600)


def test_topics_and_platforms_are_separate_targets(store: Store) -> None:
    store.subscribe("telegram", "-100", None, 3, "a")
    store.subscribe("telegram", "-100", 11, 3, "a")
    store.subscribe("telegram", "-100", 12, 4, "a")
    store.subscribe("discord", "-100", None, 3, "b")
    assert len(store.subscriptions()) == 4
    assert len(store.subscriptions(platform="telegram")) == 3
    assert store.subscription_counts() == {"telegram": 3, "discord": 1}
    topic = store.get_subscription("telegram", "-100", 12)
    assert topic is not None and topic.min_drivers == 4
    assert store.get_subscription("telegram", "-100", 13) is None


@pytest.mark.parametrize("min_drivers", [1, 7])
def test_min_drivers_outside_2_to_6_is_rejected(store: Store, min_drivers: int) -> None:
    with pytest.raises(ValueError, match="2 to 6"):
        store.subscribe("discord", "9", None, min_drivers, "a")
    assert store.subscriptions(active_only=False) == []


def test_migrate_chat_moves_a_group_to_its_supergroup(store: Store) -> None:
    store.subscribe("telegram", "-42", None, 3, "a")
    assert store.migrate_chat("telegram", "-42", "-10042") == 1
    assert store.get_subscription("telegram", "-42", None) is None
    moved = store.get_subscription("telegram", "-10042", None)
    assert moved is not None and moved.active


def test_migrate_chat_keeps_a_subscription_the_new_chat_already_has(store: Store) -> None:
    store.subscribe("telegram", "-42", None, 3, "a")
    store.subscribe("telegram", "-10042", None, 5, "b")
    assert store.migrate_chat("telegram", "-42", "-10042") == 0
    assert [(s.chat_id, s.min_drivers) for s in store.subscriptions()] == [("-10042", 5)]


def test_permanent_failures_deactivate_and_a_success_resets_the_count(store: Store) -> None:
    sub = store.subscribe("discord", "7", None, 3, "a")
    alert = store.add_alert("alert", explanation(3), "k", START)
    [delivery] = store.add_deliveries(alert.id, [sub.id], START)
    assert store.note_permanent_failure(sub.id, deactivate_after=3) is False
    assert store.note_permanent_failure(sub.id, deactivate_after=3) is False
    store.mark_sent(delivery.id, sub.id, 1, START)
    assert store.get_subscription("discord", "7", None).consecutive_failures == 0  # type: ignore[union-attr]
    for _ in range(2):
        assert store.note_permanent_failure(sub.id, deactivate_after=3) is False
    assert store.note_permanent_failure(sub.id, deactivate_after=3) is True
    assert store.subscriptions() == []


def test_recent_alerts_newest_first_without_eased_follow_ups(store: Store) -> None:
    for hours, fired in ((0, 3), (1, 4), (2, 5)):
        at = START + timedelta(hours=hours)
        store.add_alert("alert", explanation(fired, at=at), f"a{hours}", at)
    store.add_alert("eased", explanation(0), "eased", START + timedelta(hours=3))
    history = store.recent_alerts(2)
    assert [(a.driver_count, a.drivers[0]) for a in history] == [
        (5, "Liquidations"),
        (4, "Liquidations"),
    ]
    assert history[0].created_at == START + timedelta(hours=2)
    assert history[0].market_change_24h == -6.0


def test_add_alert_is_idempotent_by_key_and_keeps_the_explanation(store: Store) -> None:
    first = store.add_alert("alert", explanation(3), "same", START)
    second = store.add_alert("alert", explanation(4), "same", START + timedelta(hours=1))
    assert second.id == first.id and second.driver_count == 3
    loaded = store.alert(first.id)
    assert loaded is not None and loaded.explanation == explanation(3)


def test_meta_round_trip(store: Store) -> None:
    assert store.get_meta("last_refresh") is None
    store.set_meta("last_refresh", "2024-08-05T08:00:00+00:00")
    store.set_meta("last_refresh", "2024-08-05T08:01:00+00:00")
    assert store.get_meta("last_refresh") == "2024-08-05T08:01:00+00:00"


def test_pending_deliveries_survive_a_restart_with_their_targets(tmp_path: Path) -> None:
    path = tmp_path / "whydown.db"
    with Store(path) as store:
        telegram = store.subscribe("telegram", "-100", 7, 3, "a", at=START)
        discord = store.subscribe("discord", "55", None, 4, "b", at=START)
        alert = store.add_alert("alert", explanation(4), "k", START)
        first, second = store.add_deliveries(alert.id, [telegram.id, discord.id], START)
        store.note_attempt(first.id, 1, "timed out")
        store.mark_sent(second.id, discord.id, 1, START + timedelta(seconds=1))
    with Store(path) as store:  # the restart after a crash
        [(delivery, target)] = store.pending_deliveries()
        assert (delivery.id, delivery.status, delivery.attempts, delivery.last_error) == (
            first.id,
            "pending",
            1,
            "timed out",
        )
        assert delivery.created_at == START and delivery.sent_at is None
        assert (target.platform, target.chat_id, target.topic_id) == ("telegram", "-100", 7)
        assert store.add_deliveries(alert.id, [telegram.id, discord.id], START) == []
        assert [d.status for d in store.deliveries(alert.id)] == ["pending", "sent"]
        resent = store.alert(alert.id)
        assert resent is not None and resent.explanation == explanation(4)


# --- the core's History -----------------------------------------------------------------------


@pytest.mark.parametrize("implementation", [SqliteHistory, Store])
def test_every_history_method_with_the_same_signature(implementation: type) -> None:
    members = [name for name in vars(History) if not name.startswith("_")]
    assert members, "History has no members?"
    for name in members:
        expected = inspect.signature(getattr(History, name))
        actual = inspect.signature(getattr(implementation, name))
        assert list(actual.parameters) == list(expected.parameters), name
        assert actual.return_annotation == expected.return_annotation, name


def test_the_explainer_is_given_the_history_alone(store: Store) -> None:
    history = store.history
    assert isinstance(history, SqliteHistory)
    assert not hasattr(history, "subscribe") and not hasattr(history, "add_alert")


def test_sqlite_history_behaves_like_memory_history(store: Store) -> None:
    memory = MemoryHistory()
    sqlite = store.history
    histories: list[History] = [memory, sqlite]
    batch_1 = [liquidation(90, 1e6), liquidation(30, 2e6, "short")]
    batch_2 = [liquidation(30, 2e6, "short"), liquidation(5, 4e6)]
    for history in histories:
        assert history.liquidations_tracked_since() is None
        assert (
            history.add_liquidations(
                batch_1, polled_at=START, covered_since=START - timedelta(minutes=90)
            )
            == 2
        )
        assert (
            history.add_liquidations(
                batch_2,
                polled_at=START + timedelta(minutes=1),
                covered_since=START - timedelta(minutes=30),
            )
            == 1
        )
        history.add_figures(START - timedelta(hours=2), {"premium_pct": -0.02, "cut_odds": 0.6})
        history.add_figures(START, {"premium_pct": -0.07})
    since = START - timedelta(hours=1)
    assert sqlite.liquidations(since) == sorted(memory.liquidations(since), key=lambda e: e.ts)
    assert [e.key for e in sqlite.liquidations(since)] == [batch_1[1].key, batch_2[1].key]
    assert sqlite.liquidations_tracked_since() == memory.liquidations_tracked_since()
    assert sqlite.liquidations_tracked_since() == START - timedelta(minutes=90)
    for window in (timedelta(hours=1), timedelta(hours=3)):
        totals = sqlite.liquidation_totals(START - window, START)
        assert totals == memory.liquidation_totals(START - window, START)
    assert sqlite.liquidation_totals(START - timedelta(hours=3), START) == (5e6, 2e6)
    hours = sqlite.liquidation_hours(START - timedelta(hours=3))
    assert hours == memory.liquidation_hours(START - timedelta(hours=3))
    assert [(h.hour.hour, h.long_usd, h.short_usd) for h in hours] == [(6, 1e6, 0.0), (7, 4e6, 2e6)]
    assert hours[0].instruments == ["BTC-USDT-SWAP"]
    for name in ("premium_pct", "cut_odds"):
        for cutoff in (START - timedelta(days=1), START - timedelta(hours=1)):
            assert sqlite.figures(name, cutoff) == memory.figures(name, cutoff)


@pytest.mark.parametrize("kind", ["memory", "store"])
def test_a_gap_between_polls_restarts_tracking(kind: str, store: Store) -> None:
    history: History = MemoryHistory() if kind == "memory" else store.history
    first = START - timedelta(days=2)
    history.add_liquidations([], polled_at=first, covered_since=first - timedelta(minutes=20))
    history.add_liquidations([], polled_at=first + timedelta(minutes=9), covered_since=first)
    assert history.liquidations_tracked_since() == first - timedelta(minutes=20)  # no gap yet
    # the bot was down for two days: totals must not claim to cover them
    history.add_liquidations(
        [liquidation(10, 5e6)], polled_at=START, covered_since=START - timedelta(minutes=15)
    )
    assert history.liquidations_tracked_since() == START - timedelta(minutes=15)


def test_history_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "whydown.db"
    with Store(path) as store:
        store.add_liquidations([liquidation(10, 5e6)], polled_at=START, covered_since=START)
        store.add_figures(START, {"cut_odds": 0.55})
    with Store(path) as store:
        assert [e.usd for e in store.liquidations(START - timedelta(hours=1))] == [5e6]
        assert (
            store.add_liquidations([liquidation(10, 5e6)], polled_at=START, covered_since=START)
            == 0
        )
        assert store.figures("cut_odds", START) == [(START, 0.55)]


def test_times_are_kept_exactly_and_in_utc(store: Store) -> None:
    from zoneinfo import ZoneInfo

    local = datetime(2024, 8, 5, 10, 0, 0, 123457, tzinfo=ZoneInfo("Europe/Berlin"))
    store.add_figures(local, {"x": 1.5})
    [(at, value)] = store.figures("x", local - timedelta(seconds=1))
    assert at == local and at.tzinfo == UTC and value == 1.5
    with pytest.raises(ValueError, match="naive"):
        store.add_figures(datetime(2024, 8, 5), {"x": 1.0})


# --- pruning ----------------------------------------------------------------------------------


def test_prune_keeps_only_what_is_still_useful(store: Store) -> None:
    now = START + timedelta(days=40)
    store.add_figures(now - timedelta(days=9), {"old": 1.0})
    store.add_figures(now - timedelta(days=7), {"recent": 2.0})
    old_liq = liquidation(0, 1e6).model_copy(update={"ts": now - timedelta(hours=26)})
    new_liq = liquidation(0, 2e6).model_copy(update={"ts": now - timedelta(hours=24)})
    # polled events are kept 48h to de-duplicate polls; their minute sums 25h, for the totals
    oldest = liquidation(0, 4e6).model_copy(update={"ts": now - timedelta(hours=49)})
    store.add_liquidations([oldest], polled_at=oldest.ts, covered_since=oldest.ts)
    store.add_liquidations([old_liq, new_liq], polled_at=now, covered_since=old_liq.ts)
    sub = store.subscribe("discord", "1", None, 3, "a")
    old_alert = store.add_alert("alert", explanation(3), "old", now - timedelta(days=31))
    [old_delivery] = store.add_deliveries(old_alert.id, [sub.id], now - timedelta(days=31))
    store.mark_sent(old_delivery.id, sub.id, 1, now - timedelta(days=31))
    stuck = store.add_alert("alert", explanation(4), "stuck", now - timedelta(days=31))
    store.add_deliveries(stuck.id, [sub.id], now - timedelta(days=31))  # still pending
    recent = store.add_alert("alert", explanation(5), "recent", now - timedelta(days=2))
    store.add_deliveries(recent.id, [sub.id], now - timedelta(days=2))

    removed = store.prune(now)

    assert removed == {
        "figures": 1,
        "liquidation_events": 1,
        "liquidation_minutes": 2,
        "deliveries": 1,
        "alerts": 1,
    }
    assert store.figures("old", START) == [] and len(store.figures("recent", START)) == 1
    assert [e.usd for e in store.liquidations(START)] == [1e6, 2e6]
    assert store.liquidation_totals(now - timedelta(days=3), now) == (2e6, 0.0)
    assert [h.long_usd for h in store.liquidation_hours(now - timedelta(days=3))] == [2e6]
    assert store.alert(old_alert.id) is None
    assert store.alert(stuck.id) is not None and store.alert(recent.id) is not None
    # tracking continues: the start of tracking is not forgotten by pruning events
    assert store.liquidations_tracked_since() == now - timedelta(hours=26)


def test_history_calls_inside_a_store_transaction_join_it(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        store.subscribe("telegram", "1", None, 3, "a")
        store.add_liquidations([liquidation(10, 5e6)], polled_at=START, covered_since=START)
        raise RuntimeError("rolled back together")
    assert store.liquidations(START - timedelta(hours=1)) == []
    with store.transaction():
        store.subscribe("telegram", "1", None, 3, "a")
        store.add_liquidations([liquidation(10, 5e6)], polled_at=START, covered_since=START)
        store.add_figures(START, {"cut_odds": 0.5})
    # and the history's own connection sees them
    assert store.history.liquidation_totals(START - timedelta(hours=1), START) == (5e6, 0.0)
    assert store.history.figures("cut_odds", START) == [(START, 0.5)]


def test_a_page_of_pending_deliveries_looks_at_no_more_than_it_is_told(store: Store) -> None:
    # ten Telegram chats, then two Discord channels: a Discord read that looks at four deliveries
    # at a time finds nothing in the first pages, yet says where to read on
    chats = [store.subscribe("telegram", str(i), None, 3, "x") for i in range(10)]
    channels = [store.subscribe("discord", str(i), None, 3, "x") for i in range(2)]
    alert = store.add_alert("alert", explanation(4), "k", START)
    queued = store.add_deliveries(alert.id, [s.id for s in [*chats, *channels]], START)
    outbox = store.outbox
    after, seen = 0, []
    pages = 0
    while after is not None:
        rows, after = outbox.pending_page(after, 5, platform="discord", scan=4)
        seen += [(d.id, s.chat_id) for d, s in rows]
        pages += 1
    assert seen == [(queued[10].id, "0"), (queued[11].id, "1")]
    assert pages == 4  # 12 pending looked at 4 at a time, then nothing left
    rows, after = outbox.pending_page(0, 3, platform="telegram", scan=10)
    assert [s.chat_id for _, s in rows] == ["0", "1", "2"] and after == queued[2].id
    assert (
        outbox.pending_batch(0, 100, platform="telegram")
        == outbox.pending_page(0, 100, platform="telegram")[0]
    )


def test_wal_checkpoints_leave_the_loops_connection_for_a_worker(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    with Store(path) as store:
        checkpoints = store.checkpoint_off_the_loop(every_s=3600)  # rounds driven by the test
        assert store.db.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
        checkpoints.checkpoint()
        before = path.stat().st_size
        # well past the 1,000 pages at which the loop's own commit would have checkpointed
        for n in range(800):
            store.subscribe("telegram", str(n), None, 3, "admin", at=START)
        assert (tmp_path / "w.db-wal").stat().st_size > 1000 * 4096
        assert path.stat().st_size == before  # every commit stayed in the log
        checkpoints.checkpoint()
        assert path.stat().st_size > before  # the worker's round copied them into the file
    with Store(path) as reopened:
        assert len(reopened.subscriptions()) == 800
