"""What the `telegram_emulator` fixture hands a test, and the bot's manual lifecycle."""

from __future__ import annotations

import datetime as dtm
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from telegram.ext import Application, ApplicationBuilder

from .client import TelegramTestClient
from .layer import CompatLayer


@dataclass(frozen=True)
class TelegramEmulator:
    """One test's bot token, its compatibility layer, and the user-side client."""

    token: str
    layer: CompatLayer
    client: TelegramTestClient

    @property
    def base_url(self) -> str:
        """Bot API base URL for ApplicationBuilder.base_url (the token is appended)."""
        return f"{self.layer.url}/bot"

    @property
    def base_file_url(self) -> str:
        """File base URL for ApplicationBuilder.base_file_url (downloads are not emulated)."""
        return f"{self.layer.url}/file/bot"

    def application_builder(self) -> ApplicationBuilder[Any, Any, Any, Any, Any, Any]:
        """An ApplicationBuilder already pointed at this test's bot token and layer."""
        return (
            ApplicationBuilder()
            .token(self.token)
            .base_url(self.base_url)
            .base_file_url(self.base_file_url)
        )


@asynccontextmanager
async def polling(
    application: Application[Any, Any, Any, Any, Any, Any], *, timeout: float = 10.0
) -> AsyncIterator[Application[Any, Any, Any, Any, Any, Any]]:
    """Run `application` with python-telegram-bot's manual lifecycle and long polling."""
    async with application:
        await application.start()
        assert application.updater is not None
        await application.updater.start_polling(timeout=dtm.timedelta(seconds=timeout))
        try:
            yield application
        finally:
            await application.updater.stop()
            await application.stop()
