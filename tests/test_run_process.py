"""`whydown run` as a real process: the Telegram bot answers, a stored subscription gets its
alert, a second instance is refused, and SIGTERM stops it cleanly with the database released."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.store import Store
from tests.telegram_harness import Chat, TelegramEmulator, User

pytest_plugins = ["tests.telegram_harness.fixtures"]

ROOT = Path(__file__).parent.parent
CAROL = User(6001, "Carol", "carol")


def _env(emulator: TelegramEmulator, db: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHYDOWN_")}
    return env | {
        "WHYDOWN_TELEGRAM_TOKEN": emulator.token,
        "WHYDOWN_TELEGRAM_API_URL": emulator.base_url,
        "WHYDOWN_TELEGRAM_FILE_URL": emulator.base_file_url,
        "WHYDOWN_DATABASE": str(db),
        "WHYDOWN_LOG_LEVEL": "INFO",
    }


async def _start(env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli",
        "run",
        "--demo",
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


@pytest.fixture
async def running(
    telegram_emulator: TelegramEmulator, tmp_path: Path
) -> AsyncIterator[tuple[asyncio.subprocess.Process, dict[str, str]]]:
    db = tmp_path / "whydown.db"
    chat = Chat.private(CAROL)
    with Store(db) as store:  # subscribed before the start: the first refresh alerts it
        store.subscribe("telegram", str(chat.id), None, 3, "carol")
    env = _env(telegram_emulator, db)
    process = await _start(env, tmp_path)
    try:
        yield process, env
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_run_answers_alerts_refuses_a_second_instance_and_stops_cleanly(
    telegram_emulator: TelegramEmulator,
    running: tuple[asyncio.subprocess.Process, dict[str, str]],
    tmp_path: Path,
) -> None:
    process, env = running
    client = telegram_emulator.client
    chat = Chat.private(CAROL)

    alert, picture = await client.wait_for_messages(chat, 2, timeout=30)
    assert alert.text is not None and alert.text.startswith(
        "<b>Crash alert</b>: 5 sell-off drivers firing together."
    )
    assert picture.photo is not None and picture.photo.startswith(b"\x89PNG")  # the chart

    await client.send_command(chat, "why", user=CAROL)
    answer = await client.wait_for_reply(chat, timeout=20)
    assert (
        answer.text is not None and "Crypto is down: total market cap -13.9% in 24h" in answer.text
    )

    second = await _start(env, tmp_path)
    out, _ = await asyncio.wait_for(second.communicate(), timeout=20)
    assert second.returncode == 3
    assert b"another whydown is already running" in out

    process.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(process.communicate(), timeout=20)
    assert process.returncode == 0
    log = err.decode()
    assert "stopping" in log and "stopped; database closed" in log
    assert telegram_emulator.token not in log  # the token never reaches the log
    with Store(Path(env["WHYDOWN_DATABASE"]), lock=True) as store:  # the lock was released
        assert [d.status for d in store.deliveries(store.recent_alerts(1)[0].id)] == ["sent"]


async def test_run_with_an_unreachable_bot_api_says_so_and_exits(tmp_path: Path) -> None:
    token = "42:fake-token-for-redaction-tests"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHYDOWN_")} | {
        "WHYDOWN_TELEGRAM_TOKEN": token,
        "WHYDOWN_TELEGRAM_API_URL": "http://127.0.0.1:9/bot",  # nothing listens there
        "WHYDOWN_DATABASE": str(tmp_path / "whydown.db"),
    }
    process = await _start(env, tmp_path)
    out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 4
    log = err.decode()
    assert "could not start the telegram bot (NetworkError" in log
    assert "check its token and API URL" in log
    assert token not in log and token not in out.decode()
    with Store(tmp_path / "whydown.db", lock=True):
        pass  # the instance lock was released
