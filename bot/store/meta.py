"""Small named values: the last refresh, source health, where liquidation tracking stands."""

from __future__ import annotations

import sqlite_utils
from sqlite_utils.db import NotFoundError


class Meta:
    """The ``meta`` table: one text value per key."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db
        self.table = db.table("meta")

    def set(self, key: str, value: str) -> None:
        """Store a value, replacing the previous one."""
        # plain SQL, not sqlite_utils' upsert: that one first probes whether SQLite has ON
        # CONFLICT by creating a table, and a probe that fails (a full disk) is remembered: its
        # fallback then never inserts a new key (value is NOT NULL), silently, for good
        with self.db.atomic():  # a savepoint inside a caller's transaction
            self.db.conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def get(self, key: str) -> str | None:
        """A stored value, or None."""
        try:
            return str(self.table.get(key)["value"])
        except NotFoundError:
            return None
