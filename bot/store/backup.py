"""`whydown backup FILE`: a consistent copy of the database, taken while the bot runs.

Copying the database file alone is not a backup: in WAL mode the latest commits live in the
``-wal`` file beside it until a checkpoint. SQLite's online backup API reads every page as of one
moment through a read transaction (in WAL, readers never block the writer, nor it them), so the
copy is whole even while `whydown run` writes. The copy is written beside the target first and
renamed into place, so a failed backup never leaves half a file under the target's name; it is
a single file (journal mode DELETE), readable by its owner only.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from bot.store.database import DatabaseFault


class BackupRefused(Exception):
    """No backup was taken: why, for the user."""


@dataclass(frozen=True)
class BackupDone:
    """What was copied."""

    target: Path
    size: int
    schema_version: int
    subscriptions: int


def backup(database: Path, target: Path, *, force: bool = False) -> BackupDone:
    """Copy `database` to `target` with SQLite's backup API. Refuses an existing `target` unless
    `force`; raises DatabaseFault when the database cannot be read."""
    if not database.exists():
        raise BackupRefused(f"No database at {database}: nothing to back up.")
    if target.resolve() == database.resolve():
        raise BackupRefused(f"{target} is the database itself: choose another file.")
    if target.exists() and not force:
        raise BackupRefused(
            f"{target} exists already: choose another file, or add --force to overwrite it."
        )
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    try:
        # created here, so it never exists with wider permissions (it holds chat ids)
        os.close(os.open(partial, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
        done = _copy(database, partial, target)
        os.replace(partial, target)
    except sqlite3.DatabaseError as err:
        raise DatabaseFault(database, err) from err
    finally:
        partial.unlink(missing_ok=True)
    return done


def _copy(database: Path, partial: Path, target: Path) -> BackupDone:
    uri = f"{database.resolve().as_uri()}?mode=ro"  # a backup never writes to the database
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as source:
        source.execute("PRAGMA busy_timeout=5000")
        with contextlib.closing(sqlite3.connect(partial)) as copy:
            source.backup(copy)
            copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            if (check := copy.execute("PRAGMA quick_check").fetchone()[0]) != "ok":
                raise sqlite3.DatabaseError(f"the copy fails SQLite's check: {check}")
            version = _one(copy, "SELECT max(version) FROM schema_version")
            subscriptions = _one(copy, "SELECT count(*) FROM subscriptions WHERE active = 1")
    return BackupDone(target, partial.stat().st_size, version, subscriptions)


def _one(db: sqlite3.Connection, query: str) -> int:
    try:
        return int(db.execute(query).fetchone()[0] or 0)
    except sqlite3.OperationalError:  # an empty or very old database: no such table
        return 0
