"""A database that cannot be used at start: a damaged file stops `whydown run` and `whydown
status` with what is wrong, where, and how to recover (exit code 5, never a traceback); a
database that vanished is recreated, with a warning."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from bot.cli import main
from bot.runner import EXIT_DATABASE
from bot.store import DatabaseFault, Store

DB = Path("data/whydown.db")
DAMAGED = (
    "The database data/whydown.db is damaged or is not a whydown database "
    "(file is not a database).\n"
    "whydown has left it untouched. To recover, stop whydown, then either:\n"
    "  - restore it from a backup (made with `whydown backup FILE`): copy the backup to "
    "data/whydown.db, and delete data/whydown.db-wal and data/whydown.db-shm if present; or\n"
    "  - move it aside to start with an empty database (its subscriptions and alerts are "
    "lost): mv data/whydown.db data/whydown.db.broken, and its -wal and -shm files if present.\n"
    "Then start whydown again.\n"
)
GARBAGE = bytes(range(256)) * 64  # 16 KB that are not SQLite's


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A private working directory (the default database path is relative), a token so that
    `whydown run` gets as far as the database, and no .env."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WHYDOWN_TELEGRAM_TOKEN", "123456:not-a-real-token")
    monkeypatch.delenv("WHYDOWN_DISCORD_TOKEN", raising=False)


def _damage() -> None:
    DB.parent.mkdir()
    DB.write_bytes(GARBAGE)


def test_run_on_a_damaged_database_says_how_to_recover(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _damage()
    assert main(["run"]) == EXIT_DATABASE == 5
    out, err = capsys.readouterr()
    assert err == DAMAGED
    assert "Traceback" not in out + err
    assert DB.read_bytes() == GARBAGE  # left untouched
    assert not Path("data/whydown.db-wal").exists()


def test_status_on_a_damaged_database_says_the_same(capsys: pytest.CaptureFixture[str]) -> None:
    _damage()
    assert main(["status"]) == EXIT_DATABASE
    assert capsys.readouterr().err == DAMAGED
    assert DB.read_bytes() == GARBAGE


def test_a_damaged_database_frees_the_instance_lock() -> None:
    """The next start (after the file is mended) is not refused as "already running"."""
    _damage()
    with pytest.raises(DatabaseFault):
        Store(DB, lock=True)
    os.replace(DB, "data/whydown.db.broken")
    with Store(DB, lock=True) as store:
        assert store.subscriptions() == []


def test_a_database_that_cannot_be_opened_says_to_check_permissions(
    capsys: pytest.CaptureFixture[str],
) -> None:
    DB.mkdir(parents=True)  # a folder where the file should be: SQLite cannot open it
    assert main(["run"]) == EXIT_DATABASE
    err = capsys.readouterr().err
    assert err.startswith(
        "The database data/whydown.db cannot be opened (unable to open database file).\n"
        "whydown has left it untouched. Check that whydown may read and write it and its "
        "folder; if it is damaged, stop whydown, then either:\n"
    )


def test_a_vanished_database_is_recreated_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="whydown.store")
    with Store(DB, lock=True) as store:
        store.subscribe("telegram", "-100", None, 3, "alice")
    assert caplog.records == []  # a first start in an empty folder is no cause for alarm
    DB.unlink()  # the lock file stays beside it, as it always does
    with Store(DB, lock=True) as store:
        assert store.subscriptions() == []
    [warning] = caplog.records
    assert warning.levelno == logging.WARNING
    assert warning.getMessage() == (
        "no database at data/whydown.db, but files left beside it (whydown.db.lock) show that "
        "one was there: a new, empty database is created, without the subscriptions and alerts of the "
        "old one. If it was lost by mistake, stop whydown and restore it from a backup "
        "(see `whydown backup`)."
    )
    caplog.clear()
    with Store(DB, lock=True):  # the new one is there now: nothing to say
        pass
    assert caplog.records == []


def test_leftover_wal_files_are_named_in_the_warning(caplog: pytest.LogCaptureFixture) -> None:
    DB.parent.mkdir()
    Path("data/whydown.db-wal").write_bytes(b"")
    Path("data/whydown.db-shm").write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="whydown.store"):
        Store(DB).close()
    assert "but files left beside it (whydown.db-wal, whydown.db-shm) show" in caplog.text
