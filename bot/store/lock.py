"""The instance lock: one running bot per database.

Two instances on one bot token would send every alert twice, so `whydown run` holds an OS file
lock on ``<db>.lock`` for as long as it runs. The kernel drops the lock with the process, so a
crash never leaves a stale lock behind; the lock file itself stays, harmlessly.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class AlreadyRunning(RuntimeError):
    """Another process holds this database's instance lock."""


class InstanceLock:
    """An exclusive, non-blocking ``flock`` on ``<db>.lock``, recording the holder's pid."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self.path = db_path.with_name(db_path.name + ".lock")
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock (a no-op when held already); raise AlreadyRunning if another has it."""
        if self._fd is not None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            by = f" by process {holder}" if holder.isdigit() else ""
            raise AlreadyRunning(
                f"another whydown is already running on {self.db_path} (lock file {self.path} "
                f"is held{by}). Two instances on one bot token send every alert twice; "
                "stop the other one first."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Let go of the lock, if held."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
