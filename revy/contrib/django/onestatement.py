"""One statement per tracked single-row save on PostgreSQL (`REVY_ONE_STATEMENT`, on by default).

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
signal receivers. An UPDATE that finds no row (Django then INSERTs) is recorded after
Django's INSERT by the default path's statements.

When the instance's loaded state is not known (loaded before its context), a deletion's
statement builds the deleted state from the row the DELETE returns (`state_in_sql`), and a
full save's statement reads the old row itself, compares it with what the UPDATE wrote and
records the fields that differ (`Diff`); neither reads the row first. A save with
`update_fields` or with assignments by several actors reads it first (one SELECT).
"""

from __future__ import annotations

import weakref
from typing import Any, Self

from django.db import connections, models
from django.utils import timezone

from revy.context import Context
from revy.contrib.django import settings as revy_settings
from revy.contrib.django import sqlencoding
from revy.contrib.django._meta import concrete_field
from revy.contrib.django.encoding import encode
from revy.contrib.django.inserts import Table, table
from revy.contrib.django.recorder import (
    ATTRIBUTE_DELTA_COLUMNS,
    AUTOMATIC,
    OBJECT_DELTA_COLUMNS,
    Change,
    actor_key,
    attribute_action,
    json_safe,
    json_value,
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
    "Diff",
    "RowWrite",
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


class RowWrite:
    """An execute wrapper that calls `wrote()` when Django sends the first INSERT or UPDATE of
    the saved row's table (the first DELETE, for `delete`), on any database: the instance's
    values then are the row's, whatever post_save receivers assign afterwards. Then, before
    any later statement on the connection (a post_save receiver's, say), it calls `then()`
    once, so that the save is recorded before what its receivers do.

    Only the innermost wrapper of a connection acts on the row's statement (`Statement`
    shares the stack), so that saves made by signal receivers during the save keep theirs.
    """

    def __init__(self, config: ModelConfig, using: str, wrote=None, delete: bool = False) -> None:
        self.config = config
        self.using = using
        self.wrote = wrote
        self.then: Any = None
        self.done = False  # the row's statement was seen
        self.sent = False  # and has run
        self.then_done = False
        # The connection, looked up once: `connections[alias]` is a thread/task-local lookup.
        self.connection = connections[using]
        quote = self.connection.ops.quote_name
        table_name = quote(config.model._meta.db_table)
        self.insert_prefix = f"INSERT INTO {table_name} "
        self.update_prefix = f"UPDATE {table_name} SET "
        if delete:
            self.insert_prefix = self.update_prefix = f"DELETE FROM {table_name} WHERE "

    def __enter__(self) -> Self:
        self._stack().append(self)
        self._wrapper = self.connection.execute_wrapper(self)
        self._wrapper.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._wrapper.__exit__(*exc)
        self._stack().pop()

    def _stack(self) -> list:
        stack = _STATEMENTS.get(self.connection)
        if stack is None:
            stack = _STATEMENTS[self.connection] = []
        return stack

    def _row_write(self, sql: str, many: bool) -> bool | None:
        """True for the row's INSERT, False for its UPDATE (or DELETE), None for any other
        statement; the first one only."""
        if self.done:
            self._after_row(sql, many)
            return None
        if many or self._stack()[-1] is not self:
            return None
        if sql.startswith(self.insert_prefix):
            adding = True
        elif sql.startswith(self.update_prefix):
            adding = False
        else:
            return None
        self.done = True
        return adding

    def _after_row(self, sql: str, many: bool) -> None:
        # Not for the statements revy itself runs while it sends the row's.
        if self.then is None or self.then_done or not self.sent:
            return
        if not many and self._stack()[-1] is self and sql.startswith(self.insert_prefix):
            return  # Django's INSERT after an UPDATE that found no row: still the row's write
        self.then_done = True
        self.then()

    def __call__(self, execute, sql, params, many, context):
        adding = self._row_write(sql, many)
        if adding is None:
            return execute(sql, params, many, context)
        try:
            return self._send(adding, execute, sql, params, many, context)
        finally:
            self.sent = True

    def _send(self, adding: bool, execute, sql, params, many, context):
        """Send the row's statement (`Statement` adds its history)."""
        if self.wrote is not None:
            self.wrote()
        return execute(sql, params, many, context)


class Statement(RowWrite):
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
        diff=None,
    ) -> None:
        super().__init__(config, using, delete=delete)
        self.build = build
        # The deleted row's state is not known: the statement builds it from what the
        # DELETE returns (`state_in_sql`).
        self.state_from_row = state_from_row
        # The updated row's old values are not known: `diff()` returns the save's `Diff`,
        # and the statement reads the old row itself and records what changed.
        self.diff = diff
        # Whether the statement sent was the diff's, and whether it found the row.
        self.diffed = False
        self.found = False
        self.delta_id: Any = None
        self.change: Change | None = None

    def _send(self, adding: bool, execute, sql, params, many, context):
        """Send the row's statement, with its history when there is one to record."""
        if self.diff is not None and not adding and " RETURNING " not in sql:
            return self._diffed(execute, sql, params, many, context)
        change = self.build(adding)
        if change is None:
            return execute(sql, params, many, context)
        connection = self.connection
        from_row = adding and change.pk == PENDING_KEY
        history_sql, history_params, revision_values = _history(
            connection, change, from_row, self.state_from_row
        )
        if self.state_from_row:
            sql += " RETURNING *"  # Django's DELETE returns nothing of its own
        elif " RETURNING " not in sql:
            # What the history's SELECTs join with (Django reads no row of it).
            column = self.config.model._meta.pk.column
            assert column is not None  # a concrete key
            sql += f" RETURNING {connection.ops.quote_name(column)}"
        rewritten = (
            f"WITH row AS ({sql}), {history_sql} "
            "SELECT row.*, (SELECT id FROM rev), (SELECT id FROM od) FROM row"
        )
        result = execute(rewritten, (*(params or ()), *history_params), many, context)
        if self._ids(context, revision_values):
            self.change = change
        return result

    def _ids(self, context, revision_values: dict | None) -> bool:
        """Read the revision and object delta ids the statement returned after Django's own
        columns (False: it wrote no row), before Django reads the rows, and note the revision
        it created, if any."""
        cursor = context["cursor"].cursor
        found = cursor.fetchone()
        if found is None:
            return False
        cursor.scroll(0, mode="absolute")
        revision_id, self.delta_id = found[-2], found[-1]
        if revision_values is not None and revision_id is not None:
            created_revision(self.using, revision_id, revision_values)
        return True

    def _diffed(self, execute, sql, params, many, context):
        """Send Django's UPDATE with the CTEs that read the old row, compare it with the new
        one and record the fields that changed (`_diff_history`)."""
        diff = self.diff()
        connection = self.connection
        before, returning, after, history_params, revision_values = _diff_history(connection, diff)
        rewritten = (
            f"WITH {before}, row AS ({sql} RETURNING {returning}), "
            f"{after} SELECT row.*, (SELECT id FROM rev), (SELECT id FROM od) FROM row"
        )
        old_params, later_params = history_params
        result = execute(rewritten, (*old_params, *(params or ()), *later_params), many, context)
        self.diffed = True
        self.found = self._ids(context, revision_values)
        if self.delta_id is not None:
            self.change = diff.change()
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
        self.revisions = table(get_revision_model(), REVISION_COLUMNS)
        parts = [_revision_cte(connection, self.revisions, new_revision, "row")]
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
        # The values are JSON within it (a JSON null is SQL's NULL), encoded once with the rows.
        self.attributes = table(get_attribute_delta_model(), ATTRIBUTE_DELTA_COLUMNS)
        record = []
        for name in _ROW:
            field = concrete_field(self.attributes.model, name)
            is_json = field.get_internal_type() == "JSONField"
            record.append(f"{name} {'jsonb' if is_json else field.db_type(connection)}")
        record.append("is_key boolean")
        given = {
            "revision_id": "rev.id",
            "parent_id": "od.id",
            "new_value": (
                f"CASE WHEN a.is_key THEN to_jsonb({pk_column}) ELSE a.new_value END"
                if from_row
                else "a.new_value"
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


def _revision_cte(connection, revisions: Table, new_revision: bool, source: str) -> str:
    """`rev`: the revision the statement creates (one per row of `source`, which has one row
    at most), or the context's, whose id is a parameter."""
    if not new_revision:
        return "rev AS (SELECT %s AS id)"
    quote = connection.ops.quote_name
    columns, selected, _ = _columns(connection, revisions, {})
    return (
        f"rev AS (INSERT INTO {quote(revisions.table)} ({columns}) "
        f"SELECT {', '.join(selected)} FROM {source} RETURNING {quote(revisions.pk_column)})"
    )


def _revision_params(
    connection, revisions: Table, revision_id: Any, revision_values: dict | None
) -> list:
    """The parameters of `_revision_cte`: the new revision's values, or the context's id."""
    if revision_values is None:
        return [revision_id]
    return [
        *revision_row(revision_values, connection.alias),
        *revisions.extra_values(connection),
    ]


_SHAPES: dict[tuple, Any] = {}


def _shape(kind, connection, config: ModelConfig, *form: Any):
    """The `kind` (`_Shape`, `_DiffShape`) of the model's statements in `form`, built once
    per database, model and history models (tests swap them)."""
    key = (
        kind,
        connection.alias,
        config.model,
        get_attribute_delta_model(),
        get_object_delta_model(),
        get_revision_model(),
        *form,
    )
    shape = _SHAPES.get(key)
    if shape is None:
        shape = _SHAPES[key] = kind(connection, config, *form)
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
    shape = _shape(_Shape, connection, config, revision_id is None, from_row, state_from_row)
    params = _revision_params(connection, shape.revisions, revision_id, revision_values)
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
                "old_value": json_value(config, index, old),
                "new_value": None if is_key else json_value(config, index, new),
                "automatic": actor is AUTOMATIC,
                "is_key": is_key,
            }
        )
    known = {"content_type_id": content_type_id, "content_id": content_id, "created_at": now}
    params += [known[attname] for attname in shape.attribute_params]
    params += shape.attributes.extra_values(connection)
    try:
        params.append(encode(rows))
    except TypeError:  # a custom field's own type: the form the database stores
        for row, (index, *_) in zip(rows, change.attributes, strict=True):
            row["old_value"] = json_safe(config, index, row["old_value"])
            row["new_value"] = json_safe(config, index, row["new_value"])
        params.append(encode(rows))
    return shape.sql, params, revision_values


# Updates of rows whose old values are not known --------------------------------------------


class Diff:
    """A save of a row whose old values are not known (loaded before its context), as
    Django sends it: every recorded field's value before Django's `pre_save` (`current`) and
    the one it writes (`after`), both as stored. The statement reads the old row and records
    the fields that differ from it, as `tracking.update_change` records them: by the
    context's actor, and by the system (automatic) for the values Django set during the save.
    """

    __slots__ = ("actor", "after", "config", "current", "description", "instance", "pk")

    def __init__(self, config: ModelConfig, instance: models.Model, current: tuple, after: tuple):
        self.config, self.instance = config, instance
        self.current, self.after = current, after
        self.pk = config.pk_of(after)
        self.actor = Context.get_actor()
        self.description = Context.get_attribute_delta_description()

    def set_in_save(self) -> tuple[int, ...]:
        """The recorded fields whose value Django changed during the save (`auto_now`)."""
        config = self.config
        return tuple(
            index
            for index in config.recorded
            if not config.same(index, self.current[index], self.after[index])
        )

    def change(self) -> Change:
        """The change the statement recorded, for the hooks run after a write (the listeners
        of its event type): its values are the database's, not known here."""
        return Change(
            self.config,
            self.pk,
            "Update",
            actor=self.actor,
            description=Context.get_object_delta_description(),
            data=None,
            instance=self.instance,
        )


class _DiffShape:
    """The SQL of a `Diff`'s statement around Django's UPDATE, for one model, database and
    form (a new revision or not; the fields Django sets during the save), and the order of
    its parameters: built once, filled in per statement (`_diff_history`)."""

    def __init__(
        self, connection, config: ModelConfig, new_revision: bool, set_in_save: tuple[int, ...]
    ):
        quote = connection.ops.quote_name
        table_name = quote(config.model._meta.db_table)
        pk_field = config.model._meta.pk
        encoders = {
            index: sqlencoding.encoder(config.fields[index], connection)
            for index in config.recorded
        }
        # Column names unqualified and changes compared as rows: the statement's text stays
        # under the 4 KB above which psycopg parses it again at every execution (about 60 us
        # for 5 KB), not cached.
        old_columns = ", ".join(
            f"{quote(field.column)} AS o{index}" for index, field in enumerate(config.fields)
        )
        # Every part of the statement sees the row as it was before it: `old` reads it
        # without a lock (a FOR UPDATE would skip the row Django's UPDATE changes in the same
        # statement). A transaction committing a change of the row between this statement's
        # start and its UPDATE is diffed against the older values, as the read-then-write
        # path does.
        self.before = (
            f"old AS (SELECT {old_columns} FROM {table_name} WHERE {quote(pk_field.column)} = %s)"
        )
        self.returning = ", ".join(
            f"{quote(field.column)} AS n{index}" for index, field in enumerate(config.fields)
        )
        changed = (
            f"ROW({', '.join(f'old.o{index}' for index in config.recorded)}) IS DISTINCT FROM "
            f"ROW({', '.join(f'row.n{index}' for index in config.recorded)})"
        )
        self.revisions = table(get_revision_model(), REVISION_COLUMNS)
        parts = [
            f"ch AS (SELECT * FROM old, row WHERE {changed})",
            _revision_cte(connection, self.revisions, new_revision, "ch"),
        ]
        # The object delta: its state is the row as the UPDATE left it.
        self.deltas = table(get_object_delta_model(), OBJECT_DELTA_COLUMNS)
        given = {
            "revision_id": "rev.id",
            "data": sqlencoding.state_sql(
                config, connection, lambda index: f"ch.n{index}", encoders
            ),
        }
        columns, selected, self.delta_params = _columns(connection, self.deltas, given)
        parts.append(
            f"od AS (INSERT INTO {quote(self.deltas.table)} ({columns}) "
            f"SELECT {', '.join(selected)} FROM ch, rev RETURNING {quote(self.deltas.pk_column)})"
        )
        # The attribute deltas: one VALUES row per field (two for a value Django set during
        # the save: the actor's assignment, then the system's value), kept where the field
        # changed. The actor and description are the context's, unless the row is automatic.
        self.attributes = table(get_attribute_delta_model(), ATTRIBUTE_DELTA_COLUMNS)
        model = self.attributes.model

        def typed(name: str) -> str:
            return f"%s::{concrete_field(model, name).db_type(connection)}"

        rows: list[str] = []
        for index in config.recorded:
            encoder = encoders[index]
            assert encoder is not None  # see state_in_sql()
            masked = index in config.masked
            name = sqlencoding.string_literal(config.attnames[index])
            old = sqlencoding.attribute_value(encoder, connection, f"ch.o{index}", masked)
            new = sqlencoding.attribute_value(encoder, connection, f"ch.n{index}", masked)
            action = sqlencoding.attribute_action(encoder, f"ch.n{index}")
            differs = f"(ch.o{index} IS DISTINCT FROM ch.n{index})"
            if index not in set_in_save:
                rows.append(f"({len(rows)}, {name}, {old}, {new}, {action}, {differs}, false)")
                continue
            # Parameters: the value before Django's pre_save as JSON, its action, as stored.
            assigned = (
                f"(ch.o{index} IS DISTINCT FROM %s::{config.fields[index].db_type(connection)})"
            )
            rows.append(
                f"({len(rows)}, {name}, {old}, %s::jsonb, %s, ({differs} AND {assigned}), false)"
            )
            rows.append(
                f"({len(rows)}, {name}, CASE WHEN {assigned} THEN %s::jsonb ELSE {old} END, "
                f"{new}, {action}, {differs}, true)"
            )
        given = {
            name: f"f.{name}"
            for name in ("field_name", "old_value", "new_value", "action", "automatic")
        }
        actor_type = typed("actor_type_id")
        given.update(
            {
                "revision_id": "rev.id",
                "parent_id": "od.id",
                "actor_type_id": f"CASE WHEN f.automatic THEN NULL ELSE {actor_type} END",
                "actor_id": f"CASE WHEN f.automatic THEN NULL ELSE {typed('actor_id')} END",
                "description": f"CASE WHEN f.automatic THEN '' ELSE {typed('description')} END",
            }
        )
        columns, selected, self.attribute_params = _columns(connection, self.attributes, given)
        # The placeholders of `given`, in the order of the SELECT list.
        self.attribute_given = [
            field.attname
            for field in self.attributes.fields
            if field.attname in ("actor_type_id", "actor_id", "description")
        ]
        parts.append(
            f"ad AS (INSERT INTO {quote(self.attributes.table)} ({columns}) "
            f"SELECT {', '.join(selected)} FROM ch CROSS JOIN LATERAL (VALUES {', '.join(rows)}) "
            "AS f (number, field_name, old_value, new_value, action, changed, automatic), rev, od "
            "WHERE f.changed ORDER BY f.number)"
        )
        self.after = ", ".join(parts)


def _diff_history(connection, diff: Diff) -> tuple[str, str, str, tuple[list, list], dict | None]:
    """The CTEs before Django's UPDATE (`old`: the row with its old values), its RETURNING
    list, the CTEs after it (`ch`: the row if a recorded field changed; rev, od, ad), their
    parameters (those before the UPDATE's, those after) and the values of the revision they
    create (None when the context's revision exists already)."""
    config = diff.config
    revision_id = existing_revision_id(connection.alias)
    revision_values = None if revision_id is not None else new_revision_values(connection.alias)
    set_in_save = diff.set_in_save()
    shape = _shape(_DiffShape, connection, config, revision_values is not None, set_in_save)
    pk_field = config.model._meta.pk
    old_params = [pk_field.get_db_prep_value(diff.pk, connection, prepared=False)]
    params = _revision_params(connection, shape.revisions, revision_id, revision_values)
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    actor_type_id, actor_id = actor_key(diff.actor, connection.alias)
    values = {
        "actor_type_id": actor_type_id,
        "actor_id": actor_id,
        "action": "Update",
        "event_type": f"{config.event_prefix}.updated",
        "description": Context.get_object_delta_description() or "",
        "content_type_id": config.content_type_id(connection.alias),
        "content_id": config.content_id(diff.pk),
        "created_at": now,
    }
    params += [values[attname] for attname in shape.delta_params]
    params += shape.deltas.extra_values(connection)
    # The attribute deltas' SELECT list: the context's actor and description, and the
    # placeholders of the values every delta shares; then the VALUES rows' parameters.
    values["description"] = diff.description or ""
    given = {name: values[name] for name in shape.attribute_given}
    for field in shape.attributes.fields:
        if field.attname in given:
            params.append(given[field.attname])
        elif field.attname in shape.attribute_params:
            params.append(values[field.attname])
    params += shape.attributes.extra_values(connection)
    for index in set_in_save:
        field = config.fields[index]
        current = diff.current[index]
        current_db = field.get_db_prep_save(current, connection)
        current_json = value_json(config, index, current)
        params += [current_json, attribute_action(current), current_db, current_db, current_json]
    return shape.before, shape.returning, shape.after, (old_params, params), revision_values
