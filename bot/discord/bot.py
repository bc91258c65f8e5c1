"""The Discord front-end: slash commands built from the registry, buttons, alerts, one error handler.

It stays thin: parse the interaction, call the core or the store, render with bot.commands.Replies
and explainers.render, reply. Slow answers are deferred first and sent as a follow-up; expected
refusals and every failure go through the tree's one `on_error`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from pydantic import SecretStr

from bot.alerts import AlertSettings
from bot.commands import Command, Replies, commands_for, parse_min_drivers
from bot.delivery import Notifier
from bot.discord.notifier import DiscordNotifier
from bot.discord.views import (
    ETF_SUBJECT,
    ChartButton,
    DiscordContext,
    DriversButton,
    RefreshButton,
    Refusal,
    context_of,
    report_error,
    send_chart,
    send_text,
    why_embed,
    why_view,
)
from bot.store import MIN_DRIVERS_HIGHEST, MIN_DRIVERS_LOWEST, Store
from explainers.collect import utcnow
from explainers.models import CoinMarket
from explainers.service import Explainer
from explainers.settings import Thresholds

if TYPE_CHECKING:  # the chart service pulls in matplotlib; only its type is needed here
    from explainers.chart_service import ChartMaker

log = logging.getLogger("whydown.discord")

PLATFORM = "discord"
AUTOCOMPLETE_LIMIT = 25  # Discord shows at most 25 choices
CHOICE_LIMIT = 100  # characters in a choice's name and value
HISTORY_LIMIT = 10
STOP_TIMEOUT_S = 10.0
# a long (> 30 s) per-route rate limit raises instead of stalling an alert worker
MAX_RATELIMIT_WAIT_S = 30.0

Interaction = discord.Interaction[Any]
Handler = Callable[..., Awaitable[None]]


def intents() -> discord.Intents:
    """Only the guilds intent (not privileged): channel and role cache for permission checks."""
    return discord.Intents(guilds=True)


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
    coins = context_of(interaction).explainer.coins()
    return [
        app_commands.Choice(name=f"{c.name} ({c.symbol.upper()})"[:CHOICE_LIMIT], value=c.id)
        for c in matching_coins(coins, current)
    ]


ETF_CHOICE = app_commands.Choice(name="Spot-Bitcoin-ETF flows (etf)", value=ETF_SUBJECT)


async def subject_choices(interaction: Interaction, current: str) -> list[app_commands.Choice[str]]:
    """/chart's subject: "etf" first when it fits what was typed, then the coins."""
    etf = [ETF_CHOICE] if ETF_SUBJECT.startswith(current.strip().lower()) else []
    return (etf + await coin_choices(interaction, current))[:AUTOCOMPLETE_LIMIT]


# --- permission checks -----------------------------------------------------------------------

_POST_PERMISSIONS = {"view_channel": "View Channel", "embed_links": "Embed Links"}
_SEND_PERMISSION = ("send_messages", "Send Messages")
_SEND_IN_THREAD_PERMISSION = ("send_messages_in_threads", "Send Messages in Threads")
_CHART_PERMISSION = ("attach_files", "Attach Files")  # alerts carry their chart as a file


def _require_guild(interaction: Interaction) -> discord.Guild:
    if interaction.guild is None:
        raise Refusal(context_of(interaction).replies.server_only())
    return interaction.guild


def _target(
    interaction: Interaction, guild: discord.Guild, channel: discord.TextChannel | None
) -> tuple[discord.abc.GuildChannel | discord.Thread, str]:
    """The channel a subscription command is about, and how replies name it."""
    replies = context_of(interaction).replies
    if channel is not None:
        resolved = guild.get_channel(channel.id)
        where = f"#{channel.name}"
    else:
        resolved = guild.get_channel_or_thread(interaction.channel_id or 0)
        where = "this channel"
    if resolved is None:
        raise Refusal(replies.channel_refused(where, ["View Channel"]))
    if not isinstance(resolved, discord.TextChannel | discord.Thread):
        raise Refusal(replies.channel_unsupported(where))
    return resolved, where


def _require_manager(
    interaction: Interaction, target: discord.abc.GuildChannel | discord.Thread
) -> None:
    """Enforced here too: a server can grant the command to members who lack the default."""
    member = interaction.user
    if target.id == interaction.channel_id:
        permissions = interaction.permissions
    elif isinstance(member, discord.Member):
        permissions = target.permissions_for(member)
    else:
        permissions = discord.Permissions.none()
    if not permissions.manage_channels:
        raise Refusal(context_of(interaction).replies.admins_only())


def _require_postable(
    interaction: Interaction,
    guild: discord.Guild,
    target: discord.abc.GuildChannel | discord.Thread,
    where: str,
) -> None:
    """Refuse a channel the bot could not post an alert and its chart in, naming what is missing."""
    send = _SEND_IN_THREAD_PERMISSION if isinstance(target, discord.Thread) else _SEND_PERMISSION
    needed = dict([*_POST_PERMISSIONS.items(), send])
    if context_of(interaction).charts is not None:
        needed.update([_CHART_PERMISSION])
    permissions = target.permissions_for(guild.me)
    missing = [label for name, label in needed.items() if not getattr(permissions, name)]
    if missing:
        raise Refusal(context_of(interaction).replies.channel_refused(where, missing))


# --- the commands ----------------------------------------------------------------------------
# Each handler's parameters are the registry's Discord arguments (checked in build_commands);
# names, descriptions and option descriptions come from bot.commands.COMMANDS.


async def why(interaction: Interaction, coin: str | None = None) -> None:
    """/why [coin]: the answer as an embed with Refresh, Drivers and Chart buttons."""
    context = context_of(interaction)
    await interaction.response.defer(thinking=True)  # a cold cache means a full refresh
    explanation = await context.explainer.explain(coin or None)
    await interaction.followup.send(
        embed=why_embed(context, explanation),
        view=why_view(explanation, chart=context.charts is not None),
    )


async def chart(interaction: Interaction, subject: str | None = None) -> None:
    """/chart [subject]: the sell-off or ETF chart attached to an embed."""
    context = context_of(interaction)
    if context.charts is None:  # nothing to draw with: say so at once, only to the asker
        await send_text(interaction, context.replies.chart_unavailable(), ephemeral=True)
        return
    await interaction.response.defer(thinking=True)  # prices and a render can take seconds
    await send_chart(interaction, subject)


async def drivers(interaction: Interaction) -> None:
    """/drivers: every driver's state, figure and threshold."""
    context = context_of(interaction)
    await interaction.response.defer(thinking=True)
    explanation = await context.explainer.explain()
    await send_text(interaction, context.replies.drivers(explanation))


async def history(interaction: Interaction) -> None:
    """/history: the last alerts."""
    context = context_of(interaction)
    alerts = context.store.recent_alerts(HISTORY_LIMIT)
    await send_text(interaction, context.replies.history(alerts))


async def status(interaction: Interaction) -> None:
    """/status: data age and each source's health (only to the asker)."""
    context = context_of(interaction)
    latest = context.explainer.latest  # never waits for a refresh: status must answer at once
    text = context.replies.status(
        latest.explanation if latest else None,
        context.store.subscription_counts(),
        context.clock(),
    )
    await send_text(interaction, text, ephemeral=True)


async def help_(interaction: Interaction) -> None:
    """/help: every command (only to the asker)."""
    await send_text(interaction, context_of(interaction).replies.help(), ephemeral=True)


async def settings(interaction: Interaction) -> None:
    """/settings: this channel's subscription (only to the asker)."""
    context = context_of(interaction)
    where = "this channel"
    sub = context.store.get_subscription(PLATFORM, str(interaction.channel_id), None)
    await send_text(interaction, context.replies.settings(sub, where), ephemeral=True)


async def subscribe(
    interaction: Interaction,
    channel: discord.TextChannel | None = None,
    min_drivers: app_commands.Range[int, MIN_DRIVERS_LOWEST, MIN_DRIVERS_HIGHEST] | None = None,
) -> None:
    """/subscribe [channel] [min_drivers]: alerts for a channel (Manage Channels only)."""
    context = context_of(interaction)
    guild = _require_guild(interaction)
    target, where = _target(interaction, guild, channel)
    _require_manager(interaction, target)
    _require_postable(interaction, guild, target, where)
    minimum = parse_min_drivers(min_drivers, context.alert_settings.default_min_drivers, PLATFORM)
    sub = context.store.subscribe(
        PLATFORM,
        str(target.id),
        None,
        minimum,
        subscribed_by=interaction.user.name,
        at=context.clock(),
    )
    log.info("subscribed channel %d in guild %d (min %d)", target.id, guild.id, minimum)
    await send_text(interaction, context.replies.subscribed(sub, where))


async def unsubscribe(interaction: Interaction, channel: discord.TextChannel | None = None) -> None:
    """/unsubscribe [channel]: stop a channel's alerts (Manage Channels only)."""
    context = context_of(interaction)
    guild = _require_guild(interaction)
    target, where = _target(interaction, guild, channel)
    _require_manager(interaction, target)
    found = context.store.unsubscribe(PLATFORM, str(target.id), None)
    log.info("unsubscribed channel %d in guild %d (was subscribed: %s)", target.id, guild.id, found)
    await send_text(interaction, context.replies.unsubscribed(found, where))


HANDLERS: dict[str, Handler] = {
    "why": why,
    "drivers": drivers,
    "chart": chart,
    "history": history,
    "status": status,
    "help": help_,
    "settings": settings,
    "subscribe": subscribe,
    "unsubscribe": unsubscribe,
}
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
    if spec.admin_only:
        # a hint Discord uses to hide the command; _require_manager enforces it
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
        self.add_dynamic_items(RefreshButton, DriversButton, ChartButton)
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

    def __init__(
        self,
        *,
        token: SecretStr,
        explainer: Explainer,
        store: Store,
        thresholds: Thresholds,
        alert_settings: AlertSettings,
        guild_id: int | None = None,
        clock: Callable[[], datetime] = utcnow,
        charts: ChartMaker | None = None,
    ) -> None:
        self._token = token
        replies = Replies(
            PLATFORM,
            "markdown",
            default_cooldown_s=alert_settings.cooldown_s,
            thresholds=thresholds,
        )
        self.context = DiscordContext(
            explainer=explainer,
            store=store,
            replies=replies,
            thresholds=thresholds,
            alert_settings=alert_settings,
            clock=clock,
            charts=charts,
        )
        self.client: discord.Client = WhydownClient(self.context, guild_id=guild_id)
        self.notifier: Notifier = DiscordNotifier(self.client, replies, thresholds, charts)
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
