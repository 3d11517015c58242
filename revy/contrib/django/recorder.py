"""Write deltas: the lazily created revision, then object and attribute deltas in batches.

Deltas are inserted with one multi-row INSERT per table and batch (`REVY_BATCH_SIZE` rows),
built from plain tuples: no model instance is created per delta, which is what keeps a tracked
save within two extra statements of an untracked one. Everything is written on the connection
of the change itself, inside its transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connections, models, transaction
from django.utils import timezone

from revy.context import Context, current_scope
from revy.contrib.django import registry
from revy.contrib.django import settings as revy_settings
from revy.contrib.django.encoding import encode
from revy.contrib.django.registry import ModelConfig
from revy.contrib.django.utils import (
    get_attribute_delta_model,
    get_object_delta_model,
    get_revision_model,
)

ACTION_SET = "Set"
ACTION_UNSET = "Unset"

_OBJECT_DELTA_COLUMNS = (
    "revision_id",
    "actor_type_id",
    "actor_id",
    "action",
    "event_type",
    "description",
    "content_type_id",
    "content_id",
    "data",
    "created_at",
)
_ATTRIBUTE_DELTA_COLUMNS = (
    "revision_id",
    "parent_id",
    "actor_type_id",
    "actor_id",
    "action",
    "description",
    "content_type_id",
    "content_id",
    "field_name",
    "old_value",
    "new_value",
    "created_at",
)
_REVISION_COLUMNS = ("description", "created_at", "metadata")
_AGGREGATE_COLUMNS = ("delta_id", "content_type_id", "content_id")


class Change:
    """An object delta waiting to be written, with its attribute changes.

    `attributes` holds `(field index, action, old, new, actor, description)` tuples of Python
    values, the index being into `config.attnames`; `data` is the JSON text of the row's state
    (see `state_json`) or of a custom event's data.
    """

    __slots__ = (
        "action",
        "actor",
        "attributes",
        "config",
        "data",
        "description",
        "event_type",
        "instance",
        "pk",
    )

    def __init__(
        self,
        config: ModelConfig,
        pk: Any,
        action: str,
        *,
        actor: Any,
        description: str,
        data: str | None,
        attributes: Sequence[tuple] = (),
        event_type: str | None = None,
        instance: models.Model | None = None,
    ) -> None:
        self.config = config
        self.pk = pk
        self.action = action
        self.actor = actor
        self.description = description
        self.data = data
        self.attributes = attributes
        self.event_type = event_type or f"{config.event_prefix}.{_EVENT_SUFFIX[action]}"
        self.instance = instance


_EVENT_SUFFIX = {
    "Create": "created",
    "Update": "updated",
    "Delete": "deleted",
    "Baseline": "baseline",
    "Event": "event",
}


def state_json(config: ModelConfig, values: Sequence) -> str:
    """Encode a row's state as a JSON object of its recorded, unmasked, loaded fields."""
    masked = config.masked
    attnames = config.attnames
    return encode(
        {
            attnames[index]: values[index]
            for index in config.recorded
            if index not in masked and values[index] is not models.DEFERRED
        }
    )


def value_json(config: ModelConfig, index: int, value: Any) -> str | None:
    """Encode one field value for an attribute delta (masked fields become the mask)."""
    if value is None:
        return None
    if index in config.masked:
        # An empty value hides nothing (the action already says Unset); anything else is masked.
        return encode(revy_settings.MASK)
    return encode(value)


def attribute_action(value: Any) -> str:
    return ACTION_UNSET if value is None or value == "" else ACTION_SET


# Inserting rows -------------------------------------------------------------------------


class _Table:
    """Batched INSERTs into one history table, for a fixed list of columns.

    PostgreSQL gets one `INSERT ... SELECT FROM unnest(<one array per column>)`: a handful of
    parameters however many rows, where a multi-row VALUES list makes the driver and the
    server parse thousands. Other databases get a multi-row VALUES list, or `executemany`
    when no ids are needed. Columns of a swapped model that revy does not know get their
    field default. The SQL text is built once per shape.
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
            if field.attname not in attnames and not field.primary_key
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
        return [row + self._extra_values(connection) for row in rows]

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
            size = max(1, _max_parameters(connection) // len(rows[0]))
            for start in range(0, len(rows), size):
                batch = rows[start : start + size]
                cursor.execute(
                    self._sql(connection, len(batch), True),
                    [value for row in batch for value in row],
                )
                ids.extend(row[0] for row in cursor.fetchall())
            return ids

    def _extra_values(self, connection) -> tuple:
        return tuple(
            field.get_db_prep_save(field.get_default(), connection) for field in self.extra
        )


def _max_parameters(connection) -> int:
    """The number of parameters one statement may carry on this connection."""
    if connection.vendor == "sqlite":
        # Django assumes 999, the limit of old SQLite builds; ask the library itself.
        connection.ensure_connection()
        return connection.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    return connection.features.max_query_params or 65535


_tables: dict[tuple[type, tuple[str, ...]], _Table] = {}


def _table(model: type[models.Model], attnames: tuple[str, ...]) -> _Table:
    key = (model, attnames)
    table = _tables.get(key)
    if table is None:
        table = _tables[key] = _Table(model, attnames)
    return table


# Actors -----------------------------------------------------------------------------------


def actor_key(actor: Any) -> tuple[int | None, str | None]:
    """Return (content type id, pk as text) for an actor; (None, None) for the system."""
    if actor is None:
        return None, None
    if not isinstance(actor, models.Model):
        raise TypeError(
            f"A revy actor must be a model instance or None (the system), not {actor!r}."
        )
    if actor.pk is None:
        raise ValueError(f"The actor {actor!r} must be saved before it can act.")
    # __class__, not type(): request.user is a lazy proxy of the user.
    return registry.content_type_id(actor.__class__), str(actor.pk)


# Revisions --------------------------------------------------------------------------------


def transaction_marker(using: str, own_block: bool = False) -> tuple | None:
    """Identify the transaction and savepoints open on `using` (None when there are none).

    `own_block`: the innermost atomic block is the caller's own and commits when it returns,
    so it does not count. A marker stays alive (`marker_alive`) until that transaction ends
    or one of those savepoints is released or rolled back.
    """
    connection = connections[using]
    blocks = connection.atomic_blocks
    if len(blocks) <= (1 if own_block else 0):
        return None
    # Atomic objects are reused by `@transaction.atomic` functions, call after call; the
    # list of commit hooks is replaced whenever a transaction ends, so together they tell one
    # transaction from the next.
    return (
        blocks[0],
        connection.run_on_commit,
        tuple(sid for sid in connection.savepoint_ids if sid),
    )


def marker_alive(marker: tuple, using: str) -> bool:
    """True while the transaction and every savepoint of `marker` are still open."""
    connection = connections[using]
    blocks = connection.atomic_blocks
    outer, hooks, savepoints = marker
    if not blocks or blocks[0] is not outer or connection.run_on_commit is not hooks:
        return False
    active = connection.savepoint_ids
    return all(sid in active for sid in savepoints)


class _RevisionHolder:
    """The revision created lazily for one scope and database, and whether it still exists.

    It is created inside the first write's transaction; if that transaction (or the savepoint
    it was created in) is rolled back, the next write must create a new one. Writes need only
    its id: the model instance is built the first time someone asks for it.
    """

    __slots__ = ("_instance", "_values", "durable", "marker", "model", "pk", "using")

    def __init__(
        self,
        model: type[models.Model],
        pk: Any,
        values: dict,
        using: str,
        instance: models.Model | None = None,
    ) -> None:
        self.model, self.pk, self._values, self.using = model, pk, values, using
        self._instance = instance
        self.marker = transaction_marker(using)
        self.durable = self.marker is None
        if not self.durable:
            transaction.on_commit(self._committed, using=using)

    @property
    def revision(self) -> models.Model:
        if self._instance is None:
            instance = self.model(pk=self.pk, **self._values)
            instance._state.adding = False
            instance._state.db = self.using
            self._instance = instance
        return self._instance

    def _committed(self) -> None:
        self.durable = True

    def is_valid(self, using: str) -> bool:
        if self.durable or marker_alive(self.marker, using):
            return True
        # A savepoint was released or the transaction ended without the commit hook running:
        # whether the revision was rolled back is unknown. Ask the database.
        if self.model._base_manager.using(using).filter(pk=self.pk).exists():
            self.marker = transaction_marker(using)
            self.durable = self.marker is None
            return True
        return False


def _new_revision(using: str, metadata: dict | None) -> _RevisionHolder:
    model = get_revision_model()
    now = timezone.now()
    connection = connections[using]
    description = Context.get_revision_description() or ""
    (pk,) = _table(model, _REVISION_COLUMNS).insert(
        using,
        [(description, connection.ops.adapt_datetimefield_value(now), encode(metadata or {}))],
    )
    values = {"description": description, "created_at": now, "metadata": metadata or {}}
    return _RevisionHolder(model, pk, values, using)


def current_revision(using: str) -> models.Model:
    """Return the revision new deltas belong to, creating the scope's revision if needed."""
    revision = Context.get_revision()
    if revision is not None:
        return _given_revision(revision, using)
    return _scope_revision(using).revision


def _current_revision_id(using: str) -> Any:
    revision = Context.get_revision()
    if revision is not None:
        return _given_revision(revision, using).pk
    return _scope_revision(using).pk


def _scope_revision(using: str) -> _RevisionHolder:
    scope = current_scope()
    if scope is None:  # REVY_TRACK_OUTSIDE_CONTEXT: every write is its own revision
        return _new_revision(using, None)
    holder = scope.extras.get(("revision", using))
    if holder is None or not holder.is_valid(using):
        holder = scope.extras[("revision", using)] = _new_revision(
            using, scope.extras.get("metadata")
        )
    return holder


def _given_revision(revision: models.Model, using: str) -> models.Model:
    """Return a revision given to the context, putting its row back if a rollback undid it.

    A lazy revision is created at the first write, inside that write's transaction; it is
    called only once, so when that transaction (or savepoint) rolls back, the revision's row
    is gone while the context keeps the instance.
    """
    scope = current_scope()
    if scope is None or revision.pk is None:
        return revision
    key = ("given revision", using, id(revision))
    holder = scope.extras.get(key)
    if holder is None or holder.revision is not revision:
        scope.extras[key] = _given_holder(revision, using)
    elif not holder.is_valid(using):
        revision.save(force_insert=True, using=using)
        scope.extras[key] = _given_holder(revision, using)
    return revision


def _given_holder(revision: models.Model, using: str) -> _RevisionHolder:
    return _RevisionHolder(type(revision), revision.pk, {}, using, instance=revision)


def pending_revision(using: str = "default") -> models.Model | None:
    """Return the revision the current context has written to on `using`, if any."""
    revision = Context.get_revision()
    if revision is not None:
        return revision
    scope = current_scope()
    holder = scope.extras.get(("revision", using)) if scope is not None else None
    return holder.revision if holder is not None else None


def update_revision_metadata(values: dict[str, Any]) -> None:
    """Merge `values` into the metadata of the current context's revision.

    Before the revision exists the values wait in the scope; afterwards the row is updated.
    """
    scope = current_scope()
    if scope is None:
        raise RuntimeError("update_revision_metadata() needs an open revy context.")
    scope.extras.setdefault("metadata", {}).update(values)
    for key, holder in scope.extras.items():
        if isinstance(key, tuple) and key[0] == "revision":
            revision = holder.revision
            revision.metadata = {**(revision.metadata or {}), **values}
            type(revision)._base_manager.using(key[1]).filter(pk=revision.pk).update(
                metadata=revision.metadata
            )


# Writing deltas ---------------------------------------------------------------------------


def write(using: str, changes: Iterable[Change]) -> list[int]:
    """Insert the object and attribute deltas of `changes`; return the object delta ids.

    Each batch of `REVY_BATCH_SIZE` object deltas costs one INSERT for them and one
    (executemany) for their attribute deltas, plus one for aggregates when there are any.
    """
    changes = list(changes)
    if not changes:
        return []
    revision_id = _current_revision_id(using)
    size = revy_settings.batch_size()
    ids: list[int] = []
    for start in range(0, len(changes), size):
        ids.extend(_write_batch(using, revision_id, changes[start : start + size]))
    return ids


def _write_batch(using: str, revision_id: Any, changes: list[Change]) -> list[int]:
    connection = connections[using]
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    actors: dict[int, tuple] = {}
    content_types: dict[ModelConfig, int] = {}

    def type_of(config: ModelConfig) -> int:
        # Django's get_for_model() consults the router on every call: once per batch is enough.
        content_type_id = content_types.get(config)
        if content_type_id is None:
            content_type_id = content_types[config] = config.content_type_id
        return content_type_id

    def key_of(actor: Any) -> tuple:
        if actor is None:
            return (None, None)
        cached = actors.get(id(actor))
        if cached is None:
            cached = actors[id(actor)] = actor_key(actor)
        return cached

    rows = [
        (
            revision_id,
            *key_of(change.actor),
            change.action,
            change.event_type,
            change.description or "",
            type_of(change.config),
            str(change.pk),
            change.data,
            now,
        )
        for change in changes
    ]
    ids = _table(get_object_delta_model(), _OBJECT_DELTA_COLUMNS).insert(using, rows)
    attribute_rows = []
    for change, delta_id in zip(changes, ids, strict=True):
        if not change.attributes:
            continue
        config = change.config
        content_type_id = type_of(config)
        content_id = str(change.pk)
        attnames = config.attnames
        for index, action, old, new, actor, description in change.attributes:
            attribute_rows.append(
                (
                    revision_id,
                    delta_id,
                    *key_of(actor),
                    action,
                    description or "",
                    content_type_id,
                    content_id,
                    attnames[index],
                    value_json(config, index, old),
                    value_json(config, index, new),
                    now,
                )
            )
    _table(get_attribute_delta_model(), _ATTRIBUTE_DELTA_COLUMNS).insert(
        using, attribute_rows, returning=False
    )
    from revy.contrib.django import events

    events.after_write(using, changes, ids)
    return ids


def insert_aggregates(using: str, rows: list[tuple]) -> None:
    """Insert (delta id, content type id, content id) aggregate rows in batches."""
    from revy.contrib.django.models import ObjectDeltaAggregate

    _table(ObjectDeltaAggregate, _AGGREGATE_COLUMNS).insert(using, rows, returning=False)
