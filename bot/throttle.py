"""One action per key per period, so that buttons cannot drive upstream traffic."""

from __future__ import annotations

import math
from collections.abc import Hashable
from datetime import datetime, timedelta

# keys remembered before those quiet for a whole period are forgotten
KEEP = 4096


class Throttle:
    """At most one action per key (a chat or channel, with a button when they differ) per period."""

    def __init__(self, period: timedelta, *, keep: int = KEEP) -> None:
        self.period = period
        self._keep = keep
        self._last: dict[Hashable, datetime] = {}

    @property
    def period_s(self) -> int:
        """The period in whole seconds, as the throttle notices say it."""
        return round(self.period.total_seconds())

    def take(self, key: Hashable, now: datetime) -> int:
        """Take the key's slot and return 0, or return the whole seconds left to wait (>= 1)."""
        last = self._last.get(key)
        if last is not None and now - last < self.period:
            # rounded up: waiting the seconds we name always suffices
            return max(1, math.ceil((self.period - (now - last)).total_seconds()))
        self._last[key] = now
        if len(self._last) > self._keep:
            self._last = {k: t for k, t in self._last.items() if now - t < self.period}
        return 0
