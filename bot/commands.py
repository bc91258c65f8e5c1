"""The one registry of commands: both front-ends register from it, and /help lists it.

Also the replies behind each command, in each platform's markup: a front-end calls a use case of
bot.actions and renders its result (or its refusal) with these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from bot.store import (
    MIN_DRIVERS_HIGHEST,
    MIN_DRIVERS_LOWEST,
    AlertSummary,
    Platform,
    StorageFault,
    Subscription,
)
from explainers import render
from explainers.backtest import Backtest, preview_text
from explainers.models import Explanation
from explainers.render import Flavour
from explainers.safe_text import visible
from explainers.settings import Thresholds

BOTH: frozenset[Platform] = frozenset({"telegram", "discord"})


@dataclass(frozen=True)
class Argument:
    name: str  # a valid Discord option name: lowercase letters, digits, "_"
    description: str
    platforms: frozenset[Platform] = BOTH
    label: str | None = None  # how usage lines show it, when not its name

    @property
    def shown(self) -> str:
        return self.label or self.name


@dataclass(frozen=True)
class Command:
    name: str
    summary: str  # one line: Telegram's menu (≤ 256) and Discord's description (≤ 100)
    arguments: tuple[Argument, ...] = ()
    platforms: frozenset[Platform] = BOTH
    admin_only: bool = False  # group admins on Telegram, Manage Channels on Discord

    def args_for(self, platform: Platform | None) -> tuple[Argument, ...]:
        return tuple(a for a in self.arguments if platform in a.platforms)

    def usage(self, platform: Platform | None) -> str:
        args = "".join(f" [{a.shown}]" for a in self.args_for(platform))
        return f"/{self.name}{args}"


MIN_DRIVERS = Argument(
    "min_drivers", f"drivers that must fire together, {MIN_DRIVERS_LOWEST} to {MIN_DRIVERS_HIGHEST}"
)
CHANNEL = Argument("channel", "the channel (default: this one)", platforms=frozenset({"discord"}))

COMMANDS: tuple[Command, ...] = (
    Command("start", "What this bot does", platforms=frozenset({"telegram"})),
    Command("help", "Every command and what it does"),
    Command(
        "why",
        "Why is crypto down? The drivers firing now, with evidence",
        (
            Argument("coin", "a coin symbol or CoinGecko id, e.g. SOL"),
            Argument("date", "a past UTC day: YYYY-MM-DD, yesterday or 3d (three days ago)"),
        ),
    ),
    Command("drivers", "Every driver: firing, quiet or unknown, with its figure and threshold"),
    Command(
        "chart",
        "A chart: BTC (or a coin) over 24 h with liquidations and drivers, or ETF flows",
        (
            Argument(
                "subject",
                "a coin symbol or CoinGecko id, or etf for the ETF flows",
                label="coin|etf",
            ),
        ),
    ),
    Command(
        "subscribe",
        "Send crash alerts here when several drivers fire",
        (CHANNEL, MIN_DRIVERS),
        admin_only=True,
    ),
    Command("unsubscribe", "Stop crash alerts here", (CHANNEL,), admin_only=True),
    Command(
        "preview",
        "How often alerts would have come here over past days, with a picture",
        (MIN_DRIVERS, Argument("days", "past days to look back over, 1 to 365 (default 90)")),
    ),
    Command(
        "settings",
        "This chat's alert subscription and answer style (compact or full)",
        (
            Argument(
                "full", "on: the full answer with all evidence; off: compact", label="full on|off"
            ),
        ),
    ),
    Command("history", "The last alerts"),
    Command("status", "Data age and each source's health"),
)


def commands_for(platform: Platform | None) -> list[Command]:
    """The commands of a platform (None: the terminal, which has no chat commands)."""
    return [c for c in COMMANDS if platform in c.platforms]


def command(name: str) -> Command:
    return next(c for c in COMMANDS if c.name == name)


@dataclass
class Replies:
    """The replies of one platform (None: the terminal), in its markup flavour."""

    platform: Platform | None
    flavour: Flavour
    default_cooldown_s: int = 6 * 3600
    thresholds: Thresholds = field(default_factory=Thresholds)
    _commands: list[Command] = field(init=False)

    def __post_init__(self) -> None:
        self._commands = commands_for(self.platform)

    def _msg(self, name: str, **values: object) -> str:
        return render.message(name, self.flavour, t=self.thresholds, **values)

    def help(self) -> str:
        return self._msg("help", commands=self._commands, platform=self.platform)

    def drivers(self, e: Explanation) -> str:
        return self._msg("drivers", e=e)

    def history(self, alerts: list[AlertSummary]) -> str:
        return self._msg("history", alerts=alerts)

    def status(
        self,
        e: Explanation | None,
        counts: dict[str, int],
        now: datetime,
        storage: StorageFault | None = None,
    ) -> str:
        return self._msg("status", e=e, counts=counts, now=now, storage=storage)

    def subscribed(self, sub: Subscription, where: str) -> str:
        return self._msg(
            "subscribed", sub=sub, where=where, default_cooldown_s=self.default_cooldown_s
        )

    def unsubscribed(self, found: bool, where: str) -> str:
        return self._msg("unsubscribed", found=found, where=where)

    def settings(self, sub: Subscription | None, where: str, full: bool = False) -> str:
        return self._msg(
            "settings",
            sub=sub,
            where=where,
            default_cooldown_s=self.default_cooldown_s,
            full=full,
            platform=self.platform,
        )

    def full_answers_set(self, full: bool, where: str) -> str:
        return self._msg("full_answers_set", full=full, where=where, platform=self.platform)

    def unknown_coin(self, query: str, suggestions: list[str]) -> str:
        return self._msg("unknown_coin", query=visible(query), suggestions=suggestions)

    def coin_data_unavailable(self, query: str) -> str:
        return self._msg("coin_data_unavailable", query=visible(query))

    def failed(self) -> str:
        return self._msg("failed")

    def admins_only(self, where: str | None = None) -> str:
        """Refused for want of admin rights; `where` names a channel other than this one."""
        return self._msg("admins_only", platform=self.platform, where=where)

    def server_only(self) -> str:
        return self._msg("server_only")

    def unknown_command(self, name: str) -> str:
        return self._msg("unknown_command", command=visible(name))

    def usage(self, name: str, problem: str | None = None) -> str:
        return self._msg("usage", line=command(name).usage(self.platform), problem=problem)

    def alert_intro(self, e: Explanation) -> str:
        return self._msg("alert_intro", e=e)

    def eased(self, e: Explanation) -> str:
        return self._msg("eased", e=e)

    def refresh_throttled(self, wait_s: int, every_s: int) -> str:
        return self._msg("refresh_throttled", wait_s=wait_s, every_s=every_s)

    def channel_refused(self, where: str, missing: list[str]) -> str:
        return self._msg("channel_refused", where=where, missing=missing)

    def channel_unsupported(self, where: str) -> str:
        return self._msg("channel_unsupported", where=where)

    def button_throttled(self, wait_s: int, every_s: int) -> str:
        return self._msg("button_throttled", wait_s=wait_s, every_s=every_s)

    def chart_unavailable(self, reason: str | None = None) -> str:
        return self._msg("chart_unavailable", reason=reason)

    def preview(self, bt: Backtest) -> str:
        """ "With 3 drivers, this chat would have been alerted on 4 days in the last 90: ..." and
        how many drivers could be judged."""
        return self._msg("preview", text=preview_text(bt))

    def preview_unavailable(self) -> str:
        return self._msg("preview_unavailable")

    def past_unavailable(self) -> str:
        return self._msg("past_unavailable")
