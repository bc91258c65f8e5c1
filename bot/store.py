"""The bot's SQLite store: subscriptions, the alert outbox and log, liquidation events, figures.

Only this module talks to SQLite. Rows cross the boundary as pydantic models. Times are stored as
fixed-format UTC ISO 8601 text (``2024-08-05T08:00:00.000000+00:00``): exact, readable, and
ordered correctly by plain string comparison. Call the store from the event loop's thread only.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import sqlite_utils
from pydantic import BaseModel, ConfigDict, Field

from explainers.history import starts_coverage
from explainers.models import Explanation, Liquidation, LiquidationHour

DEFAULT_DB_PATH = Path("data/whydown.db")
MIN_DRIVERS_LOWEST = 2
MIN_DRIVERS_HIGHEST = 6

Platform = Literal["telegram", "discord"]
AlertKind = Literal["alert", "eased"]
DeliveryStatus = Literal["pending", "sent", "failed"]

# retention used by prune()
FIGURES_KEEP = timedelta(days=8)
LIQUIDATIONS_KEEP = timedelta(hours=25)
OUTBOX_KEEP = timedelta(days=30)

_TRACKED_SINCE = "liquidations_tracked_since"
_LAST_POLL = "liquidations_last_poll"


class AlreadyRunning(RuntimeError):
    """Another process holds this database's instance lock."""


class Row(BaseModel):
    model_config = ConfigDict(frozen=True)


class Subscription(Row):
    """One chat, channel or forum topic that receives alerts."""

    id: int
    platform: Platform
    chat_id: str
    topic_id: int | None = None  # Telegram forum topic (message_thread_id)
    min_drivers: int = Field(ge=MIN_DRIVERS_LOWEST, le=MIN_DRIVERS_HIGHEST)
    cooldown_s: int | None = None  # None: the engine's default
    subscribed_by: str
    subscribed_at: datetime
    active: bool
    consecutive_failures: int
    last_alert_at: datetime | None = None
    last_alert_drivers: int | None = None
    last_alert_drop: float | None = None
    alerting: bool = False  # alerted, and the condition has not clearly eased since


class AlertSummary(Row):
    """What `/history` shows of one alert: when, which drivers, the move."""

    id: int
    kind: AlertKind
    created_at: datetime
    drivers: list[str]  # names of the fired drivers, strongest first
    driver_count: int
    market_change_24h: float | None
    btc_change_1h: float | None


class Alert(AlertSummary):
    """An alert as recorded, with the explanation every delivery renders."""

    key: str
    explanation: Explanation


class Delivery(Row):
    """One alert to one subscription: the outbox row."""

    id: int
    alert_id: int
    subscription_id: int
    status: DeliveryStatus
    attempts: int
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


def _ts(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("naive datetime: the store keeps timezone-aware UTC times only")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _dt(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


# --- schema ----------------------------------------------------------------------------------


def _v1_base_tables(db: sqlite_utils.Database) -> None:
    for statement in (
        """CREATE TABLE subscriptions (
            id INTEGER PRIMARY KEY,
            platform TEXT NOT NULL,
            chat_id TEXT NOT NULL,
            topic_id INTEGER,
            min_drivers INTEGER NOT NULL,
            cooldown_s INTEGER,
            subscribed_by TEXT NOT NULL,
            subscribed_at TEXT NOT NULL,
            active INTEGER NOT NULL DEFAULT 1,
            consecutive_failures INTEGER NOT NULL DEFAULT 0,
            last_alert_at TEXT,
            last_alert_drivers INTEGER,
            last_alert_drop REAL)""",
        # NULL topics would never collide in a plain unique index; 0 is never a topic id
        "CREATE UNIQUE INDEX subscriptions_target ON subscriptions "
        "(platform, chat_id, ifnull(topic_id, 0))",
        """CREATE TABLE alerts (
            id INTEGER PRIMARY KEY,
            created_at TEXT NOT NULL,
            key TEXT NOT NULL UNIQUE,
            drivers TEXT NOT NULL,
            driver_count INTEGER NOT NULL,
            market_change_24h REAL,
            explanation TEXT NOT NULL)""",
        """CREATE TABLE deliveries (
            id INTEGER PRIMARY KEY,
            alert_id INTEGER NOT NULL REFERENCES alerts(id),
            subscription_id INTEGER NOT NULL REFERENCES subscriptions(id),
            status TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            created_at TEXT NOT NULL,
            sent_at TEXT,
            UNIQUE (alert_id, subscription_id))""",
        """CREATE TABLE liquidation_events (
            key TEXT PRIMARY KEY,
            exchange TEXT NOT NULL,
            instrument TEXT NOT NULL,
            side TEXT NOT NULL,
            price REAL NOT NULL,
            size REAL NOT NULL,
            usd REAL NOT NULL,
            ts TEXT NOT NULL)""",
        "CREATE INDEX liquidation_events_ts ON liquidation_events (ts)",
        "CREATE TABLE figures (name TEXT NOT NULL, at TEXT NOT NULL, value REAL NOT NULL)",
        "CREATE INDEX figures_name_at ON figures (name, at)",
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ):
        db.execute(statement)


def _v2_alert_kinds_and_easing(db: sqlite_utils.Database) -> None:
    for statement in (
        "ALTER TABLE alerts ADD COLUMN kind TEXT NOT NULL DEFAULT 'alert'",
        "ALTER TABLE alerts ADD COLUMN btc_change_1h REAL",
        "ALTER TABLE subscriptions ADD COLUMN alerting INTEGER NOT NULL DEFAULT 0",
        "CREATE INDEX deliveries_status ON deliveries (status, created_at)",
        "CREATE INDEX alerts_kind_created ON alerts (kind, created_at)",
    ):
        db.execute(statement)


#: ordered migrations; index + 1 is the schema version each one produces. Never edit a released one.
MIGRATIONS: tuple[Callable[[sqlite_utils.Database], None], ...] = (
    _v1_base_tables,
    _v2_alert_kinds_and_easing,
)
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(db: sqlite_utils.Database) -> int:
    """The schema version a database is at (0 for an empty file)."""
    if not db["schema_version"].exists():
        return 0
    row = db.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def migrate(db: sqlite_utils.Database, target: int = SCHEMA_VERSION) -> int:
    """Run the migrations above the database's version up to `target`; return the new version."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS schema_version "
        "(version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    current = schema_version(db)
    if current > SCHEMA_VERSION:
        raise RuntimeError(
            f"the database is at schema v{current}, newer than this whydown (v{SCHEMA_VERSION}); "
            "upgrade whydown instead of opening it with an older release"
        )
    for version in range(current + 1, target + 1):
        with db.atomic():
            MIGRATIONS[version - 1](db)
            db.execute(
                "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                (version, _ts(datetime.now(UTC))),
            )
    return max(current, target)


# --- the store --------------------------------------------------------------------------------


class Store:
    """The SQLite database behind one running bot."""

    def __init__(
        self, path: str | Path = DEFAULT_DB_PATH, *, lock: bool = False, read_only: bool = False
    ) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.read_only = read_only
        self._lock_fd: int | None = None
        if read_only:
            # for a look at a live database (`whydown status`): no lock, no migration, no
            # journal switch; an older or newer schema is for the caller to report
            if lock:
                raise ValueError("a read-only store takes no instance lock")
            self.db = self._open_read_only()
            return
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if lock:
            # before migrating: two processes must never migrate the same file at once
            self.acquire_instance_lock()
        try:
            self.db = self._open()
        except Exception:
            self._release_lock()
            raise

    def _open(self) -> sqlite_utils.Database:
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
        return sqlite_utils.Database(connection, execute_plugins=False)

    # lifecycle

    def acquire_instance_lock(self) -> None:
        """Hold an OS lock on ``<db>.lock`` until close; raise AlreadyRunning if another has it."""
        if self._lock_fd is not None:
            return
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            by = f" by process {holder}" if holder.isdigit() else ""
            raise AlreadyRunning(
                f"another whydown is already running on {self.path} (lock file {self.lock_path} "
                f"is held{by}). Two instances on one bot token send every alert twice; "
                "stop the other one first."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd

    def close(self) -> None:
        """Close the database and release the instance lock (the lock file stays, harmlessly)."""
        self.db.close()
        self._release_lock()

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

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
        """Group store calls into one transaction (nested use becomes a savepoint)."""
        with self.db.atomic():
            yield

    @property
    def schema_version(self) -> int:
        return schema_version(self.db)

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return list(self.db.query(sql, params))

    # subscriptions

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
    ) -> Subscription:
        """Subscribe a target, or update and reactivate its existing subscription."""
        if not MIN_DRIVERS_LOWEST <= min_drivers <= MIN_DRIVERS_HIGHEST:
            raise ValueError(
                f"min_drivers must be {MIN_DRIVERS_LOWEST} to {MIN_DRIVERS_HIGHEST}, "
                f"not {min_drivers}"
            )
        now = _ts(at or datetime.now(UTC))
        with self.transaction():
            existing = self.get_subscription(platform, chat_id, topic_id)
            if existing is None:
                self.db.execute(
                    "INSERT INTO subscriptions (platform, chat_id, topic_id, min_drivers, "
                    "cooldown_s, subscribed_by, subscribed_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (platform, chat_id, topic_id, min_drivers, cooldown_s, subscribed_by, now),
                )
            elif existing.active:
                self.db.execute(
                    "UPDATE subscriptions SET min_drivers = ?, cooldown_s = ? WHERE id = ?",
                    (min_drivers, cooldown_s, existing.id),
                )
            else:
                # a chat that comes back starts afresh: new subscriber, no failure history
                self.db.execute(
                    "UPDATE subscriptions SET min_drivers = ?, cooldown_s = ?, subscribed_by = ?, "
                    "subscribed_at = ?, active = 1, consecutive_failures = 0 WHERE id = ?",
                    (min_drivers, cooldown_s, subscribed_by, now, existing.id),
                )
            subscription = self.get_subscription(platform, chat_id, topic_id)
        assert subscription is not None
        return subscription

    def unsubscribe(self, platform: Platform, chat_id: str, topic_id: int | None) -> bool:
        """Deactivate a subscription; False when there was no active one."""
        cursor = self.db.execute(
            "UPDATE subscriptions SET active = 0 "
            "WHERE platform = ? AND chat_id = ? AND topic_id IS ? AND active = 1",
            (platform, chat_id, topic_id),
        )
        return cursor.rowcount > 0

    def get_subscription(
        self, platform: Platform, chat_id: str, topic_id: int | None
    ) -> Subscription | None:
        """The subscription of one target, active or not."""
        rows = self._rows(
            "SELECT * FROM subscriptions WHERE platform = ? AND chat_id = ? AND topic_id IS ?",
            (platform, chat_id, topic_id),
        )
        return _subscription(rows[0]) if rows else None

    def subscription(self, subscription_id: int) -> Subscription | None:
        """A subscription by id."""
        rows = self._rows("SELECT * FROM subscriptions WHERE id = ?", (subscription_id,))
        return _subscription(rows[0]) if rows else None

    def subscriptions(
        self, active_only: bool = True, platform: Platform | None = None
    ) -> list[Subscription]:
        """Subscriptions in id order."""
        sql = "SELECT * FROM subscriptions WHERE (? = 0 OR active = 1) AND (? IS NULL OR platform = ?)"
        rows = self._rows(sql + " ORDER BY id", (int(active_only), platform, platform))
        return [_subscription(row) for row in rows]

    def subscription_counts(self) -> dict[str, int]:
        """Active subscriptions per platform."""
        rows = self._rows(
            "SELECT platform, count(*) AS n FROM subscriptions WHERE active = 1 GROUP BY platform"
        )
        return {row["platform"]: row["n"] for row in rows}

    def migrate_chat(self, platform: Platform, old_chat_id: str, new_chat_id: str) -> int:
        """Move a chat's subscriptions to its new id (Telegram group -> supergroup); return how many."""
        moved = 0
        with self.transaction():
            for row in self._rows(
                "SELECT id, topic_id FROM subscriptions WHERE platform = ? AND chat_id = ?",
                (platform, old_chat_id),
            ):
                if self.get_subscription(platform, new_chat_id, row["topic_id"]) is not None:
                    # the new chat subscribed on its own already; that row wins
                    self.db.execute(
                        "UPDATE subscriptions SET active = 0 WHERE id = ?", (row["id"],)
                    )
                    continue
                self.db.execute(
                    "UPDATE subscriptions SET chat_id = ? WHERE id = ?", (new_chat_id, row["id"])
                )
                moved += 1
        return moved

    # alerts and the outbox (used by bot.alerts)

    def add_alert(self, kind: AlertKind, explanation: Explanation, key: str, at: datetime) -> Alert:
        """Record an alert, or return the one already recorded under `key`."""
        fired = explanation.fired
        self.db.execute(
            "INSERT OR IGNORE INTO alerts (created_at, key, kind, drivers, driver_count, "
            "market_change_24h, btc_change_1h, explanation) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                _ts(at),
                key,
                kind,
                json.dumps([d.name for d in fired]),
                len(fired),
                explanation.market_change_24h,
                explanation.btc_change_1h,
                explanation.model_dump_json(),
            ),
        )
        row = self._rows("SELECT * FROM alerts WHERE key = ?", (key,))[0]
        return _alert(row)

    def alert(self, alert_id: int) -> Alert | None:
        """One alert with its explanation."""
        rows = self._rows("SELECT * FROM alerts WHERE id = ?", (alert_id,))
        return _alert(rows[0]) if rows else None

    def recent_alerts(self, limit: int = 10) -> list[AlertSummary]:
        """The last alerts (not the eased follow-ups), newest first: the data for /history."""
        rows = self._rows(
            "SELECT id, kind, created_at, drivers, driver_count, market_change_24h, btc_change_1h "
            "FROM alerts WHERE kind = 'alert' ORDER BY created_at DESC, id DESC LIMIT ?",
            (limit,),
        )
        return [_summary(row) for row in rows]

    def add_deliveries(
        self, alert_id: int, subscription_ids: Iterable[int], at: datetime
    ) -> list[Delivery]:
        """Queue the alert for each subscription; return only the deliveries that are new."""
        created = _ts(at)
        new: list[Delivery] = []
        with self.transaction():
            for subscription_id in subscription_ids:
                cursor = self.db.execute(
                    "INSERT OR IGNORE INTO deliveries (alert_id, subscription_id, created_at) "
                    "VALUES (?, ?, ?)",
                    (alert_id, subscription_id, created),
                )
                if not cursor.rowcount:
                    continue
                new.append(
                    Delivery(
                        id=int(cursor.lastrowid or 0),
                        alert_id=alert_id,
                        subscription_id=subscription_id,
                        status="pending",
                        attempts=0,
                        last_error=None,
                        created_at=datetime.fromisoformat(created),
                        sent_at=None,
                    )
                )
        return new

    def mark_alerted(
        self, subscription_ids: Iterable[int], at: datetime, drivers: int, drop: float | None
    ) -> None:
        """Remember each subscription's latest alert, for its cooldown and escalation."""
        with self.transaction():
            self.db.conn.executemany(
                "UPDATE subscriptions SET last_alert_at = ?, last_alert_drivers = ?, "
                "last_alert_drop = ?, alerting = 1 WHERE id = ?",
                [(_ts(at), drivers, drop, sid) for sid in subscription_ids],
            )

    def clear_alerting(self, subscription_ids: Iterable[int]) -> None:
        """Note that these subscriptions' alert condition has eased."""
        with self.transaction():
            self.db.conn.executemany(
                "UPDATE subscriptions SET alerting = 0 WHERE id = ?",
                [(sid,) for sid in subscription_ids],
            )

    def pending_deliveries(self) -> list[tuple[Delivery, Subscription]]:
        """Deliveries not yet sent or given up, oldest first, with their subscriptions."""
        rows = self._rows(
            "SELECT d.id AS d_id, d.alert_id, d.subscription_id, d.status, d.attempts, "
            "d.last_error, d.created_at AS d_created_at, d.sent_at, s.* "
            "FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id "
            "WHERE d.status = 'pending' ORDER BY d.id"
        )
        return [(_delivery(row, prefix="d_"), _subscription(row)) for row in rows]

    def deliveries(self, alert_id: int) -> list[Delivery]:
        """Every delivery of one alert."""
        rows = self._rows("SELECT * FROM deliveries WHERE alert_id = ? ORDER BY id", (alert_id,))
        return [_delivery(row) for row in rows]

    def mark_sent(
        self, delivery_id: int, subscription_id: int, attempts: int, at: datetime
    ) -> None:
        """Record a successful send; the target is evidently alive again."""
        with self.transaction():
            self.db.execute(
                "UPDATE deliveries SET status = 'sent', attempts = ?, sent_at = ? WHERE id = ?",
                (attempts, _ts(at), delivery_id),
            )
            self.db.execute(
                "UPDATE subscriptions SET consecutive_failures = 0 "
                "WHERE id = ? AND consecutive_failures != 0",
                (subscription_id,),
            )

    def note_attempt(self, delivery_id: int, attempts: int, error: str) -> None:
        """Record a failed attempt that will be retried."""
        self.db.execute(
            "UPDATE deliveries SET attempts = ?, last_error = ? WHERE id = ?",
            (attempts, error, delivery_id),
        )

    def mark_failed(self, delivery_id: int, attempts: int, error: str) -> None:
        """Give up on one delivery."""
        self.db.execute(
            "UPDATE deliveries SET status = 'failed', attempts = ?, last_error = ? WHERE id = ?",
            (attempts, error, delivery_id),
        )

    def note_permanent_failure(self, subscription_id: int, deactivate_after: int) -> bool:
        """Count a permanent failure; deactivate at `deactivate_after` in a row. True if deactivated."""
        with self.transaction():
            self.db.execute(
                "UPDATE subscriptions SET consecutive_failures = consecutive_failures + 1 "
                "WHERE id = ?",
                (subscription_id,),
            )
            cursor = self.db.execute(
                "UPDATE subscriptions SET active = 0 "
                "WHERE id = ? AND active = 1 AND consecutive_failures >= ?",
                (subscription_id, deactivate_after),
            )
        return cursor.rowcount > 0

    # meta

    def set_meta(self, key: str, value: str) -> None:
        """Store a small named value (last refresh time, source health JSON, ...)."""
        self.db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def get_meta(self, key: str) -> str | None:
        """A stored value, or None."""
        rows = self._rows("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0]["value"] if rows else None

    # explainers.history.History

    def add_figures(self, at: datetime, figures: Mapping[str, float]) -> None:
        """Store named figures observed at `at` (non-finite values are not figures; skipped)."""
        stamp = _ts(at)
        with self.transaction():
            self.db.conn.executemany(
                "INSERT INTO figures (name, at, value) VALUES (?, ?, ?)",
                [(name, stamp, value) for name, value in figures.items() if math.isfinite(value)],
            )

    def figures(self, name: str, since: datetime) -> list[tuple[datetime, float]]:
        """One figure's values since `since`, oldest first."""
        rows = self.db.execute(
            "SELECT at, value FROM figures WHERE name = ? AND at >= ? ORDER BY at",
            (name, _ts(since)),
        ).fetchall()
        return [(datetime.fromisoformat(at), value) for at, value in rows]

    def add_liquidations(
        self, events: Iterable[Liquidation], *, polled_at: datetime, covered_since: datetime
    ) -> int:
        """Store events not seen before (by `Liquidation.key`); return how many were new.

        Tracking (re)starts at `covered_since` on the first poll and after a gap between polls.
        """
        new = 0
        with self.transaction():
            for event in events:
                ts = _ts(event.ts)
                cursor = self.db.execute(
                    "INSERT OR IGNORE INTO liquidation_events "
                    "(key, exchange, instrument, side, price, size, usd, ts) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        event.key,
                        event.exchange,
                        event.instrument,
                        event.position_side,
                        event.price,
                        event.size,
                        event.usd,
                        ts,
                    ),
                )
                new += cursor.rowcount
            if starts_coverage(
                self.liquidations_tracked_since(), _dt(self.get_meta(_LAST_POLL)), polled_at
            ):
                self.set_meta(_TRACKED_SINCE, _ts(covered_since))
            self.set_meta(_LAST_POLL, _ts(polled_at))
        return new

    def liquidations(self, since: datetime) -> list[Liquidation]:
        """Stored events with ``ts >= since``, oldest first."""
        rows = self._rows(
            "SELECT * FROM liquidation_events WHERE ts >= ? ORDER BY ts", (_ts(since),)
        )
        return [
            Liquidation(
                exchange=row["exchange"],
                instrument=row["instrument"],
                position_side=row["side"],
                price=row["price"],
                size=row["size"],
                usd=row["usd"],
                ts=datetime.fromisoformat(row["ts"]),
            )
            for row in rows
        ]

    def liquidations_tracked_since(self) -> datetime | None:
        """Since when events have been tracked without a gap, or None."""
        return _dt(self.get_meta(_TRACKED_SINCE))

    def liquidations_last_poll(self) -> datetime | None:
        """When the liquidation feeds last answered, or None."""
        return _dt(self.get_meta(_LAST_POLL))

    def liquidation_totals(self, since: datetime, until: datetime) -> tuple[float, float]:
        """(long USD, short USD) of stored events with ``since <= ts <= until``, summed in SQL."""
        sums = dict(
            self.db.execute(
                "SELECT side, SUM(usd) FROM liquidation_events WHERE ts >= ? AND ts <= ? "
                "GROUP BY side",
                (_ts(since), _ts(until)),
            ).fetchall()
        )
        return float(sums.get("long") or 0.0), float(sums.get("short") or 0.0)

    def liquidation_hours(self, since: datetime) -> list[LiquidationHour]:
        """Hourly sums of stored events with ``ts >= since``, oldest first, summed in SQL (a
        day can hold tens of thousands of events; they are never loaded to be added up)."""
        rows = self.db.execute(
            # the fixed-format timestamps start "YYYY-MM-DDTHH": the first 13 characters name the hour
            "SELECT substr(ts, 1, 13) AS hour, "
            "SUM(CASE WHEN side = 'long' THEN usd ELSE 0 END), "
            "SUM(CASE WHEN side = 'short' THEN usd ELSE 0 END), "
            "GROUP_CONCAT(DISTINCT instrument) "
            "FROM liquidation_events WHERE ts >= ? GROUP BY hour ORDER BY hour",
            (_ts(since),),
        ).fetchall()
        return [
            LiquidationHour(
                hour=datetime.fromisoformat(f"{hour}:00:00+00:00"),
                long_usd=float(long_usd),
                short_usd=float(short_usd),
                instruments=sorted(set(instruments.split(","))),
            )
            for hour, long_usd, short_usd, instruments in rows
        ]

    # housekeeping

    def prune(self, now: datetime) -> dict[str, int]:
        """Delete expired rows; return how many per table."""
        removed: dict[str, int] = {}
        with self.transaction():
            removed["figures"] = self.db.execute(
                "DELETE FROM figures WHERE at < ?", (_ts(now - FIGURES_KEEP),)
            ).rowcount
            removed["liquidation_events"] = self.db.execute(
                "DELETE FROM liquidation_events WHERE ts < ?", (_ts(now - LIQUIDATIONS_KEEP),)
            ).rowcount
            outbox_cutoff = _ts(now - OUTBOX_KEEP)
            removed["deliveries"] = self.db.execute(
                "DELETE FROM deliveries WHERE status != 'pending' AND created_at < ?",
                (outbox_cutoff,),
            ).rowcount
            removed["alerts"] = self.db.execute(
                "DELETE FROM alerts WHERE created_at < ? AND NOT EXISTS "
                "(SELECT 1 FROM deliveries WHERE deliveries.alert_id = alerts.id)",
                (outbox_cutoff,),
            ).rowcount
        return removed


def _subscription(row: Mapping[str, Any]) -> Subscription:
    return Subscription(
        id=row["id"],
        platform=row["platform"],
        chat_id=row["chat_id"],
        topic_id=row["topic_id"],
        min_drivers=row["min_drivers"],
        cooldown_s=row["cooldown_s"],
        subscribed_by=row["subscribed_by"],
        subscribed_at=datetime.fromisoformat(row["subscribed_at"]),
        active=bool(row["active"]),
        consecutive_failures=row["consecutive_failures"],
        last_alert_at=_dt(row["last_alert_at"]),
        last_alert_drivers=row["last_alert_drivers"],
        last_alert_drop=row["last_alert_drop"],
        alerting=bool(row["alerting"]),
    )


def _summary(row: Mapping[str, Any]) -> AlertSummary:
    return AlertSummary(
        id=row["id"],
        kind=row["kind"],
        created_at=datetime.fromisoformat(row["created_at"]),
        drivers=json.loads(row["drivers"]),
        driver_count=row["driver_count"],
        market_change_24h=row["market_change_24h"],
        btc_change_1h=row["btc_change_1h"],
    )


def _alert(row: Mapping[str, Any]) -> Alert:
    summary = _summary(row)
    return Alert(
        **summary.model_dump(),
        key=row["key"],
        explanation=Explanation.model_validate_json(row["explanation"]),
    )


def _delivery(row: Mapping[str, Any], prefix: str = "") -> Delivery:
    return Delivery(
        id=row[f"{prefix}id"],
        alert_id=row["alert_id"],
        subscription_id=row["subscription_id"],
        status=row["status"],
        attempts=row["attempts"],
        last_error=row["last_error"],
        created_at=datetime.fromisoformat(row[f"{prefix}created_at"]),
        sent_at=_dt(row["sent_at"]),
    )
