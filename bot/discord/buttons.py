"""The buttons under a Discord /why answer: Refresh, Details, Drivers and Chart, and what a click
on each does.

The buttons are `DynamicItem`s: their state (the coin) lives in the custom_id, so they keep working
on old messages and after a restart, with nothing kept in memory per message.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import ClassVar, Self

import discord

from bot.discord.channels import here
from bot.discord.interactions import (
    DiscordContext,
    Interaction,
    context_of,
    report_error,
    send_text,
)
from bot.discord.views import send_chart, why_embed
from explainers.models import Explanation

CUSTOM_ID_LIMIT = 100
# CoinGecko ids are lowercase words joined by "-"; the custom_id is the button's only state
_COIN = r"(?P<coin>[a-z0-9._-]*)"
REFRESH_PREFIX = "whydown:refresh:"
CHART_PREFIX = "whydown:chart:"
DRIVERS_ID = "whydown:drivers"
DETAILS_PREFIX = "whydown:details:"


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
        full = context.actions.full_answers(here(interaction))
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
