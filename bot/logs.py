"""Logging set-up: readable lines, quiet HTTP libraries, and secrets scrubbed from every record."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from pydantic import SecretStr

REDACTED = "[redacted]"
# these log every request URL at INFO; Telegram's URLs contain the bot token
NOISY = ("httpx", "httpcore", "apscheduler.executors.default", "discord.gateway")

_BASE_FACTORY = logging.getLogRecordFactory()


def _scrubbing_factory(secrets: list[str]) -> Any:
    """A record factory that removes secrets as records are made, so every handler (ours, a
    library's, a test runner's) only ever sees the scrubbed text."""

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = _BASE_FACTORY(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:
            # a malformed call (log.info("%d", "x")) must not raise at the caller: the record
            # stays as it is, and the handler reports it as logging always does
            return record
        if any(secret in message for secret in secrets):
            for secret in secrets:
                message = message.replace(secret, REDACTED)
            record.msg, record.args = message, None
        if record.exc_info:
            # format the traceback now (handlers reuse exc_text) so it can be scrubbed too
            text = logging.Formatter().formatException(record.exc_info)
            for secret in secrets:
                text = text.replace(secret, REDACTED)
            record.exc_text = text
        return record

    return factory


def configure(level: str | int, secrets: Iterable[SecretStr | None] = ()) -> None:
    """Root logging to stderr with every secret scrubbed, whichever library logs it."""
    values = sorted(
        {s.get_secret_value() for s in secrets if s is not None} - {""}, key=len, reverse=True
    )
    logging.setLogRecordFactory(_scrubbing_factory(values) if values else _BASE_FACTORY)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in NOISY:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
