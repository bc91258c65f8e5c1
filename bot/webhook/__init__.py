"""Webhook alerts: a third platform whose "chats" are HTTP(S) endpoints.

A webhook subscription's chat id is its URL. Generic endpoints receive the alert's Explanation as
JSON (docs/explanation.schema.json), signed with the subscription's secret when it has one;
Slack and Discord webhook URLs receive their native payloads. Delivery goes through the same
outbox, pacing, retries and deactivation as the chats.
"""

from bot.webhook.payloads import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Payload,
    describe_url,
    payload,
    sign,
    validate_url,
)

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "Payload",
    "describe_url",
    "payload",
    "sign",
    "validate_url",
]
