"""Facts about a Discord channel the commands need: which channel a command is about, whether the
member may manage its alerts, and whether the bot can post an alert there.

Each check refuses with bot.actions.NotAllowed, which the front-end's one error handler answers.
"""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands

from bot.actions import NotAllowed, Target

_POST_PERMISSIONS = {"view_channel": "View Channel", "embed_links": "Embed Links"}
_SEND_PERMISSION = ("send_messages", "Send Messages")
_SEND_IN_THREAD_PERMISSION = ("send_messages_in_threads", "Send Messages in Threads")
_CHART_PERMISSION = ("attach_files", "Attach Files")  # alerts carry their chart as a file

Channel = discord.abc.GuildChannel | discord.Thread


def here(interaction: discord.Interaction[Any]) -> Target:
    """The channel an interaction came from, as a place answers and subscriptions are kept for."""
    return Target("discord", str(interaction.channel_id))


def managed_channel(
    interaction: discord.Interaction[Any],
    channel: discord.TextChannel | None,
    *,
    postable: bool = False,
    charts: bool = False,
) -> tuple[Target, str]:
    """The channel a subscription command is about (this one by default), and how replies name
    it; refused unless the member may manage it and, with `postable`, the bot can post alerts
    (and, with `charts`, their chart) there."""
    if interaction.guild is None:
        raise NotAllowed("server_only")
    guild = interaction.guild
    resolved: Channel | None
    if channel is not None:
        resolved, where = guild.get_channel(channel.id), f"#{channel.name}"
    else:
        resolved, where = guild.get_channel_or_thread(interaction.channel_id or 0), "this channel"
    if resolved is None:
        raise NotAllowed("channel_refused", where, ["View Channel"])
    if not isinstance(resolved, discord.TextChannel | discord.Thread):
        raise NotAllowed("channel_unsupported", where)
    _require_manager(interaction, resolved, where)
    if postable:
        _require_postable(interaction, resolved, where, charts=charts)
    return Target("discord", str(resolved.id)), where


def option_refusal(error: app_commands.TransformerError) -> NotAllowed | None:
    """A channel option discord.py could not turn into a text channel: one of another type (a
    voice channel, a category), or one the bot cannot see; None for any other option."""
    if error.type is not discord.AppCommandOptionType.channel:
        return None
    value = error.value
    where = f"#{getattr(value, 'name', '')}"
    resolved = value.resolve() if hasattr(value, "resolve") else None
    if resolved is None:
        return NotAllowed("channel_refused", where, ["View Channel"])
    return NotAllowed("channel_unsupported", where)


def _require_manager(interaction: discord.Interaction[Any], target: Channel, where: str) -> None:
    """Enforced here too: a server can grant the command to members who lack the default."""
    member = interaction.user
    if target.id == interaction.channel_id:
        permissions = interaction.permissions
    elif isinstance(member, discord.Member):
        permissions = target.permissions_for(member)
    else:
        permissions = discord.Permissions.none()
    if not permissions.manage_channels:
        raise NotAllowed("admins_only", where)


def _bot_permissions(interaction: discord.Interaction[Any], target: Channel) -> discord.Permissions:
    """The bot's permissions in the channel: as Discord computed them for this interaction when it
    is this channel (the cache can be stale: the bot hears of no change to its own roles without
    the members intent), else from the cached channel."""
    if target.id == interaction.channel_id:
        return interaction.app_permissions
    assert interaction.guild is not None
    return target.permissions_for(interaction.guild.me)


def _require_postable(
    interaction: discord.Interaction[Any], target: Channel, where: str, *, charts: bool
) -> None:
    """Refuse a channel the bot could not post an alert and its chart in, naming what is missing."""
    send = _SEND_IN_THREAD_PERMISSION if isinstance(target, discord.Thread) else _SEND_PERMISSION
    needed = dict([*_POST_PERMISSIONS.items(), send])
    if charts:
        needed.update([_CHART_PERMISSION])
    permissions = _bot_permissions(interaction, target)
    missing = [label for name, label in needed.items() if not getattr(permissions, name)]
    if missing:
        raise NotAllowed("channel_refused", where, missing)
