"""The Telegram front-end: parse the update, call an action, render, reply.

Every command of the shared registry gets a handler; `/why` answers in HTML with "Refresh",
"Drivers" and (when charts are set up) "Chart" buttons; `/chart` sends a picture. Replies go to the
chat and forum topic the command came from. A refused action (bot.actions.ActionError) becomes its
reply in one place, `_answering`; any other failure goes to the one error handler, which logs it and
tells the user briefly. Alerts go out through `notifier`, with their chart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from pydantic import SecretStr
from telegram import BotCommand, CallbackQuery, InlineKeyboardMarkup, Message, Update
from telegram.constants import ChatType, ParseMode
from telegram.error import BadRequest, TelegramError
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

from bot.actions import ActionError, Actions, BadArgument, NotAllowed, Preview, why_arguments
from bot.commands import command, commands_for
from bot.store import Platform
from bot.telegram.buttons import (
    CHART,
    DETAILS,
    DRIVERS,
    REFRESH,
    SUMMARY,
    Presses,
    coin_of,
    keyboard,
    shows_full,
)
from bot.telegram.chat import (
    CAPTION_LIMIT,
    NO_PREVIEW,
    argument,
    caption,
    command_word,
    describe,
    fit,
    may_manage,
    message_of,
    query_of,
    reply,
    sender,
    target,
    unanswerable,
    where,
)
from bot.telegram.notifier import TelegramNotifier
from explainers import render
from explainers.models import Explanation

log = logging.getLogger("whydown.telegram")

App = Application[Any, Any, Any, Any, Any, Any]
Context = ContextTypes.DEFAULT_TYPE
Handler = Callable[[Update, Context], Coroutine[Any, Any, None]]

# Commands and channel posts; edited messages are not commands run again.
INCOMING = filters.UpdateType.MESSAGE | filters.UpdateType.CHANNEL_POST
ALLOWED_UPDATES = [Update.MESSAGE, Update.CHANNEL_POST, Update.CALLBACK_QUERY]


class TelegramFrontend:
    """The bot on Telegram: command handlers, buttons, lifecycle, and the alert notifier."""

    platform: Platform = "telegram"

    def __init__(
        self,
        *,
        token: SecretStr,
        actions: Actions,
        api_url: str = "https://api.telegram.org/bot",
        file_url: str = "https://api.telegram.org/file/bot",
        application_builder: ApplicationBuilder[Any, Any, Any, Any, Any, Any] | None = None,
    ) -> None:
        self.actions = actions
        self.replies = actions.replies(self.platform, "html")
        self._presses = Presses(actions.replies(self.platform, "text"), actions.clock)
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
            self.application.bot,
            actions.store,
            self.replies,
            actions.thresholds,
            charts=actions.charts,
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

    # --- registration and the one translation of refusals ------------------------------------

    def _register(self) -> None:
        handlers: dict[str, Handler] = {
            "start": self._help,
            "help": self._help,
            "why": self._why,
            "drivers": self._drivers,
            "chart": self._chart,
            "subscribe": self._subscribe,
            "unsubscribe": self._unsubscribe,
            "preview": self._preview,
            "settings": self._settings,
            "history": self._history,
            "status": self._status,
        }
        registry = {c.name for c in commands_for(self.platform)}
        if registry != set(handlers):
            raise RuntimeError(
                f"handlers {sorted(handlers)} differ from registry {sorted(registry)}"
            )
        app, answering = self.application, self._answering
        for name, handler in handlers.items():
            guarded = answering(handler, admins_only=command(name).admin_only)
            app.add_handler(CommandHandler(name, guarded, filters=INCOMING))
        app.add_handler(MessageHandler(filters.COMMAND & INCOMING, self._unknown))
        app.add_handler(MessageHandler(filters.StatusUpdate.MIGRATE, self._migrated))
        buttons = (
            (REFRESH, self._refresh),
            (CHART, self._chart_button),
            (DETAILS, self._details),
            (SUMMARY, self._summary),
        )
        for data, button in buttons:
            app.add_handler(CallbackQueryHandler(answering(button), pattern=rf"^{data}(:|$)"))
        app.add_handler(
            CallbackQueryHandler(answering(self._drivers_button), pattern=rf"^{DRIVERS}$")
        )
        app.add_error_handler(self._on_error)

    def _answering(self, handler: Handler, *, admins_only: bool = False) -> Handler:
        """`handler`, with a refused action answered by its reply: the one place that translates
        bot.actions' errors. With `admins_only`, only those who may manage the chat's alerts."""
        # No server-only rule as on Discord: a private chat is a chat of its own, and its user
        # may subscribe it.

        async def answering(update: Update, context: Context) -> None:
            try:
                if admins_only and not await may_manage(context.bot, message_of(update)):
                    raise NotAllowed("admins_only")
                await handler(update, context)
            except ActionError as refused:
                log.log(refused.level, "%s refused: %s", describe(update), refused)
                # a button press is answered before its work: the refusal goes to the chat
                if isinstance(update.effective_message, Message):
                    await reply(update.effective_message, refused.reply(self.replies))

        return answering

    # --- commands ----------------------------------------------------------------------------

    async def _help(self, update: Update, context: Context) -> None:
        """/start and /help: what the bot does and every command."""
        await reply(message_of(update), self.replies.help())

    async def _why(self, update: Update, context: Context) -> None:
        """/why [coin]: the answer (compact unless the chat chose full) with Refresh, Details,
        Drivers and Chart buttons. /why [coin] <date>: the full answer as of a past day's end,
        without buttons (they would answer about now)."""
        message = message_of(update)
        coin, at = why_arguments(context.args or [])
        if at is not None:
            await reply(message, self._answer(await self.actions.why_at(coin, at), True))
            return
        explanation = await self.actions.why(coin)
        full = self.actions.full_answers(target(message))
        # No chart here: drawing one must never delay the answer; the Chart button asks for it.
        await reply(message, self._answer(explanation, full), self._keyboard(explanation, full))

    async def _chart(self, update: Update, context: Context) -> None:
        """/chart [coin|etf]: the picture, or a reply in words when it cannot be drawn."""
        await self._send_chart(message_of(update), argument(context.args, "chart"))

    async def _drivers(self, update: Update, context: Context) -> None:
        """/drivers: every driver's state, figure and threshold."""
        await reply(message_of(update), self.replies.drivers(await self.actions.drivers()))

    async def _subscribe(self, update: Update, context: Context) -> None:
        """/subscribe [min_drivers]: alerts for this chat or topic (admins only in groups)."""
        message, minimum = message_of(update), argument(context.args, "subscribe")
        sub = self.actions.subscribe(target(message), minimum, sender(message))
        await reply(message, self.replies.subscribed(sub, where(message)))
        if self.actions.timemachine is not None:
            # after the confirmation, so a slow reconstruction never delays it; updates are
            # handled concurrently, so other chats are answered meanwhile
            preview = await self.actions.preview_after_subscribe(sub)
            if preview is None:
                await reply(message, self.replies.preview_unavailable())
            else:
                await self._send_preview(message, preview)

    async def _preview(self, update: Update, context: Context) -> None:
        """/preview [min_drivers] [days]: how often this chat would have been alerted."""
        message, args = message_of(update), context.args or []
        if len(args) > 2:
            raise BadArgument("preview")
        minimum, days = self.actions.preview_settings(
            target(message), args[0] if args else None, args[1] if len(args) > 1 else None
        )
        await self._send_preview(message, await self.actions.preview(minimum, days))

    async def _unsubscribe(self, update: Update, context: Context) -> None:
        """/unsubscribe: stop this chat's alerts (admins only in groups)."""
        message = message_of(update)
        found = self.actions.unsubscribe(target(message))
        await reply(message, self.replies.unsubscribed(found, where(message)))

    async def _settings(self, update: Update, context: Context) -> None:
        """/settings: this chat's subscription and answer style; `/settings full on|off` picks
        the answer /why gives here (admins only in groups)."""
        message = message_of(update)
        args = [a.lower() for a in context.args or []]
        if args:
            choice = args[1:] if args[0] == "full" else args
            if len(choice) != 1:
                raise BadArgument("settings")
            if not await may_manage(context.bot, message):
                raise NotAllowed("admins_only")
            full = self.actions.set_full_answers(target(message), choice[0])
            await reply(message, self.replies.full_answers_set(full, where(message)))
            return
        sub = self.actions.settings(target(message))
        full = self.actions.full_answers(target(message))
        await reply(message, self.replies.settings(sub, where(message), full))

    async def _history(self, update: Update, context: Context) -> None:
        """/history: the last alerts."""
        await reply(message_of(update), self.replies.history(self.actions.history()))

    async def _status(self, update: Update, context: Context) -> None:
        """/status: data age and each source's health."""
        s = self.actions.status()
        await reply(
            message_of(update), self.replies.status(s.explanation, s.counts, s.now, s.storage)
        )

    async def _unknown(self, update: Update, context: Context) -> None:
        """Any other command: the usage line instead of silence."""
        message = message_of(update)
        name, _, addressee = command_word(message).partition("@")
        bot_name = context.bot.username or ""
        if addressee and addressee.lower() != bot_name.lower():
            return  # meant for another bot in the group
        if not addressee and message.chat.type != ChatType.PRIVATE:
            return  # a bare /command in a group may be any bot's; answer only when named
        await reply(message, self.replies.unknown_command(name))

    async def _migrated(self, update: Update, context: Context) -> None:
        """A group upgraded to a supergroup keeps its subscription."""
        message = message_of(update)
        if message.migrate_to_chat_id is not None:  # posted in the old group
            old, new = message.chat.id, message.migrate_to_chat_id
        elif message.migrate_from_chat_id is not None:  # posted in the new supergroup
            old, new = message.migrate_from_chat_id, message.chat.id
        else:
            return
        moved = self.actions.store.migrate_chat(self.platform, str(old), str(new))
        if moved:
            log.info("telegram chat %s became %s: %d subscription(s) moved", old, new, moved)

    # --- buttons -----------------------------------------------------------------------------

    async def _refresh(self, update: Update, context: Context) -> None:
        """The Refresh button: edit the answer in place (throttled per chat)."""
        query = query_of(update)
        if not await self._presses.admit(query, "refresh"):
            return
        explanation = await self.actions.why(coin_of(query.data, REFRESH))
        # the answer keeps the form it is shown in
        full = isinstance(query.message, Message) and shows_full(query.message.reply_markup)
        await self._edit(query, explanation, full)

    async def _details(self, update: Update, context: Context) -> None:
        """The Details button: the full answer (every figure with its source and time,
        headlines, context) in place of the compact one."""
        query = query_of(update)
        await query.answer()  # nothing is fetched: the answer as of the latest refresh
        await self._edit(query, await self.actions.latest(coin_of(query.data, DETAILS)), True)

    async def _summary(self, update: Update, context: Context) -> None:
        """The Summary button: back to the compact answer, in place."""
        query = query_of(update)
        await query.answer()
        await self._edit(query, await self.actions.latest(coin_of(query.data, SUMMARY)), False)

    async def _edit(self, query: CallbackQuery, explanation: Explanation, full: bool) -> None:
        """Edit the answer a button sits under, in place."""
        try:
            await query.edit_message_text(
                self._answer(explanation, full),
                parse_mode=ParseMode.HTML,
                link_preview_options=NO_PREVIEW,
                reply_markup=self._keyboard(explanation, full),
            )
        except BadRequest as err:
            # Nothing changed since the last answer: the message is already up to date.
            if "message is not modified" not in err.message.lower():
                raise

    async def _drivers_button(self, update: Update, context: Context) -> None:
        """The Drivers button: the drivers list as a reply (throttled per chat)."""
        query = query_of(update)
        if await self._presses.admit(query, "drivers") and isinstance(query.message, Message):
            await reply(query.message, self.replies.drivers(await self.actions.drivers()))

    async def _chart_button(self, update: Update, context: Context) -> None:
        """The Chart button: the chart of the answer's coin (throttled per chat)."""
        query = query_of(update)
        if await self._presses.admit(query, "chart") and isinstance(query.message, Message):
            await self._send_chart(query.message, coin_of(query.data, CHART))

    # --- sending and errors ------------------------------------------------------------------

    def _answer(self, explanation: Explanation, full: bool = False) -> str:
        return render.telegram_html(explanation, self.actions.thresholds, full=full)

    def _keyboard(self, explanation: Explanation, full: bool = False) -> InlineKeyboardMarkup:
        return keyboard(explanation, chart=self.actions.charts is not None, full=full)

    async def _send_chart(self, message: Message, subject: str | None) -> None:
        """Reply with the chart of `subject` (a coin, "etf", or None for the market)."""
        chart = (await self.actions.chart(subject)).chart
        await message.reply_photo(
            chart.png,
            caption=caption(chart.caption),
            parse_mode=ParseMode.HTML,
            filename=chart.filename,
        )

    async def _send_preview(self, message: Message, preview: Preview) -> None:
        """The backtest's picture, its sentence as the caption."""
        await message.reply_photo(
            preview.png,
            caption=fit(self.replies.preview(preview.backtest), CAPTION_LIMIT),
            parse_mode=ParseMode.HTML,
            filename="whydown-preview.png",
        )

    async def _on_error(self, update: object, context: Context) -> None:
        """Log what failed with its context; tell the user briefly, never the error itself."""
        error = context.error
        if not isinstance(update, Update):
            # Polling trouble (no update): PTB retries on its own.
            log.warning("telegram: %s while polling", type(error).__name__)
            return
        log.error("telegram: handling %s failed", describe(update), exc_info=error)
        if unanswerable(error):
            return
        try:
            # a button press was answered before its work began: the failure goes to the chat
            # too (effective_message is then the message the button sits under)
            if isinstance(update.effective_message, Message):
                await reply(update.effective_message, self.replies.failed())
        except TelegramError as err:
            log.warning("telegram: could not tell the chat about the failure (%s)", err.message)
