"""What the Discord front-end shows: the /why answer with its buttons, charts, text and error replies.

The buttons are `DynamicItem`s: their state (the coin) lives in the custom_id, so they keep working
on old messages and after a restart, with nothing kept in memory per message.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, cast

import discord
from discord import app_commands

from bot.alerts import AlertSettings
from bot.commands import Replies, UsageError
from bot.discord.notifier import alert_embed, chart_file, show_image
from bot.store import Store
from bot.throttle import Throttle
from explainers.errors import ChartUnavailable, CoinDataUnavailable, UnknownCoin
from explainers.models import Explanation
from explainers.render import escape_markdown
from explainers.service import Explainer
from explainers.settings import Thresholds

if TYPE_CHECKING:  # the chart service pulls in matplotlib; only its types are needed here
    from explainers.chart_service import Chart, ChartMaker

log = logging.getLogger("whydown.discord")

MESSAGE_LIMIT = 2000
EMBED_DESCRIPTION_LIMIT = 4096
CUSTOM_ID_LIMIT = 100
REFRESH_EVERY = timedelta(seconds=30)
# CoinGecko ids are lowercase words joined by "-"; the custom_id is the button's only state
_COIN = r"(?P<coin>[a-z0-9._-]*)"
REFRESH_PREFIX = "whydown:refresh:"
CHART_PREFIX = "whydown:chart:"
REFRESH_ID = re.compile(re.escape(REFRESH_PREFIX) + _COIN)
CHART_ID = re.compile(re.escape(CHART_PREFIX) + _COIN)
DRIVERS_ID = "whydown:drivers"
ETF_SUBJECT = "etf"
SELL_OFF_TITLE = "The sell-off, last 24 hours"
ETF_TITLE = "Spot-Bitcoin-ETF net flows"


@dataclass
class DiscordContext:
    """Everything a command or button needs, reachable from any interaction's client."""

    explainer: Explainer
    store: Store
    replies: Replies
    thresholds: Thresholds
    alert_settings: AlertSettings
    clock: Callable[[], datetime]
    throttle: Throttle = field(default_factory=lambda: Throttle(REFRESH_EVERY))
    charts: ChartMaker | None = None
    # its own throttle: a Chart click must not use up the channel's Refresh
    chart_throttle: Throttle = field(default_factory=lambda: Throttle(REFRESH_EVERY))


class HasContext(Protocol):
    context: DiscordContext


def context_of(interaction: discord.Interaction[Any]) -> DiscordContext:
    return cast(HasContext, interaction.client).context


class Refusal(app_commands.AppCommandError):
    """An expected refusal (not allowed here, a channel the bot can't use); str() is the reply."""


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


async def send_text(
    interaction: discord.Interaction[Any], text: str, *, ephemeral: bool = False
) -> None:
    """Answer with text: the response if none was sent yet, else follow-ups. Never twice."""
    for page in pages(text):
        if interaction.response.is_done():
            await interaction.followup.send(page, ephemeral=ephemeral)
        else:
            await interaction.response.send_message(page, ephemeral=ephemeral)


def why_embed(context: DiscordContext, explanation: Explanation) -> discord.Embed:
    return alert_embed(explanation, context.thresholds)


def why_view(explanation: Explanation, *, chart: bool = False) -> discord.ui.View:
    """The Refresh and Drivers buttons under a /why answer, and Chart when charts are on."""
    view = discord.ui.View(timeout=None)
    coin = explanation.coin.id if explanation.coin else ""
    if coin_custom_id(REFRESH_PREFIX, coin) is not None:
        view.add_item(RefreshButton(coin))
    view.add_item(DriversButton())
    if chart and coin_custom_id(CHART_PREFIX, coin) is not None:
        view.add_item(ChartButton(coin))
    return view


# --- charts ----------------------------------------------------------------------------------


def chart_embed(chart: Chart, title: str, file: discord.File) -> discord.Embed:
    """The chart as an embed image, its caption as the description."""
    embed = discord.Embed(
        title=escape_markdown(title),
        description=escape_markdown(chart.caption)[:EMBED_DESCRIPTION_LIMIT],
        timestamp=chart.data_time,
    )
    return show_image(embed, file)


async def send_chart(interaction: discord.Interaction[Any], subject: str | None) -> None:
    """Draw the chart for a coin, the market (None) or "etf", and send it as a follow-up.

    The interaction must be deferred already: a render can take longer than 3 s. A chart that
    cannot be drawn is answered with a short text; UnknownCoin goes to the error handler.
    """
    context = context_of(interaction)
    if context.charts is None:
        await send_text(interaction, context.replies.chart_unavailable())
        return
    wanted = (subject or "").strip()
    try:
        if wanted.lower() == ETF_SUBJECT:
            chart, title = await context.charts.etf(), ETF_TITLE
        else:
            chart, title = await context.charts.sell_off(wanted or None), SELL_OFF_TITLE
    except ChartUnavailable as err:
        log.warning("%s: no chart: %s", _where(interaction), err)
        await send_text(interaction, context.replies.chart_unavailable(str(err) or None))
        return
    file = chart_file(chart)
    await interaction.followup.send(embed=chart_embed(chart, title, file), file=file)


# --- the one error translation ---------------------------------------------------------------


def _expected_reply(replies: Replies, error: BaseException) -> str | None:
    """The reply for an anticipated failure, or None for a bug or an outage."""
    if isinstance(error, Refusal):
        return str(error)
    if isinstance(error, UnknownCoin):
        return replies.unknown_coin(error.query, error.suggestions)
    if isinstance(error, CoinDataUnavailable):
        return replies.coin_data_unavailable(str(error.args[0]) if error.args else "")
    if isinstance(error, UsageError):
        return str(error)
    if isinstance(error, app_commands.NoPrivateMessage):
        return replies.server_only()
    if isinstance(error, app_commands.MissingPermissions):
        return replies.admins_only()
    return None


def _where(interaction: discord.Interaction[Any]) -> str:
    if interaction.command is not None:
        what = f"/{interaction.command.qualified_name}"
    else:
        what = f"component {(interaction.data or {}).get('custom_id', '?')}"
    return (
        f"{what} (user {interaction.user.id}, guild {interaction.guild_id}, "
        f"channel {interaction.channel_id})"
    )


async def report_error(interaction: discord.Interaction[Any], error: BaseException) -> None:
    """Tell the user briefly (ephemeral where possible) and log the context; never the raw text."""
    context = context_of(interaction)
    original = error.original if isinstance(error, app_commands.CommandInvokeError) else error
    reply = _expected_reply(context.replies, original)
    if reply is None:
        log.error("%s failed", _where(interaction), exc_info=original)
        reply = context.replies.failed()
    else:
        log.info("%s answered with a refusal: %s", _where(interaction), type(original).__name__)
    try:
        await send_text(interaction, reply, ephemeral=True)
    except discord.HTTPException as err:
        # the interaction expired or the channel went away: nothing more to tell anyone
        log.warning("%s: could not send the error reply (HTTP %s)", _where(interaction), err.status)


# --- the buttons -----------------------------------------------------------------------------


async def refresh(interaction: discord.Interaction[Any], coin: str) -> None:
    """Re-run /why and edit the message in place, at most once per channel per 30 s."""
    context = context_of(interaction)
    wait = context.throttle.take(interaction.channel_id or 0, context.clock())
    if wait:
        every = context.throttle.period_s
        await send_text(interaction, context.replies.refresh_throttled(wait, every), ephemeral=True)
        return
    await interaction.response.defer()  # acknowledged as "updating this message"
    explanation = await context.explainer.explain(coin or None)
    await interaction.edit_original_response(
        embed=why_embed(context, explanation),
        view=why_view(explanation, chart=context.charts is not None),
    )


async def show_drivers(interaction: discord.Interaction[Any]) -> None:
    """Every driver, only for the user who asked."""
    context = context_of(interaction)
    await interaction.response.defer(ephemeral=True, thinking=True)
    explanation = await context.explainer.explain()
    await send_text(interaction, context.replies.drivers(explanation), ephemeral=True)


async def show_chart(interaction: discord.Interaction[Any], coin: str) -> None:
    """Post the chart of the answer the button sits under, at most once per channel per 30 s."""
    context = context_of(interaction)
    wait = context.chart_throttle.take(interaction.channel_id or 0, context.clock())
    if wait:
        every = context.chart_throttle.period_s
        await send_text(interaction, context.replies.button_throttled(wait, every), ephemeral=True)
        return
    await interaction.response.defer(thinking=True)
    await send_chart(interaction, coin or None)


def coin_custom_id(prefix: str, coin: str) -> str | None:
    """A coin button's custom_id, or None when the id cannot carry the coin."""
    custom_id = f"{prefix}{coin}"
    if len(custom_id) > CUSTOM_ID_LIMIT or not re.fullmatch(_COIN, coin):
        return None
    return custom_id


class RefreshButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]], template=REFRESH_ID
):
    """Re-runs the answer it sits under and edits the message."""

    def __init__(self, coin: str) -> None:
        super().__init__(
            discord.ui.Button(
                label="Refresh",
                style=discord.ButtonStyle.secondary,
                custom_id=f"{REFRESH_PREFIX}{coin}",
            )
        )
        self.coin = coin

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: Any,
        /,
    ) -> RefreshButton:
        return cls(match["coin"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        try:
            await refresh(interaction, self.coin)
        except Exception as err:  # the tree's handler does not see component callbacks
            await report_error(interaction, err)


class DriversButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]], template=re.escape(DRIVERS_ID)
):
    """Shows every driver's state to the one user who clicked."""

    def __init__(self) -> None:
        super().__init__(
            discord.ui.Button(
                label="Drivers", style=discord.ButtonStyle.primary, custom_id=DRIVERS_ID
            )
        )

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: Any,
        /,
    ) -> DriversButton:
        return cls()

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        try:
            await show_drivers(interaction)
        except Exception as err:  # the tree's handler does not see component callbacks
            await report_error(interaction, err)


class ChartButton(discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]], template=CHART_ID):
    """Posts the chart of the answer it sits under."""

    def __init__(self, coin: str) -> None:
        super().__init__(
            discord.ui.Button(
                label="Chart",
                style=discord.ButtonStyle.secondary,
                custom_id=f"{CHART_PREFIX}{coin}",
            )
        )
        self.coin = coin

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: Any,
        /,
    ) -> ChartButton:
        return cls(match["coin"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        try:
            await show_chart(interaction, self.coin)
        except Exception as err:  # the tree's handler does not see component callbacks
            await report_error(interaction, err)
