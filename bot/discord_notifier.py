"""Posting alerts to Discord channels, with discord.py's errors translated into the delivery tree.

Pacing is the alert engine's (bot.pacing.DISCORD_LIMITS); this module sends one message and says
how it failed: a channel that is gone or forbidden is permanent (the engine deactivates it after
enough of those), a 429 carries its wait, and 5xx or network trouble is transient.
"""

from __future__ import annotations

import aiohttp
import discord

from bot.commands import Replies
from bot.delivery import (
    AlertMessage,
    PermanentDeliveryError,
    RetryAfter,
    TransientDeliveryError,
)
from bot.store import Subscription
from explainers import render
from explainers.models import Explanation
from explainers.settings import Thresholds

# when a 429 reaches us without a Retry-After header (Discord always sends one; proxies may not)
DEFAULT_RETRY_AFTER_S = 5.0


def alert_embed(explanation: Explanation, thresholds: Thresholds) -> discord.Embed:
    """The answer as a Discord embed, within every embed limit."""
    return discord.Embed.from_dict(render.discord_embed(explanation, thresholds))


def _describe(err: discord.HTTPException) -> str:
    # Discord's own error text names the problem ("Unknown Channel") and never carries the token
    text = f"discord {err.status} (code {err.code})"
    return f"{text}: {err.text}" if err.text else text


def _retry_after(err: discord.HTTPException) -> tuple[float, bool]:
    headers = getattr(err.response, "headers", None) or {}
    try:
        seconds = float(headers.get("Retry-After", DEFAULT_RETRY_AFTER_S))
    except ValueError:
        seconds = DEFAULT_RETRY_AFTER_S
    platform_wide = (
        str(headers.get("X-RateLimit-Global", "")).lower() == "true"
        or headers.get("X-RateLimit-Scope") == "global"
    )
    return seconds, platform_wide


class DiscordNotifier:
    """Sends an alert (intro line + embed) to the subscription's channel."""

    platform = "discord"

    def __init__(self, client: discord.Client, replies: Replies, thresholds: Thresholds) -> None:
        self._client = client
        self._replies = replies
        self._thresholds = thresholds

    def text(self, message: AlertMessage) -> str:
        """The line above the embed: the alert's intro, or the pressure-eased note."""
        if message.kind == "eased":
            return self._replies.eased(message.explanation)
        return self._replies.alert_intro(message.explanation)

    async def send(self, subscription: Subscription, message: AlertMessage) -> None:
        """Post the message; raise a DeliveryError subtype when it could not be posted."""
        try:
            channel_id = int(subscription.chat_id)
        except ValueError as err:
            raise PermanentDeliveryError("not a Discord channel id") from err
        # a partial channel needs no cache: the bot may not have the guild cached after a restart
        channel = self._client.get_partial_messageable(channel_id)
        try:
            await channel.send(
                self.text(message),
                embed=alert_embed(message.explanation, self._thresholds),
                allowed_mentions=discord.AllowedMentions.none(),
            )
        except discord.RateLimited as err:
            # discord.py waits out short limits itself; it raises this for one longer than the
            # client's max_ratelimit_timeout, which is per route, not global
            raise RetryAfter(err.retry_after) from err
        except (discord.Forbidden, discord.NotFound) as err:
            raise PermanentDeliveryError(_describe(err)) from err
        except discord.DiscordServerError as err:
            raise TransientDeliveryError(_describe(err)) from err
        except discord.HTTPException as err:
            if err.status == 429:
                seconds, platform_wide = _retry_after(err)
                raise RetryAfter(seconds, platform_wide=platform_wide) from err
            # any other 4xx is our request's fault, not the channel's: it must not count toward
            # deactivating the subscription; the engine retries it a bounded number of times
            raise TransientDeliveryError(_describe(err)) from err
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            raise TransientDeliveryError(f"discord: {type(err).__name__}") from err
