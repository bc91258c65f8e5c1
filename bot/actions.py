"""The use cases both bots offer, written once.

A front-end parses its platform's command, calls one of these, renders the result with
`bot.commands.Replies` and sends it. Results are plain data (an Explanation, a Subscription, a
Status). A use case that cannot answer raises one of a small family of errors; `reply(replies)` is
what the user reads, in the platform's markup, and each front-end turns the family into a message
in exactly one place. None of them is a bug: a bug is any other exception.

    ActionError          a use case refused; `outage` says whether a source failed (else the user's ask)
    ├── UnknownCoin      a coin the market data does not know; carries close matches
    ├── DataUnavailable  the coin list could not be read this time
    ├── BadArgument      a command's arguments were wrong: the reply is its usage line
    ├── NotAllowed       not this user, not here, or a channel the bot cannot post in
    └── ChartUnavailable no chart can be drawn now; the answer in words still can
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from bot.alerts import AlertSettings
from bot.commands import Replies
from bot.store import (
    MIN_DRIVERS_HIGHEST,
    MIN_DRIVERS_LOWEST,
    AlertSummary,
    Platform,
    StorageFault,
    Store,
    Subscription,
)
from explainers import errors as core
from explainers.collect import utcnow
from explainers.explain import coin_by_query
from explainers.models import Explanation
from explainers.render import Flavour
from explainers.service import Explainer
from explainers.settings import Thresholds

if TYPE_CHECKING:  # the chart service pulls in matplotlib; only its types are needed here
    from explainers.chart_service import Chart, ChartMaker

log = logging.getLogger("whydown.actions")

ETF = "etf"  # /chart's subject for the spot-Bitcoin-ETF flows chart


# --- the errors a user reads -------------------------------------------------------------------


class ActionError(Exception):
    """A use case refused. str() is for the log; `reply(replies)` is what the user reads."""

    outage = False  # a source failed (logged as a warning), rather than the user's ask

    @property
    def level(self) -> int:
        """How a front-end logs it: a user's mistake is no cause for alarm, an outage is."""
        return logging.WARNING if self.outage else logging.INFO

    def reply(self, replies: Replies) -> str:
        raise NotImplementedError


class UnknownCoin(ActionError):
    """A coin the market data does not know."""

    def __init__(self, query: str, suggestions: Sequence[str]) -> None:
        super().__init__(f"unknown coin {query!r}")
        self.query = query
        self.suggestions = list(suggestions)

    def reply(self, replies: Replies) -> str:
        return replies.unknown_coin(self.query, self.suggestions)


class DataUnavailable(ActionError):
    """Coins cannot be looked up: the market-data source failed this refresh."""

    outage = True

    def __init__(self, query: str) -> None:
        super().__init__(f"no coin data to look up {query!r}")
        self.query = query

    def reply(self, replies: Replies) -> str:
        return replies.coin_data_unavailable(self.query)


class BadArgument(ActionError):
    """A command's arguments were wrong; the reply is its usage line, with the problem."""

    def __init__(self, command: str, problem: str | None = None) -> None:
        super().__init__(f"/{command}: {problem or 'wrong arguments'}")
        self.command = command
        self.problem = problem

    def reply(self, replies: Replies) -> str:
        return replies.usage(self.command, self.problem)


Rule = Literal["admins_only", "server_only", "channel_refused", "channel_unsupported"]


class NotAllowed(ActionError):
    """Not for this user or not here: which rule refused, the place, and what the bot lacks there."""

    def __init__(self, rule: Rule, where: str = "", missing: Sequence[str] = ()) -> None:
        super().__init__(f"{rule.replace('_', ' ')} {where}".strip())
        self.rule = rule
        self.where = where
        self.missing = list(missing)

    def reply(self, replies: Replies) -> str:
        if self.rule == "channel_refused":
            return replies.channel_refused(self.where, self.missing)
        if self.rule == "channel_unsupported":
            return replies.channel_unsupported(self.where)
        if self.rule == "server_only":
            return replies.server_only()
        return replies.admins_only(self.where or None)


class ChartUnavailable(ActionError):
    """No chart now: charts are off (no reason), or this one could not be drawn (the reason)."""

    def __init__(self, reason: str | None = None, what: str = "sell-off") -> None:
        super().__init__(f"no {what} chart: {reason}" if reason else "charts are off")
        self.reason = reason
        self.outage = reason is not None

    def reply(self, replies: Replies) -> str:
        return replies.chart_unavailable(self.reason)


@contextmanager
def coin_refusals(coin: str | None) -> Iterator[None]:
    """The core's refusals of a coin, as the action errors a user reads."""
    try:
        yield
    except core.UnknownCoin as err:
        raise UnknownCoin(err.query, err.suggestions) from err
    except core.CoinDataUnavailable as err:
        raise DataUnavailable(str(err.args[0]) if err.args else coin or "") from err


# --- what the use cases return ---------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """What a subscription is keyed by: a chat or channel, and a forum topic of it."""

    platform: Platform
    chat_id: str
    topic_id: int | None = None


@dataclass(frozen=True)
class Status:
    """/status: the latest answer (None before the first refresh), subscriptions, and now;
    `storage`: since when the database or disk is full (None: writes succeed)."""

    explanation: Explanation | None
    counts: dict[str, int]
    now: datetime
    storage: StorageFault | None = None


@dataclass(frozen=True)
class Drawn:
    """A chart and what it shows: the ETF flows, or a sell-off."""

    chart: Chart
    etf: bool


async def answer(explainer: Explainer, coin: str | None) -> Explanation:
    """The answer for the market (None or ""), or for one coin."""
    with coin_refusals(coin):
        return await explainer.explain(coin or None)


def wants_etf(subject: str | None) -> bool:
    return (subject or "").strip().lower() == ETF


async def draw(charts: ChartMaker, subject: str | None) -> Drawn:
    """The chart of `subject`: "etf", a coin, or None (or "") for the market."""
    etf = wants_etf(subject)
    coin = (subject or "").strip() or None
    with coin_refusals(coin):
        try:
            chart = await (charts.etf() if etf else charts.sell_off(coin))
        except core.ChartUnavailable as err:
            raise ChartUnavailable(str(err) or None, ETF if etf else "sell-off") from err
    return Drawn(chart, etf)


# --- the use cases ---------------------------------------------------------------------------


class Actions:
    """Every command's work, for both bots: ask the core or the store, return data, or refuse."""

    def __init__(
        self,
        explainer: Explainer,
        store: Store,
        *,
        thresholds: Thresholds,
        alert_settings: AlertSettings,
        charts: ChartMaker | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.explainer = explainer
        self.store = store
        self.thresholds = thresholds
        self.alert_settings = alert_settings
        self.charts = charts  # None: /chart says in words that it has no chart; alerts are text
        self.clock = clock

    def replies(self, platform: Platform, flavour: Flavour) -> Replies:
        """The replies of a platform in one markup, with this bot's thresholds and cooldown."""
        return Replies(
            platform,
            flavour,
            default_cooldown_s=self.alert_settings.cooldown_s,
            thresholds=self.thresholds,
        )

    async def why(self, coin: str | None = None) -> Explanation:
        """/why [coin]: the answer for the market, or for one coin."""
        return await answer(self.explainer, coin)

    async def drivers(self) -> Explanation:
        """/drivers: the answer whose drivers the reply lists."""
        return await self.explainer.explain()

    def check_coin(self, coin: str | None) -> None:
        """Refuse at once a coin the latest refresh does not know (before any slow work is
        promised). Without a refresh yet, or without market data in it, the answer decides."""
        latest = self.explainer.latest
        if not coin or not coin.strip() or latest is None or latest.snapshot.markets is None:
            return
        with coin_refusals(coin):
            coin_by_query(latest.snapshot, coin)

    def check_charts(self) -> None:
        """Refuse at once when no chart can be drawn at all (before any slow work is promised)."""
        if self.charts is None:
            raise ChartUnavailable()

    def check_chart(self, subject: str | None) -> None:
        """Refuse at once a chart that cannot be drawn: charts off, or a coin not known now."""
        self.check_charts()
        if not wants_etf(subject):
            self.check_coin(subject)

    async def chart(self, subject: str | None = None) -> Drawn:
        """/chart [coin|etf]: the sell-off chart of the market or a coin, or the ETF flows."""
        self.check_charts()
        assert self.charts is not None
        return await draw(self.charts, subject)

    def subscribe(self, target: Target, min_drivers: str | int | None, by: str) -> Subscription:
        """/subscribe [min_drivers]: alerts for a place (the front-end checked who may)."""
        minimum = self.min_drivers(min_drivers)
        sub = self.store.subscribe(
            target.platform, target.chat_id, target.topic_id, minimum, by, at=self.clock()
        )
        log.info("subscribed %s (min %d drivers)", target, minimum)
        return sub

    def unsubscribe(self, target: Target) -> bool:
        """/unsubscribe: stop a place's alerts; whether it was subscribed."""
        found = self.store.unsubscribe(target.platform, target.chat_id, target.topic_id)
        log.info("unsubscribed %s (was subscribed: %s)", target, found)
        return found

    def settings(self, target: Target) -> Subscription | None:
        """/settings: a place's subscription, active or not."""
        return self.store.get_subscription(target.platform, target.chat_id, target.topic_id)

    def history(self) -> list[AlertSummary]:
        """/history: the last alerts."""
        return self.store.recent_alerts()

    def status(self) -> Status:
        """/status: never waits for a refresh, so it answers at once."""
        latest = self.explainer.latest
        return Status(
            latest.explanation if latest is not None else None,
            self.store.subscription_counts(),
            self.clock(),
            self.store.faults.current,
        )

    def min_drivers(self, raw: str | int | None) -> int:
        """A subscription's minimum number of drivers (the default when none is given)."""
        if raw is None or raw == "":
            return self.alert_settings.default_min_drivers
        try:
            value = int(raw)
        except (TypeError, ValueError):
            value = None
        if value is None or not MIN_DRIVERS_LOWEST <= value <= MIN_DRIVERS_HIGHEST:
            problem = (
                f"min_drivers must be a whole number from {MIN_DRIVERS_LOWEST} "
                f"to {MIN_DRIVERS_HIGHEST}."
            )
            raise BadArgument("subscribe", problem)
        return value
