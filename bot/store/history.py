"""`SqliteHistory`: the core's `explainers.history.History`, kept in SQLite across restarts.

Figures over time (7-day comparisons, driver states for charts) and liquidations (24h totals,
hourly charts) survive a restart. Liquidations are per-minute sums per venue, instrument and
side in ``liquidation_minutes``: a refresh reads at most a day of minutes, however many events
arrived. Polled events also stay a while in ``liquidation_events``, only to de-duplicate polls.

Thread safety: the explainer uses the history from a worker thread (its refresh) while the event
loop uses it too (polls, charts, streams). The history has its own connection, opened with
``check_same_thread=False``, and one lock serialises every use of it, so no two threads ever
share a transaction. Other parts of the store keep their own connection on the event loop; WAL
lets them read while the history writes, and a write waits (busy_timeout) for the other's short
transaction instead of failing.
"""

from __future__ import annotations

import functools
import json
import math
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Concatenate, ParamSpec, TypeVar

import sqlite_utils

from bot.store.faults import StorageFaults, StorageFull, is_full
from bot.store.meta import Meta
from bot.store.rows import parse_stamp, stamp
from explainers.history import (
    LIQUIDATION_DEDUPE_WINDOW,
    LIQUIDATION_MINUTES_KEEP,
    coverage_of,
    starts_coverage,
)
from explainers.models import Liquidation, LiquidationCoverage, LiquidationHour

#: figures back this far serve every comparison (the longest is 7 days)
FIGURES_KEEP = timedelta(days=8)
#: polled events back this far de-duplicate polls (see LIQUIDATION_DEDUPE_WINDOW)
LIQUIDATIONS_KEEP = LIQUIDATION_DEDUPE_WINDOW
#: per-minute sums back this far serve the 24h totals and charts
MINUTES_KEEP = LIQUIDATION_MINUTES_KEEP

TRACKED_SINCE = "liquidations_tracked_since"
LAST_POLL = "liquidations_last_poll"
#: JSON list of the venues polled so far (their coverage follows the REST tracking)
POLLED_EXCHANGES = "liquidations_polled_exchanges"


def _upsert(table: str, key: str) -> str:
    columns = key.split(", ")
    marks = ", ".join("?" * (len(columns) + 2))
    return (
        f"INSERT INTO {table} ({key}, usd, events) VALUES ({marks}) ON CONFLICT ({key}) "
        "DO UPDATE SET usd = usd + excluded.usd, events = events + excluded.events"
    )


UPSERT_MINUTE = _upsert("liquidation_minutes", "minute, exchange, instrument, side")
UPSERT_MINUTE_VENUE = _upsert("liquidation_minute_venues", "minute, exchange, side")
UPSERT_HOUR_VENUE = _upsert("liquidation_hour_venues", "hour, exchange, side")
ADD_HOUR_INSTRUMENT = (
    "INSERT OR IGNORE INTO liquidation_hour_instruments (hour, instrument) VALUES (?, ?)"
)

P = ParamSpec("P")
R = TypeVar("R")


def minute_text(moment: datetime) -> str:
    """A time's minute as stored: ``YYYY-MM-DDTHH:MM`` in UTC (ordered as text)."""
    return stamp(moment)[:16]


def _locked(
    method: Callable[Concatenate[SqliteHistory, P], R],
) -> Callable[Concatenate[SqliteHistory, P], R]:
    @functools.wraps(method)
    def wrapper(self: SqliteHistory, *args: P.args, **kwargs: P.kwargs) -> R:
        with self.lock:
            return method(self, *args, **kwargs)

    return wrapper


def _kept(
    default: R,
) -> Callable[
    [Callable[Concatenate[SqliteHistory, P], R]], Callable[Concatenate[SqliteHistory, P], R]
]:
    """A write that is dropped, returning `default`, when the database or disk is full: the
    history is best effort, and the refresh or stream that writes it must go on (the fault is
    noted in the history's `faults`, see bot.store.faults)."""

    def decorate(
        method: Callable[Concatenate[SqliteHistory, P], R],
    ) -> Callable[Concatenate[SqliteHistory, P], R]:
        @functools.wraps(method)
        def wrapper(self: SqliteHistory, *args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return method(self, *args, **kwargs)
            except StorageFull:
                return default

        return wrapper

    return decorate


SumRow = tuple[str, str, str, str, float, int]


def _next_hour(minute: str) -> str:
    return stamp(datetime.fromisoformat(f"{minute[:13]}:00+00:00") + timedelta(hours=1))[:13]


def _previous_hour(minute: str) -> str:
    return stamp(datetime.fromisoformat(f"{minute[:13]}:00+00:00") - timedelta(hours=1))[:13]


def minute_rows(events: Iterable[Liquidation]) -> list[SumRow]:
    """Events summed per (minute, exchange, instrument, side): one upsert per sum, not per event."""
    sums: dict[tuple[str, str, str, str], list[float]] = {}
    for e in events:
        key = (minute_text(e.ts), e.exchange, e.instrument, e.position_side)
        if (found := sums.get(key)) is None:
            sums[key] = [e.usd, 1]
        else:
            found[0] += e.usd
            found[1] += 1
    return [(*key, usd, int(count)) for key, (usd, count) in sums.items()]


def write_sums(conn: sqlite3.Connection, rows: Sequence[SumRow]) -> None:
    """Add minute sums, and their roll-ups, inside the caller's write transaction."""
    minutes: dict[tuple[str, str, str], list[float]] = {}
    hours: dict[tuple[str, str, str], list[float]] = {}
    instruments: set[tuple[str, str]] = set()
    for minute, exchange, instrument, side, usd, count in rows:
        for rollup, key in (
            (minutes, (minute, exchange, side)),
            (hours, (minute[:13], exchange, side)),
        ):
            found = rollup.setdefault(key, [0.0, 0])
            found[0] += usd
            found[1] += count
        instruments.add((minute[:13], instrument))
    conn.executemany(UPSERT_MINUTE, rows)
    conn.executemany(UPSERT_MINUTE_VENUE, [(*k, usd, int(n)) for k, (usd, n) in minutes.items()])
    conn.executemany(UPSERT_HOUR_VENUE, [(*k, usd, int(n)) for k, (usd, n) in hours.items()])
    conn.executemany(ADD_HOUR_INSTRUMENT, sorted(instruments))


class SqliteHistory:
    """The ``figures`` table, the liquidation sums (``liquidation_minutes`` and its roll-ups, see
    schema v3), ``liquidation_events`` (polled, for de-duplication) and ``liquidation_gaps``, and
    where polling stands in ``meta``. Safe to call from any thread (see above).

    When the database or disk is full, a write in its own transaction is dropped (its method
    returns as if nothing was new) and `faults` notes it; the next write that succeeds clears it.
    A write joining a caller's transaction raises as before: the caller decides."""

    def __init__(
        self, db: sqlite_utils.Database, meta: Meta, faults: StorageFaults | None = None
    ) -> None:
        self.db = db
        self.meta = meta
        self.faults = faults if faults is not None else StorageFaults()
        self.lock = threading.RLock()
        self.figures_table = db.table("figures")
        self.events = db.table("liquidation_events")

    @contextmanager
    def _write(self, *, adds: bool = True) -> Iterator[None]:
        """One write transaction, taken at once (BEGIN IMMEDIATE): in WAL a deferred transaction
        that read first could not upgrade to writing while another connection writes. When the
        database or disk is full it notes the fault and raises StorageFull; one that `adds` rows
        and succeeds ends the fault (a delete may succeed while the disk is still full)."""
        conn = self.db.conn
        if conn.in_transaction:  # inside a caller's transaction: join it
            yield
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            conn.commit()  # a full disk may refuse the commit itself (the WAL cannot grow)
        except BaseException as err:
            conn.rollback()
            if is_full(err):
                self.faults.failed(err, "writing history")
                raise StorageFull(str(err)) from err
            raise
        if adds:
            self.faults.succeeded()

    @_kept(None)
    @_locked
    def add_figures(self, at: datetime, figures: Mapping[str, float]) -> None:
        """Store named figures observed at `at` (non-finite values are not figures; skipped)."""
        at_text = stamp(at)
        with self._write():
            self.db.conn.executemany(
                "INSERT INTO figures (name, at, value) VALUES (?, ?, ?)",
                [(name, at_text, value) for name, value in figures.items() if math.isfinite(value)],
            )

    @_locked
    def figures(self, name: str, since: datetime) -> list[tuple[datetime, float]]:
        """One figure's values since `since`, oldest first."""
        rows = self.figures_table.rows_where(
            "name = ? AND at >= ?", (name, stamp(since)), select="at, value", order_by="at"
        )
        return [(datetime.fromisoformat(row["at"]), row["value"]) for row in rows]

    @_kept(0)
    @_locked
    def add_liquidations(
        self, events: Iterable[Liquidation], *, polled_at: datetime, covered_since: datetime
    ) -> int:
        """Add events not seen before (by `Liquidation.key`) to the minute sums; return how many
        were new. Tracking (re)starts at `covered_since` on the first poll and after a gap
        between polls. Events older than the de-duplication window are ignored."""
        oldest = polled_at - LIQUIDATIONS_KEEP
        candidates = {e.key: e for e in events if e.ts >= oldest}
        conn = self.db.conn
        with self._write():
            new: list[Liquidation] = []
            insert = (
                "INSERT OR IGNORE INTO liquidation_events "
                "(key, exchange, instrument, side, price, size, usd, ts) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            )
            for key, e in candidates.items():
                row = (key, e.exchange, e.instrument, e.position_side, e.price, e.size, e.usd)
                if conn.execute(insert, (*row, stamp(e.ts))).rowcount == 1:
                    new.append(e)
            self._add_sums(new)
            known = set(self._polled_exchanges())
            if not known.issuperset(e.exchange for e in new):
                self.meta.set(
                    POLLED_EXCHANGES, json.dumps(sorted(known | {e.exchange for e in new}))
                )
            if starts_coverage(
                self.liquidations_tracked_since(), self.liquidations_last_poll(), polled_at
            ):
                self.meta.set(TRACKED_SINCE, stamp(covered_since))
            self.meta.set(LAST_POLL, stamp(polled_at))
        return len(new)

    @_kept(0)
    @_locked
    def add_streamed_liquidations(
        self, events: Sequence[Liquidation], *, market: bool = True
    ) -> int:
        """Add streamed events (each delivered once) to the minute sums in one transaction;
        return how many were added. No raw row is kept. `market=False` (a coin streamed only
        because it was asked about): into ``liquidation_minutes`` only, not the roll-ups the
        market totals and charts read."""
        with self._write():
            if market:
                self._add_sums(events)
            else:
                self.db.conn.executemany(UPSERT_MINUTE, minute_rows(events))
        return len(events)

    def _add_sums(self, events: Iterable[Liquidation]) -> None:
        """Add events to the minute sums and their roll-ups (inside a write transaction)."""
        write_sums(self.db.conn, minute_rows(events))

    @_kept(None)
    @_locked
    def record_liquidation_gap(self, exchange: str, start: datetime, end: datetime | None) -> None:
        """A venue's stream was not listening from `start` to `end` (None: still down)."""
        with self._write():
            self.db.conn.execute(
                'INSERT INTO liquidation_gaps (exchange, start, "end") VALUES (?, ?, ?) '
                'ON CONFLICT (exchange, start) DO UPDATE SET "end" = excluded."end"',
                (exchange, stamp(start), None if end is None else stamp(end)),
            )

    def _polled_exchanges(self) -> list[str]:
        text = self.meta.get(POLLED_EXCHANGES)
        return [] if text is None else [str(e) for e in json.loads(text)]

    @_locked
    def liquidation_coverage(self, since: datetime, until: datetime) -> LiquidationCoverage:
        """Per venue, since when it has been tracked and whether a gap lies in the window."""
        gaps: dict[str, dict[datetime, datetime | None]] = {}
        for exchange, start, end in self.db.execute(
            'SELECT exchange, start, "end" FROM liquidation_gaps WHERE start <= ?', (stamp(until),)
        ).fetchall():
            gaps.setdefault(exchange, {})[datetime.fromisoformat(start)] = parse_stamp(end)
        return coverage_of(
            gaps,
            self._polled_exchanges(),
            self.liquidations_tracked_since(),
            self.liquidations_last_poll(),
            since,
            until,
        )

    @_locked
    def liquidations(self, since: datetime) -> list[Liquidation]:
        """Polled events kept for de-duplication with ``ts >= since``, oldest first."""
        rows = self.events.rows_where(
            "ts >= ?",
            (stamp(since),),
            select="exchange, instrument, side AS position_side, price, size, usd, ts",
            order_by="ts",
        )
        return [Liquidation.model_validate(row | {"ts": parse_stamp(row["ts"])}) for row in rows]

    @_locked
    def liquidations_tracked_since(self) -> datetime | None:
        """Since when polled events have been tracked without a gap, or None."""
        return parse_stamp(self.meta.get(TRACKED_SINCE))

    @_locked
    def liquidations_last_poll(self) -> datetime | None:
        """When the liquidation feeds last answered, or None."""
        return parse_stamp(self.meta.get(LAST_POLL))

    @_locked
    def liquidation_totals(self, since: datetime, until: datetime) -> tuple[float, float]:
        """(long USD, short USD) over the minutes from `since`'s to `until`'s, less the polled
        events of `since`'s minute that came before it; summed in SQL from at most one row per
        minute, venue, instrument and side (and a minute of polled events)."""
        first, last = minute_text(since), minute_text(until)
        # whole hours from the hourly roll-up, the ragged ends from the minute one
        whole_from = first[:13] if first.endswith(":00") else _next_hour(first)
        whole_to = last[:13] if last.endswith(":59") else _previous_hour(last)
        if whole_from <= whole_to:
            query = (
                "SELECT side, SUM(usd) FROM ("
                "SELECT side, usd FROM liquidation_hour_venues WHERE hour >= ? AND hour <= ? "
                "UNION ALL SELECT side, usd FROM liquidation_minute_venues "
                "WHERE minute >= ? AND minute < ? "
                "UNION ALL SELECT side, usd FROM liquidation_minute_venues "
                "WHERE minute > ? AND minute <= ?) GROUP BY side"
            )
            args: tuple[str, ...] = (
                whole_from,
                whole_to,
                first,
                f"{whole_from}:00",
                f"{whole_to}:59",
                last,
            )
        else:
            query = (
                "SELECT side, SUM(usd) FROM liquidation_minute_venues "
                "WHERE minute >= ? AND minute <= ? GROUP BY side"
            )
            args = (first, last)
        sums = dict(self.db.execute(query, args).fetchall())
        # the polled events of the first minute that came before `since` (a minute's worth at most)
        before = dict(
            self.db.execute(
                "SELECT side, SUM(usd) FROM liquidation_events WHERE ts >= ? AND ts < ? "
                "GROUP BY side",
                (f"{first}:00.000000+00:00", stamp(since)),
            ).fetchall()
        )
        return (
            float(sums.get("long") or 0.0) - float(before.get("long") or 0.0),
            float(sums.get("short") or 0.0) - float(before.get("short") or 0.0),
        )

    @_locked
    def instrument_totals(
        self, instruments: Iterable[str], since: datetime, until: datetime
    ) -> tuple[float, float]:
        """(long USD, short USD) of these instruments over the minutes from `since`'s to
        `until`'s, from ``liquidation_minutes``: market coins and coins streamed on request."""
        wanted = sorted(set(instruments))
        if not wanted:
            return 0.0, 0.0
        marks = ", ".join("?" * len(wanted))
        sums = dict(
            self.db.execute(
                "SELECT side, SUM(usd) FROM liquidation_minutes WHERE minute >= ? AND minute <= ? "
                f"AND instrument IN ({marks}) GROUP BY side",
                (minute_text(since), minute_text(until), *wanted),
            ).fetchall()
        )
        return float(sums.get("long") or 0.0), float(sums.get("short") or 0.0)

    @_locked
    def liquidation_hours(self, since: datetime) -> list[LiquidationHour]:
        """Hourly sums from `since`'s hour on, oldest first, read from the hourly roll-ups (24 x
        venues x 2 rows a day, and the instruments each hour saw)."""
        hour = minute_text(since)[:13]
        sums = self.db.execute(
            "SELECT hour, SUM(CASE WHEN side = 'long' THEN usd ELSE 0 END), "
            "SUM(CASE WHEN side = 'short' THEN usd ELSE 0 END) "
            "FROM liquidation_hour_venues WHERE hour >= ? GROUP BY hour ORDER BY hour",
            (hour,),
        ).fetchall()
        instruments: dict[str, list[str]] = {}
        for h, instrument in self.db.execute(
            "SELECT hour, instrument FROM liquidation_hour_instruments WHERE hour >= ?", (hour,)
        ):
            instruments.setdefault(h, []).append(instrument)
        return [
            LiquidationHour(
                hour=datetime.fromisoformat(f"{hour}:00:00+00:00"),
                long_usd=float(long_usd),
                short_usd=float(short_usd),
                instruments=sorted(instruments.get(hour, [])),
            )
            for hour, long_usd, short_usd in sums
        ]

    @_locked
    def prune(self, now: datetime) -> dict[str, int]:
        """Delete figures, minutes and polled events past their use, and gaps older than the
        minutes except each venue's latest (it says since when the venue is tracked). Where
        polling started is kept: pruning leaves no hole in the tracking."""
        conn = self.db.conn
        with self._write(adds=False):
            figures = conn.execute(
                "DELETE FROM figures WHERE at < ?", (stamp(now - FIGURES_KEEP),)
            ).rowcount
            events = conn.execute(
                "DELETE FROM liquidation_events WHERE ts < ?", (stamp(now - LIQUIDATIONS_KEEP),)
            ).rowcount
            oldest_minute = minute_text(now - MINUTES_KEEP)
            minutes = conn.execute(
                "DELETE FROM liquidation_minutes WHERE minute < ?", (oldest_minute,)
            ).rowcount
            conn.execute("DELETE FROM liquidation_minute_venues WHERE minute < ?", (oldest_minute,))
            for table in ("liquidation_hour_venues", "liquidation_hour_instruments"):
                conn.execute(f"DELETE FROM {table} WHERE hour < ?", (oldest_minute[:13],))
            conn.execute(
                'DELETE FROM liquidation_gaps AS g WHERE g."end" < ? AND EXISTS '
                "(SELECT 1 FROM liquidation_gaps AS later "
                "WHERE later.exchange = g.exchange AND later.start > g.start)",
                (stamp(now - MINUTES_KEEP),),
            )
        return {"figures": figures, "liquidation_events": events, "liquidation_minutes": minutes}
