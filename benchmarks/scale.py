"""History at scale: seed millions of deltas with SQL, then time export and prune.

    python -m benchmarks.scale --db sqlite|postgres [--deltas 1000000]

Seeds `--deltas` object deltas (updates of 10,000 users, one revision per 100 deltas, one
attribute delta each, realistic row states) with one SQL statement (PostgreSQL:
generate_series; SQLite: a recursive CTE), not the ORM; measures the history tables' size per
million deltas; then runs `revy_export --format jsonl` (everything) and `revy_prune --before`
(the older half) in child processes and reports each one's time and peak resident memory.
PostgreSQL: a database `revy_scale` on the server of the libpq variables (PGHOST, ...),
created if missing and emptied first. SQLite: /tmp/revy-scale.sqlite3, recreated.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

SQLITE_PATH = "/tmp/revy-scale.sqlite3"
PG_NAME = "revy_scale"


def setup(db: str, sqlite_path: str = SQLITE_PATH, pg_name: str = PG_NAME) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"
    os.environ["REVY_BENCH_DB"] = db
    os.environ["REVY_BENCH_SQLITE_PATH"] = sqlite_path
    os.environ["REVY_BENCH_PG_NAME"] = pg_name
    import django

    django.setup()


def reset(db: str, sqlite_path: str = SQLITE_PATH, pg_name: str = PG_NAME) -> None:
    if db == "sqlite":
        if os.path.exists(sqlite_path):
            os.remove(sqlite_path)
        return
    import psycopg

    with psycopg.connect(dbname="postgres", autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {pg_name}")
        connection.execute(f"CREATE DATABASE {pg_name}")


def seed(db: str, deltas: int, objects: int | None = None) -> float:
    """Seed `deltas` updates; each is about its own row, or one of `objects` rows in turn."""
    from django.contrib.auth.models import User
    from django.contrib.contenttypes.models import ContentType
    from django.core.management import call_command
    from django.db import connection

    from revy.contrib.django.models import AttributeDelta, ObjectDelta, Revision

    call_command("migrate", verbosity=0)
    ct = ContentType.objects.get_for_model(User).pk
    revision, delta, attribute = (m._meta.db_table for m in (Revision, ObjectDelta, AttributeDelta))
    revisions = (deltas + 99) // 100
    if db == "postgres":
        series = "generate_series(1, %s) AS i"
        moment = "now() - make_interval(secs => %s - i)"
        text = "i::text" if objects is None else f"(i %% {objects} + 1)::text"
        json = "json_build_object('id', i %% 10000, 'username', 'user' || (i %% 10000), "
        json += "'email', 'user' || i || '@example.com', 'is_active', true, "
        json += "'date_joined', '2026-01-01T00:00:00Z')"
        value = "to_json('user' || i || '@example.com')"
        old = "to_json('user' || (i - 1) || '@example.com')"
    else:
        series = "(WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < %s) "
        series += "SELECT i FROM s)"
        moment = "strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now', '-' || (%s - i) || ' seconds')"
        text = "CAST(i AS TEXT)" if objects is None else f"CAST(i %% {objects} + 1 AS TEXT)"
        json = "json_object('id', i %% 10000, 'username', 'user' || (i %% 10000), "
        json += "'email', 'user' || i || '@example.com', 'is_active', json('true'), "
        json += "'date_joined', '2026-01-01T00:00:00Z')"
        value = "json_quote('user' || i || '@example.com')"
        old = "json_quote('user' || (i - 1) || '@example.com')"
    to_json = "::jsonb" if db == "postgres" else ""
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {revision} (id, description, created_at, metadata) "
            f"SELECT i, '', {moment.replace('- i', '- i * 100')}, '{{}}' FROM {series}",
            [deltas, revisions],
        )
        cursor.execute(
            f"INSERT INTO {delta} (id, revision_id, actor_type_id, actor_id, action, event_type, "
            "description, content_type_id, content_id, data, created_at, transaction_id) "
            f"SELECT i, (i - 1) / 100 + 1, {ct}, '1', 'Update', 'auth.user.updated', '', {ct}, "
            f"{text}, {json}{to_json}, {moment}, 0 FROM {series}",
            [deltas, deltas],
        )
        cursor.execute(
            f"INSERT INTO {attribute} (id, revision_id, parent_id, actor_type_id, actor_id, "
            "action, description, content_type_id, content_id, field_name, old_value, "
            "new_value, created_at, automatic) "
            f"SELECT i, (i - 1) / 100 + 1, i, {ct}, '1', 'Set', '', {ct}, {text}, 'email', "
            f"{old}{to_json}, {value}{to_json}, {moment}, false FROM {series}",
            [deltas, deltas],
        )
    if db == "postgres":
        with connection.cursor() as cursor:
            for table in (revision, delta, attribute):
                cursor.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT max(id) FROM {table}))"
                )
    return time.perf_counter() - started


def storage(db: str) -> int:
    """Bytes of the three history tables with their indexes."""
    from django.db import connection

    from revy.contrib.django.models import AttributeDelta, ObjectDelta, Revision

    tables = [m._meta.db_table for m in (Revision, ObjectDelta, AttributeDelta)]
    with connection.cursor() as cursor:
        if db == "postgres":
            cursor.execute("VACUUM ANALYZE")
            cursor.execute(
                "SELECT sum(pg_total_relation_size(t)) FROM unnest(%s::text[]) AS t", [tables]
            )
            return int(cursor.fetchone()[0])
        cursor.execute("PRAGMA page_count")
        pages = cursor.fetchone()[0]
        cursor.execute("PRAGMA page_size")
        return pages * cursor.fetchone()[0]  # the whole file: history is nearly all of it


def child(db: str, command: list[str], module: str = "benchmarks.scale") -> tuple[float, float]:
    """Run a management command in a child process (`python -m module --db db --run ...`):
    (seconds, peak RSS in MiB)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", module, "--db", db, "--run", *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # wait4: this child's own peak, not the largest of every child so far.
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if status:
        raise SystemExit(f"{command[0]} failed ({status})")
    return seconds, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--deltas", type=int, default=1_000_000)
    parser.add_argument("--run", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        setup(args.db)
        from django.core.management import call_command

        call_command(*args.run)
        return
    reset(args.db)
    setup(args.db)
    seeded = seed(args.db, args.deltas)
    size = storage(args.db)
    per_million = size / args.deltas * 1_000_000
    print(f"{args.db}: seeded {args.deltas:,} object deltas + attribute deltas in {seeded:.1f} s")
    print(
        f"storage: {size / 2**20:.1f} MiB, {size / args.deltas:.0f} bytes per delta "
        f"(object + attribute delta, indexes included), {per_million / 2**20:.0f} MiB per million"
    )
    seconds, rss = child(args.db, ["revy_export", "--format", "jsonl", "--output", "/dev/null"])
    print(f"revy_export --format jsonl: {seconds:.1f} s, peak RSS {rss:.0f} MiB")
    from django.db import connection

    with connection.cursor() as cursor:
        from revy.contrib.django.models import ObjectDelta

        cursor.execute(
            f"SELECT created_at FROM {ObjectDelta._meta.db_table} WHERE id = %s",
            [args.deltas // 2],
        )
        middle = cursor.fetchone()[0]
    cutoff = middle.isoformat() if hasattr(middle, "isoformat") else str(middle).replace(" ", "T")
    seconds, rss = child(args.db, ["revy_prune", "--before", cutoff])
    print(
        f"revy_prune --before (half: {args.deltas // 2:,} deltas): {seconds:.1f} s, "
        f"peak RSS {rss:.0f} MiB"
    )


if __name__ == "__main__":
    main()
