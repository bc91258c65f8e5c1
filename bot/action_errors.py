"""The errors a user reads: a use case of bot.actions that cannot answer raises one of this small
family. str() is for the log; `reply(replies)` is what the user reads, in the platform's markup, and
each front-end turns the family into a message in exactly one place. None of them is a bug: a bug is
any other exception.

    ActionError          a use case refused; `outage` says whether a source failed (else the user's ask)
    ├── UnknownCoin      a coin the market data does not know; carries close matches
    ├── DataUnavailable  the coin list could not be read this time
    ├── BadArgument      a command's arguments were wrong: the reply is its usage line (a date
    │                    that cannot be answered: the reason, then the usage line)
    ├── NotAllowed       not this user, not here, or a channel the bot cannot post in
    ├── ChartUnavailable no chart can be drawn now; the answer in words still can
    ├── PastUnavailable  this bot has no time machine: past days and previews are off
    └── PreviewUnavailable the preview after /subscribe could not be made; the subscription stands
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Literal

from bot.commands import Replies
from explainers import errors as core


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


class PastUnavailable(ActionError):
    """This bot was started without a time machine: no past days, no previews."""

    def __init__(self) -> None:
        super().__init__("past days are not set up on this bot")

    def reply(self, replies: Replies) -> str:
        return replies.past_unavailable()


class PreviewUnavailable(ActionError):
    """The preview after /subscribe could not be made; the subscription stands. Returned, not
    raised: it follows the confirmation, which has been sent already."""

    outage = True

    def __init__(self) -> None:
        super().__init__("the preview after subscribing could not be made")

    def reply(self, replies: Replies) -> str:
        return replies.preview_unavailable()


@contextmanager
def coin_refusals(coin: str | None) -> Iterator[None]:
    """The core's refusals of a coin, as the action errors a user reads."""
    try:
        yield
    except core.UnknownCoin as err:
        raise UnknownCoin(err.query, err.suggestions) from err
    except core.CoinDataUnavailable as err:
        raise DataUnavailable(str(err.args[0]) if err.args else coin or "") from err
