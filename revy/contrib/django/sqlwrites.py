"""History written by the database server: statements that build history rows from the rows
themselves, so that no row travels to Python.

`HistoryTable` names a history table's columns for such statements (revy's, then a custom
history model's extra ones). `SetBasedUpdate` records a `QuerySet.update()` on PostgreSQL in
the update's own statement: data-modifying common table expressions read the rows' old values
(`FOR UPDATE`), run Django's own `SET` clause, and insert the object and attribute deltas of the
rows that changed, with values encoded in SQL exactly as the recorder encodes them in Python
(`sqlencoding`). The revision is created in the same statement when the context has none yet,
and only if a row changed. `bulk_update()` goes through the same statement, one per
batch Django sends. `SetBasedDelete` does the same for a `QuerySet.delete()` that Django runs
as one DELETE (no cascade, no signal receiver): the DELETE returns the rows it removed and the
statement inserts their Delete deltas.

`build` refuses, with the reason, what cannot be recorded that way (another database,
aggregates, many-to-many links, multi-table inheritance, listeners of the events, fields
without a SQL encoding; for deletions, anything Django does besides one DELETE); `bulk` and
`deletion` then record the write the Python way.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import EmptyResultSet, FieldError
from django.db import connections, models
from django.db.models.deletion import Collector
from django.db.models.sql import DeleteQuery, UpdateQuery
from django.utils import timezone

from revy.context import Context
from revy.contrib.django import events, revisions, sqlencoding
from revy.contrib.django._meta import column
from revy.contrib.django.inserts import table
from revy.contrib.django.recorder import (
    ATTRIBUTE_DELTA_COLUMNS,
    OBJECT_DELTA_COLUMNS,
    actor_key,
)
from revy.contrib.django.registry import ModelConfig, config_for, content_type_id, is_composite
from revy.contrib.django.utils import (
    get_attribute_delta_model,
    get_object_delta_model,
    get_revision_model,
)

__all__ = ["HistoryTable", "SetBasedDelete", "SetBasedUpdate"]


class HistoryTable:
    """A history table's quoted name and columns: revy's, then a custom model's extra ones
    (given their default, as the Python path gives them)."""

    def __init__(self, model: type[models.Model], attnames: tuple[str, ...], connection) -> None:
        # Which columns are written, and the extra ones' values, are `inserts.Table`'s: one
        # rule for the batched INSERTs and the set-based statements.
        self.shape = table(model, attnames)
        quote = connection.ops.quote_name
        self.name = quote(self.shape.table)
        self.extra = self.shape.extra
        self.columns = ", ".join(quote(field.column) for field in self.shape.fields + self.extra)
        self.pk = quote(self.shape.pk_column)
        self.connection = connection

    @property
    def insert(self) -> str:
        return f"INSERT INTO {self.name} ({self.columns}) "

    def with_ctes(self, statement: str, ctes: str) -> str:
        """`statement` (an INSERT into this table) with common table expressions before its
        SELECT."""
        assert statement.startswith(self.insert)
        return f"{self.insert}WITH {ctes} {statement[len(self.insert) :]}"

    def unsupported(self) -> str | None:
        for field in self.extra:
            if field.unique:
                return f"the history model's extra field {field.name} is unique"
        return None

    def next_id(self) -> tuple[str, list[Any]]:
        """SQL drawing the next id of this table's sequence, and its parameters. The sequence
        is looked up once per statement, not once per row."""
        return (
            "nextval((SELECT pg_get_serial_sequence(%s, %s)::regclass))",
            [self.name, self.shape.pk_column],
        )

    def extra_values(self) -> tuple[str, list[Any]]:
        """SQL placeholders and parameters of the extra columns (leading comma included)."""
        if not self.extra:
            return "", []
        values = list(self.shape.extra_values(self.connection))
        return ", " + ", ".join(["%s"] * len(values)), values


def _unsupported(config: ModelConfig, using: str, event: str) -> str | None:
    """Why a write of the model cannot be recorded in SQL, or None (`event`: the suffix of
    the event type whose listeners need the Python path)."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return f"set-based writes are written on PostgreSQL only, not {connection.vendor}"
    if is_composite(config.model):
        return "a composite primary key"
    if config.relatives:
        return "multi-table inheritance (Django writes several tables)"
    if config.links:
        return "a many-to-many through model (aggregates of both ends)"
    if config.has_aggregates:
        return "aggregates, found through instances"
    if events.has_listeners(f"{config.event_prefix}.{event}"):
        return f"listeners wait for {config.event_prefix}.{event} events"
    for index in sorted({*config.recorded, config.pk_index}):
        field = config.fields[index]
        reason = sqlencoding.unsupported_field(field, connection)
        if reason is not None:
            return f"{field.name}: {reason}"
    if sqlencoding.text_key(config.fields[config.pk_index], connection, "c0") is None:
        return "a primary key without a SQL text form"
    for model in (get_object_delta_model(), get_attribute_delta_model(), get_revision_model()):
        reason = HistoryTable(model, (), connection).unsupported()
        if reason is not None:
            return reason
    return None


class _Revision:
    """The revision a set-based statement writes to: the context's, or one the statement
    creates (`rev`) when it writes a delta and the context has none yet."""

    def __init__(self, writer: _SetBasedWrite) -> None:
        self.using = writer.using
        self.table = writer.revisions
        self.id = revisions.existing_revision_id(writer.using)
        self.values = None if self.id is not None else revisions.new_revision_values(writer.using)
        self.type = get_revision_model()._meta.pk.cast_db_type(writer.connection)

    def cte(self, source: str) -> tuple[str, list[Any]]:
        """`rev`, inserting the revision if `source` has a row (nothing when it exists)."""
        if self.values is None:
            return "", []
        connection = self.table.connection
        placeholders, extra = self.table.extra_values()
        description, created_at, metadata = revisions.revision_row(self.values, self.using)
        metadata_type = get_revision_model()._meta.get_field("metadata").db_type(connection)
        sql = (
            f"rev AS ({self.table.insert}SELECT %s, %s, %s::{metadata_type}{placeholders} "
            f"WHERE EXISTS (SELECT 1 FROM {source}) RETURNING {self.table.pk})"
        )
        return sql, [description, created_at, metadata, *extra]

    def sql(self, params: list[Any]) -> str:
        """The revision's id in the statement (its parameter, if any, appended to `params`)."""
        if self.values is not None:
            return f"(SELECT {self.table.pk} FROM rev)"
        params.append(self.id)
        return f"%s::{self.type}"

    def created(self) -> str:
        """The statement's result column of the revision it created (NULL: none)."""
        return f"(SELECT {self.table.pk} FROM rev)" if self.values is not None else "NULL"

    def done(self, created: Any) -> None:
        if created is not None and self.values is not None:
            revisions.created_revision(self.using, created, self.values)


class _SetBasedWrite:
    """What the set-based statements of one model share: its columns, their JSON, the
    history tables."""

    event = ""

    def __init__(self, config: ModelConfig, using: str) -> None:
        self.config = config
        self.using = using
        self.connection = connection = connections[using]
        self.quote = connection.ops.quote_name
        self.table = self.quote(config.model._meta.db_table)
        self.deltas = HistoryTable(get_object_delta_model(), OBJECT_DELTA_COLUMNS, connection)
        self.attributes = HistoryTable(
            get_attribute_delta_model(), ATTRIBUTE_DELTA_COLUMNS, connection
        )
        self.revisions = HistoryTable(get_revision_model(), revisions.REVISION_COLUMNS, connection)
        self.encoders = {
            index: sqlencoding.encoder(config.fields[index], connection)
            for index in config.recorded
        }

    @classmethod
    def unsupported(cls, config: ModelConfig, using: str) -> str | None:
        """Return why a write of the model cannot be recorded in SQL, or None."""
        return _unsupported(config, using, cls.event)

    def _column(self, index: int) -> str:
        """The quoted column of the model's field at `index`."""
        return self.quote(column(self.config.model, self.config.attnames[index]))

    def _columns(self, prefix: str, indexes: Iterable[int] | None = None) -> str:
        """The columns of the model's table at `indexes` (default: all), named
        `<prefix><index>`."""
        if indexes is None:
            indexes = range(len(self.config.fields))
        return ", ".join(
            f"{self.table}.{self._column(index)} AS {prefix}{index}" for index in indexes
        )

    def _data(self, prefix: str) -> str:
        """The JSON state of the row whose columns are `s.<prefix><index>`."""
        return sqlencoding.state_sql(
            self.config, self.connection, lambda index: f"s.{prefix}{index}", self.encoders
        )

    def _content_id(self, prefix: str) -> str:
        pk = self.config.pk_index
        key = sqlencoding.text_key(self.config.fields[pk], self.connection, f"s.{prefix}{pk}")
        assert key is not None  # see unsupported()
        return key

    def _execute(
        self,
        parts: list[str],
        params: list[Any],
        revision: _Revision,
        written: str,
        pk: str,
        watched: list[Any],
    ) -> tuple[int, list[Any]]:
        """Run the statement of `parts`; return the number of rows `written` (a CTE whose key
        column is `pk`) and those of the `watched` keys among them."""
        final = f"SELECT (SELECT count(*) FROM {written}), {revision.created()}"
        if watched:
            final += f", ARRAY(SELECT {pk} FROM {written} WHERE {pk} = ANY(%s))"
            params.append(list(watched))
        with self.connection.cursor() as cursor:
            cursor.execute(
                "WITH " + ", ".join(part for part in parts if part) + " " + final, params
            )
            row = cursor.fetchone()
        revision.done(row[1])
        return row[0], (list(row[2]) if watched else [])


class SetBasedUpdate(_SetBasedWrite):
    """The statement that runs one `QuerySet.update()` and records it (PostgreSQL)."""

    event = "updated"

    @classmethod
    def build(cls, config: ModelConfig, using: str) -> SetBasedUpdate | str:
        """Return the writer of the model's updates, or why there is none."""
        reason = cls.unsupported(config, using)
        return reason if reason is not None else cls(config, using)

    # Pieces -----------------------------------------------------------------------------

    def _set_clause(self, values: dict[str, Any]) -> tuple[str, list[Any]] | None:
        """Django's own `UPDATE table SET ...` of `values`, without a WHERE (None: Django
        refuses the values, and its own update() says why)."""
        query = UpdateQuery(self.config.model)
        try:
            query.add_update_values(values)
            sql, params = query.get_compiler(self.using).as_sql()
        except (FieldError, TypeError, ValueError):
            return None
        # Fields of parent tables (excluded by unsupported()) would be more UPDATEs.
        if query.related_updates or " WHERE " in sql:  # type: ignore[attr-defined]  # not in the stubs
            return None
        return sql, list(params)

    def _old(self, queryset: models.QuerySet, saved: list[int]) -> tuple[str, list[Any]]:
        """`old`: the rows the update matches, locked, with the values before it of their key
        and of the `saved` fields (the others' old values are their new ones)."""
        config = self.config
        table = self.table
        pk = self._column(config.pk_index)
        keys = queryset.order_by().values_list(config.pk_attname, flat=True)
        keys_sql, keys_params = keys.query.get_compiler(self.using).as_sql()
        sql = (
            f"old AS (SELECT {self._columns('o', sorted({config.pk_index, *saved}))} FROM {table} "
            f"WHERE {table}.{pk} IN ({keys_sql}) FOR UPDATE)"
        )
        return sql, list(keys_params)

    def _differs(self, index: int) -> str:
        return f"(s.o{index} IS DISTINCT FROM s.n{index})"

    def _value(self, index: int, column: str) -> str:
        encoder = self.encoders[index]
        assert encoder is not None  # see unsupported()
        return sqlencoding.attribute_value(
            encoder, self.connection, column, index in self.config.masked
        )

    def _action(self, index: int, column: str) -> str:
        encoder = self.encoders[index]
        assert encoder is not None
        return sqlencoding.attribute_action(encoder, column)

    # The statement --------------------------------------------------------------------

    def run(
        self, queryset: models.QuerySet, values: dict[str, Any], watched: list[Any]
    ) -> tuple[int, list[Any]] | None:
        """Update the rows of `queryset` with `values` and record the rows that changed.

        Return the number of rows matched (what Django's update() returns) and those of the
        `watched` primary keys that were updated; None when Django's own update() must run
        instead (it then raises its own error).
        """
        config = self.config
        set_clause = self._set_clause(values)
        if set_clause is None:
            return None
        update_sql, update_params = set_clause
        table = self.table
        pk = self._column(config.pk_index)
        saved = sorted({config.index_of(name) for name in values} & set(config.recorded))
        if not saved:
            return None
        try:
            old, old_params = self._old(queryset, saved)
        except EmptyResultSet:  # `pk__in=[]` and the like: no row, nothing to run
            return 0, []
        pk_n = f"n{config.pk_index}"
        changed = " OR ".join(self._differs(index) for index in saved)
        now = self.connection.ops.adapt_datetimefield_value(timezone.now())
        actor_type, actor_id = actor_key(Context.get_actor(), self.using)
        ct = content_type_id(config.model, self.using)
        content_id = self._content_id("n")
        revision = _Revision(self)

        # `upd` returns each row's old values (from `old`) beside its new ones: no join of
        # the two afterwards (the planner cannot estimate a join of data-modifying CTEs, and
        # its guess of millions of rows turned JIT compilation on). `changed`: the rows whose
        # recorded values the update changed; `numbered`: them with the ids their object
        # deltas will have, so that the attribute deltas name their parent without joining
        # the inserted rows back.
        next_id, next_id_params = self.deltas.next_id()
        parts = [
            old,
            # (`prior`: PostgreSQL 18 gives `old` a meaning in RETURNING.)
            f"upd AS ({update_sql} FROM old AS prior WHERE {table}.{pk} = prior.o{config.pk_index} "
            f"RETURNING prior.*, {self._columns('n')})",
            f"changed AS (SELECT s.* FROM upd s WHERE {changed})",
            f"numbered AS (SELECT {next_id} AS did, c.* FROM changed c ORDER BY c.{pk_n})",
        ]
        params: list[Any] = [*old_params, *update_params, *next_id_params]
        rev, rev_params = revision.cte("changed")
        parts.append(rev)
        params += rev_params

        deltas_pk = self.deltas.pk
        placeholders, extra = self.deltas.extra_values()
        insert = self.deltas.insert.replace(" (", f" ({deltas_pk}, ", 1)
        delta_sql = (
            f"{insert}SELECT s.did, {revision.sql(params)}, %s, %s, 'Update', %s, %s, %s, "
            f"{content_id}, {self._data('n')}, %s{placeholders} FROM numbered s ORDER BY s.did"
        )
        params += [
            actor_type,
            actor_id,
            f"{config.event_prefix}.{self.event}",
            Context.get_object_delta_description() or "",
            ct,
            now,
            *extra,
        ]
        parts.append(f"deltas AS ({delta_sql} RETURNING {deltas_pk})")

        rows = ", ".join(
            f"({number}, {sqlencoding.string_literal(config.attnames[index])}, "
            f"{self._value(index, f's.o{index}')}, {self._value(index, f's.n{index}')}, "
            f"{self._action(index, f's.n{index}')}, {self._differs(index)})"
            for number, index in enumerate(saved)
        )
        placeholders, extra = self.attributes.extra_values()
        attribute_sql = (
            f"{self.attributes.insert}SELECT {revision.sql(params)}, s.did, %s, %s, f.action, "
            f"%s, %s, {content_id}, f.name, f.old, f.new, %s, false{placeholders} FROM numbered s "
            f"CROSS JOIN LATERAL (VALUES {rows}) AS f (number, name, old, new, action, changed) "
            "WHERE f.changed ORDER BY s.did, f.number"
        )
        params += [
            actor_type,
            actor_id,
            Context.get_attribute_delta_description() or "",
            ct,
            now,
            *extra,
        ]
        parts.append(f"attributes AS ({attribute_sql})")

        return self._execute(parts, params, revision, "upd", pk_n, watched)


class SetBasedDelete(_SetBasedWrite):
    """The statement that runs a deletion Django makes with one DELETE, and records it
    (PostgreSQL): `WITH old AS (DELETE ... RETURNING ...), rev AS (...), deltas AS (INSERT
    ... SELECT ... FROM old)`."""

    event = "deleted"

    def __init__(self, config: ModelConfig, using: str, queryset: models.QuerySet) -> None:
        super().__init__(config, using)
        self.queryset = queryset

    @classmethod
    def build(cls, collector: Collector) -> SetBasedDelete | str:
        """Return the writer of the collector's deletion, or why there is none."""
        if collector.data or collector.field_updates or len(collector.fast_deletes) != 1:
            return (
                "Django does more than one DELETE (instances, cascades, foreign keys set, "
                "signal receivers)"
            )
        (queryset,) = collector.fast_deletes
        if not isinstance(queryset, models.QuerySet):
            return "Django deletes instances"
        if isinstance(collector.origin, models.Model):
            return "the deletion of an instance"
        config = config_for(queryset.model)
        if config is None:
            return f"{queryset.model._meta.label} is not tracked"
        reason = cls.unsupported(config, collector.using)
        return reason if reason is not None else cls(config, collector.using, queryset)

    def _delete(self) -> tuple[str, list[Any]]:
        """Django's own DELETE of the queryset's rows (raises EmptyResultSet for none)."""
        query = self.queryset.query.clone()
        query.__class__ = DeleteQuery
        sql, params = query.get_compiler(self.using).as_sql()
        return sql, list(params)

    def run(self, actor: Any, description: str, watched: list[Any]) -> tuple[int, list[Any]]:
        """Delete the queryset's rows and record each with its state, by `actor` with
        `description`. Return the number of rows deleted and those of the `watched` primary
        keys that were deleted."""
        config = self.config
        try:
            delete_sql, delete_params = self._delete()
        except EmptyResultSet:  # `pk__in=[]`: Django sends nothing either
            return 0, []
        pk_o = f"o{config.pk_index}"
        actor_type, actor_id = actor_key(actor, self.using)
        now = self.connection.ops.adapt_datetimefield_value(timezone.now())
        revision = _Revision(self)
        parts = [f"old AS ({delete_sql} RETURNING {self._columns('o')})"]
        params: list[Any] = [*delete_params]
        rev, rev_params = revision.cte("old")
        parts.append(rev)
        params += rev_params
        placeholders, extra = self.deltas.extra_values()
        parts.append(
            f"deltas AS ({self.deltas.insert}SELECT {revision.sql(params)}, %s, %s, 'Delete', "
            f"%s, %s, %s, {self._content_id('o')}, {self._data('o')}, %s{placeholders} "
            "FROM old s)"  # (in the order Django's DELETE found the rows, as the Python path)
        )
        params += [
            actor_type,
            actor_id,
            f"{config.event_prefix}.{self.event}",
            description or "",
            content_type_id(config.model, self.using),
            now,
            *extra,
        ]
        return self._execute(parts, params, revision, "old", pk_o, watched)
