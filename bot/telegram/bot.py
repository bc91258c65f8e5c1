"""The Telegram front-end: parse the update, call an action, render, reply.

Every command of the shared registry gets a handler, registered here: the answers (/why, /drivers,
/chart, ...) are this module's; a chat's settings are in `settings`, past days in `past`, and the
buttons under an answer in `buttons`. `/why` answers in HTML with Refresh, Details, Drivers and
(when charts are set up) Chart buttons; `/chart` sends a picture. Replies go to the chat and forum
topic the command came from. A refused action (bot.actions.ActionError) becomes its reply in one
place, `_answering`; any other failure goes to the one error handler, which logs it and tells the
user briefly. Alerts go out through `notifier`, with their chart.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import SecretStr
from telegram import BotCommand, Message, Update
from telegram.constants import ChatType
from telegram.error import TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    filters,
)

from bot.actions import ActionError, Actions, NotAllowed, why_arguments
from bot.commands import command, commands_for
from bot.store import Platform
from bot.telegram.buttons import AnswerButtons, answer_html, answer_keyboard
from bot.telegram.chat import (
    Context,
    Handler,
    argument,
    command_word,
    describe,
    may_manage,
    message_of,
    reply,
    send_chart,
    target,
    unanswerable,
)
from bot.telegram.notifier import TelegramNotifier
from bot.telegram.past import PastCommands
from bot.telegram.settings import SettingsCommands

log = logging.getLogger("whydown.telegram")

App = Application[Any, Any, Any, Any, Any, Any]

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
        self.past = PastCommands(actions, self.replies)
        self.settings = SettingsCommands(actions, self.replies, self.past)
        self.buttons = AnswerButtons(actions, self.replies)
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
            "subscribe": self.settings.subscribe,
            "unsubscribe": self.settings.unsubscribe,
            "preview": self.past.preview,
            "settings": self.settings.settings,
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
        for pattern, button in self.buttons.handlers().items():
            app.add_handler(CallbackQueryHandler(answering(button), pattern=pattern))
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
        answer = await self.actions.why_answer(target(message), coin, at)
        explanation, full = answer.explanation, answer.full
        # No chart here: drawing one must never delay the answer; the Chart button asks for it.
        markup = answer_keyboard(self.actions, explanation, full) if answer.live else None
        await reply(message, answer_html(self.actions, explanation, full), markup)

    async def _chart(self, update: Update, context: Context) -> None:
        """/chart [coin|etf]: the picture, or a reply in words when it cannot be drawn."""
        drawn = await self.actions.chart(argument(context.args, "chart"))
        await send_chart(message_of(update), drawn)

    async def _drivers(self, update: Update, context: Context) -> None:
        """/drivers: every driver's state, figure and threshold."""
        await reply(message_of(update), self.replies.drivers(await self.actions.drivers()))

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

    # --- errors ---------------------------------------------------------------------------------

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
