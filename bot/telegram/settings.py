"""A Telegram chat's settings: /subscribe, /unsubscribe, and /settings with its answer style (the
full answer or the compact one). Changing them is for those who may manage the chat's alerts."""

from __future__ import annotations

from telegram import Update

from bot.actions import Actions, NotAllowed, settings_arguments
from bot.commands import Replies
from bot.telegram.chat import (
    Context,
    Handlers,
    argument,
    may_manage,
    message_of,
    reply,
    sender,
    target,
    where,
)
from bot.telegram.past import PastCommands


class SettingsCommands(Handlers):
    """/subscribe (followed by the preview), /unsubscribe and /settings."""

    def __init__(self, actions: Actions, replies: Replies, past: PastCommands) -> None:
        super().__init__(actions, replies)
        self.past = past

    async def subscribe(self, update: Update, context: Context) -> None:
        """/subscribe [min_drivers]: alerts for this chat or topic (admins only in groups)."""
        message, minimum = message_of(update), argument(context.args, "subscribe")
        sub = self.actions.subscribe(target(message), minimum, sender(message))
        await reply(message, self.replies.subscribed(sub, where(message)))
        await self.past.after_subscribe(message, sub)

    async def unsubscribe(self, update: Update, context: Context) -> None:
        """/unsubscribe: stop this chat's alerts (admins only in groups)."""
        message = message_of(update)
        found = self.actions.unsubscribe(target(message))
        await reply(message, self.replies.unsubscribed(found, where(message)))

    async def settings(self, update: Update, context: Context) -> None:
        """/settings: this chat's subscription and answer style; `/settings full on|off` picks
        the answer /why gives here (admins only in groups)."""
        message = message_of(update)
        here = target(message)
        choice = settings_arguments(context.args or [])
        if choice is None:
            sub, full = self.actions.settings(here), self.actions.full_answers(here)
            await reply(message, self.replies.settings(sub, where(message), full))
            return
        if not await may_manage(context.bot, message):
            raise NotAllowed("admins_only")
        full = self.actions.set_full_answers(here, choice)
        await reply(message, self.replies.full_answers_set(full, where(message)))
