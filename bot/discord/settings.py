"""A Discord channel's settings: /subscribe, /unsubscribe, and /settings with its answer style (the
full answer or the compact one). Changing them takes Manage Channels (bot.discord.channels)."""

from __future__ import annotations

import discord
from discord import app_commands

from bot.discord.channels import here, managed_channel
from bot.discord.interactions import Interaction, context_of, send_text
from bot.discord.past import after_subscribe
from bot.store import MIN_DRIVERS_HIGHEST, MIN_DRIVERS_LOWEST

# Each handler's parameters are the registry's Discord arguments (checked in bot.discord.bot).


async def settings(interaction: Interaction, full: str | None = None) -> None:
    """/settings [full]: this channel's subscription and answer style (only to the asker);
    full:on|off picks the answer /why gives here (Manage Channels only)."""
    context = context_of(interaction)
    if full is not None:
        target, where = managed_channel(interaction, None)
        chosen = context.actions.set_full_answers(target, full)
        await send_text(interaction, context.replies.full_answers_set(chosen, where))
        return
    place = here(interaction)
    sub, chosen = context.actions.settings(place), context.actions.full_answers(place)
    text = context.replies.settings(sub, "this channel", chosen)
    await send_text(interaction, text, ephemeral=True)


async def subscribe(
    interaction: Interaction,
    channel: discord.TextChannel | None = None,
    min_drivers: app_commands.Range[int, MIN_DRIVERS_LOWEST, MIN_DRIVERS_HIGHEST] | None = None,
) -> None:
    """/subscribe [channel] [min_drivers]: alerts for a channel (Manage Channels only), then the
    preview of how often it would have been alerted."""
    context = context_of(interaction)
    charts = context.actions.charts is not None
    target, where = managed_channel(interaction, channel, postable=True, charts=charts)
    sub = context.actions.subscribe(target, min_drivers, interaction.user.name)
    await send_text(interaction, context.replies.subscribed(sub, where))
    await after_subscribe(interaction, context, sub)


async def unsubscribe(interaction: Interaction, channel: discord.TextChannel | None = None) -> None:
    """/unsubscribe [channel]: stop a channel's alerts (Manage Channels only)."""
    context = context_of(interaction)
    target, where = managed_channel(interaction, channel)
    found = context.actions.unsubscribe(target)
    await send_text(interaction, context.replies.unsubscribed(found, where))
