"""The buttons under a Telegram answer: Refresh, Details (or Summary), Drivers and Chart, what
their callback data carries (the answer's coin), and the short notice a press is answered with."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from telegram import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup

from bot.commands import Replies
from bot.throttle import Throttle
from explainers.models import Explanation

PERIOD_S = 30  # per chat: Refresh, Drivers and Chart presses, each
CALLBACK_TEXT_LIMIT = 200  # answerCallbackQuery's notice
CALLBACK_DATA_LIMIT = 64  # bytes
REFRESH, DRIVERS, CHART = "why:refresh", "why:drivers", "why:chart"
#: show the full answer in place of the compact one, and back
DETAILS, SUMMARY = "why:details", "why:summary"


def keyboard(
    explanation: Explanation, *, chart: bool = False, full: bool = False
) -> InlineKeyboardMarkup:
    """The buttons under an answer: Refresh (the same question again), Details (the full
    answer in place; Summary back to the compact one), Drivers, and Chart."""
    toggle = ("Summary", SUMMARY) if full else ("Details", DETAILS)
    buttons = [
        InlineKeyboardButton("Refresh", callback_data=with_coin(REFRESH, explanation)),
        InlineKeyboardButton(toggle[0], callback_data=with_coin(toggle[1], explanation)),
        InlineKeyboardButton("Drivers", callback_data=DRIVERS),
    ]
    if chart:
        buttons.append(InlineKeyboardButton("Chart", callback_data=with_coin(CHART, explanation)))
    return InlineKeyboardMarkup([buttons])


def with_coin(action: str, explanation: Explanation) -> str:
    """A button's data naming the answer's coin (by id, else symbol) when that fits in 64 bytes."""
    if explanation.coin is not None:
        for name in (explanation.coin.id, explanation.coin.symbol):
            data = f"{action}:{name}"
            if len(data.encode()) <= CALLBACK_DATA_LIMIT:
                return data
    return action


def coin_of(data: str | None, action: str) -> str | None:
    """The coin a button's data names (None: the market)."""
    return (data or "").removeprefix(action).removeprefix(":") or None


def shows_full(markup: InlineKeyboardMarkup | None) -> bool:
    """Whether the message under these buttons shows the full answer (its toggle says Summary)."""
    rows = markup.inline_keyboard if markup is not None else ()
    return any(
        (b.callback_data or "") == SUMMARY or str(b.callback_data or "").startswith(f"{SUMMARY}:")
        for row in rows
        for b in row
    )


def notice(text: str) -> str:
    """A callback-query notice fits in 200 characters."""
    return text if len(text) <= CALLBACK_TEXT_LIMIT else text[: CALLBACK_TEXT_LIMIT - 1] + "…"


class Presses:
    """Button presses answered at once, acted on at most once per chat and button per period."""

    def __init__(self, notices: Replies, clock: Callable[[], datetime]) -> None:
        self.notices = notices  # plain text: a notice is a popup
        self.clock = clock
        self._throttle = Throttle(timedelta(seconds=PERIOD_S))

    async def admit(self, query: CallbackQuery, button: str) -> bool:
        """Answer the press now (with the wait, when throttled); whether to act on it."""
        # before any work: a cold refresh or a slow drawing must not outlive the query, which
        # Telegram expires within seconds; whatever is said after this goes to the chat
        chat_id = query.message.chat.id if query.message is not None else query.from_user.id
        wait = self._throttle.take((chat_id, button), self.clock())
        text = self.notices.button_throttled(wait, PERIOD_S) if wait else None
        await query.answer(notice(text) if text else None)
        return not wait
