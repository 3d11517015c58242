"""Command line: `python -m benchmarks [--db sqlite|postgres] [--quick] [--report R.md] ...`.

Every run works on a database of its own, created here and removed at the end:

- SQLite: a file in a temporary directory (what users run, unlike `:memory:`);
- PostgreSQL: a database `revy_bench_<pid>` on the server the libpq variables name (`PGHOST`,
  `PGPORT`, `PGUSER`, `PGPASSWORD`; `PGDATABASE` is the database to connect to for creating
  and dropping it, `postgres` by default). A throwaway server::

      scripts/postgres.sh start && eval "$(scripts/postgres.sh env)"
      python -m benchmarks --db postgres

Other options: `--case NAME` (repeatable) runs some cases only, `--rounds N` changes the number
of timed rounds, `-v` prints every round, `--profile` runs each tracked case once more under
cProfile and prints, for every missed goal, where the time goes, `--sqlite-dir DIR` puts the
SQLite file elsewhere (on a tmpfs such as /dev/shm, commits no longer wait for the disk),
`--clock cpu` measures this process's CPU time instead of elapsed time,
`--report PATH.md` and `--plot PATH.png` write the results as markdown and as a chart (with
both, of every database the report holds: runs on SQLite and PostgreSQL share one report).

The table goes to stdout; progress to stderr. The exit status is 0 even when a goal is missed
(the benchmarks measure, the tests judge), and 1 when a case fails.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

# The `benchmarks` package is imported by its name: make the repository root importable when
# the command runs from elsewhere (`python /path/to/benchmarks`).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


# The cases of benchmarks/cases.py, in the order they run (named here because that module
# needs Django set up, which waits until the database is chosen).
CASE_NAMES = (
    "create",
    "update",
    "delete",
    "fetched",
    "batch",
    "load",
    "snapshot",
    "bulk_update",
    "bulk_update_objects",
    "bulk_delete",
)
# Run only when named (`--case as_of`): building their history takes minutes.
OPT_IN_CASES = ("as_of",)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="What revy's tracking costs compared with Django alone.",
    )
    parser.add_argument(
        "--db",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="database (default: sqlite, a file in a temporary directory)",
    )
    parser.add_argument(
        "--sqlite-dir",
        metavar="DIR",
        help="where the SQLite file goes (default: the temporary directory, $TMPDIR). "
        "Commits there wait for the disk (fsync); a tmpfs such as /dev/shm shows the CPU cost "
        "alone",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small counts, a few seconds (CI smoke test)"
    )
    parser.add_argument(
        "--case",
        action="append",
        choices=CASE_NAMES + OPT_IN_CASES,
        help="run only this case (repeatable; default: all)",
    )
    parser.add_argument(
        "--rounds", type=int, help="timed rounds of every case (default: 3 to 10 by case)"
    )
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall: elapsed time (default); cpu: this process's CPU time, which ignores other "
        "processes and waits for the disk or the server (steadier on a busy machine; with "
        "PostgreSQL it leaves out the server's work)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="after timing, run each tracked case once more under cProfile and print revy's "
        "functions by cumulative time for every missed goal",
    )
    parser.add_argument(
        "--api-scale",
        action="store_true",
        help="instead of the write benchmarks, seed PostgreSQL with a million object deltas "
        "(minutes) and time every REST list and filter and the GraphQL queries "
        "(benchmarks/api.py); needs the API extra",
    )
    parser.add_argument(
        "--baseline-scale",
        type=int,
        metavar="ROWS",
        help="instead of the write benchmarks, fill a table with ROWS rows on PostgreSQL and "
        "time revy_baseline against a plain INSERT ... SELECT copy (benchmarks/baseline.py)",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="--api-scale: keep the seeded database, and reuse it when it exists",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="also print every timed round")
    parser.add_argument("--report", metavar="PATH.md", help="also write a markdown report")
    parser.add_argument(
        "--plot", metavar="PATH.png", help="also write a bar chart (needs matplotlib)"
    )
    return parser.parse_args(argv)


# Databases ---------------------------------------------------------------------------------


@contextlib.contextmanager
def sqlite_database(parent: str | None) -> Iterator[None]:
    with tempfile.TemporaryDirectory(prefix="revy-bench-", dir=parent) as directory:
        os.environ["REVY_BENCH_DB"] = "sqlite"
        os.environ["REVY_BENCH_SQLITE_PATH"] = os.path.join(directory, "bench.sqlite3")
        yield


@contextlib.contextmanager
def postgres_database(name: str | None = None, keep: bool = False) -> Iterator[None]:
    """A database of its own on the server: created, and dropped at the end unless `keep`
    (then an existing database of that name is used as it is)."""
    try:
        import psycopg
    except ImportError:
        raise SystemExit("--db postgres needs psycopg: pip install 'psycopg[binary]'") from None
    name = name or f"revy_bench_{os.getpid()}"
    maintenance = os.environ.get("PGDATABASE") or "postgres"
    try:
        admin = psycopg.connect(dbname=maintenance, autocommit=True)
    except psycopg.OperationalError as error:
        raise SystemExit(
            f"Cannot connect to PostgreSQL ({error}).\nStart a throwaway server with: "
            'scripts/postgres.sh start && eval "$(scripts/postgres.sh env)"'
        ) from None
    with admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not (keep and exists):
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
            admin.execute(f'CREATE DATABASE "{name}"')
        os.environ["REVY_BENCH_DB"] = "postgres"
        os.environ["REVY_BENCH_PG_NAME"] = name
        try:
            yield
        finally:
            from django.db import connections

            connections.close_all()
            if not keep:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def describe_database() -> str:
    """The database's product, version and whereabouts, for the environment line."""
    from django.db import connection

    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"SQLite {sqlite3.sqlite_version} (file {settings['NAME']})"
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        version = cursor.fetchone()[0].split()[0]
        # Durability settings change what a write costs: say what they are.
        durability = []
        for name in ("fsync", "synchronous_commit"):
            cursor.execute(f"SHOW {name}")
            durability.append(f"{name} {cursor.fetchone()[0]}")
    info = connection.connection.info
    return (
        f"PostgreSQL {version} ({info.host}:{info.port}, database {settings['NAME']}; "
        f"{', '.join(durability)})"
    )


# Running -----------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> tuple[list, str]:
    """Set Django up on a fresh database, run the cases; return the results and environment."""
    database = sqlite_database(args.sqlite_dir) if args.db == "sqlite" else postgres_database()
    with database:
        os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"
        import django

        django.setup()
        from django.core.management import call_command

        from benchmarks import report
        from benchmarks.cases import CASES, FULL, QUICK, Bench
        from benchmarks.harness import options

        call_command("migrate", verbosity=0)
        environment = report.environment(describe_database())
        if args.clock == "cpu":
            environment += "; times are this process's CPU time (--clock cpu)"
        print(f"revy benchmarks{' (quick)' if args.quick else ''}")
        print(f"Environment: {environment}", flush=True)

        sizes = QUICK if args.quick else FULL
        if args.rounds:
            sizes = sizes.with_rounds(args.rounds)
        options.profile = args.profile
        options.clock = time.process_time if args.clock == "cpu" else time.perf_counter
        bench = Bench(sizes)
        results = []
        load = report.load_average()
        for name in args.case or CASE_NAMES:
            started = time.perf_counter()
            print(f"  {name} ...", end="", file=sys.stderr, flush=True)
            results.extend(CASES[name](bench))
            print(f" {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
        # Other processes slow both sides of a comparison, not always alike: say how busy
        # the machine was.
        environment += f"; load average {load} at the start, {report.load_average()} at the end"
    return results, environment


def run_api_scale(args: argparse.Namespace) -> int:
    """Seed (unless kept from an earlier run) and measure the API at scale."""
    if args.db != "postgres":
        raise SystemExit("--api-scale measures PostgreSQL: add --db postgres.")
    from benchmarks.api import QUICK_SCALE, SCALE

    sizes = QUICK_SCALE if args.quick else SCALE
    with postgres_database(sizes.database_name(), keep=args.keep):
        os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings_api"
        import django

        django.setup()
        from django.core.management import call_command

        from benchmarks import api, report

        call_command("migrate", verbosity=0)
        environment = report.environment(describe_database())
        print(f"revy API at scale{' (quick)' if args.quick else ''}")
        print(f"Environment: {environment}", flush=True)
        if api.seeded(sizes):
            api.progress("history already seeded (--keep)")
        else:
            api.progress(
                f"seeding {sizes.revisions:,} revisions, {sizes.object_deltas:,} object deltas, "
                f"{sizes.attribute_deltas:,} attribute deltas"
            )
            api.seed(sizes, api.progress)
        load = report.load_average()
        results = api.measure(sizes, api.progress)
        load = f"{load}, after: {report.load_average()}"
        sizes_lines = api.storage(sizes)
    print()
    print("\n".join(api.table(results)))
    print("\n".join(sizes_lines))
    if args.report:
        given = sys.argv[1:]
        header = [
            f"`{shlex.join(['python', '-m', 'benchmarks', *given])}`",
            "",
            f"Environment: {environment}; load average before: {load}",
            "",
            f"History: {sizes.revisions:,} revisions, {sizes.object_deltas:,} object deltas, "
            f"{sizes.attribute_deltas:,} attribute deltas; {sizes.requests} timed requests per "
            "line through Django's test client (session authentication, every middleware).",
        ]
        api.write_report(args.report, results, header, sizes_lines)
        print(f"Markdown report: {args.report}")
    return 0


def run_baseline_scale(args: argparse.Namespace) -> int:
    """Time the set-based baseline of `--baseline-scale` rows against a plain copy."""
    if args.db != "postgres":
        raise SystemExit("--baseline-scale measures PostgreSQL: add --db postgres.")
    with postgres_database(f"revy_bench_baseline_{os.getpid()}"):
        os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"
        import django

        django.setup()
        from django.core.management import call_command

        from benchmarks import baseline, report
        from benchmarks.api import progress

        call_command("migrate", verbosity=0)
        load = report.load_average()
        environment = report.environment(describe_database())
        lines = baseline.measure(args.baseline_scale, progress)
        load = f"{load}, after: {report.load_average()}"
    print(f"Environment: {environment}; load average before: {load}")
    print("\n".join(lines))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.baseline_scale:
        return run_baseline_scale(args)
    if args.api_scale:
        return run_api_scale(args)
    started = time.perf_counter()
    results, environment = run(args)
    elapsed = time.perf_counter() - started

    from benchmarks import report

    print()
    print(report.table(results))
    print()
    print(f"{report.summary(results)}. ({elapsed:.0f} s in all)")
    print(report.LEGEND)
    if args.verbose:
        print()
        print(report.rounds(results))
    if args.profile:
        print()
        print(report.profiles(results))
    if args.report:
        given = sys.argv[1:] if argv is None else argv
        command = shlex.join(["python", "-m", "benchmarks", *given])
        # One section per database: SQLite and PostgreSQL runs share one report.
        report.write_markdown(args.report, results, environment, command, database=args.db)
        print(f"Markdown report: {args.report}")
    if args.plot:
        quick = " (quick)" if args.quick else ""
        if args.report:
            # Every database the report holds, so that the chart matches the report.
            drawn = report.plot_report(args.report, args.plot, f"revy's overhead{quick}")
        else:
            database = "SQLite" if args.db == "sqlite" else "PostgreSQL"
            title = f"revy's overhead on {database}{quick}"
            if args.clock == "cpu":
                title += ", CPU time"
            drawn = report.plot(args.plot, results, title)
        if drawn:
            print(f"Chart: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
