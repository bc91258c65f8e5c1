"""A Telegram Bot API test harness: the telegram-test-api emulator behind a compatibility layer."""

from .client import GROUP_ANONYMOUS_BOT, BotMessage, Button, Chat, TelegramTestClient, User
from .layer import Call, CompatLayer, Upload
from .process import EmulatorError, EmulatorProcess
from .session import TelegramEmulator, polling

__all__ = [
    "GROUP_ANONYMOUS_BOT",
    "BotMessage",
    "Button",
    "Call",
    "Chat",
    "CompatLayer",
    "EmulatorError",
    "EmulatorProcess",
    "TelegramEmulator",
    "TelegramTestClient",
    "Upload",
    "User",
    "polling",
]
