"""A full database or disk: /why keeps answering, no alert goes out unrecorded, /status says why,
and everything recovers by itself once there is space again.

The database is made really full with ``PRAGMA max_page_count`` on a real SQLite file (SQLite then
fails writes with SQLITE_FULL, as on a full disk), or a full disk is simulated by a connection
whose writes raise ``sqlite3.OperationalError("database or disk is full")``.
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from bot.alerts import AlertEngine, AlertSettings
from bot.config import Settings
from bot.jobs import Jobs
from bot.store import Store, is_full
from tests.alert_fakes import RecordingNotifier
from tests.replay_helpers import Upstream
from tests.telegram_harness import Chat, TelegramEmulator

# telegram_scenarios is also a fixture plugin: its asserts are rewritten when imported here first
pytest.register_assert_rewrite("tests.telegram_scenarios")
from tests.telegram_scenarios import ALICE, make_frontend, running  # noqa: E402

pytest_plugins = ["tests.telegram_harness.fixtures", "tests.telegram_scenarios"]

VERDICT = "<b>Crypto is down: total market cap -13.9% in 24h, BTC -13.1% (-2.4% in 1h).</b>"
NOT_KEPT = "History is not being kept: database or disk is full (since 08:02 UTC)."
FAULT_LOG = "writing history failed: the database or disk is full"
RECOVERY_LOG = "the database accepts writes again"
NO_LIMIT = 1_000_000_000


def fill_up(store: Store) -> None:
    """Make the database really full: no page beyond those it has (on each connection: the limit
    is per connection), and the figures' last pages packed, so the next figure needs a page."""
    for db in (store.db, store.history.db):
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {pages}")
    conn = store.history.db.conn
    for i in range(100_000):
        try:
            with conn:
                conn.execute(
                    "INSERT INTO figures (name, at, value) VALUES ('filler', ?, ?)",
                    (f"2000-01-01T00:00:{i:06d}", i),
                )
        except sqlite3.OperationalError as err:
            assert is_full(err) and err.sqlite_errorcode == 13  # SQLITE_FULL, for real
            return
    raise AssertionError("the database never filled up")


def make_room(store: Store) -> None:
    """Space returns."""
    for db in (store.db, store.history.db):
        db.execute(f"PRAGMA max_page_count = {NO_LIMIT}")


def logged(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(text in r.getMessage() for r in caplog.records)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(_env_file=None, database=tmp_path / "whydown.db")


async def test_a_full_database_answers_why_sends_no_alert_and_recovers(
    telegram_emulator: TelegramEmulator, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    upstream = Upstream()
    tg, chat = telegram_emulator.client, Chat.private(ALICE)
    with Store(settings.database) as store:
        store.faults.clock = upstream.clock
        async with upstream.client(settings) as http:
            explainer = upstream.explainer(http, settings, history=store.history)
            frontend = make_frontend(telegram_emulator, explainer, store, upstream, settings, None)
            engine = AlertEngine(store, AlertSettings(), {"telegram": frontend.notifier})
            async with running(frontend):
                await tg.send_command(chat, "subscribe", user=ALICE)
                await tg.wait_for_reply(chat)
                fill_up(store)

                # two refreshes on a full database: both answer, the fault is logged once
                for _ in range(2):
                    upstream.advance(120)  # the cached answer is stale: /why refreshes
                    await tg.send_command(chat, "why", user=ALICE)
                    answer = await tg.wait_for_reply(chat)
                    assert answer.text is not None and VERDICT in answer.text
                assert logged(caplog, FAULT_LOG) == 1

                # the rule holds (5 drivers), but an alert that cannot be recorded is not sent
                before = len(await tg.bot_messages(chat))
                assert await engine.evaluate(await explainer.explain()) is None
                assert store.recent_alerts() == []
                subscription = store.subscriptions()[0]
                assert subscription.last_alert_at is None

                await tg.send_command(chat, "status", user=ALICE)
                status = (await tg.wait_for_reply(chat)).text or ""
                assert NOT_KEPT in status
                assert "Alerts that cannot be recorded are not sent" in status
                assert len(await tg.bot_messages(chat)) == before + 1  # /status's reply only

                # space returns: the next refresh keeps history again, and alerts go out
                make_room(store)
                upstream.advance(120)
                await tg.send_command(chat, "why", user=ALICE)
                answer = await tg.wait_for_reply(chat)
                assert answer.text is not None and VERDICT in answer.text
                assert logged(caplog, RECOVERY_LOG) == 1
                assert store.faults.current is None
                await tg.send_command(chat, "status", user=ALICE)
                status = (await tg.wait_for_reply(chat)).text or ""
                assert "History is not being kept" not in status

                alert = await engine.evaluate(await explainer.explain())
                assert alert is not None and alert.driver_count == 5
                delivered = await tg.wait_for_reply(chat)
                assert (delivered.text or "").startswith("<b>Crash alert</b>: 5 sell-off drivers")
    assert logged(caplog, FAULT_LOG) == 1
    with Store(settings.database, read_only=True) as reopened:  # what was kept survives
        since = datetime(2024, 8, 5, 8, 0, tzinfo=UTC)
        assert reopened.figures("premium_pct", since) != []
        assert [a.id for a in reopened.recent_alerts()] == [alert.id]


class FullDisk:
    """A connection whose writes fail as on a full disk while `full`; reads pass through."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.full = True

    def _check(self, sql: str) -> None:
        if self.full and sql.lstrip().upper().startswith(("INSERT", "UPDATE", "REPLACE")):
            raise sqlite3.OperationalError("database or disk is full")

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        self._check(sql)
        return self.conn.execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> sqlite3.Cursor:
        self._check(sql)
        return self.conn.executemany(sql, *args)

    def __enter__(self) -> sqlite3.Connection:
        return self.conn.__enter__()

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        return self.conn.__exit__(kind, err, tb)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


async def test_a_simulated_full_disk_keeps_the_refresh_job_going(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """The scheduled refresh on a full disk: the answer is cached, no alert is sent, nothing
    logs a traceback, and the next refresh with space sends the alert."""
    upstream = Upstream()
    notifier = RecordingNotifier("telegram")
    with Store(settings.database) as store:
        store.subscribe("telegram", "-1001", None, 3, "test")
        disks = [FullDisk(store.db.conn), FullDisk(store.history.db.conn)]
        store.db.conn, store.history.db.conn = disks  # type: ignore[assignment]
        async with upstream.client(settings) as http:
            explainer = upstream.explainer(http, settings, history=store.history)
            jobs = Jobs(
                explainer, store, AlertEngine(store, AlertSettings(), {"telegram": notifier})
            )
            for _ in range(3):
                upstream.advance(120)
                await jobs.refresh()
                for task in list(jobs.fanouts):
                    await task
            latest = explainer.latest
            assert latest is not None and latest.explanation.verdict == "down"
            assert notifier.received == []
            assert store.recent_alerts() == []
            assert store.faults.current is not None
            assert logged(caplog, "database or disk is full") == 1
            assert not [r for r in caplog.records if r.exc_info]  # no traceback, every refresh

            for disk in disks:
                disk.full = False
            upstream.advance(120)
            await jobs.refresh()
            for task in list(jobs.fanouts):
                await task
        assert store.faults.current is None
        assert len(notifier.received) == 1
        assert store.get_meta("last_refresh") is not None


def test_meta_written_while_full_is_kept_once_there_is_room(settings: Settings) -> None:
    """A write refused by a full database raises, and once space returns new keys are stored
    (sqlite_utils' upsert would have remembered its failed probe and dropped them for good)."""
    with Store(settings.database) as store:
        fill_up(store)
        with pytest.raises(sqlite3.OperationalError) as refused:
            store.set_meta("sources", "x" * 20_000)
        assert is_full(refused.value)
        make_room(store)
        store.set_meta("last_refresh", "2024-08-05T08:00:00+00:00")
        store.set_meta("sources", "[]")
    with Store(settings.database, read_only=True) as reopened:
        assert reopened.get_meta("last_refresh") == "2024-08-05T08:00:00+00:00"
        assert reopened.get_meta("sources") == "[]"
