"""The schema: ordered migrations and the version a database is at.

Each migration runs once, in its own transaction, and records the version it produces in the
``schema_version`` table. Never edit a released migration; add the next one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import sqlite_utils

from bot.store.rows import stamp


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


def _v3_liquidation_minutes(db: sqlite_utils.Database) -> None:
    """Liquidations become sums, so totals and charts cost the same however many events arrive.
    ``liquidation_minutes`` sums them per minute, venue, instrument and side; roll-ups serve the
    reads: ``liquidation_hour_venues`` (per hour, venue and side) for whole hours and
    ``liquidation_minute_venues`` (per minute, venue and side) for a window's ragged ends, so a
    24h total reads at most 24 + 120 rows per venue and side; ``liquidation_hour_instruments``
    names the instruments each hour saw, for charts. ``liquidation_events`` stays as the short
    window of polled events that de-duplicates polls. Stored events are folded into the sums.
    A minute is the first 16 characters of a stored time (``YYYY-MM-DDTHH:MM``), an hour the
    first 13."""
    sums = "usd REAL NOT NULL, events INTEGER NOT NULL"
    for statement in (
        f"""CREATE TABLE liquidation_minutes (
            minute TEXT NOT NULL, exchange TEXT NOT NULL, instrument TEXT NOT NULL,
            side TEXT NOT NULL, {sums},
            PRIMARY KEY (minute, exchange, instrument, side)) WITHOUT ROWID""",
        f"""CREATE TABLE liquidation_minute_venues (
            minute TEXT NOT NULL, exchange TEXT NOT NULL, side TEXT NOT NULL, {sums},
            PRIMARY KEY (minute, exchange, side)) WITHOUT ROWID""",
        f"""CREATE TABLE liquidation_hour_venues (
            hour TEXT NOT NULL, exchange TEXT NOT NULL, side TEXT NOT NULL, {sums},
            PRIMARY KEY (hour, exchange, side)) WITHOUT ROWID""",
        """CREATE TABLE liquidation_hour_instruments (
            hour TEXT NOT NULL, instrument TEXT NOT NULL,
            PRIMARY KEY (hour, instrument)) WITHOUT ROWID""",
        """INSERT INTO liquidation_minutes (minute, exchange, instrument, side, usd, events)
            SELECT substr(ts, 1, 16), exchange, instrument, side, SUM(usd), COUNT(*)
            FROM liquidation_events GROUP BY 1, 2, 3, 4""",
        """INSERT INTO liquidation_minute_venues (minute, exchange, side, usd, events)
            SELECT minute, exchange, side, SUM(usd), SUM(events)
            FROM liquidation_minutes GROUP BY 1, 2, 3""",
        """INSERT INTO liquidation_hour_venues (hour, exchange, side, usd, events)
            SELECT substr(minute, 1, 13), exchange, side, SUM(usd), SUM(events)
            FROM liquidation_minutes GROUP BY 1, 2, 3""",
        """INSERT INTO liquidation_hour_instruments (hour, instrument)
            SELECT DISTINCT substr(minute, 1, 13), instrument FROM liquidation_minutes""",
        # a venue's stream was not listening from start to end (NULL: still down)
        """CREATE TABLE liquidation_gaps (
            exchange TEXT NOT NULL,
            start TEXT NOT NULL,
            "end" TEXT,
            PRIMARY KEY (exchange, start)) WITHOUT ROWID""",
    ):
        db.execute(statement)
    # the venues polled so far, for coverage (see bot.store.history.POLLED_EXCHANGES)
    exchanges = [row[0] for row in db.execute("SELECT DISTINCT exchange FROM liquidation_events")]
    if exchanges:
        db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('liquidations_polled_exchanges', ?)",
            (json.dumps(sorted(exchanges)),),
        )


def _v4_alert_charts_and_webhook_secrets(db: sqlite_utils.Database) -> None:
    """An alert's chart is part of the alert: its PNG, caption and file name are kept with the
    alert row, so deliveries resumed after a restart still carry it. Webhook subscriptions keep
    the secret their payloads are signed with (NULL: unsigned; chats never have one)."""
    for statement in (
        "ALTER TABLE alerts ADD COLUMN chart_png BLOB",
        "ALTER TABLE alerts ADD COLUMN chart_caption TEXT",
        "ALTER TABLE alerts ADD COLUMN chart_filename TEXT",
        "ALTER TABLE subscriptions ADD COLUMN secret TEXT",
        # pending deliveries are read in id batches: the status index serves them
        "CREATE INDEX deliveries_pending ON deliveries (status, id)",
    ):
        db.execute(statement)


#: ordered migrations; index + 1 is the schema version each one produces. Never edit a released one.
MIGRATIONS: tuple[Callable[[sqlite_utils.Database], None], ...] = (
    _v1_base_tables,
    _v2_alert_kinds_and_easing,
    _v3_liquidation_minutes,
    _v4_alert_charts_and_webhook_secrets,
)
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(db: sqlite_utils.Database) -> int:
    """The schema version a database is at (0 for an empty file)."""
    if not db["schema_version"].exists():
        return 0
    row = db.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def migrate(db: sqlite_utils.Database, target: int = SCHEMA_VERSION) -> int:
    """Run the migrations above the database's version up to `target`; return the new version.

    A database newer than this code is refused: an older release must not write to tables it
    does not know.
    """
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
            db.table("schema_version").insert(
                {"version": version, "applied_at": stamp(datetime.now(UTC))}
            )
    return max(current, target)
