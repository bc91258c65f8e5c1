"""The use cases both bots offer, written once.

A front-end parses its platform's command, calls one of these, renders the result with
`bot.commands.Replies` and sends it. Results are plain data (an Answer, a Subscription, a Status, a
Preview). A use case that cannot answer raises one of the small family of errors in
bot.action_errors (re-exported here); each front-end turns the family into a message in exactly
one place.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING

from bot.action_errors import ActionError as ActionError
from bot.action_errors import BadArgument as BadArgument
from bot.action_errors import ChartUnavailable as ChartUnavailable
from bot.action_errors import DataUnavailable as DataUnavailable
from bot.action_errors import NotAllowed as NotAllowed
from bot.action_errors import PastUnavailable as PastUnavailable
from bot.action_errors import PreviewUnavailable as PreviewUnavailable
from bot.action_errors import UnknownCoin as UnknownCoin
from bot.action_errors import coin_refusals
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
from explainers.backtest import Backtest, TimeMachine, backtest
from explainers.collect import utcnow
from explainers.explain import coin_by_query
from explainers.models import Explanation
from explainers.render import Flavour
from explainers.service import Explainer
from explainers.settings import Thresholds
from explainers.timemachine import BadDate, is_day

if TYPE_CHECKING:  # the chart service pulls in matplotlib; only its types are needed here
    from explainers.chart_service import Chart, ChartMaker

log = logging.getLogger("whydown.actions")

ETF = "etf"  # /chart's subject for the spot-Bitcoin-ETF flows chart


# --- what the use cases return ---------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """What a subscription is keyed by: a chat or channel, and a forum topic of it."""

    platform: Platform
    chat_id: str
    topic_id: int | None = None


@dataclass(frozen=True)
class Answer:
    """/why's answer and how it is shown: full or compact (the place's choice), and whether it is
    about now (with buttons) or a past day's end (without: they would answer about now)."""

    explanation: Explanation
    full: bool
    live: bool


@dataclass(frozen=True)
class Status:
    """/status: the latest answer (None before the first refresh), subscriptions, and now;
    `storage`: since when the database or disk is full (None: writes succeed)."""

    explanation: Explanation | None
    counts: dict[str, int]
    now: datetime
    storage: StorageFault | None = None


@dataclass(frozen=True)
class Preview:
    """/preview: the alert rule over past days, and its picture (BTC, alert marks, drivers)."""

    backtest: Backtest
    png: bytes


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


#: /preview's default and bounds on its days
PREVIEW_DAYS = 90
PREVIEW_DAYS_MOST = 365


def why_arguments(args: Sequence[str]) -> tuple[str | None, str | None]:
    """/why's free-form arguments as (coin, date): an argument that reads as a date is the date
    ("2024-08-05", "yesterday", "3d"), any other is the coin, in either order. Two of a kind, or
    more than two, is a BadArgument (the usage line)."""
    if len(args) > 2:
        raise BadArgument("why")
    days = [a for a in args if is_day(a)]
    coins = [a for a in args if not is_day(a)]
    if len(days) > 1 or len(coins) > 1:
        raise BadArgument("why")
    return (coins[0] if coins else None), (days[0] if days else None)


def settings_arguments(args: Sequence[str]) -> str | None:
    """/settings' free-form arguments: None (show the settings), or the one word after "full" (or
    alone) for set_full_answers to read; more words are a BadArgument (the usage line)."""
    if not args:
        return None
    words = [a.lower() for a in args]
    choice = words[1:] if words[0] == "full" else words
    if len(choice) != 1:
        raise BadArgument("settings")
    return choice[0]


def _whole(raw: str | int | None, lowest: int, highest: int) -> int | None:
    """A whole number within bounds, or None."""
    try:
        value = int(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None
    return value if value is not None and lowest <= value <= highest else None


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
        on_coin_asked: Callable[[str], object] | None = None,
        timemachine: TimeMachine | None = None,
    ) -> None:
        """on_coin_asked: told the symbol ("DOGE") of each coin a /why answer was given for
        (the runner streams its liquidations); it must return at once, and a failure in it
        never costs the answer."""
        self.explainer = explainer
        self.store = store
        self.thresholds = thresholds
        self.alert_settings = alert_settings
        self.charts = charts  # None: /chart says in words that it has no chart; alerts are text
        self.clock = clock
        self.on_coin_asked = on_coin_asked
        # None: /why <date> and /preview say past days are off; /subscribe sends no preview
        self.timemachine = timemachine

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
        explanation = await answer(self.explainer, coin)
        if explanation.coin is not None and self.on_coin_asked is not None:
            try:
                self.on_coin_asked(explanation.coin.symbol.upper())
            except Exception:
                log.exception("the hook for a coin asked about failed")
        return explanation

    def check_why(self, coin: str | None, at: str | None) -> None:
        """Refuse at once a /why that cannot be answered (before any slow work is promised): a
        date that cannot be, a coin the latest refresh does not know."""
        if at is not None:
            self.past_day(at)
        self.check_coin(coin)

    async def why_answer(self, here: Target, coin: str | None, at: str | None = None) -> Answer:
        """/why [coin] [date]: the answer about now, compact unless the place chose full; for a
        past day, the full answer as of its end."""
        if at is not None:
            return Answer(await self.why_at(coin, at), full=True, live=False)
        explanation = await self.why(coin)
        return Answer(explanation, self.full_answers(here), live=True)

    async def latest(self, coin: str | None = None) -> Explanation:
        """The answer from the latest refresh, without a new one (a Details press shows the
        evidence behind the answer on screen); a refresh only when there is none yet."""
        refreshed = self.explainer.latest
        if refreshed is None:
            return await self.why(coin)
        with coin_refusals(coin):
            return self.explainer.explain_from(refreshed, coin or None)

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

    def full_answers(self, target: Target) -> bool:
        """Whether a place chose the full answer over the compact one (the default)."""
        return self.store.full_answers(target.platform, target.chat_id, target.topic_id)

    def set_full_answers(self, target: Target, raw: str | None) -> bool:
        """/settings full on|off: the answer a place gets by default (the front-end checked
        who may); returns the new choice."""
        choice = (raw or "").strip().lower()
        if choice not in ("on", "off"):
            raise BadArgument("settings", "Say on or off after full.")
        on = choice == "on"
        self.store.set_full_answers(target.platform, target.chat_id, target.topic_id, on)
        log.info("full answers %s for %s", choice, target)
        return on

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

    def min_drivers(self, raw: str | int | None, command: str = "subscribe") -> int:
        """A subscription's minimum number of drivers (the default when none is given)."""
        if raw is None or raw == "":
            return self.alert_settings.default_min_drivers
        value = _whole(raw, MIN_DRIVERS_LOWEST, MIN_DRIVERS_HIGHEST)
        if value is None:
            problem = (
                f"min_drivers must be a whole number from {MIN_DRIVERS_LOWEST} "
                f"to {MIN_DRIVERS_HIGHEST}."
            )
            raise BadArgument(command, problem)
        return value

    # --- past days ---------------------------------------------------------------------------

    def _machine(self) -> TimeMachine:
        if self.timemachine is None:
            raise PastUnavailable()
        return self.timemachine

    def past_day(self, text: str) -> date:
        """/why's date, parsed; a date that cannot be answered is a BadArgument with the reason
        (in the future, unreadable, before any source's history)."""
        machine = self._machine()
        try:
            return machine.parse(text)
        except BadDate as err:
            raise BadArgument("why", f"No answer for that date: {err.reason}.") from err

    async def why_at(self, coin: str | None, at: str) -> Explanation:
        """/why [coin] <date>: the answer as of the end of a past UTC day, from whydown's archive
        when it answered that day, else rebuilt from each source's history."""
        day = self.past_day(at)
        query = (coin or "").strip() or None
        with coin_refusals(query):
            return await self._machine().answer(day, query)

    def preview_settings(
        self, target: Target, min_drivers: str | int | None, days: str | int | None
    ) -> tuple[int, int]:
        """/preview's (min_drivers, days), checked: the chat's own subscription's min_drivers
        when none is given and it is subscribed, and 90 days by default."""
        if min_drivers is None or min_drivers == "":
            sub = self.settings(target)
            minimum = (
                sub.min_drivers
                if sub is not None and sub.active
                else self.alert_settings.default_min_drivers
            )
        else:
            minimum = self.min_drivers(min_drivers, "preview")
        if days is None or days == "":
            return minimum, PREVIEW_DAYS
        value = _whole(days, 1, PREVIEW_DAYS_MOST)
        if value is None:
            raise BadArgument(
                "preview", f"days must be a whole number from 1 to {PREVIEW_DAYS_MOST}."
            )
        return minimum, value

    async def preview(self, min_drivers: int, days: int = PREVIEW_DAYS) -> Preview:
        """/preview: how often the alert rule would have fired over the past `days`, with the
        picture. Rebuilt days are cached in the store: a second preview asks no upstream."""
        result = await backtest(self._machine(), days, min_drivers)
        from explainers.backtest_chart import backtest_png  # matplotlib only when drawn

        # drawing is CPU work: off the event loop, so other chats are answered meanwhile
        return Preview(result, await asyncio.to_thread(backtest_png, result))

    async def preview_after_subscribe(
        self, sub: Subscription
    ) -> Preview | PreviewUnavailable | None:
        """What follows /subscribe's confirmation: the preview for its min_drivers over the
        default days; PreviewUnavailable when it could not be made (logged: the subscription
        stands whatever happens here); None when previews are off (no time machine)."""
        if self.timemachine is None:
            return None
        try:
            return await self.preview(sub.min_drivers)
        except Exception:
            log.exception("the preview after subscribing %s failed", sub.chat_id)
            return PreviewUnavailable()
