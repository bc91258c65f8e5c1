"""The `whydown` command line: why, demo, chart, sources, run, status, backup, backtest,
webhook."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

from pydantic import SecretStr

from bot import logs
from bot.actions import ActionError, ChartUnavailable, answer, draw
from bot.commands import Replies
from bot.config import Settings
from bot.runner import EXIT_DATABASE, build_explainer, demo_client, http_client, run
from bot.status import status_report
from bot.store import MIN_DRIVERS_HIGHEST, MIN_DRIVERS_LOWEST, DatabaseFault, Store
from bot.store.backup import BackupRefused, backup
from bot.webhook import describe_url, validate_url
from explainers import render
from explainers.backtest import DayArchive, MemoryArchive, TimeMachine, backtest, preview_text
from explainers.chart_service import ChartMaker
from explainers.replay import Scenario
from explainers.service import Explainer
from explainers.timemachine import BadDate

#: each source's history around 5 August 2024, for `whydown demo --at` and `backtest --demo`
HISTORY_DEMO = Path(__file__).resolve().parent.parent / "explainers" / "demo" / "aug-2024-history"

EXIT_BAD_INPUT = 2
DEMO_CHART = "whydown-demo-chart.png"
TERMINAL = Replies(None, "text")
FULL_HELP = (
    "the full answer: every figure with its source and time, headlines, what to watch "
    "(default: the summary and a line per firing driver)"
)  # the bots' replies, as plain text, for no chat platform


def _refused(err: ActionError) -> int:
    """Say why on stderr, as the bots would; the exit code: 2 for bad input, 1 for an outage."""
    if isinstance(err, ChartUnavailable):  # /why's advice means nothing here
        print(f"No chart: {err.reason or 'it could not be drawn'}.", file=sys.stderr)
    else:
        print(err.reply(TERMINAL), file=sys.stderr)
    return 1 if err.outage else EXIT_BAD_INPUT


async def _answer(
    explainer: Explainer,
    coin: str | None,
    as_json: bool,
    settings: Settings,
    full: bool = False,
) -> int:
    try:
        explanation = await answer(explainer, coin)
    except ActionError as err:
        return _refused(err)
    if as_json:
        print(explanation.model_dump_json(indent=2))
    else:
        print(render.text(explanation, settings.thresholds, full=full), end="")
    return 0


async def cmd_why(args: argparse.Namespace, settings: Settings) -> int:
    """`whydown why [COIN] [--at DATE] [--json]`: the answer from live data, or for a past day."""
    async with http_client(settings) as client:
        if args.at:
            with ExitStack() as stack:
                tm = TimeMachine(
                    client, settings.sources, settings.thresholds, archive=_archive(settings, stack)
                )
                return await _past(tm, args.at, args.coin, args.json, settings, full=args.full)
        explainer = build_explainer(client, settings)
        return await _answer(explainer, args.coin, args.json, settings, args.full)


def _archive(settings: Settings, stack: ExitStack) -> DayArchive:
    """The bot's archive when its database exists (past answers, cached days), else memory."""
    if not settings.database.exists():
        return MemoryArchive()
    return stack.enter_context(Store(settings.database)).archive


async def _past(
    tm: TimeMachine,
    at: str,
    coin: str | None,
    as_json: bool,
    settings: Settings,
    scenario: Scenario | None = None,
    *,
    full: bool = False,
) -> int:
    """The answer as of the end of a past day; exit 2 for a date that cannot be answered."""
    try:
        day = tm.parse(at)
    except BadDate as err:
        print(f"No answer for that date: {err.reason}.", file=sys.stderr)
        return EXIT_BAD_INPUT
    explanation = await tm.answer(day, coin)
    if scenario is not None:
        explanation = explanation.model_copy(update={"replay": scenario.replay})
    if as_json:
        print(explanation.model_dump_json(indent=2))
    else:
        print(render.text(explanation, settings.thresholds, full=full), end="")
    return 0


async def _write_chart(maker: ChartMaker, what: str | None, path: Path) -> int:
    """Draw the chart for `what` (a coin, "etf", or None for the market) into `path`."""
    try:
        chart = (await draw(maker, what)).chart
    except ActionError as err:
        return _refused(err)
    path.write_bytes(chart.png)
    print(f"Chart: {path.resolve()}")
    return 0


async def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    """`whydown demo [COIN]`: the answer replayed from the recorded sell-off, and its chart.
    With `--at DATE`: that day rebuilt from the recorded history around it."""
    if args.at:
        history = Scenario.load(HISTORY_DEMO)
        async with demo_client(settings, history) as client:
            tm = TimeMachine(
                client, settings.sources, settings.thresholds, clock=lambda: history.now
            )
            return await _past(tm, args.at, args.coin, args.json, settings, history, full=args.full)
    scenario = Scenario.load()
    async with demo_client(settings, scenario) as client:
        explainer = build_explainer(
            client, settings, clock=lambda: scenario.now, replay=scenario.replay
        )
        code = await _answer(explainer, args.coin, args.json, settings, args.full)
        if code != 0 or args.json or args.no_chart:
            return code  # JSON output stays parseable: no chart line after it
        maker = ChartMaker(explainer, settings.sources, clock=lambda: scenario.now)
        # the answer went out; a chart that cannot be drawn does not fail the command
        await _write_chart(maker, args.coin, Path(args.chart))
        return code


async def cmd_chart(args: argparse.Namespace, settings: Settings) -> int:
    """`whydown chart [coin|etf] -o FILE`: the chart as a PNG."""
    if args.demo:
        scenario = Scenario.load()
        async with demo_client(settings, scenario) as client:
            explainer = build_explainer(
                client, settings, clock=lambda: scenario.now, replay=scenario.replay
            )
            maker = ChartMaker(explainer, settings.sources, clock=lambda: scenario.now)
            return await _write_chart(maker, args.what, Path(args.output))
    async with http_client(settings) as client:
        maker = ChartMaker(build_explainer(client, settings), settings.sources)
        return await _write_chart(maker, args.what, Path(args.output))


async def cmd_sources(args: argparse.Namespace, settings: Settings) -> int:
    """`whydown sources [--listen SECONDS]`: every source checked live (status, latency, as-of,
    body shape), then each liquidation stream listened to."""
    from bot.doctor import doctor  # the live checks load only for this command

    lines, code = await doctor(settings, args.listen)
    print("\n".join(lines))
    return code


async def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    """`whydown run [--demo]`: the bots and the alert scheduler."""
    return await run(settings, demo=args.demo)


async def cmd_backtest(args: argparse.Namespace, settings: Settings) -> int:
    """`whydown backtest --days N --min-drivers M [--json] [--chart FILE] [--demo]`: the alert
    rule over the past days, rebuilt from each source's history (and the archive)."""
    if not 1 <= args.days <= 3650 or not 1 <= args.min_drivers <= 6:
        print("--days must be 1 to 3650 and --min-drivers 1 to 6.", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.demo:
        scenario = Scenario.load(HISTORY_DEMO)
        async with demo_client(settings, scenario) as client:
            tm = TimeMachine(
                client, settings.sources, settings.thresholds, clock=lambda: scenario.now
            )
            result = await backtest(tm, args.days, args.min_drivers)
    else:
        async with http_client(settings) as client:
            with ExitStack() as stack:
                tm = TimeMachine(
                    client, settings.sources, settings.thresholds, archive=_archive(settings, stack)
                )
                result = await backtest(tm, args.days, args.min_drivers)
    if args.json:
        print(json.dumps(result.summary(), indent=2))
    else:
        print(preview_text(result))
        print(f"Upstream requests: {result.requests}.")
    if args.chart:
        from explainers.backtest_chart import backtest_png  # matplotlib only when asked

        Path(args.chart).write_bytes(backtest_png(result))
        if not args.json:
            print(f"Chart: {Path(args.chart).resolve()}")
    return 0


async def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    """`whydown status`: what the database says about the running bot."""
    try:
        print(status_report(settings))
    except DatabaseFault as err:
        print(err, file=sys.stderr)
        return EXIT_DATABASE
    return 0


async def cmd_backup(args: argparse.Namespace, settings: Settings) -> int:
    """`whydown backup FILE [--force]`: a consistent copy of the database, even while
    `whydown run` runs."""
    try:
        done = backup(settings.database, Path(args.file), force=args.force)
    except BackupRefused as err:
        print(err, file=sys.stderr)
        return EXIT_BAD_INPUT
    except DatabaseFault as err:
        print(err, file=sys.stderr)
        return EXIT_DATABASE
    print(
        f"Backed up {settings.database} to {done.target} ({done.size // 1024} KB, schema "
        f"v{done.schema_version}, {done.subscriptions} active subscriptions)."
    )
    return 0


async def cmd_webhook(args: argparse.Namespace, settings: Settings) -> int:
    """`whydown webhook add URL | list | remove ID|URL`: webhook subscriptions in the store."""
    with Store(settings.database) as store:
        if args.action == "add":
            try:
                url = validate_url(args.url)
            except ValueError as err:
                print(err, file=sys.stderr)
                return EXIT_BAD_INPUT
            secret: SecretStr | None = args.secret
            min_drivers = args.min_drivers or settings.alerts.default_min_drivers
            sub = store.subscribe(
                "webhook",
                url,
                None,
                min_drivers,
                "cli",
                secret=secret.get_secret_value() if secret else None,
            )
            signed = "signed" if secret else "unsigned"
            print(
                f"Webhook {sub.id} subscribed: {describe_url(url)}, "
                f"{min_drivers}+ drivers, {signed}."
            )
            return 0
        if args.action == "list":
            subs = store.subscriptions(active_only=False, platform="webhook")
            if not subs:
                print("No webhooks. Add one with `whydown webhook add URL`.")
            for sub in subs:
                state = "active" if sub.active else "inactive"
                signed = "signed" if sub.secret else "unsigned"
                print(
                    f"{sub.id:>5}  {describe_url(sub.chat_id)}  {sub.min_drivers}+ drivers  "
                    f"{signed}  {state}  ({sub.consecutive_failures} failures in a row)"
                )
            return 0
        target = args.target
        match = next(
            (
                s
                for s in store.subscriptions(active_only=False, platform="webhook")
                if str(s.id) == target or s.chat_id == target
            ),
            None,
        )
        if match is None or not store.subs.deactivate(match.id):
            print(f"No active webhook {target}.", file=sys.stderr)
            return EXIT_BAD_INPUT
        print(f"Webhook {match.id} removed: {describe_url(match.chat_id)}.")
        return 0


def _min_drivers(value: str) -> int:
    number = int(value)
    if not MIN_DRIVERS_LOWEST <= number <= MIN_DRIVERS_HIGHEST:
        raise argparse.ArgumentTypeError(
            f"must be {MIN_DRIVERS_LOWEST} to {MIN_DRIVERS_HIGHEST}, not {number}"
        )
    return number


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="whydown", description="Why is crypto down? Answers with evidence."
    )
    sub = p.add_subparsers(dest="command", required=True)
    why = sub.add_parser("why", help="explain the market's move now, from live data")
    why.add_argument("coin", nargs="?", help="a coin symbol or CoinGecko id (e.g. SOL, solana)")
    why.add_argument("--json", action="store_true", help="print the Explanation as JSON")
    why.add_argument(
        "--at",
        metavar="DATE",
        help='a past UTC day: YYYY-MM-DD, "yesterday" or "3d" (answer as of its end)',
    )
    why.add_argument("--full", action="store_true", help=FULL_HELP)
    demo = sub.add_parser(
        "demo", help="the same answer replayed from recorded responses (no network)"
    )
    demo.add_argument("coin", nargs="?", help="a coin symbol or CoinGecko id")
    demo.add_argument("--json", action="store_true", help="print the Explanation as JSON")
    demo.add_argument("--full", action="store_true", help=FULL_HELP)
    demo.add_argument(
        "--chart",
        default=DEMO_CHART,
        metavar="FILE",
        help=f"where to write the demo chart (PNG; default {DEMO_CHART})",
    )
    demo.add_argument("--no-chart", action="store_true", help="do not write the chart")
    demo.add_argument(
        "--at", metavar="DATE", help="a day rebuilt from the recorded history (e.g. 2024-08-05)"
    )
    chart = sub.add_parser(
        "chart", help="draw the sell-off chart (or ETF flows) as a PNG, from live data"
    )
    chart.add_argument(
        "what", nargs="?", help='a coin symbol or CoinGecko id, or "etf"; none: the market'
    )
    chart.add_argument(
        "-o", "--output", default="whydown-chart.png", metavar="FILE", help="the PNG to write"
    )
    chart.add_argument(
        "--demo", action="store_true", help="draw it from the recorded demo sell-off (no network)"
    )
    sources = sub.add_parser(
        "sources",
        help="check every source live (status, latency, as-of, body shape) and listen to the "
        "liquidation streams",
    )
    sources.add_argument(
        "--listen",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long to listen to each liquidation stream (default 10; 0 skips the streams)",
    )
    run_p = sub.add_parser(
        "run", help="run the bots (whichever tokens are set) and the alert scheduler"
    )
    run_p.add_argument(
        "--demo",
        action="store_true",
        help="serve the recorded demo sell-off instead of live data (to try the bots)",
    )
    sub.add_parser("status", help="subscriptions, last refresh, source health and last alert")
    backup_p = sub.add_parser(
        "backup", help="copy the database consistently, even while `whydown run` runs"
    )
    backup_p.add_argument("file", metavar="FILE", help="where to write the copy")
    backup_p.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    bt = sub.add_parser(
        "backtest", help="how often the alert rule would have fired over the past days"
    )
    bt.add_argument("--days", type=int, default=90, help="complete UTC days before today")
    bt.add_argument("--min-drivers", type=int, default=3, help="drivers firing for an alert")
    bt.add_argument("--json", action="store_true", help="print the result as JSON")
    bt.add_argument("--chart", metavar="FILE", help="also draw BTC, alerts and drivers (PNG)")
    bt.add_argument("--demo", action="store_true", help="over the recorded history of August 2024")
    webhook = sub.add_parser("webhook", help="alerts posted to HTTP(S) endpoints, Slack or Discord")
    actions = webhook.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="post alerts to this URL")
    add.add_argument(
        "url", metavar="URL", help="an http(s) URL; Slack and Discord webhook URLs work"
    )
    add.add_argument(
        "--min-drivers",
        type=_min_drivers,
        metavar="N",
        help=f"drivers that must fire together ({MIN_DRIVERS_LOWEST}-{MIN_DRIVERS_HIGHEST}; "
        "default: WHYDOWN_ALERTS__DEFAULT_MIN_DRIVERS)",
    )
    add.add_argument(
        "--secret",
        type=SecretStr,
        metavar="S",
        help="sign each request: X-Whydown-Signature is HMAC-SHA256 of timestamp.body",
    )
    actions.add_parser("list", help="every webhook, with its state")
    remove = actions.add_parser("remove", help="stop posting to a webhook")
    remove.add_argument("target", metavar="ID|URL", help="its id (see list) or its URL")
    return p


COMMANDS = {
    "why": cmd_why,
    "demo": cmd_demo,
    "chart": cmd_chart,
    "sources": cmd_sources,
    "run": cmd_run,
    "status": cmd_status,
    "backup": cmd_backup,
    "backtest": cmd_backtest,
    "webhook": cmd_webhook,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = Settings()
    # the answer itself names failed sources; the log would only repeat it in the terminal
    quiet = args.command in ("why", "demo", "chart", "backtest")
    logs.configure(
        logging.ERROR if quiet else settings.log_level.upper(),
        secrets=[
            settings.telegram_token,
            settings.discord_token,
            settings.sources.coingecko_api_key,
            settings.sources.sosovalue_api_key,
        ],
    )
    return asyncio.run(COMMANDS[args.command](args, settings))


if __name__ == "__main__":
    sys.exit(main())
