"""Posting alerts to Discord channels, with discord.py's errors translated into the delivery tree.

Pacing is the alert engine's (bot.pacing.DISCORD_LIMITS); this module sends one message and says
how it failed: a channel that is gone or forbidden is permanent (the engine deactivates it after
enough of those), a 429 carries its wait, and 5xx or network trouble is transient. The alert's
chart rides on its embed when one exists for the alert's data; a chart problem never fails a send.
"""

from __future__ import annotations

import io
import logging
import re
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:  # the chart service pulls in matplotlib; only its types are needed here
    from explainers.chart_service import Chart, ChartMaker

log = logging.getLogger("whydown.discord")

# when a 429 reaches us without a Retry-After header (Discord always sends one; proxies may not)
DEFAULT_RETRY_AFTER_S = 5.0
# an alert waits this long for its chart at most, then goes out with the embed alone
CHART_WAIT_S = 20.0
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]")
# Discord's JSON error code for a 403 that a missing permission (Attach Files, say) caused; a
# 403 with another code (50001 Missing Access: the bot cannot see the channel) is final at once
MISSING_PERMISSIONS = 50013


def alert_embed(
    explanation: Explanation, thresholds: Thresholds, *, full: bool = False
) -> discord.Embed:
    """The answer as a Discord embed, within every embed limit: compact (as alerts go out) or
    full."""
    return discord.Embed.from_dict(render.discord_embed(explanation, thresholds, full=full))


def attachment_name(filename: str) -> str:
    """A filename that `attachment://` references accept: letters, digits, ".", "_", "-"."""
    name = _UNSAFE_FILENAME.sub("_", filename) or "chart"
    return name if name.lower().endswith(".png") else f"{name}.png"


def chart_file(chart: Chart) -> discord.File:
    """The chart's PNG as an upload; a new one per send, since discord.py closes it after."""
    return discord.File(io.BytesIO(chart.png), filename=attachment_name(chart.filename))


def show_image(embed: discord.Embed, file: discord.File) -> discord.Embed:
    """Point the embed's image at the file uploaded with the same message."""
    return embed.set_image(url=f"attachment://{file.filename}")


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
    """Sends an alert (intro line + embed, with the chart when there is one) to a channel."""

    platform = "discord"

    def __init__(
        self,
        client: discord.Client,
        replies: Replies,
        thresholds: Thresholds,
        charts: ChartMaker | None = None,
    ) -> None:
        self._client = client
        self._replies = replies
        self._thresholds = thresholds
        self._charts = charts

    def text(self, message: AlertMessage) -> str:
        """The line above the embed: the alert's intro, or the pressure-eased note."""
        if message.kind == "eased":
            return self._replies.eased(message.explanation)
        return self._replies.alert_intro(message.explanation)

    async def _chart_for(self, explanation: Explanation) -> Chart | None:
        """The chart of exactly this alert's data, or None (the chart service logs why)."""
        if self._charts is None:
            return None
        try:
            return await self._charts.for_alert(explanation, timeout_s=CHART_WAIT_S)
        except Exception:  # it should never raise; if it does, the alert still goes out
            log.exception("alert sent without its chart: unexpected failure")
            return None

    async def _post(
        self,
        channel: discord.PartialMessageable,
        message: AlertMessage,
        embed: discord.Embed,
        file: discord.File | None,
    ) -> None:
        await channel.send(
            self.text(message),
            embed=embed,
            file=file if file is not None else discord.utils.MISSING,  # send()'s default: no upload
            allowed_mentions=discord.AllowedMentions.none(),
        )

    async def send(self, subscription: Subscription, message: AlertMessage) -> None:
        """Post the message; raise a DeliveryError subtype when it could not be posted."""
        try:
            channel_id = int(subscription.chat_id)
        except ValueError as err:
            raise PermanentDeliveryError("not a Discord channel id") from err
        # a partial channel needs no cache: the bot may not have the guild cached after a restart
        channel = self._client.get_partial_messageable(channel_id)
        embed = alert_embed(message.explanation, self._thresholds)
        chart = await self._chart_for(message.explanation)
        file = chart_file(chart) if chart is not None else None
        if file is not None:
            show_image(embed, file)
        try:
            try:
                await self._post(channel, message, embed, file)
            except discord.Forbidden as err:
                if file is None or err.code != MISSING_PERMISSIONS:
                    raise
                # a channel without Attach Files still takes the alert: once more, embed only
                log.warning(
                    "alert chart refused in channel %d; sending the embed alone", channel_id
                )
                embed.set_image(url=None)
                await self._post(channel, message, embed, None)
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
