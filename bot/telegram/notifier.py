"""The alert Notifier for Telegram: renders an alert, follows it with its chart, and translates
Bot API errors for delivery."""

from __future__ import annotations

import asyncio
import logging
import warnings
from datetime import datetime, timedelta

from telegram import Bot, Message
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
from bot.telegram.chat import NO_PREVIEW, caption
from explainers import render
from explainers.chart_service import Chart, ChartMaker
from explainers.render import TELEGRAM_LIMIT
from explainers.settings import Thresholds

log = logging.getLogger("whydown.telegram")

# an alert's chart is given up when not drawn within this
CHART_WAIT_S = 20.0
# at shutdown, charts still on their way get this long before they are cancelled
CLOSE_WAIT_S = 10.0

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

    def __init__(
        self,
        bot: Bot,
        store: Store,
        replies: Replies,
        thresholds: Thresholds,
        *,
        charts: ChartMaker | None = None,
    ) -> None:
        self._bot = bot  # usable once the Application is initialized
        self._store = store
        self._replies = replies
        self._thresholds = thresholds
        self._charts = charts
        # The chart uploaded last and Telegram's id for it: the other chats of the same fan-out
        # get it by id instead of another upload.
        self._uploaded: tuple[tuple[datetime, str], str] | None = None
        self._upload_lock = asyncio.Lock()
        self._chart_tasks: set[asyncio.Task[None]] = set()  # charts on their way, after texts

    def text(self, message: AlertMessage) -> str:
        """The alert as Telegram HTML, at most 4,096 characters: compact (the summary and a line
        per firing driver); its chart follows."""
        e = message.explanation
        if message.kind == "eased":
            return self._replies.eased(e)
        intro = self._replies.alert_intro(e)
        budget = TELEGRAM_LIMIT - len(intro) - 2
        return f"{intro}\n\n{render.telegram_html(e, self._thresholds, limit=budget, full=False)}"

    async def send(self, subscription: Subscription, message: AlertMessage) -> None:
        """Post one alert's text, and start its chart on its way; raise a DeliveryError subtype
        when Telegram refuses the text.

        The text is the delivery's unit: send() returns once it is posted, so the dispatcher
        marks the delivery sent without waiting for a drawing. The chart photo follows in a
        background task, best effort: its failures are logged, never raised, because raising
        would make the dispatcher post the text again or count a permanent failure against a
        subscription whose alert arrived.
        """
        text = self.text(message)
        chat_id = subscription.chat_id
        try:
            await self._post(chat_id, subscription.topic_id, text)
        except ChatMigrated as err:
            # A group became a supergroup: its subscription moves, and this alert follows it.
            chat_id = str(err.new_chat_id)
            self._store.migrate_chat("telegram", subscription.chat_id, chat_id)
            log.info("chat %s moved to %s; subscription migrated", subscription.chat_id, chat_id)
            try:
                await self._post(chat_id, subscription.topic_id, text)
            except TelegramError as again:
                raise delivery_error(again) from again
        except TelegramError as err:
            raise delivery_error(err) from err
        # A "pressure eased" note goes as text: the alert before it already carried the picture.
        if self._charts is not None and message.kind == "alert":
            task = asyncio.create_task(
                self._attach_chart(self._charts, chat_id, subscription.topic_id, message)
            )
            self._chart_tasks.add(task)
            task.add_done_callback(self._chart_tasks.discard)

    async def aclose(self, timeout_s: float = CLOSE_WAIT_S) -> None:
        """Let the charts on their way finish (up to `timeout_s`), then cancel the rest."""
        if not self._chart_tasks:
            return
        _, late = await asyncio.wait(set(self._chart_tasks), timeout=timeout_s)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)
            log.info("%d alert chart(s) not sent: stopping", len(late))

    async def _post(self, chat_id: str, topic_id: int | None, text: str) -> None:
        await self._bot.send_message(
            chat_id,
            text,
            parse_mode=ParseMode.HTML,
            link_preview_options=NO_PREVIEW,
            message_thread_id=topic_id,
        )

    async def _attach_chart(
        self, charts: ChartMaker, chat_id: str, topic_id: int | None, message: AlertMessage
    ) -> None:
        """Post the alert's chart after its text, when there is one for the alert's data."""
        try:
            chart = await charts.for_alert(message.explanation, timeout_s=CHART_WAIT_S)
            if chart is None:
                return  # the chart service logged why
            if self._file_id(chart) is None:
                # One upload per chart: concurrent deliveries wait for it, then send its file id.
                async with self._upload_lock:
                    if self._file_id(chart) is None:
                        sent = await self._send_photo(chat_id, topic_id, chart, chart.png)
                        if sent.photo:
                            self._uploaded = (_chart_key(chart), sent.photo[-1].file_id)
                        return
            await self._send_photo(chat_id, topic_id, chart, self._file_id(chart) or chart.png)
        except TelegramError as err:
            log.warning("alert chart not sent to chat %s: %s", chat_id, delivery_error(err))
        except Exception as err:  # best effort: see send()
            log.warning("alert chart not sent to chat %s: %s", chat_id, type(err).__name__)
            log.debug("details of the chart send error", exc_info=True)

    async def _send_photo(
        self, chat_id: str, topic_id: int | None, chart: Chart, photo: bytes | str
    ) -> Message:
        return await self._bot.send_photo(
            chat_id,
            photo,
            caption=caption(chart.caption),
            parse_mode=ParseMode.HTML,
            message_thread_id=topic_id,
            filename=chart.filename,
        )

    def _file_id(self, chart: Chart) -> str | None:
        """Telegram's id for `chart` once it has been uploaded."""
        if self._uploaded is not None and self._uploaded[0] == _chart_key(chart):
            return self._uploaded[1]
        return None


def _chart_key(chart: Chart) -> tuple[datetime, str]:
    return (chart.data_time, chart.filename)


def delivery_error(err: TelegramError) -> DeliveryError:
    """The delivery error for a Bot API error; its message carries no URL or token."""
    if isinstance(err, TelegramRetryAfter):
        # flood control holds the whole bot, as PTB's own rate limiter treats it
        return RetryAfter(_retry_after_s(err), platform_wide=True)
    if isinstance(err, Forbidden):
        return PermanentDeliveryError(err.message)
    if isinstance(err, ChatMigrated):  # moved twice in one send: give up on this one
        return PermanentDeliveryError(f"chat migrated to {err.new_chat_id}")
    if isinstance(err, BadRequest):
        if any(gone in err.message.lower() for gone in _GONE):
            return PermanentDeliveryError(err.message)
        # Most likely our own message was refused: it would be refused again, and the chat is
        # not at fault, so the dispatcher gives up on it at once without deactivating the chat.
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
