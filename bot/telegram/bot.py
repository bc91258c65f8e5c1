"""The Telegram front-end: parse the update, ask the core, render, reply.

Every command of the shared registry gets a handler; `/why` answers in HTML with "Refresh",
"Drivers" and (when charts are set up) "Chart" buttons; `/chart` sends a picture. Replies go to the
chat and forum topic the command came from. One error handler logs what failed and tells the user
briefly. Alerts go out through `notifier`, with their chart.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from pydantic import SecretStr
from telegram import (
    BotCommand,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    MessageEntity,
    Update,
)
from telegram.constants import ChatType, ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.alerts import AlertSettings
from bot.commands import Replies, UsageError, command, commands_for, parse_min_drivers
from bot.store import Store
from bot.telegram.chat import caption, fit, may_manage, sender, target, where
from bot.telegram.notifier import NO_PREVIEW, TelegramNotifier
from bot.throttle import Throttle
from explainers import render
from explainers.chart_service import ChartMaker
from explainers.collect import utcnow
from explainers.errors import ChartUnavailable, CoinDataUnavailable, UnknownCoin
from explainers.models import Explanation
from explainers.service import Explainer
from explainers.settings import Thresholds

log = logging.getLogger("whydown.telegram")

App = Application[Any, Any, Any, Any, Any, Any]
Context = ContextTypes.DEFAULT_TYPE
Handler = Callable[[Update, Context], Awaitable[None]]

REFRESH_PERIOD_S = 30  # per chat: Refresh, Drivers and Chart presses, each
CALLBACK_TEXT_LIMIT = 200  # answerCallbackQuery's notice
CALLBACK_DATA_LIMIT = 64  # bytes
REFRESH, DRIVERS, CHART = "why:refresh", "why:drivers", "why:chart"
ETF = "etf"  # /chart's subject for the ETF-flows chart
# Commands and channel posts; edited messages are not commands run again.
INCOMING = filters.UpdateType.MESSAGE | filters.UpdateType.CHANNEL_POST
ALLOWED_UPDATES = [Update.MESSAGE, Update.CHANNEL_POST, Update.CALLBACK_QUERY]


class TelegramFrontend:
    """The bot on Telegram: command handlers, buttons, lifecycle, and the alert notifier."""

    platform = "telegram"

    def __init__(
        self,
        *,
        token: SecretStr,
        explainer: Explainer,
        store: Store,
        thresholds: Thresholds,
        alert_settings: AlertSettings,
        api_url: str = "https://api.telegram.org/bot",
        file_url: str = "https://api.telegram.org/file/bot",
        clock: Callable[[], datetime] = utcnow,
        application_builder: ApplicationBuilder[Any, Any, Any, Any, Any, Any] | None = None,
        charts: ChartMaker | None = None,
    ) -> None:
        self.explainer = explainer
        self.charts = charts  # None: /chart says in words that it has no chart; alerts are text
        self.store = store
        self.thresholds = thresholds
        self.alert_settings = alert_settings
        self.clock = clock
        cooldown = alert_settings.cooldown_s
        self.replies = Replies(
            "telegram", "html", default_cooldown_s=cooldown, thresholds=thresholds
        )
        self.notices = Replies(  # plain popups
            "telegram", "text", default_cooldown_s=cooldown, thresholds=thresholds
        )
        self._throttle = Throttle(timedelta(seconds=REFRESH_PERIOD_S))
        builder = application_builder or ApplicationBuilder()
        self.application: App = (
            builder.token(token.get_secret_value())
            .base_url(api_url)
            .base_file_url(file_url)
            # No retries inside PTB: a RetryAfter must reach the alert dispatcher, which
            # waits and retries itself; replies are paced within Telegram's limits.
            .rate_limiter(AIORateLimiter(max_retries=0))
            # Many chats asking at once share one refresh instead of queueing behind each other.
            .concurrent_updates(True)
            .build()
        )
        self.notifier = TelegramNotifier(
            self.application.bot, store, self.replies, thresholds, charts=charts
        )
        self._register()

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Initialize, publish the command menu, start handling updates, and poll."""
        await self.application.initialize()
        menu = [BotCommand(c.name, c.summary) for c in commands_for(self.platform)]
        await self.application.bot.set_my_commands(menu)
        await self.application.start()
        assert self.application.updater is not None
        await self.application.updater.start_polling(allowed_updates=ALLOWED_UPDATES)
        log.info("telegram: polling as @%s", self.application.bot.username)

    async def stop(self) -> None:
        """Send the alert charts on their way, stop polling, finish the updates in hand, and
        release the connections."""
        await self.notifier.aclose()  # while the bot can still post them
        updater = self.application.updater
        if updater is not None and updater.running:
            await updater.stop()
        if self.application.running:
            await self.application.stop()
        await self.application.shutdown()

    # --- registration ------------------------------------------------------------------------

    def _register(self) -> None:
        handlers: dict[str, Handler] = {
            "start": self._help,
            "help": self._help,
            "why": self._why,
            "drivers": self._drivers,
            "chart": self._chart,
            "subscribe": self._subscribe,
            "unsubscribe": self._unsubscribe,
            "settings": self._settings,
            "history": self._history,
            "status": self._status,
        }
        registry = {c.name for c in commands_for(self.platform)}
        if registry != set(handlers):
            raise RuntimeError(
                f"handlers {sorted(handlers)} differ from registry {sorted(registry)}"
            )
        app = self.application
        for name, handler in handlers.items():
            guarded = self._admins_only(handler) if command(name).admin_only else handler
            app.add_handler(CommandHandler(name, guarded, filters=INCOMING))
        app.add_handler(MessageHandler(filters.COMMAND & INCOMING, self._unknown))
        app.add_handler(MessageHandler(filters.StatusUpdate.MIGRATE, self._migrated))
        app.add_handler(CallbackQueryHandler(self._refresh, pattern=rf"^{REFRESH}(:|$)"))
        app.add_handler(CallbackQueryHandler(self._drivers_button, pattern=rf"^{DRIVERS}$"))
        app.add_handler(CallbackQueryHandler(self._chart_button, pattern=rf"^{CHART}(:|$)"))
        app.add_error_handler(self._on_error)

    def _admins_only(self, handler: Handler) -> Handler:
        """Run `handler` for those who may manage the chat's alerts; refuse anyone else."""
        # No server-only rule as on Discord: a private chat is a chat of its own, and its user
        # may subscribe it.

        async def guarded(update: Update, context: Context) -> None:
            message = _message(update)
            if await may_manage(context.bot, message):
                await handler(update, context)
            else:
                await self._reply(message, self.replies.admins_only())

        return guarded

    # --- commands ----------------------------------------------------------------------------

    async def _help(self, update: Update, context: Context) -> None:
        """/start and /help: what the bot does and every command."""
        await self._reply(_message(update), self.replies.help())

    async def _why(self, update: Update, context: Context) -> None:
        """/why [coin]: the answer with Refresh, Drivers and Chart buttons."""
        message, args = _message(update), context.args or []
        if len(args) > 1:
            await self._reply(message, self.replies.usage("why"))
            return
        coin = args[0] if args else None
        try:
            explanation = await self.explainer.explain(coin)
        except (UnknownCoin, CoinDataUnavailable) as err:
            await self._reply(message, self._refusal(self.replies, err, coin))
            return
        # No chart here: drawing one must never delay the answer; the Chart button asks for it.
        await self._reply(message, self._answer(explanation), self._keyboard(explanation))

    async def _chart(self, update: Update, context: Context) -> None:
        """/chart [coin|etf]: the picture, or a reply in words when it cannot be drawn."""
        message, args = _message(update), context.args or []
        if len(args) > 1:
            await self._reply(message, self.replies.usage("chart"))
            return
        await self._send_chart(message, args[0] if args else None)

    async def _drivers(self, update: Update, context: Context) -> None:
        """/drivers: every driver's state, figure and threshold."""
        explanation = await self.explainer.explain()
        await self._reply(_message(update), self.replies.drivers(explanation))

    async def _subscribe(self, update: Update, context: Context) -> None:
        """/subscribe [min_drivers]: alerts for this chat or topic (admins only in groups)."""
        message, args = _message(update), context.args or []
        try:
            if len(args) > 1:
                raise UsageError(self.replies.usage("subscribe"))
            default = self.alert_settings.default_min_drivers
            min_drivers = parse_min_drivers(args[0] if args else None, default, self.platform)
        except UsageError as err:
            await self._reply(message, str(err))
            return
        place = target(message)
        subscription = self.store.subscribe(
            "telegram", place.chat_id, place.topic_id, min_drivers, sender(message), at=self.clock()
        )
        log.info("subscribed telegram chat %s topic %s", place.chat_id, place.topic_id)
        await self._reply(message, self.replies.subscribed(subscription, where(message)))

    async def _unsubscribe(self, update: Update, context: Context) -> None:
        """/unsubscribe: stop this chat's alerts (admins only in groups)."""
        message = _message(update)
        place = target(message)
        found = self.store.unsubscribe("telegram", place.chat_id, place.topic_id)
        await self._reply(message, self.replies.unsubscribed(found, where(message)))

    async def _settings(self, update: Update, context: Context) -> None:
        """/settings: this chat's subscription."""
        message = _message(update)
        place = target(message)
        subscription = self.store.get_subscription("telegram", place.chat_id, place.topic_id)
        await self._reply(message, self.replies.settings(subscription, where(message)))

    async def _history(self, update: Update, context: Context) -> None:
        """/history: the last alerts."""
        await self._reply(_message(update), self.replies.history(self.store.recent_alerts()))

    async def _status(self, update: Update, context: Context) -> None:
        """/status: data age and each source's health."""
        latest = self.explainer.latest
        explanation = latest.explanation if latest is not None else None
        counts = self.store.subscription_counts()
        text = self.replies.status(explanation, counts, self.clock())
        await self._reply(_message(update), text)

    async def _unknown(self, update: Update, context: Context) -> None:
        """Any other command: the usage line instead of silence."""
        message = _message(update)
        name, _, addressee = _command_word(message).partition("@")
        bot_name = context.bot.username or ""
        if addressee and addressee.lower() != bot_name.lower():
            return  # meant for another bot in the group
        if not addressee and message.chat.type != ChatType.PRIVATE:
            return  # a bare /command in a group may be any bot's; answer only when named
        await self._reply(message, self.replies.unknown_command(name))

    async def _migrated(self, update: Update, context: Context) -> None:
        """A group upgraded to a supergroup keeps its subscription."""
        message = _message(update)
        if message.migrate_to_chat_id is not None:  # posted in the old group
            old, new = message.chat.id, message.migrate_to_chat_id
        elif message.migrate_from_chat_id is not None:  # posted in the new supergroup
            old, new = message.migrate_from_chat_id, message.chat.id
        else:
            return
        moved = self.store.migrate_chat("telegram", str(old), str(new))
        if moved:
            log.info("telegram chat %s became %s: %d subscription(s) moved", old, new, moved)

    # --- buttons -----------------------------------------------------------------------------

    async def _refresh(self, update: Update, context: Context) -> None:
        """The Refresh button: edit the answer in place (throttled per chat)."""
        query = _query(update)
        if not await self._admit(query, "refresh"):
            return
        coin = (query.data or "").removeprefix(REFRESH).removeprefix(":") or None
        try:
            explanation = await self.explainer.explain(coin)
        except (UnknownCoin, CoinDataUnavailable) as err:
            # the press is answered already: the refusal goes to the chat, as /why's would
            if isinstance(query.message, Message):
                await self._reply(query.message, self._refusal(self.replies, err, coin))
            return
        try:
            await query.edit_message_text(
                self._answer(explanation),
                parse_mode=ParseMode.HTML,
                link_preview_options=NO_PREVIEW,
                reply_markup=self._keyboard(explanation),
            )
        except BadRequest as err:
            # Nothing changed since the last answer: the message is already up to date.
            if "message is not modified" not in err.message.lower():
                raise

    async def _drivers_button(self, update: Update, context: Context) -> None:
        """The Drivers button: the drivers list as a reply (throttled per chat)."""
        query = _query(update)
        if not await self._admit(query, "drivers"):
            return
        explanation = await self.explainer.explain()
        if isinstance(query.message, Message):
            await self._reply(query.message, self.replies.drivers(explanation))

    async def _chart_button(self, update: Update, context: Context) -> None:
        """The Chart button: the chart of the answer's coin (throttled per chat)."""
        query = _query(update)
        if not await self._admit(query, "chart"):
            return
        coin = (query.data or "").removeprefix(CHART).removeprefix(":") or None
        if isinstance(query.message, Message):
            await self._send_chart(query.message, coin)

    async def _admit(self, query: CallbackQuery, action: str) -> bool:
        """Answer the press now (with the wait, when throttled per chat); whether to act on it."""
        # before any work: a cold refresh or a slow drawing must not outlive the query, which
        # Telegram expires within seconds; whatever is said after this goes to the chat
        chat_id = query.message.chat.id if query.message is not None else query.from_user.id
        wait = self._throttle.take((chat_id, action), self.clock())
        notice = self.notices.button_throttled(wait, REFRESH_PERIOD_S) if wait else None
        await query.answer(_notice(notice) if notice else None)
        return not wait

    # --- sending and errors ------------------------------------------------------------------

    def _answer(self, explanation: Explanation) -> str:
        return render.telegram_html(explanation, self.thresholds)

    def _keyboard(self, explanation: Explanation) -> InlineKeyboardMarkup:
        return keyboard(explanation, chart=self.charts is not None)

    @staticmethod
    def _refusal(replies: Replies, err: UnknownCoin | CoinDataUnavailable, coin: str | None) -> str:
        """What /why, its Refresh and /chart say for a coin they cannot answer for."""
        if isinstance(err, UnknownCoin):
            return replies.unknown_coin(err.query, err.suggestions)
        return replies.coin_data_unavailable(coin or "")

    async def _send_chart(self, message: Message, subject: str | None) -> None:
        """Reply with the chart of `subject` (a coin, "etf", or None for the market); when it
        cannot be drawn, say so in words."""
        if self.charts is None:
            await self._reply(message, self.replies.chart_unavailable())
            return
        etf = (subject or "").strip().lower() == ETF
        try:
            chart = await (self.charts.etf() if etf else self.charts.sell_off(subject))
        except (UnknownCoin, CoinDataUnavailable) as err:
            await self._reply(message, self._refusal(self.replies, err, subject))
            return
        except ChartUnavailable as err:
            log.warning("telegram: no %s chart: %s", ETF if etf else "sell-off", err)
            await self._reply(message, self.replies.chart_unavailable(str(err)))
            return
        await message.reply_photo(
            chart.png,
            caption=caption(chart.caption),
            parse_mode=ParseMode.HTML,
            filename=chart.filename,
        )

    async def _reply(
        self, message: Message, html: str, markup: InlineKeyboardMarkup | None = None
    ) -> None:
        """Answer in the message's chat and forum topic, in HTML, without link previews."""
        await message.reply_text(
            fit(html),
            parse_mode=ParseMode.HTML,
            link_preview_options=NO_PREVIEW,
            reply_markup=markup,
        )

    async def _on_error(self, update: object, context: Context) -> None:
        """Log what failed with its context; tell the user briefly, never the error itself."""
        error = context.error
        if not isinstance(update, Update):
            # Polling trouble (no update): PTB retries on its own.
            log.warning("telegram: %s while polling", type(error).__name__)
            return
        log.error("telegram: handling %s failed", _describe(update), exc_info=error)
        if _unanswerable(error):
            return
        try:
            # a button press was answered before its work began: the failure goes to the chat
            # too (effective_message is then the message the button sits under)
            if isinstance(update.effective_message, Message):
                await self._reply(update.effective_message, self.replies.failed())
        except TelegramError as err:
            log.warning("telegram: could not tell the chat about the failure (%s)", err.message)


def keyboard(explanation: Explanation, *, chart: bool = False) -> InlineKeyboardMarkup:
    """The buttons under an answer: Refresh (the same question again), Drivers, and Chart."""
    buttons = [
        InlineKeyboardButton("Refresh", callback_data=_with_coin(REFRESH, explanation)),
        InlineKeyboardButton("Drivers", callback_data=DRIVERS),
    ]
    if chart:
        buttons.append(InlineKeyboardButton("Chart", callback_data=_with_coin(CHART, explanation)))
    return InlineKeyboardMarkup([buttons])


def _with_coin(action: str, explanation: Explanation) -> str:
    """A button's data naming the answer's coin (by id, else symbol) when that fits in 64 bytes."""
    if explanation.coin is not None:
        for name in (explanation.coin.id, explanation.coin.symbol):
            data = f"{action}:{name}"
            if len(data.encode()) <= CALLBACK_DATA_LIMIT:
                return data
    return action


def _message(update: Update) -> Message:
    message = update.effective_message
    if message is None:  # the handlers' filters only let messages and channel posts through
        raise RuntimeError(f"update {update.update_id} has no message")
    return message


def _query(update: Update) -> CallbackQuery:
    if update.callback_query is None:
        raise RuntimeError(f"update {update.update_id} has no callback query")
    return update.callback_query


def _command_word(message: Message) -> str:
    """The command a message starts with, without the slash: "why" or "why@somebot"."""
    text = message.text or ""
    for entity in message.entities:
        if entity.type == MessageEntity.BOT_COMMAND and entity.offset == 0:
            return text[1 : entity.length]
    return text[1:].split(maxsplit=1)[0] if text.startswith("/") else text


def _unanswerable(error: BaseException | None) -> bool:
    """The chat cannot be answered now: it blocked us, flood control, or the network is down."""
    if isinstance(error, BadRequest):
        return False
    return isinstance(error, (Forbidden, RetryAfter, NetworkError))


def _notice(text: str) -> str:
    """A callback-query notice fits in 200 characters."""
    return text if len(text) <= CALLBACK_TEXT_LIMIT else text[: CALLBACK_TEXT_LIMIT - 1] + "…"


def _describe(update: Update) -> str:
    """What an update was, for the log: its id, chat and the start of its text."""
    chat = update.effective_chat
    where_ = f"chat {chat.id} ({chat.type})" if chat is not None else "no chat"
    if update.callback_query is not None:
        what = f"button {update.callback_query.data!r}"
    else:
        message = update.effective_message
        what = repr((message.text or "")[:80]) if message is not None else "an update"
    return f"update {update.update_id} in {where_}: {what}"
