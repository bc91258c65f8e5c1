"""What the Discord front-end shows: the /why answer, charts, and the choices autocomplete offers.
The buttons under an answer are in bot.discord.buttons."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands

from bot.actions import ETF, Drawn
from bot.discord.interactions import DiscordContext, Interaction, context_of
from bot.discord.notifier import alert_embed, chart_file, show_image
from explainers.models import CoinMarket, Explanation
from explainers.render import escape_markdown

if TYPE_CHECKING:  # the chart service pulls in matplotlib; only its types are needed here
    from explainers.chart_service import Chart

EMBED_DESCRIPTION_LIMIT = 4096
AUTOCOMPLETE_LIMIT = 25  # Discord shows at most 25 choices
CHOICE_LIMIT = 100  # characters in a choice's name and value
SELL_OFF_TITLE = "The sell-off, last 24 hours"
ETF_TITLE = "Spot-Bitcoin-ETF net flows"


# --- sending ---------------------------------------------------------------------------------


def why_embed(
    context: DiscordContext, explanation: Explanation, *, full: bool = False
) -> discord.Embed:
    """The answer: compact (the summary, a line per firing driver) or full (every figure)."""
    return alert_embed(explanation, context.actions.thresholds, full=full)


def chart_embed(chart: Chart, title: str, file: discord.File) -> discord.Embed:
    """The chart as an embed image, its caption as the description."""
    embed = discord.Embed(
        title=escape_markdown(title),
        description=escape_markdown(chart.caption)[:EMBED_DESCRIPTION_LIMIT],
        timestamp=chart.data_time,
    )
    return show_image(embed, file)


async def send_chart(interaction: Interaction, drawn: Drawn) -> None:
    """Send a chart as a follow-up (the interaction is deferred: a render can take over 3 s)."""
    file = chart_file(drawn.chart)
    title = ETF_TITLE if drawn.etf else SELL_OFF_TITLE
    await interaction.followup.send(embed=chart_embed(drawn.chart, title, file), file=file)


# --- coin autocomplete -----------------------------------------------------------------------


def matching_coins(
    coins: list[CoinMarket], typed: str, limit: int = AUTOCOMPLETE_LIMIT
) -> list[CoinMarket]:
    """Coins whose symbol, id or name starts with what was typed, by market-cap rank."""
    query = typed.strip().lower()
    found = [
        c
        for c in coins
        if len(c.id) <= CHOICE_LIMIT
        and (
            not query
            or c.symbol.lower().startswith(query)
            or c.id.lower().startswith(query)
            or c.name.lower().startswith(query)
        )
    ]
    return found[:limit]


async def coin_choices(interaction: Interaction, current: str) -> list[app_commands.Choice[str]]:
    """The coins the core knows now (no refresh: autocomplete must answer at once)."""
    coins = context_of(interaction).actions.explainer.coins()
    return [
        app_commands.Choice(name=f"{c.name} ({c.symbol.upper()})"[:CHOICE_LIMIT], value=c.id)
        for c in matching_coins(coins, current)
    ]


ETF_CHOICE = app_commands.Choice(name="Spot-Bitcoin-ETF flows (etf)", value=ETF)


async def subject_choices(interaction: Interaction, current: str) -> list[app_commands.Choice[str]]:
    """/chart's subject: "etf" first when it fits what was typed, then the coins."""
    etf = [ETF_CHOICE] if ETF.startswith(current.strip().lower()) else []
    return (etf + await coin_choices(interaction, current))[:AUTOCOMPLETE_LIMIT]
