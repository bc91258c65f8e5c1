"""Past days on Discord: /preview, and the preview that follows /subscribe's confirmation, each an
embed with the backtest's picture (BTC over the period, alert marks, the driver strip) and its
sentence. /why date: is /why's (bot.discord.bot)."""

from __future__ import annotations

import io

import discord
from discord import app_commands

from bot.actions import PREVIEW_DAYS_MOST, Preview, PreviewUnavailable
from bot.discord.channels import here
from bot.discord.interactions import DiscordContext, Interaction, context_of
from bot.discord.notifier import show_image
from bot.store import MIN_DRIVERS_HIGHEST, MIN_DRIVERS_LOWEST, Subscription

PREVIEW_FILE = "whydown-preview.png"
EMBED_DESCRIPTION_LIMIT = 4096


async def preview(
    interaction: Interaction,
    min_drivers: app_commands.Range[int, MIN_DRIVERS_LOWEST, MIN_DRIVERS_HIGHEST] | None = None,
    days: app_commands.Range[int, 1, PREVIEW_DAYS_MOST] | None = None,
) -> None:
    """/preview [min_drivers] [days]: how often this channel would have been alerted."""
    context = context_of(interaction)
    minimum, span = context.actions.preview_settings(here(interaction), min_drivers, days)
    await interaction.response.defer(thinking=True)  # a cold preview rebuilds every day
    await send_preview(interaction, context, await context.actions.preview(minimum, span))


async def after_subscribe(
    interaction: Interaction, context: DiscordContext, sub: Subscription
) -> None:
    """The preview for a new subscription, or why there is none (nothing when previews are off); a
    follow-up after the confirmation, so a slow reconstruction never delays it."""
    after = await context.actions.preview_after_subscribe(sub)
    if isinstance(after, PreviewUnavailable):
        await interaction.followup.send(after.reply(context.replies))
    elif after is not None:
        await send_preview(interaction, context, after)


def preview_title(preview: Preview) -> str:
    bt = preview.backtest
    return f"Alert preview, {bt.first:%d %b %Y} to {bt.last:%d %b %Y} (UTC days)"


def preview_embed(context: DiscordContext, preview: Preview, file: discord.File) -> discord.Embed:
    """The sentence as the description, the picture as the embed's image."""
    embed = discord.Embed(
        title=preview_title(preview),
        description=context.replies.preview(preview.backtest)[:EMBED_DESCRIPTION_LIMIT],
    )
    return show_image(embed, file)


async def send_preview(interaction: Interaction, context: DiscordContext, preview: Preview) -> None:
    """Send the preview as a follow-up (after a defer, or after /subscribe's confirmation)."""
    file = discord.File(io.BytesIO(preview.png), filename=PREVIEW_FILE)
    await interaction.followup.send(embed=preview_embed(context, preview, file), file=file)
