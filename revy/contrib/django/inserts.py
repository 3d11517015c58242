"""Batched raw INSERTs into the history tables.

History rows are written from plain tuples, without a model instance per row: building and
saving instances would cost more than the change being recorded.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from django.db import connections, models

__all__ = [
    "Table",
    "max_parameters",
    "table",
]


class Table:
    """Batched INSERTs into one history table, for a fixed list of columns.

    PostgreSQL gets one `INSERT ... SELECT FROM unnest(<one array per column>)`: a handful of
    parameters however many rows, where a multi-row VALUES list makes the driver and the
    server parse thousands. Other databases get a multi-row VALUES list, or `executemany`
    when no ids are needed. Columns of a swapped model that revy does not know get their
    field default; columns with a database default (`db_default`, such as a delta's
    `transaction_id`) are left out, for the database to fill in within the same statement.
    The SQL text is built once per shape.
    """

    def __init__(self, model: type[models.Model], attnames: tuple[str, ...]) -> None:
        opts = model._meta
        by_attname = {field.attname: field for field in opts.concrete_fields}
        self.model = model
        self.table = opts.db_table
        self.pk_column = opts.pk.column
        self.fields = [by_attname[name] for name in attnames]
        self.extra = [
            field
            for field in opts.concrete_fields
            if field.attname not in attnames
            and not field.primary_key
            and not field.has_db_default()
        ]
        self._sql_cache: dict[tuple, str] = {}

    def _sql(self, connection, count: int, returning: bool) -> str:
        key = (connection.vendor, count, returning)
        sql = self._sql_cache.get(key)
        if sql is None:
            sql = self._sql_cache[key] = self._build_sql(connection, count, returning)
        return sql

    def _build_sql(self, connection, count: int, returning: bool) -> str:
        quote = connection.ops.quote_name
        fields = self.fields + self.extra
        columns = ", ".join(quote(field.column) for field in fields)
        if connection.vendor == "postgresql":
            arrays, selected = [], []
            for number, field in enumerate(fields):
                if field.get_internal_type() == "JSONField":
                    arrays.append("%s::text[]")
                    selected.append(f"c{number}::jsonb")
                else:
                    arrays.append(f"%s::{field.db_type(connection)}[]")
                    selected.append(f"c{number}")
            names = ", ".join(f"c{number}" for number in range(len(fields)))
            sql = (
                f"INSERT INTO {quote(self.table)} ({columns}) SELECT {', '.join(selected)} "
                f"FROM unnest({', '.join(arrays)}) AS rows ({names})"
            )
        else:
            row = "(" + ", ".join(["%s"] * len(fields)) + ")"
            sql = f"INSERT INTO {quote(self.table)} ({columns}) VALUES " + ", ".join([row] * count)
        if returning:
            sql += f" RETURNING {quote(self.pk_column)}"
        return sql

    def _complete(self, connection, rows: list[tuple]) -> list[tuple]:
        if not self.extra:
            return rows
        return [row + self.extra_values(connection) for row in rows]

    def insert(self, using: str, rows: list[tuple], returning: bool = True) -> list[Any]:
        """Insert `rows`; return the new primary keys in order when `returning`."""
        if not rows:
            return []
        connection = connections[using]
        rows = self._complete(connection, rows)
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(
                    self._sql(connection, 0, returning),
                    [list(column) for column in zip(*rows, strict=True)],
                )
                return [row[0] for row in cursor.fetchall()] if returning else []
            if not returning:
                # One prepared statement, executed per row in C: no parameter limit to mind.
                cursor.executemany(self._sql(connection, 1, False), rows)
                return []
            ids: list[Any] = []
            size = max(1, max_parameters(connection) // len(rows[0]))
            for start in range(0, len(rows), size):
                batch = rows[start : start + size]
                cursor.execute(
                    self._sql(connection, len(batch), True),
                    [value for row in batch for value in row],
                )
                ids.extend(row[0] for row in cursor.fetchall())
            return ids

    def extra_values(self, connection) -> tuple:
        """The values of the extra columns: each field's default, prepared for `connection`."""
        return tuple(
            field.get_db_prep_save(field.get_default(), connection) for field in self.extra
        )


def max_parameters(connection) -> int:
    """The number of parameters one statement may carry on this connection."""
    if connection.vendor == "sqlite":
        # Django assumes 999, the limit of old SQLite builds; ask the library itself.
        connection.ensure_connection()
        return connection.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    return connection.features.max_query_params or 65535


_tables: dict[tuple[type, tuple[str, ...]], Table] = {}


def table(model: type[models.Model], attnames: tuple[str, ...]) -> Table:
    """Return the (cached) inserter of `attnames` into `model`'s table."""
    key = (model, attnames)
    table = _tables.get(key)
    if table is None:
        table = _tables[key] = Table(model, attnames)
    return table
