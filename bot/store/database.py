"""`Store`: one SQLite database, opened once, composed of its parts.

The parts own their tables: `store.subs` (subscriptions), `store.outbox` (alerts and
deliveries), `store.history` (the core's History: figures and liquidation events) and
`store.meta`. Store's own methods delegate to them, so callers may use either. Call the store
from the event loop's thread only, except `store.history`: it has its own connection and lock,
and the explainer's refresh uses it from a worker thread.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Self

import sqlite_utils

from bot.store.archive import Archive
from bot.store.checkpoints import EVERY_S as CHECKPOINT_EVERY_S
from bot.store.checkpoints import WalCheckpoints
from bot.store.faults import StorageFaults
from bot.store.history import SqliteHistory
from bot.store.lock import InstanceLock
from bot.store.meta import Meta
from bot.store.outbox import Alert, AlertChart, AlertKind, AlertSummary, Delivery, Outbox
from bot.store.schema import migrate, schema_version
from bot.store.subscriptions import Platform, Subscription, Subscriptions
from explainers.models import Explanation, Liquidation, LiquidationCoverage, LiquidationHour

DEFAULT_DB_PATH = Path("data/whydown.db")
#: the files SQLite keeps beside a database in WAL mode
WAL_FILES = ("-wal", "-shm")

log = logging.getLogger("whydown.store")

#: SQLite's primary result codes that mean the file itself is damaged or not a database
SQLITE_CORRUPT = 11
SQLITE_NOTADB = 26


class DatabaseFault(RuntimeError):
    """The database cannot be opened or read: what is wrong, where the file is, how to recover."""

    def __init__(self, path: Path, err: sqlite3.DatabaseError) -> None:
        self.path = path
        code = getattr(err, "sqlite_errorcode", None)
        self.damaged = code is not None and code & 0xFF in (SQLITE_CORRUPT, SQLITE_NOTADB)
        if self.damaged:
            what = f"The database {path} is damaged or is not a whydown database ({err})."
            how = "To recover, stop whydown"
        else:
            what = f"The database {path} cannot be opened ({err})."
            how = (
                "Check that whydown may read and write it and its folder; if it is damaged, "
                "stop whydown"
            )
        super().__init__(
            f"{what}\nwhydown has left it untouched. {how}, then either:\n"
            f"  - restore it from a backup (made with `whydown backup FILE`): copy the backup "
            f"to {path}, and delete {path}-wal and {path}-shm if present; or\n"
            f"  - move it aside to start with an empty database (its subscriptions and alerts "
            f"are lost): mv {path} {path}.broken, and its -wal and -shm files if present.\n"
            "Then start whydown again."
        )


class Store:
    """The SQLite database behind one running bot."""

    def __init__(
        self, path: str | Path = DEFAULT_DB_PATH, *, lock: bool = False, read_only: bool = False
    ) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self.instance_lock = InstanceLock(self.path)
        self.lock_path = self.instance_lock.path
        if read_only and lock:
            raise ValueError("a read-only store takes no instance lock")
        try:
            self._open_all(lock)
        except BaseException as err:
            self._abandon()
            if isinstance(err, sqlite3.DatabaseError):
                # a damaged file, or one SQLite cannot open: say what, where and how to recover
                raise DatabaseFault(self.path, err) from err
            raise

    def _abandon(self) -> None:
        """After a failed open: close whatever was opened and let go of the lock."""
        for db in (getattr(self, "db", None), getattr(getattr(self, "history", None), "db", None)):
            if db is not None:
                db.close()
        self.instance_lock.release()

    def _open_all(self, lock: bool) -> None:
        if self.read_only:
            # for a look at a live database (`whydown status`): no lock, no migration, no
            # journal switch; an older or newer schema is for the caller to report
            self.db = self._open_read_only()
        else:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # before the lock, which creates its own file
            left = self.left_behind()
            if lock:
                # before migrating: two processes must never migrate the same file at once
                self.instance_lock.acquire()
            self.db = self._open(left)
        self.meta = Meta(self.db)
        # writes failing for want of space (see bot.store.faults), for the log and /status
        self.faults = StorageFaults()
        self.subs = Subscriptions(self.db)
        self.outbox = Outbox(self.db, self.subs)
        # past days' answers and rebuilt days; its tables are its own (see bot.store.archive)
        self.archive = Archive(self.db, create=not self.read_only)
        history_db = self._open_history()
        self.history = SqliteHistory(history_db, Meta(history_db), self.faults)
        # the same history on this connection, behind the same lock: the store's own history
        # methods use it inside `transaction()`, so they join that transaction as before
        self._history_here = SqliteHistory(self.db, self.meta, self.faults)
        self._history_here.lock = self.history.lock
        self._checkpoints: WalCheckpoints | None = None

    def left_behind(self) -> list[Path]:
        """Without a database file: the files a database leaves beside it (its instance lock,
        its WAL and shared memory), which say there was one here."""
        if self.path.exists():
            return []
        beside = [self.lock_path, *(self.path.with_name(self.path.name + s) for s in WAL_FILES)]
        return [p for p in beside if p.exists()]

    def _open(self, left_behind: Sequence[Path] = ()) -> sqlite_utils.Database:
        if left_behind:
            log.warning(
                "no database at %s, but files left beside it (%s) show that one was there: "
                "a new, empty "
                "database is created, without the subscriptions and alerts of the old one. If "
                "it was lost by mistake, stop whydown and restore it from a backup "
                "(see `whydown backup`).",
                self.path,
                ", ".join(p.name for p in left_behind),
            )
        if not self.path.exists():
            # create it ourselves so it never exists with wider permissions; SQLite gives the
            # -wal and -shm files the same mode as the database file
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
        db = sqlite_utils.Database(self.path, execute_plugins=False)
        db.enable_wal()
        # WAL + NORMAL survives a killed process without losing a commit; only a power loss can
        # drop the last transactions, and FULL would cost an fsync for every delivery
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=5000")  # `whydown status` may read while we write
        db.execute("PRAGMA foreign_keys=ON")
        migrate(db)
        return db

    def _open_read_only(self) -> sqlite_utils.Database:
        if not self.path.exists():  # SQLite would report it as a bare "unable to open"
            raise FileNotFoundError(f"no database at {self.path}")
        uri = f"{self.path.resolve().as_uri()}?mode=ro"
        connection = sqlite3.connect(uri, uri=True)
        connection.execute("PRAGMA busy_timeout=5000")  # the running bot may be writing
        try:  # SQLite reads the file only now: a damaged one fails here, not in the caller
            connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except BaseException:
            connection.close()
            raise
        return sqlite_utils.Database(connection, execute_plugins=False)

    def _open_history(self) -> sqlite_utils.Database:
        """The history's own connection (after migration): used from whichever thread holds the
        history's lock, so it may cross threads."""
        if self.read_only:
            uri = f"{self.path.resolve().as_uri()}?mode=ro"
            connection = sqlite3.connect(uri, uri=True, check_same_thread=False)
        else:
            connection = sqlite3.connect(self.path, check_same_thread=False)
            connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA busy_timeout=5000")
        return sqlite_utils.Database(connection, execute_plugins=False)

    # lifecycle

    def acquire_instance_lock(self) -> None:
        """Hold an OS lock on ``<db>.lock`` until close; raise AlreadyRunning if another has it."""
        self.instance_lock.acquire()

    def checkpoint_off_the_loop(self, every_s: float = CHECKPOINT_EVERY_S) -> WalCheckpoints:
        """For a long-running process: WAL checkpoints move from this connection's commits to a
        worker thread (see bot.store.checkpoints); `close()` stops it."""
        if self.read_only:
            raise RuntimeError("a read-only store writes nothing to checkpoint")
        if self._checkpoints is None:
            self._checkpoints = WalCheckpoints(self.db, self.history.db, self.history.lock, every_s)
        return self._checkpoints

    def close(self) -> None:
        """Close the database and release the instance lock (the lock file stays, harmlessly)."""
        if self._checkpoints is not None:
            self._checkpoints.stop()
            self._checkpoints = None
        with self.history.lock:
            self.history.db.close()
        self.db.close()
        self.instance_lock.release()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Group store calls into one transaction (nested use becomes a savepoint). The store's
        own history methods join it; `store.history`, on its own connection, does not."""
        with self.db.atomic():
            yield

    def _history(self) -> SqliteHistory:
        return self._history_here if self.db.conn.in_transaction else self.history

    @property
    def schema_version(self) -> int:
        return schema_version(self.db)

    def prune(self, now: datetime) -> dict[str, int]:
        """Delete expired rows; return how many per table."""
        # the history prunes on its own connection, in its own transaction
        pruned = self.history.prune(now)
        with self.transaction():
            return pruned | self.outbox.prune(now)

    # meta

    def set_meta(self, key: str, value: str) -> None:
        """Store a small named value (last refresh time, source health JSON, ...)."""
        self.meta.set(key, value)

    def get_meta(self, key: str) -> str | None:
        """A stored value, or None."""
        return self.meta.get(key)

    # per-chat settings, subscribed or not (kept as meta values: one per chat and setting)

    def full_answers(self, platform: Platform, chat_id: str, topic_id: int | None) -> bool:
        """Whether a chat (or forum topic) chose the full answer over the compact one."""
        return self.meta.get(_full_answers_key(platform, chat_id, topic_id)) == "on"

    def set_full_answers(
        self, platform: Platform, chat_id: str, topic_id: int | None, on: bool
    ) -> None:
        self.meta.set(_full_answers_key(platform, chat_id, topic_id), "on" if on else "off")

    # subscriptions: see Subscriptions

    def subscribe(
        self,
        platform: Platform,
        chat_id: str,
        topic_id: int | None,
        min_drivers: int,
        subscribed_by: str,
        cooldown_s: int | None = None,
        *,
        at: datetime | None = None,
        secret: str | None = None,
    ) -> Subscription:
        """Subscribe a target, or update and reactivate its existing subscription."""
        return self.subs.subscribe(
            platform,
            chat_id,
            topic_id,
            min_drivers,
            subscribed_by,
            cooldown_s,
            at=at,
            secret=secret,
        )

    def unsubscribe(self, platform: Platform, chat_id: str, topic_id: int | None) -> bool:
        """Deactivate a subscription; False when there was no active one."""
        return self.subs.unsubscribe(platform, chat_id, topic_id)

    def get_subscription(
        self, platform: Platform, chat_id: str, topic_id: int | None
    ) -> Subscription | None:
        """The subscription of one target, active or not."""
        return self.subs.get(platform, chat_id, topic_id)

    def subscription(self, subscription_id: int) -> Subscription | None:
        """A subscription by id."""
        return self.subs.by_id(subscription_id)

    def subscriptions(
        self, active_only: bool = True, platform: Platform | None = None
    ) -> list[Subscription]:
        """Subscriptions in id order."""
        return self.subs.find(active_only, platform)

    def subscription_counts(self) -> dict[str, int]:
        """Active subscriptions per platform."""
        return self.subs.counts()

    def migrate_chat(self, platform: Platform, old_chat_id: str, new_chat_id: str) -> int:
        """Move a chat's subscriptions to its new id (Telegram group -> supergroup); return how many."""
        return self.subs.migrate_chat(platform, old_chat_id, new_chat_id)

    def mark_alerted(
        self, subscription_ids: Iterable[int], at: datetime, drivers: int, drop: float | None
    ) -> None:
        """Remember each subscription's latest alert, for its cooldown and escalation."""
        self.subs.mark_alerted(subscription_ids, at, drivers, drop)

    def clear_alerting(self, subscription_ids: Iterable[int]) -> None:
        """Note that these subscriptions' alert condition has eased."""
        self.subs.clear_alerting(subscription_ids)

    def note_permanent_failure(self, subscription_id: int, deactivate_after: int) -> bool:
        """Count a permanent failure; deactivate at `deactivate_after` in a row. True if deactivated."""
        return self.subs.note_permanent_failure(subscription_id, deactivate_after)

    # alerts and the outbox: see Outbox

    def add_alert(self, kind: AlertKind, explanation: Explanation, key: str, at: datetime) -> Alert:
        """Record an alert, or return the one already recorded under `key`."""
        return self.outbox.add_alert(kind, explanation, key, at)

    def alert(self, alert_id: int) -> Alert | None:
        """One alert with its explanation."""
        return self.outbox.alert(alert_id)

    def recent_alerts(self, limit: int = 10) -> list[AlertSummary]:
        """The last alerts (not the eased follow-ups), newest first: the data for /history."""
        return self.outbox.recent_alerts(limit)

    def add_deliveries(
        self, alert_id: int, subscription_ids: Iterable[int], at: datetime
    ) -> list[Delivery]:
        """Queue the alert for each subscription; return only the deliveries that are new."""
        return self.outbox.add_deliveries(alert_id, subscription_ids, at)

    def pending_deliveries(self) -> list[tuple[Delivery, Subscription]]:
        """Deliveries not yet sent or given up, oldest first, with their subscriptions."""
        return self.outbox.pending()

    def pending_batch(
        self,
        after_id: int,
        limit: int,
        *,
        upto_id: int | None = None,
        alert_ids: Iterable[int] = (),
        platform: str | None = None,
    ) -> list[tuple[Delivery, Subscription]]:
        """Up to `limit` pending deliveries with ids above `after_id` (and at most `upto_id`, of
        these alerts and this platform when named), oldest first, with their subscriptions."""
        return self.outbox.pending_batch(
            after_id, limit, upto_id=upto_id, alert_ids=alert_ids, platform=platform
        )

    def last_delivery_id(self) -> int:
        """The highest delivery id so far (0 when none)."""
        return self.outbox.last_delivery_id()

    def pending_count(self) -> int:
        """Deliveries still pending: the outbox depth."""
        return self.outbox.pending_count()

    def set_alert_chart(self, alert_id: int, chart: AlertChart) -> None:
        """Keep an alert's chart with the alert."""
        self.outbox.set_chart(alert_id, chart)

    def alert_chart(self, alert_id: int) -> AlertChart | None:
        """The chart kept with an alert, or None."""
        return self.outbox.chart(alert_id)

    def deliveries(self, alert_id: int) -> list[Delivery]:
        """Every delivery of one alert."""
        return self.outbox.of_alert(alert_id)

    def mark_sent(
        self, delivery_id: int, subscription_id: int, attempts: int, at: datetime
    ) -> None:
        """Record a successful send; the target is evidently alive again."""
        self.outbox.mark_sent(delivery_id, subscription_id, attempts, at)

    def note_attempt(self, delivery_id: int, attempts: int, error: str) -> None:
        """Record a failed attempt that will be retried."""
        self.outbox.note_attempt(delivery_id, attempts, error)

    def mark_failed(self, delivery_id: int, attempts: int, error: str) -> None:
        """Give up on one delivery."""
        self.outbox.mark_failed(delivery_id, attempts, error)

    # the core's History: see SqliteHistory (the explainer is given `store.history` itself)

    def add_figures(self, at: datetime, figures: Mapping[str, float]) -> None:
        """Store named figures observed at `at` (non-finite values are not figures; skipped)."""
        self._history().add_figures(at, figures)

    def figures(self, name: str, since: datetime) -> list[tuple[datetime, float]]:
        """One figure's values since `since`, oldest first."""
        return self._history().figures(name, since)

    def add_liquidations(
        self, events: Iterable[Liquidation], *, polled_at: datetime, covered_since: datetime
    ) -> int:
        """Add polled events not seen before (by `Liquidation.key`); return how many were new."""
        return self._history().add_liquidations(
            events, polled_at=polled_at, covered_since=covered_since
        )

    def add_streamed_liquidations(
        self, events: Sequence[Liquidation], *, market: bool = True
    ) -> int:
        """Add streamed events (already de-duplicated) to the minute sums; return how many.
        `market=False`: a coin streamed only on request, kept aside (see SqliteHistory)."""
        return self._history().add_streamed_liquidations(events, market=market)

    def record_liquidation_gap(self, exchange: str, start: datetime, end: datetime | None) -> None:
        """A venue's stream was not listening from `start` to `end` (None: still down)."""
        self._history().record_liquidation_gap(exchange, start, end)

    def liquidation_coverage(self, since: datetime, until: datetime) -> LiquidationCoverage:
        """Per venue, since when it has been tracked and whether a gap lies in the window."""
        return self._history().liquidation_coverage(since, until)

    def liquidations(self, since: datetime) -> list[Liquidation]:
        """Polled events kept for de-duplication with ``ts >= since``, oldest first."""
        return self._history().liquidations(since)

    def liquidations_tracked_since(self) -> datetime | None:
        """Since when events have been tracked without a gap, or None."""
        return self._history().liquidations_tracked_since()

    def liquidations_last_poll(self) -> datetime | None:
        """When the liquidation feeds last answered, or None."""
        return self._history().liquidations_last_poll()

    def liquidation_totals(self, since: datetime, until: datetime) -> tuple[float, float]:
        """(long USD, short USD) over the minutes from `since`'s to `until`'s (see SqliteHistory)."""
        return self._history().liquidation_totals(since, until)

    def instrument_totals(
        self, instruments: Iterable[str], since: datetime, until: datetime
    ) -> tuple[float, float]:
        """(long USD, short USD) of these instruments over the minutes from `since`'s to
        `until`'s (see SqliteHistory)."""
        return self._history().instrument_totals(instruments, since, until)

    def liquidation_hours(self, since: datetime) -> list[LiquidationHour]:
        """Hourly sums from `since`'s hour on, oldest first."""
        return self._history().liquidation_hours(since)


def _full_answers_key(platform: Platform, chat_id: str, topic_id: int | None) -> str:
    return f"full_answers:{platform}:{chat_id}:{'' if topic_id is None else topic_id}"
