"""`whydown backup FILE`: a whole, consistent copy while the bot holds the database open."""

from __future__ import annotations

import shutil
import sqlite3
import stat
from pathlib import Path

import pytest

from bot.cli import main
from bot.runner import EXIT_DATABASE
from bot.store import SCHEMA_VERSION, Store

DB = Path("data/whydown.db")


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)


def _chats(path: Path) -> list[str]:
    with Store(path, read_only=True) as store:
        return [s.chat_id for s in store.subscriptions()]


def test_a_backup_taken_while_the_bot_writes_has_the_subscriptions(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with Store(DB, lock=True) as running:  # as `whydown run` holds it
        running.subscribe("telegram", "-100", None, 3, "alice")
        running.subscribe("discord", "42", None, 2, "bob")
        # the commits are in the -wal file: a copy of the database file alone misses them
        shutil.copy(DB, "copied.db")
        # and the bot is in the middle of a write that is not committed
        running.history.db.conn.execute("BEGIN IMMEDIATE")
        running.history.db.conn.execute("INSERT INTO meta (key, value) VALUES ('uncommitted', 'x')")

        assert main(["backup", "backup.db"]) == 0

        running.history.db.conn.rollback()
        assert running.subscriptions()  # the bot's own connections went on as before
    out = capsys.readouterr().out
    assert out.startswith("Backed up data/whydown.db to backup.db (")
    assert out.endswith(f" KB, schema v{SCHEMA_VERSION}, 2 active subscriptions).\n")
    assert _chats(Path("backup.db")) == ["-100", "42"]
    with sqlite3.connect("copied.db") as copied:
        tables = {row[0] for row in copied.execute("SELECT name FROM sqlite_master")}
    assert "subscriptions" not in tables  # why the backup API, and not a file copy
    with Store(Path("backup.db"), read_only=True) as copy:
        assert copy.get_meta("uncommitted") is None  # one consistent moment
    # one self-contained file, for its owner only (it holds chat ids)
    assert not Path("backup.db-wal").exists() and not Path(".backup.db.partial").exists()
    assert stat.S_IMODE(Path("backup.db").stat().st_mode) == 0o600


def test_a_restored_backup_runs(capsys: pytest.CaptureFixture[str]) -> None:
    with Store(DB, lock=True) as running:
        running.subscribe("telegram", "-100", None, 3, "alice")
        assert main(["backup", "backup.db"]) == 0
    DB.unlink()
    shutil.copy("backup.db", DB)
    with Store(DB, lock=True) as restored:
        assert [s.chat_id for s in restored.subscriptions()] == ["-100"]


def test_an_existing_file_is_kept_unless_forced(capsys: pytest.CaptureFixture[str]) -> None:
    with Store(DB) as store:
        store.subscribe("telegram", "-100", None, 3, "alice")
    Path("backup.db").write_text("keep me")
    assert main(["backup", "backup.db"]) == 2
    assert capsys.readouterr().err == (
        "backup.db exists already: choose another file, or add --force to overwrite it.\n"
    )
    assert Path("backup.db").read_text() == "keep me"
    assert main(["backup", "backup.db", "--force"]) == 0
    assert _chats(Path("backup.db")) == ["-100"]


def test_no_database_and_the_database_itself_are_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["backup", "backup.db"]) == 2
    assert capsys.readouterr().err == "No database at data/whydown.db: nothing to back up.\n"
    Store(DB).close()
    assert main(["backup", str(DB), "--force"]) == 2
    assert capsys.readouterr().err == (
        "data/whydown.db is the database itself: choose another file.\n"
    )
    assert not Path("backup.db").exists()


def test_a_damaged_database_is_not_backed_up(capsys: pytest.CaptureFixture[str]) -> None:
    DB.parent.mkdir()
    DB.write_bytes(b"not a database at all" * 100)
    assert main(["backup", "backup.db"]) == EXIT_DATABASE
    assert capsys.readouterr().err.startswith(
        "The database data/whydown.db is damaged or is not a whydown database"
    )
    assert not Path("backup.db").exists() and not Path(".backup.db.partial").exists()
