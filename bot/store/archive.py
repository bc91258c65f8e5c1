"""whydown's own record of past days: a compact copy of each refresh's explanation, so a day the
bot lived through comes back complete (liquidations and headlines included), and a cache of
days rebuilt from the sources' history (for `/why <date>`, `/preview` and `whydown backtest`).

Per day at most 24 hourly rows (the hour's last explanation) and one "worst" row (the most
drivers firing, then the deepest 24h fall), each as zlib-compressed compact JSON: about 1.5 KB
a row, under 50 KB a day. The tables are this module's own and created here if missing, so the
archive needs no schema migration; `keep_days` bounds how far back it keeps.
"""

from __future__ import annotations

import zlib
from datetime import UTC, date, datetime, timedelta

import sqlite_utils

from explainers.models import Explanation

WORST = "worst"


def pack(e: Explanation) -> bytes:
    return zlib.compress(e.model_dump_json(exclude_defaults=True).encode(), 9)


def unpack(blob: bytes) -> Explanation:
    return Explanation.model_validate_json(zlib.decompress(blob))


def _worse(a: Explanation, b: Explanation) -> bool:
    """Whether `a` is a worse moment than `b` (for the day's worst row)."""
    down_a, down_b = a.verdict == "down", b.verdict == "down"
    if down_a != down_b:
        return down_a
    if len(a.fired) != len(b.fired):
        return len(a.fired) > len(b.fired)
    change_a = a.market_change_24h if a.market_change_24h is not None else 0.0
    change_b = b.market_change_24h if b.market_change_24h is not None else 0.0
    return change_a < change_b


class Archive:
    """The archive's two tables, on the store's connection."""

    def __init__(self, db: sqlite_utils.Database, *, create: bool = True) -> None:
        self.db = db
        if create:
            db.execute(
                """CREATE TABLE IF NOT EXISTS explanation_archive (
                    day TEXT NOT NULL, slot TEXT NOT NULL, at TEXT NOT NULL, body BLOB NOT NULL,
                    PRIMARY KEY (day, slot)) WITHOUT ROWID"""
            )
            db.execute(
                """CREATE TABLE IF NOT EXISTS rebuilt_days (
                    day TEXT PRIMARY KEY, built_at TEXT NOT NULL, body BLOB NOT NULL)"""
            )

    def _exists(self) -> bool:
        return bool(self.db["explanation_archive"].exists())

    def record(self, e: Explanation) -> None:
        """Keep one refresh's explanation: its hour's row, and the day's worst if worse."""
        at = e.data_time.astimezone(UTC)
        day, body = at.date().isoformat(), pack(e)
        with self.db.atomic():
            self.db.execute(
                "INSERT OR REPLACE INTO explanation_archive (day, slot, at, body) VALUES (?,?,?,?)",
                (day, f"{at:%H}", at.isoformat(), body),
            )
            row = self.db.execute(
                "SELECT body FROM explanation_archive WHERE day = ? AND slot = ?", (day, WORST)
            ).fetchone()
            if row is None or _worse(e, unpack(row[0])):
                self.db.execute(
                    "INSERT OR REPLACE INTO explanation_archive (day, slot, at, body) "
                    "VALUES (?,?,?,?)",
                    (day, WORST, at.isoformat(), body),
                )

    def answered(self, day: date, *, worst: bool = False) -> Explanation | None:
        if not self._exists():
            return None
        if worst:
            row = self.db.execute(
                "SELECT body FROM explanation_archive WHERE day = ? AND slot = ?",
                (day.isoformat(), WORST),
            ).fetchone()
        else:
            row = self.db.execute(
                "SELECT body FROM explanation_archive WHERE day = ? AND slot != ? "
                "ORDER BY at DESC LIMIT 1",
                (day.isoformat(), WORST),
            ).fetchone()
        return unpack(row[0]) if row else None

    def day_bytes(self, day: date) -> int:
        """What one day takes in the archive (for the size bound)."""
        row = self.db.execute(
            "SELECT sum(length(body)) FROM explanation_archive WHERE day = ?", (day.isoformat(),)
        ).fetchone()
        return int(row[0] or 0)

    def rebuilt(self, first: date, last: date) -> dict[date, Explanation]:
        if not self.db["rebuilt_days"].exists():
            return {}
        rows = self.db.execute(
            "SELECT day, body FROM rebuilt_days WHERE day BETWEEN ? AND ?",
            (first.isoformat(), last.isoformat()),
        ).fetchall()
        return {date.fromisoformat(day): unpack(body) for day, body in rows}

    def keep_rebuilt(self, days: dict[date, Explanation]) -> None:
        now = datetime.now(UTC).isoformat()
        with self.db.atomic():
            self.db.conn.executemany(
                "INSERT OR REPLACE INTO rebuilt_days (day, built_at, body) VALUES (?,?,?)",
                [(d.isoformat(), now, pack(e)) for d, e in days.items()],
            )

    def prune(self, now: datetime, keep_days: int) -> int:
        """Forget archived days older than `keep_days` (0: keep every day)."""
        if keep_days <= 0 or not self._exists():
            return 0
        oldest = (now.date() - timedelta(days=keep_days)).isoformat()
        with self.db.atomic():
            cursor = self.db.execute("DELETE FROM explanation_archive WHERE day < ?", (oldest,))
            return int(cursor.rowcount or 0)
