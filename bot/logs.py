"""Logging set-up: readable lines, quiet HTTP libraries, and secrets scrubbed from every record."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from pydantic import SecretStr

REDACTED = "[redacted]"
# these log every request URL at INFO; Telegram's URLs contain the bot token
NOISY = ("httpx", "httpcore", "apscheduler.executors.default", "discord.gateway")


class SecretFilter(logging.Filter):
    """Replaces every configured secret in a record's final message (args included)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        text = record.exc_text or ""
        for secret in self.secrets:
            message = message.replace(secret, REDACTED)
            text = text.replace(secret, REDACTED)
        record.msg, record.args = message, None
        if record.exc_text:
            record.exc_text = text
        return True


def configure(level: str | int, secrets: Iterable[SecretStr | None] = ()) -> None:
    """Root logging to stderr with every secret scrubbed, whichever library logs it."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(SecretFilter(s.get_secret_value() for s in secrets if s is not None))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in NOISY:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
