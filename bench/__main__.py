"""``python -m bench``: start the stack, run the scenarios, write the results.

``make bench`` runs the whole benchmark (about a quarter of an hour) and writes its figures into
``docs/benchmark/``; ``--quick`` runs every scenario small, in about a minute, into ``--out``.
"""

import argparse
import asyncio
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# After each rate, how long to wait for its last offers and acceptances: long enough for the
# backlog of a rate that was too high to drain, so the next rate starts on a quiet stack and
# what is missing after it is lost, not late.
SETTLE_SECONDS = 120
FULL = {
    "sockets": 10_000,
    "step": 1000,
    "rates": [5, 10, 20, 40, 80, 160, 320, 500],
    "seconds": 60,
    "fanout_sockets": 2000,
    "fanout_events": 5,
}
QUICK = {
    "sockets": 300,
    "step": 100,
    "rates": [5, 10],
    "seconds": 3,
    "fanout_sockets": 300,
    "fanout_events": 2,
}


def arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="every scenario, small (CI)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmark")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
        help="PostgreSQL server the stack gets a database of its own on; 'sqlite' for a file",
    )
    parser.add_argument("--sockets", type=int, help="scenario 1: sockets to open")
    parser.add_argument("--rates", help="scenario 2: pickups/s to try, comma-separated, rising")
    parser.add_argument("--seconds", type=float, help="scenario 2: seconds at each rate")
    parser.add_argument(
        "--fanout-sockets", type=int, help="scenarios 3 and 4: how many of the open sockets"
    )
    parser.add_argument("--fanout-events", type=int, help="scenarios 3 and 4: events to each")
    parser.add_argument(
        "--profile",
        type=Path,
        help="scenario 2: record py-spy profiles of web and the workers at each rate into DIR",
    )
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--vendors", type=int, default=20)
    parser.add_argument(
        "--offer-p99-limit-ms",
        type=float,
        default=1000,
        help="a rate is sustained while create→offer p99 stays below this (no growing backlog)",
    )
    args = parser.parse_args(argv)
    preset = QUICK if args.quick else FULL
    args.sockets = args.sockets or preset["sockets"]
    args.step = min(preset["step"], args.sockets)
    args.rates = [float(r) for r in args.rates.split(",")] if args.rates else preset["rates"]
    args.seconds = args.seconds or preset["seconds"]
    args.fanout_sockets = min(args.fanout_sockets or preset["fanout_sockets"], args.sockets)
    args.fanout_events = args.fanout_events or preset["fanout_events"]
    return args


def main(argv: list[str]) -> int:
    args = arguments(argv)
    if args.database_url != "sqlite":
        os.environ["E2E_DATABASE_URL"] = args.database_url
    from tests.e2e.stack import SETUP, Stack

    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    stack = Stack(
        workdir,
        setup=SETUP,
        env={
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            # The web process's collector for thousands of sockets (see WEB_GC_THRESHOLDS).
            "WEB_GC_THRESHOLDS": "50000,20,100",
            "WEB_GC_FREEZE": "true",
            # The load is many frames from few sockets: no per-socket limit may refuse it.
            "WEBSOCKET_RATE": "100000",
            "WEBSOCKET_BURST": "100000",
        },
    )
    print(f"Starting the stack (logs in {workdir})", flush=True)
    stack.start()
    try:
        os.environ.update(stack.env)
        import django

        django.setup()
        results = asyncio.run(run(stack, args))
    finally:
        stack.stop()
    from bench import report

    results["finished"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    report.write(results, args.out)
    print(f"\nResults in {args.out}")
    for target, goal, measured, met in report.verdicts(results):
        print(f"  {'met    ' if met else 'MISSED '} {target}: {measured} (goal {goal})")
    return 0


async def run(stack, args: argparse.Namespace) -> dict:
    from asgiref.sync import sync_to_async

    from bench import report, scenarios
    from bench.seed import people_with_tokens, seed

    results: dict = {
        "machine": report.machine(),
        "database": "PostgreSQL" if args.database_url != "sqlite" else "SQLite",
        "quick": args.quick,
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    crowd = await sync_to_async(seed, thread_sensitive=False)(
        run=stack.run_id, customers=args.customers, vendors=args.vendors, vendor_capacity=10**6
    )
    people = await sync_to_async(people_with_tokens, thread_sensitive=False)(
        f"{stack.run_id}-socket", args.sockets
    )

    print(f"1. Connection capacity: {args.sockets} sockets", flush=True)
    results["connections"], clients = await scenarios.connections(
        stack, people, step=args.step, parallel=100
    )

    print("3. Fan-out: the platform's path, then the naive one", flush=True)
    # The naive path takes minutes for what ours does in seconds: both get the same, smaller load.
    by_user = {
        p.user_id: c for p, c in list(zip(people, clients, strict=False))[: args.fanout_sockets]
    }
    results["fanout"] = {
        "platform": await scenarios.fanout(
            stack, by_user, events=args.fanout_events, mode="platform"
        )
    }
    # The same users on the naive socket, with the platform's sockets still open beside them.
    naive = await scenarios.naive_sockets(stack, people[: args.fanout_sockets])
    results["fanout"]["naive"] = await scenarios.fanout(
        stack, naive, events=args.fanout_events, mode="naive"
    )
    for mode, outcome in results["fanout"].items():
        print(f"  {mode}: {outcome['per_second']:,.0f} notifications/s", flush=True)
    await asyncio.gather(*(c.close() for c in [*clients, *naive.values()]), return_exceptions=True)
    # The next scenario starts once the server has let go of all of them.
    results["connections"]["close_all_seconds"] = await scenarios.server_closed_all(stack)

    print("2. Pipeline: create → assign → offer → accept", flush=True)
    pipeline = scenarios.Pipeline(stack, crowd)
    await pipeline.connect()
    rates, best = [], 0.0
    for rate in args.rates:
        with scenarios.profiled(stack, args.profile, f"{rate:g}", args.seconds):
            outcome = await pipeline.run(rate, args.seconds, settle=SETTLE_SECONDS)
        rates.append(outcome)
        ok = scenarios.sustained(outcome, offer_p99_limit_ms=args.offer_p99_limit_ms)
        print(
            f"  {rate:>5}/s: created {outcome['created']}, offer p99 "
            f"{outcome['create_to_offer_ms']['p99']} ms, lost {outcome['lost_offers']}"
            f" -> {'sustained' if ok else 'NOT sustained'}",
            flush=True,
        )
        if not ok:
            break
        best = rate
    half = None
    if best:
        half = await pipeline.run(best / 2, args.seconds, settle=SETTLE_SECONDS)
    await pipeline.close()
    results["pipeline"] = {"rates": rates, "max_sustained_rate": best, "half_rate": half}
    return results


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
