"""The time machine as a service, and the backtest of the alert rule over past days.

`TimeMachine.answer` answers `/why <date>`: whydown's own answer of that day when its archive
has one, else the day rebuilt from the sources' history. `TimeMachine.days` gives a whole range
of days for a backtest: archived days, then days rebuilt before and kept in the archive's cache,
then one history read for the days still missing (each source's whole range once, sliced per
day). One build runs at a time: chats asking together wait for it and then read the cache, so
upstream requests never grow with the number of chats asking.
"""

from __future__ import annotations

import asyncio
import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from explainers import drivers, timemachine
from explainers.collect import utcnow
from explainers.models import Explanation
from explainers.settings import SourceSettings, Thresholds
from explainers.sources.yahoo import YahooSession

LIQUIDATIONS = "liquidations"
#: how long a rebuilt day too recent for the archive's cache is reused
RECENT_KEEP = timedelta(hours=1)


class DayArchive(Protocol):
    """What whydown kept of past days (the bot's store implements it; `MemoryArchive` too)."""

    def answered(self, day: date, *, worst: bool = False) -> Explanation | None:
        """whydown's own answer of that day: the last one (or the day's worst), or None."""

    def rebuilt(self, first: date, last: date) -> dict[date, Explanation]:
        """Days rebuilt from history before, kept as a cache."""

    def keep_rebuilt(self, days: dict[date, Explanation]) -> None:
        """Cache rebuilt days (only days every source has published)."""


class MemoryArchive:
    """A DayArchive in memory (the CLI without a database, tests)."""

    def __init__(self) -> None:
        self.answers: dict[date, Explanation] = {}
        self.worst: dict[date, Explanation] = {}
        self.cache: dict[date, Explanation] = {}

    def answered(self, day: date, *, worst: bool = False) -> Explanation | None:
        return (self.worst if worst else self.answers).get(day)

    def rebuilt(self, first: date, last: date) -> dict[date, Explanation]:
        return {d: e for d, e in self.cache.items() if first <= d <= last}

    def keep_rebuilt(self, days: dict[date, Explanation]) -> None:
        self.cache.update(days)


class TimeMachine:
    def __init__(
        self,
        client: Any,  # httpx.AsyncClient: passed along to the sources, never used here
        cfg: SourceSettings,
        thresholds: Thresholds,
        *,
        archive: DayArchive | None = None,
        clock: Callable[[], datetime] = utcnow,
        yahoo: YahooSession | None = None,
    ) -> None:
        self.client = client
        #: Yahoo's cookie and crumb for the stocks fallback (pass the live one to share it)
        self.yahoo = yahoo or YahooSession.from_settings(cfg)
        self.cfg = cfg
        self.thresholds = thresholds
        self.archive: DayArchive = archive if archive is not None else MemoryArchive()
        self.clock = clock
        self._lock = asyncio.Lock()
        #: days too recent to cache for good (a source may still publish them), kept an hour
        self._recent: dict[date, tuple[datetime, Explanation]] = {}
        #: upstream requests made by history reads so far
        self.requests = 0

    def today(self) -> date:
        return self.clock().date()

    def parse(self, text: str) -> date:
        """The asked day; raises timemachine.BadDate with the reason to say."""
        return timemachine.parse_day(text, self.today())

    async def answer(self, day: date, coin: str | None = None) -> Explanation:
        """The answer as of the end of `day` (UTC)."""
        now = self.clock()
        if coin is None:
            archived = self.archive.answered(day)
            if archived is not None:
                return timemachine.from_archive(archived, day)
            return (await self.days(day, day))[day]
        coin_id = timemachine.coin_names(coin)[0]
        history = await self._fetch(day, day, coins=[coin_id])
        return timemachine.explain_day(history, day, self.thresholds, now=now, coin=coin)

    async def _fetch(
        self, first: date, last: date, coins: list[str] | None = None
    ) -> timemachine.History:
        history = await timemachine.fetch_history(
            self.client,
            self.cfg,
            first,
            last,
            coins=coins or [],
            today=self.today(),
            yahoo_session=self.yahoo,
        )
        self.requests += history.requests
        return history

    async def days(self, first: date, last: date) -> dict[date, Explanation]:
        """Every day of [first, last]: archived (the day's worst), cached, else rebuilt."""
        async with self._lock:
            wanted = [first + timedelta(days=i) for i in range((last - first).days + 1)]
            out: dict[date, Explanation] = {}
            for day in wanted:
                archived = self.archive.answered(day, worst=True)
                if archived is not None:
                    out[day] = timemachine.from_archive(archived, day)
            out |= {d: e for d, e in self.archive.rebuilt(first, last).items() if d not in out}
            now = self.clock()
            out |= {
                d: e
                for d, (built_at, e) in self._recent.items()
                if first <= d <= last and d not in out and now - built_at < RECENT_KEEP
            }
            missing = [d for d in wanted if d not in out]
            if missing:
                history = await self._fetch(min(missing), max(missing))
                built = {
                    d: timemachine.explain_day(history, d, self.thresholds, now=now)
                    for d in missing
                }
                self.archive.keep_rebuilt(
                    {d: e for d, e in built.items() if timemachine.settled(d, now)}
                )
                self._recent |= {
                    d: (now, e) for d, e in built.items() if not timemachine.settled(d, now)
                }
                out |= built
            return dict(sorted(out.items()))


# --- the backtest ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DayResult:
    day: date
    verdict: str
    fired: list[str]
    judged: list[str]  # drivers that were fired or quiet (not unknown)
    btc_price: float | None
    origin: str  # "archive" or "rebuilt"

    def alerts(self, min_drivers: int) -> bool:
        """The alert rule: the market down and at least `min_drivers` drivers firing."""
        return self.verdict == "down" and len(self.fired) >= min_drivers


@dataclass
class Backtest:
    first: date
    last: date
    min_drivers: int
    days: list[DayResult] = field(default_factory=list)
    requests: int = 0

    def alert_days(self, min_drivers: int | None = None) -> list[date]:
        n = self.min_drivers if min_drivers is None else min_drivers
        return [d.day for d in self.days if d.alerts(n)]

    @property
    def judged_typical(self) -> int:
        """How many drivers could be judged on most days."""
        counts = [len(d.judged) for d in self.days]
        return Counter(counts).most_common(1)[0][0] if counts else 0

    @property
    def liquidation_days(self) -> int:
        return sum(1 for d in self.days if LIQUIDATIONS in d.judged)

    def summary(self) -> dict[str, Any]:
        """What `--json` prints."""
        other = _other(self.min_drivers)
        return {
            "first": self.first.isoformat(),
            "last": self.last.isoformat(),
            "days": len(self.days),
            "min_drivers": self.min_drivers,
            "alert_days": [d.isoformat() for d in self.alert_days()],
            "other_min_drivers": other,
            "other_alert_days": [d.isoformat() for d in self.alert_days(other)],
            "drivers_judged_typical": self.judged_typical,
            "drivers_total": len(drivers.DRIVERS),
            "liquidation_days": self.liquidation_days,
            "upstream_requests": self.requests,
            "per_day": [
                {
                    "day": d.day.isoformat(),
                    "verdict": d.verdict,
                    "fired": d.fired,
                    "judged": d.judged,
                    "btc": d.btc_price,
                    "origin": d.origin,
                }
                for d in self.days
            ],
        }


def _other(min_drivers: int) -> int:
    return min_drivers - 1 if min_drivers > 1 else min_drivers + 1


def day_result(day: date, e: Explanation) -> DayResult:
    btc = e.move("BTC")
    return DayResult(
        day=day,
        verdict=e.verdict,
        fired=[d.key for d in e.fired],
        judged=[d.key for d in e.drivers if d.state != "unknown"],
        btc_price=btc.price if btc is not None else None,
        origin=e.past.origin if e.past is not None else "archive",
    )


async def backtest(tm: TimeMachine, days: int, min_drivers: int) -> Backtest:
    """The alert rule over the `days` complete UTC days before today."""
    last = tm.today() - timedelta(days=1)
    first = last - timedelta(days=days - 1)
    before = tm.requests
    explained = await tm.days(first, last)
    return Backtest(
        first=first,
        last=last,
        min_drivers=min_drivers,
        days=[day_result(d, e) for d, e in explained.items()],
        requests=tm.requests - before,
    )


def _short(day: date) -> str:
    return f"{day.day} {day:%b}"


def preview_text(bt: Backtest) -> str:
    """ "With 3 drivers, this chat would have been alerted on 4 days in the last 90: 5 Aug, ...;
    with 2, on 11." and how many drivers could be judged."""
    n, other = bt.min_drivers, _other(bt.min_drivers)
    hits, other_hits = bt.alert_days(n), bt.alert_days(other)
    total = len(bt.days)
    listed = ", ".join(_short(d) for d in hits[:10]) + (", ..." if len(hits) > 10 else "")
    first = (
        f"With {n} driver{'s' if n != 1 else ''}, this chat would have been alerted on "
        f"{len(hits)} day{'s' if len(hits) != 1 else ''} in the last {total}"
        + (f": {listed}" if hits else "")
        + f"; with {other}, on {len(other_hits)}."
    )
    judged = (
        f"It could judge {bt.judged_typical} of the {len(drivers.DRIVERS)} drivers on most of "
        f"those days (liquidations only from whydown's archive: {bt.liquidation_days} of "
        f"{total} days)."
    )
    return f"{first}\n{judged}"


def median_judged(bt: Backtest) -> float:
    return statistics.median(len(d.judged) for d in bt.days) if bt.days else 0.0
