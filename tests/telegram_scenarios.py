"""Helpers for the Telegram front-end tests: run the bot, wait for a condition, read what it did."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from bot.telegram_bot import TelegramFrontend
from tests.telegram_harness import CompatLayer

POLL_INTERVAL = 0.02
TIMEOUT = 5.0


@asynccontextmanager
async def running(frontend: TelegramFrontend) -> AsyncIterator[TelegramFrontend]:
    """The front-end started as the runner starts it, stopped (updates in hand finished) after."""
    await frontend.start()
    try:
        yield frontend
    finally:
        await frontend.stop()


async def eventually(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    """Wait until `condition()` holds; fail with `what` at the deadline."""
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(POLL_INTERVAL)  # poll interval, bounded by the deadline
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def notices(layer: CompatLayer) -> list[str | None]:
    """The notices the bot answered button presses with (None: answered without one)."""
    return [c.params.get("text") for c in layer.calls if c.method == "answerCallbackQuery"]


def command_lines(text: str) -> list[str]:
    """The lines of a reply that start with a command, up to the first colon."""
    return [line.split(":", 1)[0] for line in text.splitlines() if line.startswith("/")]


class Failures(logging.Handler):
    """Collects the front-end's error log records, to assert that handlers did not fail."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
