"""The Discord front-end: slash commands built from the registry, buttons, alerts, one error handler.

It stays thin: parse the interaction, call an action of bot.actions, render with
bot.commands.Replies and explainers.render, reply. Slow answers are deferred first and sent as a
follow-up; refused actions and every failure go through the tree's one `on_error`. The answers
(/why, /drivers, /chart, ...) are this module's; a channel's settings are in `settings`, past days
in `past`, and the buttons under an answer in `buttons`; all are registered here, in HANDLERS.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import discord
from discord import app_commands
from pydantic import SecretStr

from bot.actions import Actions
from bot.commands import Command, commands_for
from bot.delivery import Notifier
from bot.discord import past, settings
from bot.discord.buttons import ChartButton, DetailsButton, DriversButton, RefreshButton, why_view
from bot.discord.channels import here
from bot.discord.interactions import DiscordContext, context_of, report_error, send_text
from bot.discord.notifier import DiscordNotifier
from bot.discord.views import coin_choices, send_chart, subject_choices, why_embed
from bot.store import Platform

log = logging.getLogger("whydown.discord")

PLATFORM: Platform = "discord"
STOP_TIMEOUT_S = 10.0
# a long (> 30 s) per-route rate limit raises instead of stalling an alert worker
MAX_RATELIMIT_WAIT_S = 30.0

Interaction = discord.Interaction[Any]
Handler = Callable[..., Coroutine[Any, Any, None]]


def intents() -> discord.Intents:
    """Only the guilds intent (not privileged): channel and role cache for permission checks."""
    return discord.Intents(guilds=True)


# --- the commands ----------------------------------------------------------------------------
# Each handler's parameters are the registry's Discord arguments (checked in build_commands);
# names, descriptions and option descriptions come from bot.commands.COMMANDS.


async def why(interaction: Interaction, coin: str | None = None, date: str | None = None) -> None:
    """/why [coin] [date]: the answer as an embed (compact unless the channel chose full) with
    Refresh, Details, Drivers and Chart buttons; for a past day, the full answer as of its end,
    without buttons (they would answer about now)."""
    context = context_of(interaction)
    # a refusal must be known before the public "thinking…": what follows a defer replaces it
    # and so is seen by the whole channel, whatever its own ephemeral flag says
    context.actions.check_why(coin, date)
    await interaction.response.defer(thinking=True)  # a cold cache means a full refresh
    answer = await context.actions.why_answer(here(interaction), coin, date)
    embed = why_embed(context, answer.explanation, full=answer.full)
    if not answer.live:
        await interaction.followup.send(embed=embed)
        return
    chart = context.actions.charts is not None
    view = why_view(answer.explanation, chart=chart, full=answer.full)
    await interaction.followup.send(embed=embed, view=view)


async def chart(interaction: Interaction, subject: str | None = None) -> None:
    """/chart [subject]: the sell-off or ETF chart attached to an embed."""
    actions = context_of(interaction).actions
    actions.check_chart(subject)  # charts off or an unknown coin: said at once, only to the asker
    await interaction.response.defer(thinking=True)  # prices and a render can take seconds
    await send_chart(interaction, await actions.chart(subject))


async def drivers(interaction: Interaction) -> None:
    """/drivers: every driver's state, figure and threshold (only to the asker, as the button)."""
    context = context_of(interaction)
    await interaction.response.defer(ephemeral=True, thinking=True)
    explanation = await context.actions.drivers()
    await send_text(interaction, context.replies.drivers(explanation), ephemeral=True)


async def history(interaction: Interaction) -> None:
    """/history: the last alerts."""
    context = context_of(interaction)
    await send_text(interaction, context.replies.history(context.actions.history()))


async def status(interaction: Interaction) -> None:
    """/status: data age and each source's health (only to the asker)."""
    context = context_of(interaction)
    s = context.actions.status()
    text = context.replies.status(s.explanation, s.counts, s.now, s.storage)
    await send_text(interaction, text, ephemeral=True)


async def help_(interaction: Interaction) -> None:
    """/help: every command (only to the asker)."""
    await send_text(interaction, context_of(interaction).replies.help(), ephemeral=True)


HANDLERS: dict[str, Handler] = {
    "why": why,
    "drivers": drivers,
    "chart": chart,
    "history": history,
    "status": status,
    "help": help_,
    "settings": settings.settings,
    "subscribe": settings.subscribe,
    "unsubscribe": settings.unsubscribe,
    "preview": past.preview,
}
# subscriptions are per channel: Discord neither offers these in direct messages nor runs them there
SERVER_ONLY = frozenset({"subscribe", "unsubscribe", "settings"})
AUTOCOMPLETE: dict[tuple[str, str], Callable[..., Any]] = {
    ("why", "coin"): coin_choices,
    ("chart", "subject"): subject_choices,
}


def app_command(spec: Command) -> app_commands.Command[Any, ..., None]:
    """One slash command from its registry entry and its handler."""
    handler = HANDLERS[spec.name]
    command: app_commands.Command[Any, ..., None] = app_commands.Command(
        name=spec.name, description=spec.summary, callback=handler
    )
    arguments = spec.args_for(PLATFORM)
    parameters = {p.name for p in command.parameters}
    if parameters != {a.name for a in arguments}:
        raise TypeError(f"/{spec.name}: handler parameters {parameters} differ from the registry")
    app_commands.describe(**{a.name: a.description for a in arguments})(command)
    for (name, option), choices in AUTOCOMPLETE.items():
        if name == spec.name:
            command.autocomplete(option)(choices)
    if spec.name in SERVER_ONLY:
        app_commands.guild_only()(command)
    if spec.admin_only:
        # a hint Discord uses to hide the command; channels.managed_channel enforces it
        command.default_permissions = discord.Permissions(manage_channels=True)
    return command


def build_commands(tree: app_commands.CommandTree[Any]) -> None:
    """Add every Discord command of the registry to the tree."""
    for spec in commands_for(PLATFORM):
        tree.add_command(app_command(spec))


# --- client and tree -------------------------------------------------------------------------


class WhydownTree(app_commands.CommandTree["WhydownClient"]):
    """The command tree, with the front-end's one error handler."""

    async def on_error(self, interaction: Interaction, error: app_commands.AppCommandError) -> None:
        await report_error(interaction, error)


class WhydownClient(discord.Client):
    """A discord.Client with the slash commands, the persistent buttons and the shared context."""

    def __init__(self, context: DiscordContext, *, guild_id: int | None = None) -> None:
        super().__init__(
            intents=intents(),
            allowed_mentions=discord.AllowedMentions.none(),
            max_ratelimit_timeout=MAX_RATELIMIT_WAIT_S,
        )
        self.context = context
        self.guild_id = guild_id
        self.tree = WhydownTree(self)
        build_commands(self.tree)

    async def setup_hook(self) -> None:
        self.add_dynamic_items(RefreshButton, DetailsButton, DriversButton, ChartButton)
        if self.guild_id is not None:
            guild = discord.Object(self.guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
            log.info("synced %d commands to guild %d", len(synced), self.guild_id)
        else:
            synced = await self.tree.sync()
            log.info("synced %d commands globally", len(synced))


class DiscordFrontend:
    """The Discord bot as the runner sees it: start, stop, and a Notifier for alerts."""

    platform = PLATFORM

    def __init__(self, *, token: SecretStr, actions: Actions, guild_id: int | None = None) -> None:
        self._token = token
        replies = actions.replies(PLATFORM, "markdown")
        self.context = DiscordContext(actions=actions, replies=replies)
        self.client: discord.Client = WhydownClient(self.context, guild_id=guild_id)
        self.notifier: Notifier = DiscordNotifier(
            self.client, replies, actions.thresholds, actions.charts
        )
        self._gateway: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Log in (setup_hook syncs the commands), then keep the gateway connected in the background."""
        await self.client.login(self._token.get_secret_value())
        self._gateway = asyncio.create_task(self.client.connect(), name="discord-gateway")
        self._gateway.add_done_callback(_log_gateway_end)

    async def stop(self) -> None:
        """Close the connection and wait for the gateway task to end."""
        await self.client.close()
        if self._gateway is None:
            return
        _, pending = await asyncio.wait([self._gateway], timeout=STOP_TIMEOUT_S)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
        self._gateway = None


def _log_gateway_end(task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        # e.g. PrivilegedIntentsRequired or a revoked token: the rest of whydown keeps running
        log.error("the Discord connection ended: %s", type(error).__name__, exc_info=error)
