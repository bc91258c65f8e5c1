"""`SqliteHistory`: the core's `explainers.history.History`, kept in SQLite across restarts.

Figures over time (7-day comparisons, driver states for charts) and streamed liquidation events
(24h totals) survive a restart. Sums are taken in SQL: a day can hold tens of thousands of events,
and they are never loaded just to be added up.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

import sqlite_utils

from bot.store.meta import Meta
from bot.store.rows import parse_stamp, stamp
from explainers.history import starts_coverage
from explainers.models import Liquidation, LiquidationHour

#: figures back this far serve every comparison (the longest is 7 days)
FIGURES_KEEP = timedelta(days=8)
#: events back this far serve the 24h totals
LIQUIDATIONS_KEEP = timedelta(hours=25)

TRACKED_SINCE = "liquidations_tracked_since"
LAST_POLL = "liquidations_last_poll"


class SqliteHistory:
    """The ``figures`` and ``liquidation_events`` tables, and where tracking stands in ``meta``."""

    def __init__(self, db: sqlite_utils.Database, meta: Meta) -> None:
        self.db = db
        self.meta = meta
        self.figures_table = db.table("figures")
        self.events = db.table("liquidation_events")

    def add_figures(self, at: datetime, figures: Mapping[str, float]) -> None:
        """Store named figures observed at `at` (non-finite values are not figures; skipped)."""
        at_text = stamp(at)
        with self.db.atomic():
            self.db.conn.executemany(
                "INSERT INTO figures (name, at, value) VALUES (?, ?, ?)",
                [(name, at_text, value) for name, value in figures.items() if math.isfinite(value)],
            )

    def figures(self, name: str, since: datetime) -> list[tuple[datetime, float]]:
        """One figure's values since `since`, oldest first."""
        rows = self.figures_table.rows_where(
            "name = ? AND at >= ?", (name, stamp(since)), select="at, value", order_by="at"
        )
        return [(datetime.fromisoformat(row["at"]), row["value"]) for row in rows]

    def add_liquidations(
        self, events: Iterable[Liquidation], *, polled_at: datetime, covered_since: datetime
    ) -> int:
        """Store events not seen before (by `Liquidation.key`); return how many were new.

        Tracking (re)starts at `covered_since` on the first poll and after a gap between polls.
        """
        rows = [
            (e.key, e.exchange, e.instrument, e.position_side, e.price, e.size, e.usd, stamp(e.ts))
            for e in events
        ]
        with self.db.atomic():
            # executemany sums the row counts: ignored duplicates add nothing
            new = self.db.conn.executemany(
                "INSERT OR IGNORE INTO liquidation_events "
                "(key, exchange, instrument, side, price, size, usd, ts) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            ).rowcount
            if starts_coverage(
                self.liquidations_tracked_since(), self.liquidations_last_poll(), polled_at
            ):
                self.meta.set(TRACKED_SINCE, stamp(covered_since))
            self.meta.set(LAST_POLL, stamp(polled_at))
        return max(new, 0)

    def liquidations(self, since: datetime) -> list[Liquidation]:
        """Stored events with ``ts >= since``, oldest first."""
        rows = self.events.rows_where(
            "ts >= ?",
            (stamp(since),),
            select="exchange, instrument, side AS position_side, price, size, usd, ts",
            order_by="ts",
        )
        return [Liquidation.model_validate(row | {"ts": parse_stamp(row["ts"])}) for row in rows]

    def liquidations_tracked_since(self) -> datetime | None:
        """Since when events have been tracked without a gap, or None."""
        return parse_stamp(self.meta.get(TRACKED_SINCE))

    def liquidations_last_poll(self) -> datetime | None:
        """When the liquidation feeds last answered, or None."""
        return parse_stamp(self.meta.get(LAST_POLL))

    def liquidation_totals(self, since: datetime, until: datetime) -> tuple[float, float]:
        """(long USD, short USD) of stored events with ``since <= ts <= until``, summed in SQL."""
        sums = dict(
            self.db.execute(
                "SELECT side, SUM(usd) FROM liquidation_events WHERE ts >= ? AND ts <= ? "
                "GROUP BY side",
                (stamp(since), stamp(until)),
            ).fetchall()
        )
        return float(sums.get("long") or 0.0), float(sums.get("short") or 0.0)

    def liquidation_hours(self, since: datetime) -> list[LiquidationHour]:
        """Hourly sums of stored events with ``ts >= since``, oldest first, summed in SQL."""
        rows = self.db.execute(
            # the fixed-format timestamps start "YYYY-MM-DDTHH": the first 13 characters name the hour
            "SELECT substr(ts, 1, 13) AS hour, "
            "SUM(CASE WHEN side = 'long' THEN usd ELSE 0 END), "
            "SUM(CASE WHEN side = 'short' THEN usd ELSE 0 END), "
            "GROUP_CONCAT(DISTINCT instrument) "
            "FROM liquidation_events WHERE ts >= ? GROUP BY hour ORDER BY hour",
            (stamp(since),),
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

    def prune(self, now: datetime) -> dict[str, int]:
        """Delete figures and events past their use. Where tracking started is kept: pruning
        old events leaves no hole in the tracking."""
        with self.db.atomic():
            figures = self.db.execute(
                "DELETE FROM figures WHERE at < ?", (stamp(now - FIGURES_KEEP),)
            ).rowcount
            events = self.db.execute(
                "DELETE FROM liquidation_events WHERE ts < ?", (stamp(now - LIQUIDATIONS_KEEP),)
            ).rowcount
        return {"figures": figures, "liquidation_events": events}
