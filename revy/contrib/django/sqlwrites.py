"""History written by the database server: statements that build history rows from the rows
themselves, so that no row travels to Python.

`HistoryTable` names a history table's columns for such statements (revy's, then a custom
history model's extra ones). `SetBasedUpdate` records a `QuerySet.update()` on PostgreSQL in
the update's own statement: data-modifying common table expressions read the rows' old values
(`FOR UPDATE`), run Django's own `SET` clause, and insert the object and attribute deltas of the
rows that changed, with values encoded in SQL exactly as the recorder encodes them in Python
(`sqlencoding`). The revision is created in the same statement when the context has none yet,
and only if a row changed. `SetBasedUpdate.build` refuses, with the reason, what it cannot
record that way (another database, aggregates, many-to-many links, multi-table inheritance,
listeners of the update events, fields without a SQL encoding); `bulk` then records the update
the Python way.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import EmptyResultSet, FieldError
from django.db import connections, models
from django.db.models.sql import UpdateQuery
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
from revy.contrib.django.registry import ModelConfig, content_type_id, is_composite
from revy.contrib.django.utils import (
    get_attribute_delta_model,
    get_object_delta_model,
    get_revision_model,
)

__all__ = ["HistoryTable", "SetBasedUpdate"]


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

    def extra_values(self) -> tuple[str, list[Any]]:
        """SQL placeholders and parameters of the extra columns (leading comma included)."""
        if not self.extra:
            return "", []
        values = list(self.shape.extra_values(self.connection))
        return ", " + ", ".join(["%s"] * len(values)), values


class SetBasedUpdate:
    """The statement that runs one `QuerySet.update()` and records it (PostgreSQL)."""

    def __init__(self, config: ModelConfig, using: str) -> None:
        self.config = config
        self.using = using
        self.connection = connection = connections[using]
        self.quote = connection.ops.quote_name
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
        """Return why an update of the model cannot be recorded in SQL, or None."""
        connection = connections[using]
        if connection.vendor != "postgresql":
            return f"set-based updates are written on PostgreSQL only, not {connection.vendor}"
        if is_composite(config.model):
            return "a composite primary key"
        if config.relatives:
            return "multi-table inheritance (Django updates several tables)"
        if config.links:
            return "a many-to-many through model (aggregates of both ends)"
        if config.has_aggregates:
            return "aggregates, found through instances"
        if events.has_listeners(f"{config.event_prefix}.updated"):
            return f"listeners wait for {config.event_prefix}.updated events"
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

    def _old(self, queryset: models.QuerySet) -> tuple[str, list[Any]]:
        """`old`: the rows the update matches, locked, with their values before it."""
        config = self.config
        table = self.quote(config.model._meta.db_table)
        pk = self._column(config.pk_index)
        keys = queryset.order_by().values_list(config.pk_attname, flat=True)
        keys_sql, keys_params = keys.query.get_compiler(self.using).as_sql()
        columns = ", ".join(
            f"{table}.{self._column(index)} AS o{index}" for index in range(len(config.fields))
        )
        sql = (
            f"old AS (SELECT {columns} FROM {table} WHERE {table}.{pk} IN ({keys_sql}) FOR UPDATE)"
        )
        return sql, list(keys_params)

    def _column(self, index: int) -> str:
        """The quoted column of the model's field at `index`."""
        return self.quote(column(self.config.model, self.config.attnames[index]))

    def _returning(self) -> str:
        table = self.quote(self.config.model._meta.db_table)
        return ", ".join(
            f"{table}.{self._column(index)} AS n{index}" for index in range(len(self.config.fields))
        )

    def _differs(self, index: int) -> str:
        return f"(c.o{index} IS DISTINCT FROM c.n{index})"

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

    def _data(self) -> str:
        return sqlencoding.state_sql(
            self.config, self.connection, lambda index: f"s.n{index}", self.encoders
        )

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
        table = self.quote(config.model._meta.db_table)
        pk = self._column(config.pk_index)
        saved = sorted({config.index_of(name) for name in values} & set(config.recorded))
        if not saved:
            return None
        try:
            old, old_params = self._old(queryset)
        except EmptyResultSet:  # `pk__in=[]` and the like: no row, nothing to run
            return 0, []
        pk_n = f"n{config.pk_index}"
        changed = " OR ".join(self._differs(index) for index in saved)
        deltas_pk = self.deltas.pk
        connection = self.connection
        now = connection.ops.adapt_datetimefield_value(timezone.now())
        actor = Context.get_actor()
        actor_type, actor_id = actor_key(actor, self.using)
        ct = content_type_id(config.model, self.using)
        content_id = sqlencoding.text_key(config.fields[config.pk_index], connection, f"s.{pk_n}")

        # `changed`: the rows whose recorded values the update changed; `numbered`: them with
        # the ids their object deltas will have, drawn from the table's sequence, so that the
        # attribute deltas name their parent without joining the inserted rows back.
        parts = [
            old,
            f"upd AS ({update_sql} FROM old WHERE {table}.{pk} = old.o{config.pk_index} "
            f"RETURNING {self._returning()})",
            f"changed AS (SELECT c.* FROM (SELECT old.*, upd.* FROM upd JOIN old ON "
            f"upd.{pk_n} = old.o{config.pk_index}) c WHERE {changed})",
        ]
        params: list[Any] = [*old_params, *update_params]
        parts.append(
            "numbered AS (SELECT nextval(pg_get_serial_sequence(%s, %s)) AS did, c.* "
            f"FROM changed c ORDER BY c.{pk_n})"
        )
        params += [self.deltas.name, get_object_delta_model()._meta.pk.column]

        revision_id = revisions.existing_revision_id(self.using)
        revision_values = None
        revision_type = get_revision_model()._meta.pk.cast_db_type(connection)
        if revision_id is None:
            revision_values = revisions.new_revision_values(self.using)
            placeholders, extra = self.revisions.extra_values()
            description, created_at, metadata = revisions.revision_row(revision_values, self.using)
            metadata_type = get_revision_model()._meta.get_field("metadata").db_type(connection)
            parts.append(
                f"rev AS ({self.revisions.insert}SELECT %s, %s, %s::{metadata_type}{placeholders} "
                f"WHERE EXISTS (SELECT 1 FROM changed) RETURNING {self.revisions.pk})"
            )
            params += [description, created_at, metadata, *extra]
            revision = f"(SELECT {self.revisions.pk} FROM rev)"
        else:
            revision = f"%s::{revision_type}"

        def revision_sql() -> str:
            if revision_id is None:
                return revision
            params.append(revision_id)
            return revision

        placeholders, extra = self.deltas.extra_values()
        insert = self.deltas.insert.replace(" (", f" ({deltas_pk}, ", 1)
        delta_sql = (
            f"{insert}SELECT s.did, {revision_sql()}, %s, %s, 'Update', %s, %s, %s, "
            f"{content_id}, {self._data()}, %s{placeholders} FROM numbered s ORDER BY s.did"
        )
        params += [
            actor_type,
            actor_id,
            f"{config.event_prefix}.updated",
            Context.get_object_delta_description() or "",
            ct,
            now,
            *extra,
        ]
        parts.append(f"deltas AS ({delta_sql} RETURNING {deltas_pk})")

        rows = ", ".join(
            f"({number}, {sqlencoding.string_literal(config.attnames[index])}, "
            f"{self._value(index, f's.o{index}')}, {self._value(index, f's.n{index}')}, "
            f"{self._action(index, f's.n{index}')}, {self._differs(index).replace('c.', 's.')})"
            for number, index in enumerate(saved)
        )
        placeholders, extra = self.attributes.extra_values()
        attribute_sql = (
            f"{self.attributes.insert}SELECT {revision_sql()}, s.did, %s, %s, f.action, %s, %s, "
            f"{content_id}, f.name, f.old, f.new, %s, false{placeholders} FROM numbered s "
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

        created = f"(SELECT {self.revisions.pk} FROM rev)" if revision_id is None else "NULL"
        final = f"SELECT (SELECT count(*) FROM upd), {created}"
        if watched:
            final += f", ARRAY(SELECT {pk_n} FROM upd WHERE {pk_n} = ANY(%s))"
            params.append(list(watched))
        with connection.cursor() as cursor:
            cursor.execute("WITH " + ", ".join(parts) + " " + final, params)
            row = cursor.fetchone()
        count, new_revision = row[0], row[1]
        if new_revision is not None and revision_values is not None:
            revisions.created_revision(self.using, new_revision, revision_values)
        return count, (list(row[2]) if watched else [])
