"""A full database or disk: noticed once, said in /status, and cleared once space returns.

When the disk (or SQLite's page limit) is full every write fails with SQLITE_FULL, while reads
still work. The bot goes on answering from what it reads: the history's writes are dropped (a
hole in the history, as if the bot had been down for a while), and an alert that cannot be
recorded is not sent (nothing goes out that the outbox cannot account for). `StorageFaults`
remembers since when writes fail, logs that once, logs the recovery once (the first write that
succeeds again), and /status shows it meanwhile. Safe to use from any thread.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

log = logging.getLogger("whydown.store")

SQLITE_FULL = 13
FULL = "database or disk is full"


def is_full(err: BaseException) -> bool:
    """Whether a SQLite error says the database or the disk under it is full."""
    if not isinstance(err, sqlite3.OperationalError):
        return False
    return getattr(err, "sqlite_errorcode", None) == SQLITE_FULL or FULL in str(err)


class StorageFull(Exception):
    """A write was dropped: the database or disk is full (the fault is noted already)."""


@dataclass(frozen=True)
class StorageFault:
    """Writes fail since `since`, for `reason`."""

    reason: str
    since: datetime


def _now() -> datetime:
    return datetime.now(UTC)


class StorageFaults:
    """Whether the store's writes are failing for want of space, and since when."""

    def __init__(self, clock: Callable[[], datetime] = _now) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._fault: StorageFault | None = None

    @property
    def current(self) -> StorageFault | None:
        """The fault in force, or None while writes succeed."""
        return self._fault

    def failed(self, err: BaseException, what: str) -> None:
        """A write (`what`, for the log) failed for want of space; logged once per fault."""
        with self._lock:
            if self._fault is not None:
                return
            self._fault = StorageFault(FULL, self.clock())
        log.error(
            "%s failed: the %s (%s). whydown goes on answering from what it reads, but history "
            "is not being kept and alerts that cannot be recorded are not sent until space "
            "returns; it recovers by itself.",
            what,
            FULL,
            err,
        )

    def succeeded(self) -> None:
        """A write went through: the fault, if any, is over (the recovery is logged once)."""
        if self._fault is None:  # the common case, without taking the lock
            return
        with self._lock:
            fault, self._fault = self._fault, None
        if fault is not None:
            log.warning(
                "the database accepts writes again (it was full since %s UTC): history is "
                "being kept again",
                f"{fault.since:%Y-%m-%d %H:%M}",
            )
