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
CASE_NAMES = ("create", "update", "delete", "batch", "load", "snapshot", "bulk_update")
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
def postgres_database() -> Iterator[None]:
    try:
        import psycopg
    except ImportError:
        raise SystemExit("--db postgres needs psycopg: pip install 'psycopg[binary]'") from None
    name = f"revy_bench_{os.getpid()}"
    maintenance = os.environ.get("PGDATABASE") or "postgres"
    try:
        admin = psycopg.connect(dbname=maintenance, autocommit=True)
    except psycopg.OperationalError as error:
        raise SystemExit(
            f"Cannot connect to PostgreSQL ({error}).\nStart a throwaway server with: "
            'scripts/postgres.sh start && eval "$(scripts/postgres.sh env)"'
        ) from None
    with admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
        os.environ["REVY_BENCH_DB"] = "postgres"
        os.environ["REVY_BENCH_PG_NAME"] = name
        try:
            yield
        finally:
            from django.db import connections

            connections.close_all()
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
        for name in args.case or CASE_NAMES:
            started = time.perf_counter()
            print(f"  {name} ...", end="", file=sys.stderr, flush=True)
            results.extend(CASES[name](bench))
            print(f" {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    return results, environment


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
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
