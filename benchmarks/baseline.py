"""`revy_baseline` at scale: the set-based baseline of a large table against a plain copy.

`python -m benchmarks --db postgres --baseline-scale 1000000` fills `Item` with that many rows
(server-side, `generate_series`), then times in the same sitting:

- a plain copy of the table, `INSERT INTO copy SELECT * FROM item` into a table made
  `LIKE item INCLUDING ALL` (its primary key and indexes), the least a copy costs;
- `manage.py revy_baseline benchapp.Item`: one Baseline object delta per row and one attribute
  delta per recorded field, the JSON built by the database, batch by batch.

It reports both times, their ratio, the rows written and the history tables' sizes.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.db import connection

__all__ = ["measure"]


def _table_size(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_total_relation_size(%s)", [table])
        return cursor.fetchone()[0]


def measure(rows: int, say: Callable[[str], None]) -> list[str]:
    """Fill `Item` with `rows` rows, time the plain copy and the baseline; return the lines
    of the report."""
    from django.core.management import call_command

    from benchmarks.benchapp.models import Category, Item
    from revy.contrib.django.utils import get_attribute_delta_model, get_object_delta_model

    quote = connection.ops.quote_name
    items, categories = quote(Item._meta.db_table), quote(Category._meta.db_table)
    with connection.cursor() as cursor:
        # No parameters (the numbers are ours): `%` is SQL's modulo here.
        cursor.execute(
            f"INSERT INTO {categories} (name) "
            "SELECT 'category ' || n FROM generate_series(1, 100) n"
        )
        cursor.execute(f"SELECT min(id) FROM {categories}")
        (first_category,) = cursor.fetchone()
        started = time.perf_counter()
        cursor.execute(
            f"INSERT INTO {items} (title, sku, description, quantity, price, active, updated_at, "
            f"category_id) SELECT 'item ' || n, 'SKU-' || n, repeat('text ', n % 20), n % 1000, "
            f"(n % 100000) / 100.0, n % 3 <> 0, timestamptz '2024-01-01 00:00:00+00' + "
            f"n * interval '1.5 second', {first_category} + n % 100 "
            f"FROM generate_series(1, {rows}) n"
        )
        cursor.execute(f"ANALYZE {items}")
        say(f"filled {rows:,} rows in {time.perf_counter() - started:.1f} s")

        cursor.execute(f"CREATE TABLE item_copy (LIKE {items} INCLUDING ALL)")
        started = time.perf_counter()
        cursor.execute(f"INSERT INTO item_copy SELECT * FROM {items}")
        copy_seconds = time.perf_counter() - started
        say(f"plain copy: {copy_seconds:.1f} s")
        copy_size = _table_size("item_copy")
        cursor.execute("DROP TABLE item_copy")

    started = time.perf_counter()
    call_command("revy_baseline", "benchapp.Item", verbosity=0)
    baseline_seconds = time.perf_counter() - started
    say(f"revy_baseline: {baseline_seconds:.1f} s")

    deltas, attributes = get_object_delta_model(), get_attribute_delta_model()
    delta_count = deltas._base_manager.count()
    attribute_count = attributes._base_manager.count()
    delta_size = _table_size(deltas._meta.db_table)
    attribute_size = _table_size(attributes._meta.db_table)
    mb = 1024 * 1024
    return [
        "| | Time | Rows written | Size (with indexes) |",
        "| --- | ---: | ---: | ---: |",
        f"| `INSERT INTO copy SELECT * FROM item` | {copy_seconds:.1f} s | {rows:,} | "
        f"{copy_size / mb:,.0f} MB |",
        f"| `revy_baseline benchapp.Item` | {baseline_seconds:.1f} s | "
        f"{delta_count:,} object + {attribute_count:,} attribute deltas | "
        f"{delta_size / mb:,.0f} + {attribute_size / mb:,.0f} MB |",
        "",
        f"Ratio: {baseline_seconds / copy_seconds:.2f}x the plain copy (goal: at most 3x).",
    ]
