"""What the Discord front-end shows about past days: /preview's embed with the backtest's picture
(BTC over the period, alert marks, the driver strip) and its sentence."""

from __future__ import annotations

import io

import discord

from bot.actions import Preview
from bot.discord.interactions import DiscordContext, Interaction
from bot.discord.notifier import show_image

PREVIEW_FILE = "whydown-preview.png"
EMBED_DESCRIPTION_LIMIT = 4096


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
