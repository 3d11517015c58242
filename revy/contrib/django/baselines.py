"""Baselines the database writes: existing rows copied into history with `INSERT ... SELECT`.

`manage.py revy_baseline` records the current state of rows that have none in history. Rows
never travel to Python: for each batch of rows (a range of primary keys), the database reads
them and writes their `Baseline` object deltas, with the row's state as JSON built in SQL
(`revy.contrib.django.sqlencoding`), and one `Set` attribute delta per recorded field. On
PostgreSQL a batch is one statement (data-modifying CTEs: the object deltas' ids are drawn
from their sequence first, so that the attribute deltas' INSERT names its parents without a
join); on SQLite it is two (three for a many-to-many table).
Memory stays constant however large the table.

The rows written are those the Python path writes (`recorder.write` of `Change`s built from
`values_list()` rows): same columns, same JSON, same order of ids. `SetBasedBaseline.build`
refuses, with the reason, a model it cannot write that way: a field whose values have no SQL
encoding, a composite primary key, listeners waiting for the model's baseline events, or
custom history models with unique extra fields. The command then uses the Python path for
that model.
"""

from __future__ import annotations

from typing import Any, cast

from django.db import connections, models, router
from django.utils import timezone

from revy.contrib.django import events, sqlencoding
from revy.contrib.django.models import Actions
from revy.contrib.django.recorder import ATTRIBUTE_DELTA_COLUMNS, OBJECT_DELTA_COLUMNS
from revy.contrib.django.registry import ModelConfig, content_type_id, is_composite
from revy.contrib.django.snapshots import STATE_ACTIONS
from revy.contrib.django.sqlwrites import HistoryTable
from revy.contrib.django.utils import get_attribute_delta_model, get_object_delta_model

__all__ = ["ACTION_BASELINE", "SetBasedBaseline"]

ACTION_BASELINE = Actions.BASELINE.value


class SetBasedBaseline:
    """The statements that record the baseline of one model's rows, batch by batch."""

    def __init__(self, config: ModelConfig, using: str) -> None:
        self.config = config
        self.model = config.model
        self.using = using
        self.connection = connection = connections[using]
        self.quote = connection.ops.quote_name
        self.deltas = HistoryTable(get_object_delta_model(), OBJECT_DELTA_COLUMNS, connection)
        self.attributes = HistoryTable(
            get_attribute_delta_model(), ATTRIBUTE_DELTA_COLUMNS, connection
        )
        from revy.contrib.django.models import ObjectDeltaAggregate

        self.aggregates = HistoryTable(
            ObjectDeltaAggregate, ("delta_id", "content_type_id", "content_id"), connection
        )
        # build() makes one only for a model unsupported() accepts: every field has an encoder.
        self.encoders = cast(
            "dict[int, sqlencoding.FieldEncoder]",
            {
                index: sqlencoding.encoder(config.fields[index], connection)
                for index in config.recorded
            },
        )
        self.content_type_id = content_type_id(self.model, using)
        self.event_type = f"{config.event_prefix}.baseline"
        self.pk_column = f"s.c{config.pk_index}"

    @classmethod
    def unsupported(cls, config: ModelConfig, using: str) -> str | None:
        """Return why the model's baseline cannot be written in SQL, or None."""
        connection = connections[using]
        model = config.model
        if is_composite(model):
            return "a composite primary key"
        if events.has_listeners(f"{config.event_prefix}.baseline"):
            return f"listeners wait for {config.event_prefix}.baseline events"
        indexes = {*config.recorded, config.pk_index}
        indexes.update(index for index, _ in config.links)
        for index in sorted(indexes):
            field = config.fields[index]
            reason = sqlencoding.unsupported_field(field, connection)
            if reason is not None:
                return f"{field.name}: {reason}"
        for index, linked in config.links:
            if sqlencoding.text_key(linked._meta.pk, connection, "c0") is None:
                return f"{config.fields[index].name}: a key without a SQL text form"
        if sqlencoding.text_key(config.fields[config.pk_index], connection, "c0") is None:
            return "a primary key without a SQL text form"
        for model_ in (get_object_delta_model(), get_attribute_delta_model()):
            table = HistoryTable(model_, (), connection)
            reason = table.unsupported()
            if reason is not None:
                return reason
        return None

    @classmethod
    def build(cls, config: ModelConfig, using: str | None = None) -> SetBasedBaseline | str:
        """Return the statements of the model's baseline, or why there are none."""
        using = using or router.db_for_write(config.model)
        reason = cls.unsupported(config, using)
        return reason if reason is not None else cls(config, using)

    # Rows ---------------------------------------------------------------------------------

    def _rows(self, after: Any, upto: Any) -> models.QuerySet:
        rows = self.model._base_manager.using(self.using).order_by()
        pk = self.config.pk_attname
        if after is not None:
            rows = rows.filter(**{f"{pk}__gt": after})
        if upto is not None:
            rows = rows.filter(**{f"{pk}__lte": upto})
        return rows

    def upper_bound(self, after: Any, size: int) -> Any:
        """Return the primary key closing the batch of `size` rows after `after` (None: the
        batch runs to the end of the table)."""
        pk = self.config.pk_attname
        keys = self._rows(after, None).order_by(pk).values_list(pk, flat=True)
        found = list(keys[size - 1 : size])
        return found[0] if found else None

    def _source(self, after: Any, upto: Any) -> tuple[str, list[Any]]:
        """`source (c0, c1, ...)`: the rows of the batch, columns in `config.attnames` order,
        as stored (no Python conversion)."""
        rows = self._rows(after, upto).values_list(*self.config.attnames)
        sql, params = rows.query.get_compiler(using=self.using).as_sql()
        names = ", ".join(f"c{index}" for index in range(len(self.config.attnames)))
        return f"source ({names}) AS ({sql})", list(params)

    def _key(self, alias: str) -> str:
        """The row's `content_id` from its primary key column."""
        config = self.config
        key = sqlencoding.text_key(
            config.fields[config.pk_index], self.connection, f"{alias}.c{config.pk_index}"
        )
        assert key is not None  # see unsupported()
        return key

    def _missing_state(self, key: str) -> tuple[str, list[Any]]:
        """True for rows whose history does not hold their state: no state-bearing delta,
        or a deletion as the latest one (the row was re-created out of revy's sight)."""
        actions = ", ".join(["%s"] * len(STATE_ACTIONS))
        sql = (
            f"COALESCE((SELECT h.action FROM {self.deltas.name} h "
            f"WHERE h.content_type_id = %s AND h.content_id = {key} AND h.action IN ({actions}) "
            f"ORDER BY h.{self.deltas.pk} DESC LIMIT 1), 'Delete') = 'Delete'"
        )
        return sql, [self.content_type_id, *STATE_ACTIONS]

    def _keyed(self, skip_existing: bool) -> tuple[str, list[Any]]:
        """`keyed`: the batch's rows with their content id, those to record only."""
        key = self._key("source")
        sql = f"keyed AS (SELECT * FROM (SELECT {key} AS cid, source.* FROM source) AS s"
        params: list[Any] = []
        if skip_existing:
            condition, params = self._missing_state("s.cid")
            sql += f" WHERE {condition}"
        return sql + ")", params

    # JSON ---------------------------------------------------------------------------------

    def _column(self, index: int, alias: str = "s") -> str:
        return f"{alias}.c{index}"

    def _data(self, alias: str = "s") -> str:
        config = self.config
        pairs = [
            (config.attnames[index], self.encoders[index].json(self._column(index, alias)))
            for index in config.recorded
            if index not in config.masked
        ]
        return sqlencoding.state_object(self.connection, pairs)

    def _attribute_values(self, alias: str) -> list[tuple[str, str]]:
        """(field name, JSON of its new value) per recorded field, in `recorded` order."""
        config = self.config
        mask = sqlencoding.mask_json(self.connection)
        values = []
        for index in config.recorded:
            encoder = self.encoders[index]
            column = self._column(index, alias)
            if index in config.masked:
                value = f"CASE WHEN {encoder.is_none(column)} THEN NULL ELSE {mask} END"
            else:
                value = encoder.value(column)
            values.append((config.attnames[index], value))
        return values

    # Statements -----------------------------------------------------------------------------

    def _delta_select(
        self, revision_id: Any, now: Any, source: str = "keyed"
    ) -> tuple[str, list[Any]]:
        """INSERT ... SELECT of the object deltas of the rows in `source`; with `numbered`
        (PostgreSQL), their ids are the ones drawn there."""
        placeholders, extra = self.deltas.extra_values()
        insert, ids = self.deltas.insert, ""
        if source == "numbered":
            insert = insert.replace(" (", f" ({self.deltas.pk}, ", 1)
            ids = "s.did, "
        sql = (
            f"{insert}SELECT {ids}%s, NULL, NULL, %s, %s, '', %s, s.cid, "
            f"{self._data()}, %s{placeholders} FROM {source} s ORDER BY {self.pk_column}"
        )
        params = [revision_id, ACTION_BASELINE, self.event_type, self.content_type_id, now]
        return sql, params + extra

    def _attribute_insert(self, source: str, revision_id: Any, now: Any) -> tuple[str, list]:
        """INSERT ... SELECT of the attribute deltas of the object deltas in `source` (`d`,
        with `id` and `content_id`), joined to their rows (`s`)."""
        placeholders, extra = self.attributes.extra_values()
        values = self._attribute_values("s")
        head = (
            f"{self.attributes.insert}"
            "SELECT %s, d.id, NULL, NULL, 'Set', '', %s, d.content_id, f.name, NULL, "
        )
        if self.connection.vendor == "postgresql":
            rows = ", ".join(
                f"({number}, {sqlencoding.string_literal(name)}, {value})"
                for number, (name, value) in enumerate(values)
            )
            sql = (
                f"{head}f.value, %s, false{placeholders} FROM {source} "
                f"CROSS JOIN LATERAL (VALUES {rows}) AS f (number, name, value) "
                "ORDER BY d.id, f.number"
            )
        else:
            # No LATERAL: one row per field number, each picking its field with CASE.
            names = " ".join(
                f"WHEN {number} THEN {sqlencoding.string_literal(name)}"
                for number, (name, _) in enumerate(values)
            )
            new = " ".join(
                f"WHEN {number} THEN {value}" for number, (_, value) in enumerate(values)
            )
            sql = (
                f"{head.replace('f.name', f'CASE f.number {names} END')}"
                f"CASE f.number {new} END, %s, 0{placeholders} FROM {source} "
                "CROSS JOIN (SELECT column1 AS number FROM "
                f"(VALUES {self._sqlite_numbers(len(values))})) AS f "
                "ORDER BY d.id, f.number"
            )
        return sql, [revision_id, self.content_type_id, now, *extra]

    @staticmethod
    def _sqlite_numbers(count: int) -> str:
        return ", ".join(f"({number})" for number in range(count))

    def _link_inserts(self, source: str) -> list[tuple[str, list[Any]]]:
        """INSERT ... SELECT of the aggregate rows of a many-to-many link (both its ends)."""
        statements = []
        for index, linked in self.config.links:
            column = self._column(index)
            key = sqlencoding.text_key(linked._meta.pk, self.connection, column)
            assert key is not None  # see unsupported()
            statements.append(
                (
                    f"{self.aggregates.insert}SELECT d.id, %s, {key} FROM {source} "
                    f"WHERE {column} IS NOT NULL ORDER BY d.id",
                    [content_type_id(linked, self.using)],
                )
            )
        return statements

    def _numbered(self) -> tuple[str, list[Any]]:
        """`numbered` (PostgreSQL): the rows of `keyed` with the ids their object deltas will
        have, drawn from the table's sequence in primary key order. The attribute deltas then
        name their parent without joining the inserted rows back to theirs (a join the planner,
        which cannot estimate a data-modifying CTE, ran as a nested loop: quadratic)."""
        next_id, params = self.deltas.next_id()
        sql = (
            f"numbered AS (SELECT {next_id} AS did, k.* "
            f"FROM keyed k ORDER BY {self.pk_column.replace('s.', 'k.')})"
        )
        return sql, params

    def write(self, revision_id: Any, after: Any, upto: Any, skip_existing: bool) -> int:
        """Record the rows with `after < pk <= upto` (None: unbounded); return how many."""
        now = self.connection.ops.adapt_datetimefield_value(timezone.now())
        source, source_params = self._source(after, upto)
        keyed, keyed_params = self._keyed(skip_existing)
        with self.connection.cursor() as cursor:
            if self.connection.vendor == "postgresql":
                numbered, numbered_params = self._numbered()
                deltas, delta_params = self._delta_select(revision_id, now, "numbered")
                joined = "numbered s CROSS JOIN LATERAL (SELECT s.did AS id, s.cid AS content_id) d"
                attributes, attribute_params = self._attribute_insert(joined, revision_id, now)
                parts = [
                    f"WITH {source}",
                    keyed,
                    numbered,
                    f"deltas AS ({deltas} RETURNING {self.deltas.pk})",
                    f"attributes AS ({attributes})",
                ]
                params = (
                    source_params + keyed_params + numbered_params + delta_params + attribute_params
                )
                for number, (sql, link_params) in enumerate(self._link_inserts(joined)):
                    parts.append(f"links{number} AS ({sql})")
                    params += link_params
                cursor.execute(", ".join(parts) + " SELECT count(*) FROM deltas", params)
                return cursor.fetchone()[0]
            deltas, delta_params = self._delta_select(revision_id, now)
            # SQLite: one statement per table. The new object deltas are found again by
            # their revision, content and ids above the largest id before this batch.
            cursor.execute(f"SELECT COALESCE(MAX({self.deltas.pk}), 0) FROM {self.deltas.name}")
            (before,) = cursor.fetchone()
            # `INSERT INTO t (...) WITH ... SELECT`: Python's sqlite3 counts the rows of
            # statements that start with INSERT only.
            cursor.execute(
                self.deltas.with_ctes(deltas, f"{source}, {keyed}"),
                source_params + keyed_params + delta_params,
            )
            recorded = cursor.rowcount
            if not recorded:
                return 0
            unkeyed, _ = self._keyed(False)
            joined = (
                f"{self.deltas.name} d JOIN keyed s ON s.cid = d.content_id "
                f"AND d.{self.deltas.pk} > %s AND d.revision_id = %s "
                "AND d.content_type_id = %s AND d.action = %s"
            )
            found = [before, revision_id, self.content_type_id, ACTION_BASELINE]
            attributes, attribute_params = self._attribute_insert(joined, revision_id, now)
            cursor.execute(
                self.attributes.with_ctes(attributes, f"{source}, {unkeyed}"),
                source_params + attribute_params + found,
            )
            for sql, link_params in self._link_inserts(joined):
                cursor.execute(
                    self.aggregates.with_ctes(sql, f"{source}, {unkeyed}"),
                    source_params + link_params + found,
                )
            return recorded

    def count(self, after: Any, upto: Any, skip_existing: bool) -> int:
        """Return how many rows of the batch would be recorded (dry runs)."""
        source, source_params = self._source(after, upto)
        keyed, keyed_params = self._keyed(skip_existing)
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"WITH {source}, {keyed} SELECT count(*) FROM keyed", source_params + keyed_params
            )
            return cursor.fetchone()[0]
