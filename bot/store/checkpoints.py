"""WAL checkpoints off the event loop.

SQLite copies the write-ahead log back into the database file (a checkpoint) on the commit that
finds the log past 1,000 pages, on the committing connection. On the store's connection that is
the event loop, and a checkpoint with its fsync takes tens of milliseconds: during a long fan-out
it stalled the loop on one `mark_sent` in a hundred. `WalCheckpoints` switches automatic
checkpoints off on that connection and checkpoints from a worker thread instead, through the
history's own connection (which may cross threads, behind the history's lock).

A PASSIVE checkpoint waits for no reader or writer: it copies what it can and leaves the rest
for the next round, so the loop's commits never queue behind it.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

import sqlite_utils

log = logging.getLogger("whydown.store")

#: how often the worker checkpoints: a fan-out at 30 messages/s adds about 150 commits between
#: rounds, a log of a few hundred KB
EVERY_S = 5.0


class WalCheckpoints:
    """A daemon thread that checkpoints every `every_s` seconds until `stop()`."""

    def __init__(
        self,
        loop_db: sqlite_utils.Database,
        worker_db: sqlite_utils.Database,
        lock: threading.Lock | threading.RLock,
        every_s: float = EVERY_S,
    ) -> None:
        self._worker_db = worker_db
        self._lock = lock
        self._every_s = every_s
        self._stopping = threading.Event()
        loop_db.execute("PRAGMA wal_autocheckpoint=0")
        self._thread = threading.Thread(target=self._run, name="wal-checkpoints", daemon=True)
        self._thread.start()

    def checkpoint(self) -> None:
        """One PASSIVE checkpoint; a failure (a full disk, a busy file) waits for the next."""
        with self._lock:
            try:
                self._worker_db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error as err:
                log.debug("WAL checkpoint skipped: %s", err)

    def _run(self) -> None:
        while not self._stopping.wait(self._every_s):
            self.checkpoint()

    def stop(self) -> None:
        """Stop the thread and checkpoint once more, so the log is small when the file closes."""
        self._stopping.set()
        self._thread.join()
        self.checkpoint()
