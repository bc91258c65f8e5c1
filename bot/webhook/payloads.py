"""What a webhook receives: the body for its kind of endpoint, and the signature headers.

Generic endpoints get the Explanation as JSON, exactly as `whydown why --json` prints it (minus
the indentation), with ``X-Whydown-Event`` (alert or eased), ``X-Whydown-Alert-Id``,
``X-Whydown-Timestamp`` (Unix seconds) and, when the subscription has a secret,
``X-Whydown-Signature: sha256=<hex>``: HMAC-SHA256 with the secret over ``f"{timestamp}.{body}"``.
Slack (hooks.slack.com) gets Block Kit blocks; Discord (discord.com/api/webhooks/) an embed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from bot.commands import Replies
from bot.delivery import AlertMessage
from explainers import render
from explainers.settings import Thresholds

TIMESTAMP_HEADER = "X-Whydown-Timestamp"
SIGNATURE_HEADER = "X-Whydown-Signature"
EVENT_HEADER = "X-Whydown-Event"
ALERT_ID_HEADER = "X-Whydown-Alert-Id"

Kind = Literal["json", "slack", "discord"]

# Slack: a section's text holds at most 3,000 characters, a header's 150
_SLACK_SECTION = 3000
_DISCORD_HOSTS = {"discord.com", "discordapp.com", "ptb.discord.com", "canary.discord.com"}
_TEXT = Replies(None, "text")
_MARKDOWN = Replies(None, "markdown")


def validate_url(url: str) -> str:
    """The URL if it is an absolute http(s) URL with a host; ValueError otherwise."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("a webhook URL must be an absolute http:// or https:// URL")
    if parts.username or parts.password:
        raise ValueError("a webhook URL must not carry a user name or password")
    return parts.geturl()


def describe_url(url: str) -> str:
    """The URL safe to show and log: scheme, host and first path segment. Slack and Discord
    webhook URLs carry their secret in the path, so the rest is left out."""
    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/") if s]
    shown = f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"
    if segments:
        shown += f"/{segments[0]}"
        if len(segments) > 1 or parts.query:
            shown += "/…"
    return shown


def kind_of(url: str) -> Kind:
    """Which payload the endpoint understands."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if host == "hooks.slack.com":
        return "slack"
    if host in _DISCORD_HOSTS and parts.path.startswith("/api/webhooks/"):
        return "discord"
    return "json"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value: ``sha256=`` and the HMAC-SHA256 of ``{timestamp}.{body}``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


@dataclass(frozen=True)
class Payload:
    """A request body and its headers."""

    kind: Kind
    body: bytes
    headers: dict[str, str]


def _intro(message: AlertMessage, replies: Replies) -> str:
    e = message.explanation
    return replies.eased(e) if message.kind == "eased" else replies.alert_intro(e)


def _slack(message: AlertMessage, thresholds: Thresholds) -> dict[str, Any]:
    intro = _intro(message, _TEXT)
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "plain_text", "text": intro[:_SLACK_SECTION]}}
    ]
    if message.kind == "alert":
        answer = render.text(message.explanation, thresholds).strip()
        blocks.append(
            {"type": "section", "text": {"type": "plain_text", "text": answer[:_SLACK_SECTION]}}
        )
    return {"text": intro, "blocks": blocks}


def _discord(message: AlertMessage, thresholds: Thresholds) -> dict[str, Any]:
    return {
        "content": _intro(message, _MARKDOWN),
        "embeds": [render.discord_embed(message.explanation, thresholds)],
        "allowed_mentions": {"parse": []},
    }


def payload(
    message: AlertMessage, url: str, thresholds: Thresholds, *, secret: str | None, now: int
) -> Payload:
    """The request for one alert to one endpoint, signed with `secret` at Unix time `now`."""
    kind = kind_of(url)
    if kind == "slack":
        body = json.dumps(_slack(message, thresholds)).encode()
    elif kind == "discord":
        body = json.dumps(_discord(message, thresholds)).encode()
    else:
        body = message.explanation.model_dump_json().encode()
    headers = {
        "Content-Type": "application/json",
        EVENT_HEADER: message.kind,
        ALERT_ID_HEADER: str(message.alert_id),
        TIMESTAMP_HEADER: str(now),
    }
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, now, body)
    return Payload(kind, body, headers)
