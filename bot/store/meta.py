"""Small named values: the last refresh, source health, where liquidation tracking stands."""

from __future__ import annotations

import sqlite_utils
from sqlite_utils.db import NotFoundError


class Meta:
    """The ``meta`` table: one text value per key."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.table = db.table("meta")

    def set(self, key: str, value: str) -> None:
        """Store a value, replacing the previous one."""
        self.table.upsert({"key": key, "value": value}, pk="key")

    def get(self, key: str) -> str | None:
        """A stored value, or None."""
        try:
            return str(self.table.get(key)["value"])
        except NotFoundError:
            return None
