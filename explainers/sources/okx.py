"""OKX public REST: swap liquidation orders, open interest (with its own history), funding, candles."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx

from explainers.errors import BadResponse, RateLimited, SourceError
from explainers.models import (
    Candle,
    Candles,
    Funding,
    Liquidation,
    Liquidations,
    OpenInterest,
    OpenInterestPoint,
)
from explainers.settings import SourceSettings
from explainers.sources import bounds
from explainers.sources.http import USER_AGENT, from_ms, get_json
from explainers.sources.open_interest import VenueOpenInterest
from explainers.sources.shape import Shape

SOURCE = "OKX"
HEADERS = {"User-Agent": USER_AGENT, "Accept": "application/json"}
#: OKX's "too many requests" code, sent with HTTP 200 or 429
RATE_LIMIT_CODE = "50011"
CANDLE_SECONDS = 60

#: contract value (coins per contract) by instrument id; static, so read once per process
CONTRACT_VALUES: dict[str, float] = {}


def okx_data(body: Any) -> list[Any]:
    """The `data` list of an OKX envelope, raising for an error `code`.

    Lenient about a missing `code`: the recorded liquidation body has `data` alone.
    """
    if not isinstance(body, dict):
        raise BadResponse(SOURCE, "response is not an object")
    code = body.get("code")
    if code is not None and str(code) != "0":
        if str(code) == RATE_LIMIT_CODE:
            raise RateLimited(SOURCE, f"rate limited (code {code})")
        raise BadResponse(SOURCE, f"error code {code}")
    data = body.get("data")
    if not isinstance(data, list):
        raise BadResponse(SOURCE, "no data in response")
    return data


def _first(body: Any) -> dict[str, Any]:
    data = okx_data(body)
    if not data or not isinstance(data[0], dict):
        raise BadResponse(SOURCE, "empty data")
    return data[0]


# --- contract values ------------------------------------------------------------------------


def parse_contract_values(body: Any) -> dict[str, float]:
    """/api/v5/public/instruments body -> {instId: ctVal}."""
    values: dict[str, float] = {}
    for item in okx_data(body):
        if isinstance(item, dict) and item.get("instId"):
            values[str(item["instId"])] = bounds.quantity(item.get("ctVal"), SOURCE, "ctVal")
    return values


async def fetch_contract_values(
    client: httpx.AsyncClient, cfg: SourceSettings, inst_ids: Iterable[str]
) -> dict[str, float]:
    """Contract values of the given swaps, from the process cache or one request per instrument."""
    wanted = sorted(set(inst_ids))
    missing = [i for i in wanted if i not in CONTRACT_VALUES]
    bodies = await asyncio.gather(
        *(
            get_json(
                client,
                SOURCE,
                f"{cfg.okx_url}/api/v5/public/instruments",
                params={"instType": "SWAP", "instId": inst_id},
                headers=HEADERS,
            )
            for inst_id in missing
        )
    )
    for body in bodies:
        CONTRACT_VALUES.update(parse_contract_values(body))
    unknown = [i for i in wanted if i not in CONTRACT_VALUES]
    if unknown:
        raise BadResponse(SOURCE, f"no contract value for {', '.join(unknown)}")
    return {i: CONTRACT_VALUES[i] for i in wanted}


# --- liquidations ---------------------------------------------------------------------------


def liquidation_instruments(body: Any) -> list[str]:
    """Instrument ids named in a liquidation-orders body (their contract values are needed)."""
    ids = {
        str(item["instId"])
        for item in okx_data(body)
        if isinstance(item, dict) and item.get("instId")
    }
    return sorted(ids)


def _position_side(detail: dict[str, Any]) -> Literal["long", "short"]:
    side = detail.get("posSide")
    if side in ("long", "short"):
        return side
    # net-mode positions carry no posSide: a forced sell closes a long, a forced buy a short
    order_side = detail.get("side")
    if order_side == "sell":
        return "long"
    if order_side == "buy":
        return "short"
    raise BadResponse(SOURCE, "liquidation without position or order side")


def parse_liquidations(
    body: Any, contract_values: dict[str, float], now: datetime | None = None
) -> Liquidations:
    """liquidation-orders body -> events in USD (`sz` is in contracts: sz * ctVal coins * bkPx)."""
    events: list[Liquidation] = []
    for item in okx_data(body):
        if not isinstance(item, dict):
            raise BadResponse(SOURCE, "a liquidation entry is not an object")
        inst_id = str(item.get("instId") or "")
        if inst_id not in contract_values:
            raise BadResponse(SOURCE, f"no contract value for {inst_id or 'an instrument'}")
        ct_val = contract_values[inst_id]
        details = item.get("details")
        if not isinstance(details, list):
            raise BadResponse(SOURCE, "liquidation entry without details")
        for detail in details:
            if not isinstance(detail, dict):
                raise BadResponse(SOURCE, "a liquidation detail is not an object")
            price = bounds.price(detail.get("bkPx"), SOURCE, "bkPx")
            size = bounds.quantity(detail.get("sz"), SOURCE, "sz")
            events.append(
                Liquidation(
                    exchange=SOURCE,
                    instrument=inst_id,
                    position_side=_position_side(detail),
                    price=price,
                    size=size,
                    usd=bounds.check(
                        bounds.liquidation_usd, size * ct_val * price, SOURCE, "sz x ctVal x bkPx"
                    ),
                    ts=from_ms(detail.get("ts"), SOURCE, "ts"),
                )
            )
    events.sort(key=lambda e: e.ts)
    # the list is "the latest orders as of the request", so an empty list is as of now
    as_of = events[-1].ts if events else (now or datetime.now(UTC))
    return Liquidations(source=SOURCE, as_of=as_of, events=events)


async def fetch_liquidations(
    client: httpx.AsyncClient, cfg: SourceSettings, family: str, now: datetime | None = None
) -> Liquidations:
    """The most recent filled liquidation orders of one swap family (e.g. "BTC-USDT")."""
    body = await get_json(
        client,
        SOURCE,
        f"{cfg.okx_url}/api/v5/public/liquidation-orders",
        params={"instType": "SWAP", "instFamily": family, "state": "filled"},
        headers=HEADERS,
    )
    values = await fetch_contract_values(client, cfg, liquidation_instruments(body))
    return parse_liquidations(body, values, now)


# --- open interest --------------------------------------------------------------------------


def parse_open_interest_history(body: Any) -> list[OpenInterestPoint]:
    """rubik open-interest-history body (rows [ts, oi, oiCcy, oiUsd], newest first) -> oldest first."""
    points: list[OpenInterestPoint] = []
    for row in okx_data(body):
        if not isinstance(row, list) or len(row) < 4:
            raise BadResponse(SOURCE, "open interest history row has an unexpected shape")
        points.append(
            OpenInterestPoint(
                ts=from_ms(row[0], SOURCE, "ts"),
                oi_usd=bounds.open_interest_usd(row[3], SOURCE, "oiUsd"),
            )
        )
    points.sort(key=lambda p: p.ts)
    return points


def parse_open_interest(body: Any, history: list[OpenInterestPoint] | None = None) -> OpenInterest:
    """public/open-interest body -> OpenInterest in USD."""
    item = _first(body)
    return OpenInterest(
        source=SOURCE,
        as_of=from_ms(item.get("ts"), SOURCE, "ts"),
        instrument=str(item.get("instId") or ""),
        oi_usd=bounds.open_interest_usd(item.get("oiUsd"), SOURCE, "oiUsd"),
        history=history or [],
    )


async def _open_interest_history(
    client: httpx.AsyncClient, cfg: SourceSettings, inst_id: str
) -> list[OpenInterestPoint]:
    body = await get_json(
        client,
        SOURCE,
        f"{cfg.okx_url}/api/v5/rubik/stat/contracts/open-interest-history",
        params={"instId": inst_id, "period": "5m"},
        headers=HEADERS,
    )
    return parse_open_interest_history(body)


async def fetch_open_interest(
    client: httpx.AsyncClient, cfg: SourceSettings, inst_id: str = "BTC-USDT-SWAP"
) -> OpenInterest:
    """Open interest now, with OKX's own 5-minute history (empty if that call fails)."""
    current = get_json(
        client,
        SOURCE,
        f"{cfg.okx_url}/api/v5/public/open-interest",
        params={"instType": "SWAP", "instId": inst_id},
        headers=HEADERS,
    )
    outcome: tuple[
        Any | BaseException, list[OpenInterestPoint] | BaseException
    ] = await asyncio.gather(
        current, _open_interest_history(client, cfg, inst_id), return_exceptions=True
    )
    body, got_history = outcome
    if isinstance(body, BaseException):
        raise body
    history: list[OpenInterestPoint] = []
    if isinstance(got_history, SourceError):
        # the history only sharpens the 1h comparison; stored snapshots can stand in for it
        pass
    elif isinstance(got_history, BaseException):
        raise got_history
    else:
        history = got_history
    result = parse_open_interest(body, history)
    if not result.instrument:
        result = result.model_copy(update={"instrument": inst_id})
    return result


# --- funding --------------------------------------------------------------------------------


def parse_funding(body: Any, now: datetime | None = None) -> Funding:
    """public/funding-rate body -> the current period's rate."""
    item = _first(body)
    # `fundingTime` is the settlement still to come, not the data's time; older bodies lack `ts`
    as_of = from_ms(item["ts"], SOURCE, "ts") if item.get("ts") else (now or datetime.now(UTC))
    return Funding(
        source=SOURCE,
        as_of=as_of,
        instrument=str(item.get("instId") or ""),
        rate=bounds.funding_rate(item.get("fundingRate"), SOURCE, "fundingRate"),
    )


async def fetch_funding(
    client: httpx.AsyncClient,
    cfg: SourceSettings,
    inst_id: str = "BTC-USDT-SWAP",
    now: datetime | None = None,
) -> Funding:
    """The current funding rate of one swap."""
    body = await get_json(
        client,
        SOURCE,
        f"{cfg.okx_url}/api/v5/public/funding-rate",
        params={"instId": inst_id},
        headers=HEADERS,
    )
    return parse_funding(body, now)


# --- candles --------------------------------------------------------------------------------


def parse_candles(body: Any, inst_id: str, limit: int = 5) -> Candles:
    """market/candles body (rows newest first) -> the last `limit` confirmed candles, oldest first."""
    candles: list[Candle] = []
    for row in okx_data(body):
        if not isinstance(row, list) or len(row) < 9:
            raise BadResponse(SOURCE, "candle row has an unexpected shape")
        if str(row[8]) != "1":
            continue  # the current minute is still open
        candles.append(
            Candle(start=from_ms(row[0], SOURCE, "ts"), close=bounds.price(row[4], SOURCE, "close"))
        )
    candles.sort(key=lambda c: c.start)
    candles = candles[-limit:]
    if not candles:
        raise BadResponse(SOURCE, "no closed candles")
    return Candles(
        source=SOURCE,
        as_of=candles[-1].start + timedelta(seconds=CANDLE_SECONDS),
        symbol=inst_id,
        granularity_s=CANDLE_SECONDS,
        candles=candles,
    )


async def fetch_candles(
    client: httpx.AsyncClient, cfg: SourceSettings, inst_id: str = "BTC-USDT", limit: int = 5
) -> Candles:
    """The last `limit` closed 1-minute candles."""
    body = await get_json(
        client,
        SOURCE,
        f"{cfg.okx_url}/api/v5/market/candles",
        # one more than wanted: the newest row is usually the still-open minute
        params={"instId": inst_id, "bar": "1m", "limit": str(limit + 1)},
        headers=HEADERS,
    )
    return parse_candles(body, inst_id, limit)


# --- open interest per coin (all swaps of a coin, for the cross-venue sum) ------------------

#: the fields `parse_venue_open_interest` reads
OPEN_INTEREST_SHAPE: Shape = ("code", "data[].instId", "data[].oiUsd", "data[].ts")


def parse_venue_open_interest(body: Any, coins: Iterable[str]) -> list[VenueOpenInterest]:
    """public/open-interest (instType=SWAP) body -> USD open interest per coin.

    A coin's perpetuals are summed over their margin currencies (BTC-USDT-SWAP, BTC-USD-SWAP,
    BTC-USDC-SWAP...). `oiUsd` is OKX's own USD value (`oi` is in contracts, `oiCcy` in coins).
    """
    wanted = [c.upper() for c in coins]
    sums: dict[str, float] = {}
    stamps: dict[str, datetime] = {}
    instruments: dict[str, list[str]] = {}
    for item in okx_data(body):
        if not isinstance(item, dict):
            raise BadResponse(SOURCE, "an open interest entry is not an object")
        inst_id = str(item.get("instId") or "")
        parts = inst_id.split("-")
        if len(parts) != 3 or parts[2] != "SWAP" or parts[0] not in wanted:
            continue
        coin = parts[0]
        sums[coin] = bounds.check(
            bounds.open_interest_usd,
            sums.get(coin, 0.0) + bounds.open_interest_usd(item.get("oiUsd"), SOURCE, "oiUsd"),
            SOURCE,
            f"{coin} open interest",
        )
        ts = from_ms(item.get("ts"), SOURCE, "ts")
        stamps[coin] = max(ts, stamps.get(coin, ts))
        instruments.setdefault(coin, []).append(inst_id)
    return [
        VenueOpenInterest(
            venue=SOURCE,
            coin=coin,
            usd=sums[coin],
            at=stamps[coin],
            instruments=sorted(instruments[coin]),
        )
        for coin in wanted
        if coin in sums
    ]


async def fetch_venue_open_interest(
    client: httpx.AsyncClient, base_url: str, coins: Iterable[str] = ("BTC", "ETH", "SOL")
) -> list[VenueOpenInterest]:
    """USD open interest per coin over all its OKX perpetuals (one request for every swap)."""
    body = await get_json(
        client,
        SOURCE,
        f"{base_url}/api/v5/public/open-interest",
        params={"instType": "SWAP"},
        headers=HEADERS,
    )
    return parse_venue_open_interest(body, coins)
