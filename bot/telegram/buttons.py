"""The buttons under a Telegram answer: Refresh, Details (or Summary), Drivers and Chart, what
their callback data carries (the answer's coin), the short notice a press is answered with, and
what each press does."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from telegram import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest

from bot.actions import Actions
from bot.commands import Replies
from bot.telegram.chat import NO_PREVIEW, Context, Handler, Handlers, query_of, reply, send_chart
from bot.throttle import Throttle
from explainers import render
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


def answer_html(actions: Actions, explanation: Explanation, full: bool = False) -> str:
    """An answer in Telegram's HTML: compact, or full (every figure with its source and time)."""
    return render.telegram_html(explanation, actions.thresholds, full=full)


def answer_keyboard(
    actions: Actions, explanation: Explanation, full: bool = False
) -> InlineKeyboardMarkup:
    """The buttons under an answer, Chart among them when charts are on."""
    return keyboard(explanation, chart=actions.charts is not None, full=full)


class AnswerButtons(Handlers):
    """What a press of each button under an answer does."""

    def __init__(self, actions: Actions, replies: Replies) -> None:
        super().__init__(actions, replies)
        self._presses = Presses(actions.replies("telegram", "text"), actions.clock)

    def handlers(self) -> dict[str, Handler]:
        """Each button's handler, by the pattern of the callback data it answers."""
        coin = "(:|$)"  # the answer's coin, if any, follows a colon
        return {
            rf"^{REFRESH}{coin}": self.refresh,
            rf"^{CHART}{coin}": self.chart,
            rf"^{DETAILS}{coin}": self.details,
            rf"^{SUMMARY}{coin}": self.summary,
            rf"^{DRIVERS}$": self.drivers,
        }

    async def refresh(self, update: Update, context: Context) -> None:
        """Refresh: edit the answer in place (throttled per chat)."""
        query = query_of(update)
        if not await self._presses.admit(query, "refresh"):
            return
        explanation = await self.actions.why(coin_of(query.data, REFRESH))
        # the answer keeps the form it is shown in
        full = isinstance(query.message, Message) and shows_full(query.message.reply_markup)
        await self._edit(query, explanation, full)

    async def details(self, update: Update, context: Context) -> None:
        """Details: the full answer (every figure with its source and time, headlines, context)
        in place of the compact one."""
        query = query_of(update)
        await query.answer()  # nothing is fetched: the answer as of the latest refresh
        await self._edit(query, await self.actions.latest(coin_of(query.data, DETAILS)), True)

    async def summary(self, update: Update, context: Context) -> None:
        """Summary: back to the compact answer, in place."""
        query = query_of(update)
        await query.answer()
        await self._edit(query, await self.actions.latest(coin_of(query.data, SUMMARY)), False)

    async def drivers(self, update: Update, context: Context) -> None:
        """Drivers: the drivers list as a reply (throttled per chat)."""
        query = query_of(update)
        if await self._presses.admit(query, "drivers") and isinstance(query.message, Message):
            await reply(query.message, self.replies.drivers(await self.actions.drivers()))

    async def chart(self, update: Update, context: Context) -> None:
        """Chart: the chart of the answer's coin (throttled per chat)."""
        query = query_of(update)
        if await self._presses.admit(query, "chart") and isinstance(query.message, Message):
            await send_chart(query.message, await self.actions.chart(coin_of(query.data, CHART)))

    async def _edit(self, query: CallbackQuery, explanation: Explanation, full: bool) -> None:
        """Edit the answer a button sits under, in place."""
        try:
            await query.edit_message_text(
                answer_html(self.actions, explanation, full),
                parse_mode=ParseMode.HTML,
                link_preview_options=NO_PREVIEW,
                reply_markup=answer_keyboard(self.actions, explanation, full),
            )
        except BadRequest as err:
            # Nothing changed since the last answer: the message is already up to date.
            if "message is not modified" not in err.message.lower():
                raise
