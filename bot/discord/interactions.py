"""Answering a Discord interaction: the context every command and button reaches from it, text
in pages of at most 2000 characters, and the one translation of errors into replies."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol, cast

import discord
from discord import app_commands

from bot.actions import ActionError, Actions, NotAllowed
from bot.commands import Replies
from bot.discord.channels import option_refusal
from bot.throttle import Throttle

log = logging.getLogger("whydown.discord")

Interaction = discord.Interaction[Any]
MESSAGE_LIMIT = 2000
REFRESH_EVERY = timedelta(seconds=30)


@dataclass
class DiscordContext:
    """Everything a command or button needs, reachable from any interaction's client."""

    actions: Actions
    replies: Replies
    # per channel and button: a Chart click must not use up the channel's Refresh
    throttle: Throttle = field(default_factory=lambda: Throttle(REFRESH_EVERY))


class HasContext(Protocol):
    context: DiscordContext


def context_of(interaction: Interaction) -> DiscordContext:
    return cast(HasContext, interaction.client).context


# --- sending ---------------------------------------------------------------------------------


def pages(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Split at line ends into messages of at most `limit` characters (markup stays per line)."""
    out: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:  # a single over-long line: cut it hard
            if current:
                out.append(current)
                current = ""
            out.append(line[:limit])
            line = line[limit:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            out.append(current)
            candidate = line
        current = candidate
    if current or not out:
        out.append(current)
    return out


async def send_text(interaction: Interaction, text: str, *, ephemeral: bool = False) -> None:
    """Answer with text: the response if none was sent yet, else follow-ups. Never twice."""
    for page in pages(text):
        if interaction.response.is_done():
            await interaction.followup.send(page, ephemeral=ephemeral)
        else:
            await interaction.response.send_message(page, ephemeral=ephemeral)


# --- the one error translation ---------------------------------------------------------------


def _where(interaction: Interaction) -> str:
    if interaction.command is not None:
        what = f"/{interaction.command.qualified_name}"
    else:
        what = f"component {interaction.data.get('custom_id', '?') if interaction.data else '?'}"
    return (
        f"{what} (user {interaction.user.id}, guild {interaction.guild_id}, "
        f"channel {interaction.channel_id})"
    )


async def report_error(interaction: Interaction, error: BaseException) -> None:
    """A refused action gets its reply; anything else is logged with its context and answered
    briefly, never with its text. Ephemeral where possible: after a public "thinking…" Discord
    shows the reply to the channel (it replaces that message; deleting it first would leave
    follow-ups with Unknown Message), so handlers refuse what they can before deferring."""
    context = context_of(interaction)
    original = error.original if isinstance(error, app_commands.CommandInvokeError) else error
    if isinstance(original, app_commands.NoPrivateMessage):
        original = NotAllowed("server_only")
    elif isinstance(original, app_commands.MissingPermissions):
        original = NotAllowed("admins_only")
    elif isinstance(original, app_commands.TransformerError):
        original = option_refusal(original) or original
    if isinstance(original, ActionError):
        log.log(original.level, "%s refused: %s", _where(interaction), original)
        reply = original.reply(context.replies)
    else:
        log.error("%s failed", _where(interaction), exc_info=original)
        reply = context.replies.failed()
    try:
        await send_text(interaction, reply, ephemeral=True)
    except discord.HTTPException as err:
        # the interaction expired or the channel went away: nothing more to tell anyone
        log.warning("%s: could not send the error reply (HTTP %s)", _where(interaction), err.status)
