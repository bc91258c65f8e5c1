"""Hyperliquid perpetuals (keyless): open interest per coin from `metaAndAssetCtxs`.

POST {base}/info {"type":"metaAndAssetCtxs"} answers a 2-element ARRAY `[meta, ctxs]`:
`ctxs[i]` belongs to `meta.universe[i]` (matched by index, never by name). Numbers are strings;
`openInterest` is in COINS (valued at `markPx` here); delisted assets carry `isDelisted: true`,
"0.0" open interest and null `midPx`/`premium`/`impactPxs`. `funding` is the hourly rate.
The body has no time: the as-of is the fetch time.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import httpx

from explainers.errors import BadResponse
from explainers.sources import bounds
from explainers.sources.http import USER_AGENT, post_json
from explainers.sources.open_interest import VenueOpenInterest
from explainers.sources.shape import Shape, check_shape, require_shape

SOURCE = "Hyperliquid"
HEADERS = {"User-Agent": USER_AGENT, "Content-Type": "application/json"}
PAYLOAD = {"type": "metaAndAssetCtxs"}

#: the fields `parse_open_interest` reads
SHAPE: Shape = ("[0].universe[].name", "[1][].openInterest", "[1][].markPx")


def check(body: Any) -> list[str]:
    """Drift of a metaAndAssetCtxs body from what the parser reads ([] = fine)."""
    problems = check_shape(body, SHAPE)
    if not problems and isinstance(body, list) and len(body) >= 2:
        universe, ctxs = body[0].get("universe"), body[1]
        if isinstance(universe, list) and isinstance(ctxs, list) and len(universe) != len(ctxs):
            problems.append(f"universe has {len(universe)} assets but ctxs {len(ctxs)}")
    return problems


def parse_open_interest(
    body: Any, coins: Iterable[str], at: datetime | None = None
) -> list[VenueOpenInterest]:
    """metaAndAssetCtxs body -> USD open interest (coins x markPx) of the wanted coins.

    A coin that is not listed, or delisted, is left out (Hyperliquid has no market in it).
    """
    if not isinstance(body, list) or len(body) < 2:
        raise BadResponse(SOURCE, "the body is not the [meta, ctxs] pair")
    require_shape(body, SHAPE, SOURCE)
    universe, ctxs = body[0]["universe"], body[1]
    if len(universe) != len(ctxs):
        # matching by index is only sound when both lists are whole
        raise BadResponse(SOURCE, "universe and asset contexts differ in length")
    moment = at or datetime.now(UTC)
    wanted = [c.upper() for c in coins]
    out: list[VenueOpenInterest] = []
    for asset, ctx in zip(universe, ctxs, strict=True):
        name = str(asset.get("name") or "")
        if name.upper() not in wanted or asset.get("isDelisted") is True:
            continue
        oi_coins = bounds.holding(ctx.get("openInterest"), SOURCE, "openInterest")
        mark = bounds.price(ctx.get("markPx"), SOURCE, "markPx")
        usd = bounds.check(
            bounds.open_interest_usd, oi_coins * mark, SOURCE, "openInterest x markPx"
        )
        out.append(
            VenueOpenInterest(
                venue=SOURCE, coin=name.upper(), usd=usd, at=moment, instruments=[name]
            )
        )
    return sorted(out, key=lambda v: wanted.index(v.coin))


async def fetch_venue_open_interest(
    client: httpx.AsyncClient,
    base_url: str,
    coins: Iterable[str] = ("BTC", "ETH", "SOL"),
    now: datetime | None = None,
) -> list[VenueOpenInterest]:
    """USD open interest of the wanted coins' perpetuals (one request for all coins)."""
    body = await post_json(client, SOURCE, f"{base_url}/info", PAYLOAD, headers=HEADERS)
    return parse_open_interest(body, coins, now)
