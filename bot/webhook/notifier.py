"""Posting alerts to webhook endpoints, with HTTP outcomes translated into the delivery tree.

Redirects are never followed (a 3xx is a permanent failure: the URL needs updating), every
request has a timeout, a 429 is honoured with its Retry-After for that endpoint alone, 5xx and
network trouble are retried with back-off, and 404, 410, 401 and 403 are permanent: enough of
those in a row deactivate the subscription, as for a chat. Errors never carry the URL (Slack's
and Discord's hold their secret in the path).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime

import aiohttp

from bot.delivery import (
    AlertMessage,
    DeliveryError,
    PermanentDeliveryError,
    RetryAfter,
    TransientDeliveryError,
)
from bot.store import Platform, Subscription
from bot.webhook.payloads import payload, validate_url
from explainers.settings import Thresholds
from explainers.sources.http import USER_AGENT

# when a 429 comes without a usable Retry-After
DEFAULT_RETRY_AFTER_S = 5.0
# a Retry-After longer than this is capped: the back-off and the pacer take over from there
MAX_RETRY_AFTER_S = 300.0
_GONE = {401, 403, 404, 410}


def retry_after_s(value: str | None, now: float) -> float:
    """Seconds to wait from a Retry-After header: a number of seconds or an HTTP date."""
    if not value:
        return DEFAULT_RETRY_AFTER_S
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - now
        except (TypeError, ValueError):
            return DEFAULT_RETRY_AFTER_S
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def delivery_error(status: int, retry_after: str | None, now: float) -> DeliveryError | None:
    """The delivery error for an HTTP status (None: delivered)."""
    if 200 <= status < 300:
        return None
    if status == 429:
        return RetryAfter(retry_after_s(retry_after, now))
    if 300 <= status < 400:
        return PermanentDeliveryError(
            f"webhook answered {status} (a redirect, not followed): update its URL"
        )
    if status in _GONE:
        return PermanentDeliveryError(f"webhook answered {status}")
    if status == 408 or status >= 500:
        return TransientDeliveryError(f"webhook answered {status}")
    return DeliveryError(f"webhook refused the payload ({status})")


class WebhookNotifier:
    """Posts alerts to webhook subscriptions over one aiohttp session."""

    platform = "webhook"

    def __init__(
        self,
        thresholds: Thresholds,
        *,
        timeout_s: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._thresholds = thresholds
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None

    async def send(self, subscription: Subscription, message: AlertMessage) -> None:
        """Post the alert; raise a DeliveryError subtype when the endpoint did not take it."""
        try:
            url = validate_url(subscription.chat_id)
        except ValueError as err:
            raise PermanentDeliveryError(str(err)) from err
        secret = subscription.secret.get_secret_value() if subscription.secret else None
        now = self._clock()
        request = payload(message, url, self._thresholds, secret=secret, now=int(now))
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, headers={"User-Agent": USER_AGENT}
            )
        try:
            async with self._session.post(
                url, data=request.body, headers=request.headers, allow_redirects=False
            ) as response:
                status, retry_after = response.status, response.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            raise TransientDeliveryError(f"webhook: {type(err).__name__}") from err
        error = delivery_error(status, retry_after, now)
        if error is not None:
            raise error

    async def aclose(self) -> None:
        """Close the session."""
        if self._session is not None:
            await self._session.close()
            self._session = None


class WebhookFrontend:
    """The webhook platform as the runner sees a front-end: nothing to start but a session."""

    platform: Platform = "webhook"

    def __init__(self, thresholds: Thresholds, *, timeout_s: float = 10.0) -> None:
        self.notifier = WebhookNotifier(thresholds, timeout_s=timeout_s)

    async def start(self) -> None:
        """Nothing to connect to: each endpoint is reached when it has an alert."""

    async def stop(self) -> None:
        await self.notifier.aclose()
