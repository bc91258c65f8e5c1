"""The order the summary tells a sell-off in: what whydown saw start first, or else by role.

Only the grouping lives here; the words are the templates' (``_phrases.j2``, macro ``story``).
Starts come from the driver states stored after every refresh (`Explanation.onsets`): a driver
whose start was not seen is never placed before or after another one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from explainers.drivers import BY_KEY
from explainers.models import DriverResult, Explanation, Role

#: roles told in the order drivers started, when their starts were seen
TOLD_IN_ORDER: tuple[Role, ...] = ("set_off", "amplifier")


@dataclass(frozen=True)
class Step:
    """Drivers seen starting at one refresh (`at`), or whose start was not seen (`at` None)."""

    at: datetime | None
    drivers: list[DriverResult]


def role_of(d: DriverResult) -> Role | None:
    if d.role is not None:
        return d.role
    driver = BY_KEY.get(d.key)
    return driver.role if driver is not None else None


def fired_as(e: Explanation, role: Role) -> list[DriverResult]:
    """The firing drivers of one role, by severity (the explanation's ranking)."""
    return [d for d in e.fired if role_of(d) == role]


def sequence(e: Explanation) -> list[Step]:
    """The firing set-off and amplifier drivers in the order their starts were seen, those that
    started at the same refresh together, then (at None) those whose start was not seen.

    Empty when there is no order to tell: fewer than two starts seen, or all at one refresh;
    the summary then tells the drivers by role."""
    told = [d for d in e.fired if role_of(d) in TOLD_IN_ORDER]
    starts = {d.key: at for d in told if (at := e.onset(d.key)) is not None}
    if len(set(starts.values())) < 2:
        return []
    steps = [
        Step(at, [d for d in told if starts.get(d.key) == at])
        for at in sorted(set(starts.values()))
    ]
    unseen = [d for d in told if d.key not in starts]
    return [*steps, Step(None, unseen)] if unseen else steps
