"""What the Discord front-end shows: the /why answer with its buttons, charts, and the choices
autocomplete offers.

The buttons are `DynamicItem`s: their state (the coin) lives in the custom_id, so they keep working
on old messages and after a restart, with nothing kept in memory per message.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, Self

import discord
from discord import app_commands

from bot.actions import ETF, Drawn, Target
from bot.discord.interactions import (
    DiscordContext,
    Interaction,
    context_of,
    report_error,
    send_text,
)
from bot.discord.notifier import alert_embed, chart_file, show_image
from explainers.models import CoinMarket, Explanation
from explainers.render import escape_markdown

if TYPE_CHECKING:  # the chart service pulls in matplotlib; only its types are needed here
    from explainers.chart_service import Chart

EMBED_DESCRIPTION_LIMIT = 4096
AUTOCOMPLETE_LIMIT = 25  # Discord shows at most 25 choices
CHOICE_LIMIT = 100  # characters in a choice's name and value
CUSTOM_ID_LIMIT = 100
# CoinGecko ids are lowercase words joined by "-"; the custom_id is the button's only state
_COIN = r"(?P<coin>[a-z0-9._-]*)"
REFRESH_PREFIX = "whydown:refresh:"
CHART_PREFIX = "whydown:chart:"
DRIVERS_ID = "whydown:drivers"
DETAILS_PREFIX = "whydown:details:"
SELL_OFF_TITLE = "The sell-off, last 24 hours"
ETF_TITLE = "Spot-Bitcoin-ETF net flows"


# --- sending ---------------------------------------------------------------------------------


def why_embed(
    context: DiscordContext, explanation: Explanation, *, full: bool = False
) -> discord.Embed:
    """The answer: compact (the summary, a line per firing driver) or full (every figure)."""
    return alert_embed(explanation, context.actions.thresholds, full=full)


def why_view(
    explanation: Explanation, *, chart: bool = False, full: bool = False
) -> discord.ui.View:
    """The Refresh, Details (under a compact answer) and Drivers buttons under a /why answer,
    and Chart when charts are on."""
    view = discord.ui.View(timeout=None)
    coin = explanation.coin.id if explanation.coin else ""
    if coin_custom_id(REFRESH_PREFIX, coin) is not None:
        view.add_item(RefreshButton(coin))
    if not full and coin_custom_id(DETAILS_PREFIX, coin) is not None:
        view.add_item(DetailsButton(coin))
    view.add_item(DriversButton())
    if chart and coin_custom_id(CHART_PREFIX, coin) is not None:
        view.add_item(ChartButton(coin))
    return view


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


# --- the buttons -----------------------------------------------------------------------------


def coin_custom_id(prefix: str, coin: str) -> str | None:
    """A coin button's custom_id, or None when the id cannot carry the coin."""
    custom_id = f"{prefix}{coin}"
    if len(custom_id) > CUSTOM_ID_LIMIT or not re.fullmatch(_COIN, coin):
        return None
    return custom_id


class AnswerButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]], template=re.compile("(?!)")
):
    """A button under a /why answer. Its only state, the answer's coin ("" for the market), is in
    its custom_id after PREFIX; a subclass says what a click does in `act`."""

    PREFIX: ClassVar[str]
    LABEL: ClassVar[str]
    STYLE: ClassVar[discord.ButtonStyle] = discord.ButtonStyle.secondary

    def __init__(self, coin: str = "") -> None:
        button: discord.ui.Button[discord.ui.View] = discord.ui.Button(
            label=self.LABEL, style=self.STYLE, custom_id=f"{self.PREFIX}{coin}"
        )
        super().__init__(button)
        self.coin = coin

    @classmethod
    async def from_custom_id(
        cls,
        interaction: Interaction,
        item: discord.ui.Item[discord.ui.View],
        match: re.Match[str],
        /,
    ) -> Self:
        return cls(match.groupdict().get("coin") or "")

    async def callback(self, interaction: Interaction) -> None:
        try:
            await self.act(interaction, context_of(interaction))
        except Exception as err:  # the tree's handler does not see component callbacks
            await report_error(interaction, err)

    async def act(self, interaction: Interaction, context: DiscordContext) -> None:
        raise NotImplementedError

    async def too_soon(
        self, interaction: Interaction, context: DiscordContext, notice: Callable[[int, int], str]
    ) -> bool:
        """At most one click per channel and button per 30 s; a later one gets the wait."""
        wait = context.throttle.take((interaction.channel_id, self.PREFIX), context.actions.clock())
        if wait:
            await send_text(interaction, notice(wait, context.throttle.period_s), ephemeral=True)
        return wait > 0


class RefreshButton(AnswerButton, template=re.escape(REFRESH_PREFIX) + _COIN):
    """Re-runs the answer it sits under and edits the message in place."""

    PREFIX, LABEL = REFRESH_PREFIX, "Refresh"

    async def act(self, interaction: Interaction, context: DiscordContext) -> None:
        if await self.too_soon(interaction, context, context.replies.refresh_throttled):
            return
        await interaction.response.defer()  # acknowledged as "updating this message"
        explanation = await context.actions.why(self.coin)
        full = context.actions.full_answers(Target("discord", str(interaction.channel_id)))
        await interaction.edit_original_response(
            embed=why_embed(context, explanation, full=full),
            view=why_view(explanation, chart=context.actions.charts is not None, full=full),
        )


class DetailsButton(AnswerButton, template=re.escape(DETAILS_PREFIX) + _COIN):
    """Shows the full answer (every figure with its source and time, headlines, context) to the
    one user who clicked, as of the latest refresh: the channel keeps the compact one."""

    PREFIX, LABEL = DETAILS_PREFIX, "Details"

    async def act(self, interaction: Interaction, context: DiscordContext) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        explanation = await context.actions.latest(self.coin)
        await interaction.followup.send(
            embed=why_embed(context, explanation, full=True), ephemeral=True
        )


class DriversButton(AnswerButton, template=re.escape(DRIVERS_ID)):
    """Shows every driver's state to the one user who clicked."""

    PREFIX, LABEL, STYLE = DRIVERS_ID, "Drivers", discord.ButtonStyle.primary

    async def act(self, interaction: Interaction, context: DiscordContext) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        explanation = await context.actions.drivers()
        await send_text(interaction, context.replies.drivers(explanation), ephemeral=True)


class ChartButton(AnswerButton, template=re.escape(CHART_PREFIX) + _COIN):
    """Posts the chart of the answer it sits under."""

    PREFIX, LABEL = CHART_PREFIX, "Chart"

    async def act(self, interaction: Interaction, context: DiscordContext) -> None:
        # an old answer's button: charts may be off now, or its coin gone from the market data;
        # refused before the public "thinking…", which whatever follows would replace
        context.actions.check_chart(self.coin)
        if await self.too_soon(interaction, context, context.replies.button_throttled):
            return
        await interaction.response.defer(thinking=True)
        await send_chart(interaction, await context.actions.chart(self.coin))
