"""Building a small Discord server in simcord, and reading what the bot sent."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import discord
import simcord

from bot.store import Subscription
from tests.alert_fakes import START


@dataclass
class Server:
    """One guild with a channel, a plain member and a member who may manage channels."""

    guild: simcord.GuildHandle
    channel: simcord.ChannelHandle
    member: simcord.MemberActor
    manager: simcord.MemberActor


def server(env: simcord.Env) -> Server:
    guild = env.create_guild("Traders")
    channel = guild.create_text_channel("markets")
    mods = guild.create_role("Mods", permissions=discord.Permissions(manage_channels=True))
    member = guild.add_member(env.create_user("alice"))
    manager = guild.add_member(env.create_user("mod"), roles=[mods])
    return Server(guild, channel, member, manager)


def button_labels(components: list[dict[str, Any]]) -> list[str]:
    return [item["label"] for row in components for item in row.get("components", [])]


def requests_to(env: simcord.Env, method: str, fragment: str) -> list[simcord.HttpLogEntry]:
    return [r for r in env.http_requests if r.method == method and fragment in r.path]


def deferrals(env: simcord.Env) -> list[simcord.HttpLogEntry]:
    """Interaction callbacks of type 5: 'the bot is thinking', answered later by a follow-up."""
    return [
        r
        for r in requests_to(env, "POST", "/callback")
        if isinstance(r.json, dict) and r.json.get("type") == 5
    ]


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(png: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk, which always comes first."""
    assert png[:8] == PNG_SIGNATURE
    assert png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def subscription_to(channel_id: int) -> Subscription:
    """An active subscription row for a channel, for sending through the notifier directly."""
    return Subscription(
        id=1,
        platform="discord",
        chat_id=str(channel_id),
        min_drivers=3,
        subscribed_by="mod",
        subscribed_at=START,
        active=True,
        consecutive_failures=0,
    )
