"""The alert Notifier for Telegram: renders an alert and translates Bot API errors for delivery."""

from __future__ import annotations

import logging
import warnings
from datetime import timedelta

from telegram import Bot, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    NetworkError,
    TelegramError,
)
from telegram.error import RetryAfter as TelegramRetryAfter
from telegram.warnings import PTBDeprecationWarning

from bot.commands import Replies
from bot.delivery import (
    AlertMessage,
    DeliveryError,
    PermanentDeliveryError,
    RetryAfter,
    TransientDeliveryError,
)
from bot.store import Store, Subscription
from explainers import render
from explainers.render import TELEGRAM_LIMIT
from explainers.settings import Thresholds

log = logging.getLogger("whydown.telegram")

NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
# BadRequest descriptions that mean the target will never accept our messages.
_GONE = (
    "chat not found",
    "message thread not found",
    "topic_closed",
    "topic_deleted",
    "not enough rights",
    "have no rights",
    "need administrator rights",
    "chat_write_forbidden",
    "group chat was deactivated",
)


class TelegramNotifier:
    """Posts alerts to subscribed chats and forum topics through the Application's bot."""

    platform = "telegram"

    def __init__(self, bot: Bot, store: Store, replies: Replies, thresholds: Thresholds) -> None:
        self._bot = bot  # usable once the Application is initialized
        self._store = store
        self._replies = replies
        self._thresholds = thresholds

    def text(self, message: AlertMessage) -> str:
        """The alert as Telegram HTML, at most 4,096 characters."""
        e = message.explanation
        if message.kind == "eased":
            return self._replies.eased(e)
        intro = self._replies.alert_intro(e)
        budget = TELEGRAM_LIMIT - len(intro) - 2
        return f"{intro}\n\n{render.telegram_html(e, self._thresholds, limit=budget)}"

    async def send(self, subscription: Subscription, message: AlertMessage) -> None:
        """Post one alert; raise a DeliveryError subtype when Telegram refuses it."""
        text = self.text(message)
        try:
            await self._post(subscription.chat_id, subscription.topic_id, text)
        except ChatMigrated as err:
            # A group became a supergroup: its subscription moves, and this alert follows it.
            new_id = str(err.new_chat_id)
            self._store.migrate_chat("telegram", subscription.chat_id, new_id)
            log.info("chat %s moved to %s; subscription migrated", subscription.chat_id, new_id)
            try:
                await self._post(new_id, subscription.topic_id, text)
            except TelegramError as again:
                raise delivery_error(again) from again
        except TelegramError as err:
            raise delivery_error(err) from err

    async def _post(self, chat_id: str, topic_id: int | None, text: str) -> None:
        await self._bot.send_message(
            chat_id,
            text,
            parse_mode=ParseMode.HTML,
            link_preview_options=NO_PREVIEW,
            message_thread_id=topic_id,
        )


def delivery_error(err: TelegramError) -> DeliveryError:
    """The delivery error for a Bot API error; its message carries no URL or token."""
    if isinstance(err, TelegramRetryAfter):
        return RetryAfter(_retry_after_s(err))
    if isinstance(err, Forbidden):
        return PermanentDeliveryError(err.message)
    if isinstance(err, ChatMigrated):  # moved twice in one send: give up on this one
        return PermanentDeliveryError(f"chat migrated to {err.new_chat_id}")
    if isinstance(err, BadRequest):
        if any(gone in err.message.lower() for gone in _GONE):
            return PermanentDeliveryError(err.message)
        # Most likely our own message was refused: worth a log and a bounded retry, not a
        # deactivation of the chat.
        return DeliveryError(f"Telegram refused the message: {err.message}")
    if isinstance(err, NetworkError):  # includes TimedOut; BadRequest is handled above
        return TransientDeliveryError(f"network error talking to Telegram ({type(err).__name__})")
    return DeliveryError(f"Telegram error ({type(err).__name__})")


def _retry_after_s(err: TelegramRetryAfter) -> float:
    # The public attribute warns while PTB moves it from int to timedelta; accept both.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = err.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)
