"""Retention at scale: seed millions of deltas with SQL, then time `revy_prune`.

    python -m benchmarks.retention --db sqlite|postgres [--deltas 1000000] [--objects 10000]
        [--keep-last 10] [--no-seed | --seed-only]

Seeds `--deltas` updates of `--objects` users in turn (`benchmarks.scale.seed`: one SQL
statement per table, PostgreSQL generate_series, SQLite a recursive CTE; one object delta and
one attribute delta per update, 100 per revision), measures the history tables' bytes per
delta, then runs in child processes and reports time, peak resident memory and deltas/s of:

1. `revy_prune --before T --dry-run`, T the time of the middle delta;
2. `revy_prune --before T`: the older half;
3. `revy_prune --before <after the last> --keep-last N --dry-run`, then without `--dry-run`:
   every user keeps its N most recent deltas, the rest of the newer half goes.

Its own databases: PostgreSQL `revy_retention` on the server of the libpq variables (PGHOST,
...), dropped and created again unless `--no-seed`; SQLite /tmp/revy-retention.sqlite3.
"""

from __future__ import annotations

import argparse
import datetime

from benchmarks import scale

SQLITE_PATH = "/tmp/revy-retention.sqlite3"
PG_NAME = "revy_retention"
MODULE = "benchmarks.retention"


def count() -> int:
    from django.db import connection

    from revy.contrib.django.models import ObjectDelta

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {ObjectDelta._meta.db_table}")
        return cursor.fetchone()[0]


def created_at(delta_id: int) -> str:
    from django.db import connection

    from revy.contrib.django.models import ObjectDelta

    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT created_at FROM {ObjectDelta._meta.db_table} WHERE id = %s", [delta_id]
        )
        moment = cursor.fetchone()[0]
    return moment.isoformat() if hasattr(moment, "isoformat") else str(moment).replace(" ", "T")


def measure(db: str, label: str, command: list[str]) -> None:
    """Run `command` in a child process and print its time, peak memory and rate."""
    before = count()
    seconds, rss = scale.child(db, command, module=MODULE)
    deleted = before - count()
    rate = f", {deleted / seconds:,.0f} deltas/s" if deleted else ""
    print(
        f"{label}: {deleted:,} object deltas deleted in {seconds:.1f} s{rate}, "
        f"peak RSS {rss:.0f} MiB",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--deltas", type=int, default=1_000_000)
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--keep-last", type=int, default=10)
    parser.add_argument("--no-seed", action="store_true", help="Use the database seeded before.")
    parser.add_argument("--seed-only", action="store_true", help="Seed, measure nothing.")
    parser.add_argument("--run", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        scale.setup(args.db, SQLITE_PATH, PG_NAME)
        from django.core.management import call_command

        call_command(*args.run)
        return
    if not args.no_seed:
        scale.reset(args.db, SQLITE_PATH, PG_NAME)
    scale.setup(args.db, SQLITE_PATH, PG_NAME)
    if not args.no_seed:
        seeded = scale.seed(args.db, args.deltas, objects=args.objects)
        print(
            f"{args.db}: seeded {args.deltas:,} updates of {args.objects:,} rows "
            f"(object + attribute delta each) in {seeded:.1f} s",
            flush=True,
        )
        size = scale.storage(args.db)
        print(
            f"storage: {size / 2**20:.1f} MiB, {size / args.deltas:.0f} bytes per delta "
            f"(object + attribute delta, indexes included)",
            flush=True,
        )
    if args.seed_only:
        return
    middle = created_at(args.deltas // 2)
    measure(
        args.db, "revy_prune --before (dry run)", ["revy_prune", "--before", middle, "--dry-run"]
    )
    measure(args.db, "revy_prune --before (the older half)", ["revy_prune", "--before", middle])
    later = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)).isoformat()
    keep = ["revy_prune", "--before", later, "--keep-last", str(args.keep_last)]
    measure(args.db, f"revy_prune --keep-last {args.keep_last} (dry run)", [*keep, "--dry-run"])
    measure(args.db, f"revy_prune --keep-last {args.keep_last} (the rest)", keep)
    print(f"{count():,} object deltas left")


if __name__ == "__main__":
    main()
