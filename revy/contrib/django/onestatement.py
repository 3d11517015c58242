"""One statement per tracked single-row save on PostgreSQL (experimental: `REVY_ONE_STATEMENT`).

Django's own INSERT or UPDATE of the row is rewritten as it is sent into one data-modifying
statement that also writes the context's revision (when it does not exist yet), the object
delta and its attribute deltas:

    WITH row AS (<Django's INSERT/UPDATE> RETURNING ...),
         rev AS (INSERT INTO revision ... SELECT ... FROM row RETURNING id),
         od AS (INSERT INTO objectdelta ... SELECT ... FROM row, rev RETURNING id),
         ad AS (INSERT INTO attributedelta ... SELECT ... FROM od, json_to_recordset(<rows>))
    SELECT row.*, (SELECT id FROM rev), (SELECT id FROM od) FROM row

One statement is atomic by itself, so a save in autocommit needs no transaction of revy's;
inside one, the save costs Django's round trip and no other. The outer SELECT returns the
row's own RETURNING columns first: Django zips them with its returning fields and ignores the
two ids after them, and the number of rows it returns is the number of rows Django's
statement wrote (its rowcount). The ids are read from the client-side cursor before Django
reads it, and the cursor is scrolled back.

The history a statement writes is built in Python from the same spans and values as
`tracking`'s path; only an auto-incremented primary key is not known before the INSERT, and
the statement takes it from `row` (content id, state, attribute delta).

Where the form does not apply, `tracking` and `deletion` keep their path (a transaction
around the write and its history statements): another database, raw saves, multi-table
inheritance, aggregates and many-to-many links (their rows are written after the deltas),
composite keys, fields the database computes (expressions, database defaults, generated
fields), a revision given to the context, deletions that cascade, set foreign keys or have
signal receivers. An update or delete of an instance whose loaded state is not known reads
the row first (one SELECT), as the default path does. An UPDATE that finds no row (Django
then INSERTs) is recorded after Django's INSERT by the default path's statements.
"""

from __future__ import annotations

import json
import weakref
from typing import Any

from django.db import connections, models
from django.utils import timezone

from revy.context import Context
from revy.contrib.django import settings as revy_settings
from revy.contrib.django import sqlencoding
from revy.contrib.django._meta import concrete_field
from revy.contrib.django.inserts import Table, table
from revy.contrib.django.recorder import (
    ATTRIBUTE_DELTA_COLUMNS,
    AUTOMATIC,
    OBJECT_DELTA_COLUMNS,
    Change,
    actor_key,
    value_json,
)
from revy.contrib.django.registry import ModelConfig, config_for, is_composite
from revy.contrib.django.revisions import (
    REVISION_COLUMNS,
    created_revision,
    existing_revision_id,
    new_revision_values,
    revision_row,
)
from revy.contrib.django.utils import (
    get_attribute_delta_model,
    get_object_delta_model,
    get_revision_model,
)

__all__ = [
    "PENDING_KEY",
    "Statement",
    "applies",
    "applies_to_delete",
    "enabled",
    "state_in_sql",
]


# The key of a row whose INSERT has not returned its auto-incremented key yet: a change built
# before the statement carries it, and the statement takes the key from the row instead.
PENDING_KEY = -1


def enabled(using: str) -> bool:
    """True when `REVY_ONE_STATEMENT` is set and `using` is a PostgreSQL database."""
    return revy_settings.one_statement() and connections[using].vendor == "postgresql"


# Models none of whose fields the database fills in (`applies`), by model.
_SIMPLE_MODELS: dict[type[models.Model], bool] = {}
# The statements being rewritten on each connection, innermost last (`Statement`).
_STATEMENTS: weakref.WeakKeyDictionary[Any, list] = weakref.WeakKeyDictionary()


def applies(config: ModelConfig, instance: models.Model, raw: bool, update_fields: Any) -> bool:
    """True when a save of `instance` can be recorded in Django's own statement."""
    if raw or config.relatives or config.has_aggregates or config.links:
        return False
    if Context.get_revision() is not None:
        return False
    model = config.model
    opts = model._meta
    if is_composite(model):
        return False
    simple = _SIMPLE_MODELS.get(model)
    if simple is None:
        # Fields the database fills in (db_default, generated fields) other than the key.
        returning = [field for field in opts.db_returning_fields if field is not opts.pk]
        simple = _SIMPLE_MODELS[model] = not returning and not any(
            field.has_db_default() for field in opts.concrete_fields
        )
    if not simple:
        return False
    values = instance.__dict__
    return not any(
        hasattr(values.get(attname), "resolve_expression") for attname in config.attnames
    )


# Whether every recorded field of a model has a SQL encoding, by (model, database alias).
_ENCODABLE: dict[tuple[type[models.Model], str], bool] = {}


def state_in_sql(config: ModelConfig, using: str) -> bool:
    """True when the statement can build the row's state from the row itself (every
    recorded field has a SQL encoding: `sqlencoding`), so that a deletion need not read the
    row first."""
    key = (config.model, using)
    encodable = _ENCODABLE.get(key)
    if encodable is None:
        connection = connections[using]
        encodable = _ENCODABLE[key] = all(
            sqlencoding.unsupported_field(config.fields[index], connection) is None
            for index in config.recorded
        )
    return encodable


def applies_to_delete(collector: Any) -> bool:
    """True when a deletion is one row Django deletes with one DELETE (no cascade, no signal
    receiver, nothing set to NULL) of a model `applies` to."""
    if collector.fast_deletes or collector.field_updates or len(collector.data) != 1:
        return False
    ((model, instances),) = collector.data.items()
    if len(instances) != 1:
        return False
    instance = next(iter(instances))
    config = config_for(model)
    return (
        config is not None
        and applies(config, instance, False, None)
        and collector.can_fast_delete(instance)
    )


class Statement:
    """An execute wrapper that rewrites the first INSERT or UPDATE of the saved row's table
    (the first DELETE, for `delete`).

    `build(adding)` is called when the statement is seen and returns the `Change` to record
    (None: nothing to record, the statement goes as it is). Only the innermost wrapper of a
    connection acts, so that saves made by signal receivers during the save keep theirs.
    """

    def __init__(
        self,
        config: ModelConfig,
        using: str,
        build,
        delete: bool = False,
        state_from_row: bool = False,
    ) -> None:
        self.config = config
        self.using = using
        self.build = build
        # The deleted row's state is not known: the statement builds it from what the
        # DELETE returns (`state_in_sql`).
        self.state_from_row = state_from_row
        self.done = False
        self.delta_id: Any = None
        self.change: Change | None = None
        quote = connections[using].ops.quote_name
        table_name = quote(config.model._meta.db_table)
        self.insert_prefix = f"INSERT INTO {table_name} "
        self.update_prefix = f"UPDATE {table_name} SET "
        if delete:
            self.insert_prefix = self.update_prefix = f"DELETE FROM {table_name} WHERE "

    def __enter__(self) -> Statement:
        connection = connections[self.using]
        self._stack().append(self)
        self._wrapper = connection.execute_wrapper(self)
        self._wrapper.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._wrapper.__exit__(*exc)
        self._stack().pop()

    def _stack(self) -> list:
        connection = connections[self.using]
        stack = _STATEMENTS.get(connection)
        if stack is None:
            stack = _STATEMENTS[connection] = []
        return stack

    def __call__(self, execute, sql, params, many, context):
        if self.done or many or self._stack()[-1] is not self:
            return execute(sql, params, many, context)
        if sql.startswith(self.insert_prefix):
            adding = True
        elif sql.startswith(self.update_prefix):
            adding = False
        else:
            return execute(sql, params, many, context)
        self.done = True
        change = self.build(adding)
        if change is None:
            return execute(sql, params, many, context)
        connection = connections[self.using]
        from_row = adding and change.pk == PENDING_KEY
        history_sql, history_params, revision_values = _history(
            connection, change, from_row, self.state_from_row
        )
        if self.state_from_row:
            sql += " RETURNING *"  # Django's DELETE returns nothing of its own
        elif " RETURNING " not in sql:
            # What the history's SELECTs join with (Django reads no row of it).
            pk = connection.ops.quote_name(self.config.model._meta.pk.column)
            sql += f" RETURNING {pk}"
        rewritten = (
            f"WITH row AS ({sql}), {history_sql} "
            "SELECT row.*, (SELECT id FROM rev), (SELECT id FROM od) FROM row"
        )
        result = execute(rewritten, (*(params or ()), *history_params), many, context)
        cursor = context["cursor"].cursor
        found = cursor.fetchone()
        if found is not None:
            cursor.scroll(0, mode="absolute")
            revision_id, self.delta_id = found[-2], found[-1]
            if revision_values is not None:
                created_revision(self.using, revision_id, revision_values)
            self.change = change
        return result


def _columns(connection, table: Table, given: dict[str, str]) -> tuple[str, list[str], list[str]]:
    """Return the column list of `table`'s INSERT, the SELECT expression of each column (the
    SQL in `given` by attname, a typed placeholder otherwise) and the attnames of revy's
    columns among the placeholders, in order (the caller supplies their values, then the
    extra columns' defaults)."""
    quote = connection.ops.quote_name
    fields = table.fields + table.extra
    columns = ", ".join(quote(field.column) for field in fields)
    selected, placeholders = [], []
    for field in fields:
        expression = given.get(field.attname)
        if expression is None:
            is_json = field.get_internal_type() == "JSONField"
            expression = f"%s::{'jsonb' if is_json else field.db_type(connection)}"
            if field not in table.extra:
                placeholders.append(field.attname)
        selected.append(expression)
    return columns, selected, placeholders


# The attribute deltas' columns whose values are sent, one JSON object per delta (`_Shape`).
_ROW = (
    "actor_type_id",
    "actor_id",
    "action",
    "description",
    "field_name",
    "old_value",
    "new_value",
    "automatic",
)


class _Shape:
    """The SQL of the history CTEs (rev, od, ad) for one model, database and form, and the
    order of their parameters: built once, filled in per statement (`_history`).

    `new_revision`: the statement creates the context's revision; `from_row`: the row's key
    is the one the INSERT returns.
    """

    def __init__(
        self,
        connection,
        config: ModelConfig,
        new_revision: bool,
        from_row: bool,
        state_from_row: bool,
    ):
        quote = connection.ops.quote_name
        pk_column = f"row.{quote(config.model._meta.pk.column)}"
        parts = []
        self.revisions = table(get_revision_model(), REVISION_COLUMNS)
        if new_revision:
            columns, selected, _ = _columns(connection, self.revisions, {})
            parts.append(
                f"rev AS (INSERT INTO {quote(self.revisions.table)} ({columns}) "
                f"SELECT {', '.join(selected)} FROM row "
                f"RETURNING {quote(self.revisions.pk_column)})"
            )
        else:
            parts.append("rev AS (SELECT %s AS id)")
        # The object delta.
        self.deltas = table(get_object_delta_model(), OBJECT_DELTA_COLUMNS)
        given = {"revision_id": "rev.id"}
        if from_row:
            given["content_id"] = f"{pk_column}::text"
            given["data"] = f"(%s::jsonb || jsonb_build_object(%s, {pk_column}))"
        if state_from_row:
            given["data"] = sqlencoding.state_sql(
                config, connection, lambda index: f"row.{quote(config.fields[index].column)}"
            )
        columns, selected, _ = _columns(connection, self.deltas, given)
        # The object delta's placeholders in order ("data" takes two when `from_row`).
        self.delta_params = [
            field.attname
            for field in self.deltas.fields
            if field.attname not in given or (from_row and field.attname == "data")
        ]
        parts.append(
            f"od AS (INSERT INTO {quote(self.deltas.table)} ({columns}) "
            f"SELECT {', '.join(selected)} FROM row, rev "
            f"RETURNING {quote(self.deltas.pk_column)})"
        )
        # The attribute deltas: one JSON array of rows, one parameter. Binding it costs the
        # driver a tenth of what one array per column costs: it quotes one string instead of
        # adapting every element (psycopg binds parameters on the client, into the SQL text).
        self.attributes = table(get_attribute_delta_model(), ATTRIBUTE_DELTA_COLUMNS)
        record = []
        for name in _ROW:
            field = concrete_field(self.attributes.model, name)
            is_json = field.get_internal_type() == "JSONField"
            record.append(f"{name} {'text' if is_json else field.db_type(connection)}")
        record.append("is_key boolean")
        given = {
            "revision_id": "rev.id",
            "parent_id": "od.id",
            "old_value": "a.old_value::jsonb",
            "new_value": (
                f"CASE WHEN a.is_key THEN to_jsonb({pk_column}) ELSE a.new_value::jsonb END"
                if from_row
                else "a.new_value::jsonb"
            ),
        }
        if from_row:
            given["content_id"] = f"{pk_column}::text"
        for name in _ROW:
            given.setdefault(name, f"a.{name}")
        columns, selected, self.attribute_params = _columns(connection, self.attributes, given)
        parts.append(
            f"ad AS (INSERT INTO {quote(self.attributes.table)} ({columns}) "
            f"SELECT {', '.join(selected)} FROM row, rev, od, "
            f"json_to_recordset(%s::json) AS a ({', '.join(record)}))"
        )
        self.sql = ", ".join(parts)


_SHAPES: dict[tuple, _Shape] = {}


def _shape(
    connection, config: ModelConfig, new_revision: bool, from_row: bool, state_from_row: bool
) -> _Shape:
    # The history models are part of the key: tests swap them.
    key = (
        connection.alias,
        config.model,
        get_attribute_delta_model(),
        get_object_delta_model(),
        get_revision_model(),
        new_revision,
        from_row,
        state_from_row,
    )
    shape = _SHAPES.get(key)
    if shape is None:
        shape = _SHAPES[key] = _Shape(connection, config, new_revision, from_row, state_from_row)
    return shape


def _history(
    connection, change: Change, from_row: bool, state_from_row: bool = False
) -> tuple[str, list, dict | None]:
    """The CTEs (rev, od, ad) recording `change`, their parameters, and the values of the
    revision they create (None when the context's revision exists already). `from_row`: the
    row's key is the one the INSERT returns (`PENDING_KEY` in `change`); `state_from_row`:
    the object delta's state is built from the row the statement returns."""
    config = change.config
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    revision_id = existing_revision_id(connection.alias)
    revision_values = None if revision_id is not None else new_revision_values(connection.alias)
    shape = _shape(connection, config, revision_id is None, from_row, state_from_row)
    params: list = []
    if revision_values is not None:
        params += revision_row(revision_values, connection.alias)
        params += shape.revisions.extra_values(connection)
    else:
        params.append(revision_id)
    content_type_id = config.content_type_id(connection.alias)
    actors: dict[int, tuple] = {}

    def key_of(actor: Any) -> tuple:
        if actor is None or actor is AUTOMATIC:
            return (None, None)
        cached = actors.get(id(actor))
        if cached is None:
            cached = actors[id(actor)] = actor_key(actor, connection.alias)
        return cached

    # The object delta.
    actor_type_id, actor_id = key_of(change.actor)
    content_id = None if from_row else config.content_id(change.pk)
    values = {
        "actor_type_id": actor_type_id,
        "actor_id": actor_id,
        "action": change.action,
        "event_type": change.event_type,
        "description": change.description or "",
        "content_type_id": content_type_id,
        "content_id": content_id,
        "data": change.data,
        "created_at": now,
    }
    for attname in shape.delta_params:
        params.append(values[attname])
        if attname == "data" and from_row:
            params.append(config.pk_attname)
    params += shape.deltas.extra_values(connection)
    # The attribute deltas: one JSON object per delta.
    attnames = config.attnames
    rows = []
    for index, action, old, new, actor, description in change.attributes:
        is_key = from_row and index == config.pk_index
        actor_type_id, actor_id = key_of(actor)
        rows.append(
            {
                "actor_type_id": actor_type_id,
                "actor_id": actor_id,
                "action": action,
                "description": description or "",
                "field_name": attnames[index],
                "old_value": value_json(config, index, old),
                "new_value": None if is_key else value_json(config, index, new),
                "automatic": actor is AUTOMATIC,
                "is_key": is_key,
            }
        )
    known = {"content_type_id": content_type_id, "content_id": content_id, "created_at": now}
    params += [known[attname] for attname in shape.attribute_params]
    params += shape.attributes.extra_values(connection)
    params.append(json.dumps(rows))
    return shape.sql, params, revision_values
