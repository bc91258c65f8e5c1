"""What the Discord front-end shows: the /why answer with its buttons, text replies, error replies.

The buttons are `DynamicItem`s: their state (the coin) lives in the custom_id, so they keep working
on old messages and after a restart, with nothing kept in memory per message.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

import discord
from discord import app_commands

from bot.alerts import AlertSettings
from bot.commands import Replies, UsageError
from bot.discord_notifier import alert_embed
from bot.store import Store
from explainers.errors import CoinDataUnavailable, UnknownCoin
from explainers.models import Explanation
from explainers.service import Explainer
from explainers.settings import Thresholds

log = logging.getLogger("whydown.discord")

MESSAGE_LIMIT = 2000
CUSTOM_ID_LIMIT = 100
REFRESH_EVERY = timedelta(seconds=30)
_THROTTLE_KEEP = 1024  # channels remembered before old entries are pruned
# CoinGecko ids are lowercase words joined by "-"; the custom_id is the button's only state
REFRESH_ID = re.compile(r"whydown:refresh:(?P<coin>[a-z0-9._-]*)")
DRIVERS_ID = "whydown:drivers"


class RefreshThrottle:
    """At most one refresh per channel per `every`: the buttons cannot drive upstream traffic."""

    def __init__(self, every: timedelta = REFRESH_EVERY) -> None:
        self.every = every
        self._last: dict[int, datetime] = {}

    def acquire(self, channel_id: int, now: datetime) -> int | None:
        """Take the channel's refresh slot (None), or the whole seconds left to wait."""
        last = self._last.get(channel_id)
        if last is not None and now - last < self.every:
            return max(1, math.ceil((self.every - (now - last)).total_seconds()))
        self._last[channel_id] = now
        if len(self._last) > _THROTTLE_KEEP:
            self._last = {k: t for k, t in self._last.items() if now - t < self.every}
        return None


@dataclass
class DiscordContext:
    """Everything a command or button needs, reachable from any interaction's client."""

    explainer: Explainer
    store: Store
    replies: Replies
    thresholds: Thresholds
    alert_settings: AlertSettings
    clock: Callable[[], datetime]
    throttle: RefreshThrottle = field(default_factory=RefreshThrottle)


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


def why_view(explanation: Explanation) -> discord.ui.View:
    """The Refresh and Drivers buttons under a /why answer."""
    view = discord.ui.View(timeout=None)
    coin = explanation.coin.id if explanation.coin else ""
    if refresh_custom_id(coin) is not None:
        view.add_item(RefreshButton(coin))
    view.add_item(DriversButton())
    return view


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
    wait = context.throttle.acquire(interaction.channel_id or 0, context.clock())
    if wait is not None:
        every = int(context.throttle.every.total_seconds())
        await send_text(interaction, context.replies.refresh_throttled(wait, every), ephemeral=True)
        return
    await interaction.response.defer()  # acknowledged as "updating this message"
    explanation = await context.explainer.explain(coin or None)
    await interaction.edit_original_response(
        embed=why_embed(context, explanation), view=why_view(explanation)
    )


async def show_drivers(interaction: discord.Interaction[Any]) -> None:
    """Every driver, only for the user who asked."""
    context = context_of(interaction)
    await interaction.response.defer(ephemeral=True, thinking=True)
    explanation = await context.explainer.explain()
    await send_text(interaction, context.replies.drivers(explanation), ephemeral=True)


def refresh_custom_id(coin: str) -> str | None:
    """The Refresh button's custom_id for a coin, or None when the id cannot carry it."""
    custom_id = f"whydown:refresh:{coin}"
    if len(custom_id) > CUSTOM_ID_LIMIT or not REFRESH_ID.fullmatch(custom_id):
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
                custom_id=f"whydown:refresh:{coin}",
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
