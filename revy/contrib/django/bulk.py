"""Tracking of the bulk paths: `QuerySet.update()`, `bulk_create()` and `bulk_update()`.

They record the same deltas a save of each row would, written in batches: the extra SQL
statements are one SELECT of the affected rows (when their state is not already known) and
one INSERT per `REVY_BATCH_SIZE` deltas per table, whatever the number of rows.
`QuerySet.delete()` goes through Django's deletion collector, which `deletion` records.
On PostgreSQL, `QuerySet.update()` and each batch of `bulk_update()` are recorded by their own
statement where `sqlwrites` can (no row travels to Python).

Many-to-many `add()` inserts the through rows with `bulk_create()` (with `ignore_conflicts`
for automatic through models), and `remove()`, `clear()` and `set()` delete them through the
collector: they are recorded by the same two paths, for every kind of through model.

`bulk_create()` with `ignore_conflicts` or `update_conflicts` reads the rows matching the
objects' unique keys before and after the insert (two SELECTs per call): rows that existed
record an `Update` (upserts) or nothing (ignored conflicts), new rows a `Create`.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import json
import operator
from typing import Any, cast

from django.db import connections, models, router
from django.db.models import Q
from django.db.models.deletion import Collector
from django.db.models.query import QuerySet

from revy.context import Context, current_scope
from revy.contrib.django import attribution, deletion, recorder, tracking
from revy.contrib.django._meta import concrete_field
from revy.contrib.django.inheritance import with_relatives
from revy.contrib.django.inserts import max_parameters
from revy.contrib.django.registry import ModelConfig, config_for
from revy.contrib.django.sqlwrites import SetBasedDelete, SetBasedUpdate
from revy.contrib.django.transactions import atomic_unit, guard

__all__ = [
    "SET_BASED_DELETES",
    "SET_BASED_UPDATES",
    "install",
    "uninstall",
]


DEFERRED = models.DEFERRED

# QuerySet.update() and bulk_update() on PostgreSQL are recorded in their own statements where
# `SetBasedUpdate` can, and deletions Django makes with one DELETE where `SetBasedDelete` can
# (see `sqlwrites`); tests turn these off to compare with the Python paths.
SET_BASED_UPDATES = True
SET_BASED_DELETES = True

_django_update = QuerySet.update
_django_bulk_create = QuerySet.bulk_create
_django_bulk_update = QuerySet.bulk_update


def _recording_config(model: type[models.Model]) -> ModelConfig | None:
    return config_for(model) if attribution.recording() else None


def _write_db(queryset: QuerySet) -> str:
    # `QuerySet.db` names the read database until Django marks the query as a write, which
    # happens inside the methods wrapped here: ask the router the way Django then does.
    # Private attributes django-stubs does not declare.
    chosen, hints = queryset._db, queryset._hints  # type: ignore[attr-defined]
    return chosen or router.db_for_write(queryset.model, **hints)


def _has_expressions(values: dict[str, Any]) -> bool:
    return any(hasattr(value, "resolve_expression") for value in values.values())


# QuerySet.update ---------------------------------------------------------------------------


def _set_by_deletion(config: ModelConfig, kwargs: dict[str, Any]) -> bool:
    """True for the updates a deletion's SET_NULL & co. make (the deletion records them)."""
    handled = deletion.deletion_updates.get()
    return bool(handled) and all((config.model, name) in handled for name in kwargs)


def _update(self: QuerySet, **kwargs: Any) -> int:
    config = _recording_config(self.model)
    if (
        config is None
        or not kwargs
        or not config.knows(kwargs)  # Django raises its own error for these
        or _set_by_deletion(config, kwargs)
    ):
        return _django_update(self, **kwargs)
    using = _write_db(self)
    batches = _bulk_batches.get()
    if batches is not None and batches.writer.config is config and batches.writer.using == using:
        # A batch of a set-based bulk_update(): it refreshes the bases once, at the end.
        with guard(using):
            done = batches.writer.run(self, kwargs, batches.watched)
        if done is not None:
            self._result_cache = None
            batches.updated += done[1]
            return done[0]
    # Querysets Django checks or rewrites before updating (slices, unions, annotations it
    # inlines or refuses) keep the batched path, which leaves that to Django's update().
    elif (
        SET_BASED_UPDATES
        and not self.query.is_sliced
        and not self.query.combinator
        and not self.query.annotations
    ):
        writer = SetBasedUpdate.build(config, using)
        if not isinstance(writer, str):
            with guard(using):
                done = writer.run(self, kwargs, attribution.watched_pks(self.model))
            if done is not None:
                count, updated = done
                self._result_cache = None
                if updated:
                    rows = config.read_rows(using, updated)
                    attribution.refresh_bases(self.model, rows, using)
                return count
    indexes = frozenset(config.index_of(name) for name in kwargs)
    actor = Context.get_actor()
    description = Context.get_attribute_delta_description()
    with atomic_unit(using):
        before = [tuple(row) for row in self.values_list(*config.attnames)]
        count = _django_update(self, **kwargs)
        if not before:
            return count
        if _has_expressions(kwargs):
            after_rows = config.read_rows(using, [config.pk_of(row) for row in before])
        else:
            new_values = {
                config.index_of(name): config.normal(config.index_of(name), value)
                for name, value in kwargs.items()
            }
            after_rows = None
        if after_rows is None:
            after_rows = {
                config.key(config.pk_of(row)): tuple(
                    new_values.get(index, value) for index, value in enumerate(row)
                )
                for row in before
            }
        changes = []
        for row in before:
            after = after_rows.get(config.key(config.pk_of(row)))
            if after is None:
                continue
            # Aggregates are found through an instance; build one only when needed.
            instance = (
                config.model.from_db(using, config.attnames, after)
                if config.has_aggregates
                else None
            )
            change = tracking.update_change(
                config, instance, row, after, indexes, {}, actor, description
            )
            if change is not None:
                changes.append(change)
        with guard(using):
            recorder.write(using, with_relatives(using, changes))
    attribution.refresh_bases(self.model, after_rows, using)
    return count


# bulk_create ------------------------------------------------------------------------------

_BULK_CREATE_SIGNATURE = inspect.signature(_django_bulk_create)


def _bulk_create(self: QuerySet, objs, *args: Any, **kwargs: Any):
    config = _recording_config(self.model)
    if config is None or self.model._meta.concrete_model._meta.parents:
        # Django refuses multi-table inherited models (and proxies of them) before writing
        # anything; a proxy of a model without parents is bulk-created into its table.
        return _django_bulk_create(self, objs, *args, **kwargs)
    objs = list(objs)
    options = _BULK_CREATE_SIGNATURE.bind(self, objs, *args, **kwargs).arguments
    ignore = options.get("ignore_conflicts", False)
    upsert = options.get("update_conflicts", False)
    unique_fields = options.get("unique_fields") or ()
    if upsert and not config.knows(name for name in unique_fields if name != "pk"):
        # Not concrete fields (a reverse relation, a typo): Django refuses them itself.
        return _django_bulk_create(self, objs, *args, **kwargs)
    actor = Context.get_actor()
    description = Context.get_attribute_delta_description()
    using = _write_db(self)
    with atomic_unit(using):
        assigned = []
        for obj in objs:
            state = attribution.state_of(obj) or attribution.watch_new(obj)
            assigned.append(attribution.attribute(obj, state, config, actor, description))
        keys = _conflict_keys(config, unique_fields) if ignore or upsert else ()
        existing = _rows_matching(config, using, objs, keys) if keys else {}
        created = _django_bulk_create(self, objs, *args, **kwargs)
        for obj, values in zip(objs, assigned, strict=True):
            after = config.values_of(obj)
            # Values Django or the database set are the system's.
            if not config.same_row(after, values):
                state = cast(attribution.InstanceState, attribution.state_of(obj))  # see above
                attribution.attribute(obj, state, config, recorder.AUTOMATIC, "", after)
        if upsert:
            pairs = _upserted(config, using, objs, keys)
        elif ignore:
            pairs = _inserted(config, using, objs, keys, existing)
        else:
            pairs = _written(config, using, objs)
        changes = []
        for obj, row in pairs:
            watched = attribution.state_of(obj) if obj is not None else None
            spans = (watched.spans or {}) if watched is not None else {}
            before = existing.get(config.key(config.pk_of(row)))
            change: recorder.Change | None
            if before is None:
                change = tracking.creation_change(config, obj, row, spans, actor, description)
            else:
                change = tracking.update_change(
                    config, obj, before, row, config.all_indexes, spans, actor, description
                )
            if change is not None:
                changes.append(change)
            if watched is not None:
                watched.base, watched.spans = config.frozen(row), None
                watched.checkpoint = config.frozen(config.values_of(obj))
                attribution.seen_now(watched)
        with guard(using):
            recorder.write(using, with_relatives(using, changes))
    return created


def _written(config, using, objs) -> list[tuple[Any, tuple]]:
    """(object, row) of a plain bulk_create: the objects' own values, read back only where
    the database computed some (expressions, database defaults)."""
    pairs = []
    unknown = []
    for obj in objs:
        values = config.values_of(obj)
        if values[config.pk_index] is None:  # (a composite key's parts are always given)
            continue  # a database that does not return keys: nothing to attach history to
        if any(hasattr(value, "resolve_expression") for value in values):
            unknown.append(obj)
        else:
            pairs.append((obj, config.normalize(values)))
    if unknown:
        read = config.read_rows(using, [obj.pk for obj in unknown])
        pairs += [(obj, read[config.key(obj.pk)]) for obj in unknown if config.key(obj.pk) in read]
    return pairs


def _upserted(config, using, objs, keys) -> list[tuple[Any, tuple]]:
    """(object, row) of an upsert: the row each object inserted or updated, once per row."""
    by_key = _index_by_keys(config, _rows_matching(config, using, objs, keys).values(), keys)
    pairs, seen = [], set()
    for obj in objs:
        row = _lookup(config, obj, keys, by_key)
        if row is not None and config.key(config.pk_of(row)) not in seen:
            seen.add(config.key(config.pk_of(row)))
            pairs.append((obj, row))
    return pairs


def _inserted(config, using, objs, keys, existing) -> list[tuple[Any, tuple]]:
    """(object or None, row) of `ignore_conflicts`: every row that was not there before, with
    the object it came from when one matches (its attribution), whatever the conflicts."""
    found = _rows_matching(config, using, objs, keys)
    unclaimed: dict[tuple, list] = {}
    for obj in objs:
        values = config.normalize(config.values_of(obj))
        for number, key in enumerate(keys):
            picked = _key_values(config, values, key)
            if picked is not None:
                unclaimed.setdefault((number, _hashable(picked)), []).append(obj)
    pairs, claimed = [], set()
    for key, row in found.items():
        if key in existing:
            continue  # there before: a conflict, nothing written
        owner = None
        for number, columns in enumerate(keys):
            picked = _key_values(config, row, columns)
            candidates = unclaimed.get((number, _hashable(picked)), ()) if picked else ()
            owner = next((obj for obj in candidates if id(obj) not in claimed), None)
            if owner is not None:
                claimed.add(id(owner))
                break
        pairs.append((owner, row))
    return pairs


class _ContentKey(tuple):
    """Every recorded column but the key: how to find a row inserted without a unique value
    to look it up by (an automatic key that `ignore_conflicts` does not return)."""


def _conflict_keys(config: ModelConfig, unique_fields) -> list[tuple[int, ...]]:
    """The column sets a conflict can happen on: `unique_fields` for an upsert, otherwise the
    primary key and every unconditional unique constraint, then the rows' content."""
    opts = config.model._meta

    def field_attname(name: str) -> str:
        return concrete_field(config.model, name).attname

    if unique_fields:
        return [
            tuple(
                config.pk_index if name == "pk" else config.index_of(field_attname(name))
                for name in unique_fields
            )
        ]
    keys = [config.pk_indexes]
    for field in opts.concrete_fields:
        if field.unique and not field.primary_key:
            keys.append((config.index_of(field.attname),))
    for names in opts.unique_together:
        keys.append(tuple(config.index_of(field_attname(name)) for name in names))
    for constraint in opts.total_unique_constraints:
        keys.append(tuple(config.index_of(field_attname(name)) for name in constraint.fields))
    keys = list(dict.fromkeys(keys))
    keys.append(_ContentKey(i for i in config.recorded if i not in config.pk_indexes))
    return keys


def _key_values(config, values: tuple, key: tuple[int, ...]) -> tuple | None:
    picked = tuple(values[index] for index in key)
    if any(hasattr(value, "resolve_expression") for value in picked):
        return None
    if not isinstance(key, _ContentKey) and any(value is None for value in picked):
        return None  # NULL never conflicts
    return picked


def _content_condition(config: ModelConfig, key: tuple[int, ...], picked: tuple) -> dict:
    """The filter that finds a row by its content (None as SQL NULL: a JSONField's `=None`
    would look for JSON null)."""
    condition = {}
    for index, value in zip(key, picked, strict=True):
        name = config.attnames[index]
        if value is None:
            condition[f"{name}__isnull"] = True
        else:
            condition[name] = value
    return condition


def _hashable(values: tuple) -> tuple:
    """`values` as a dict key: JSON values (dicts, lists) by their canonical text."""
    try:
        hash(values)
    except TypeError:
        return tuple(_canonical(value) for value in values)
    return values


def _canonical(value: Any) -> Any:
    try:
        hash(value)
    except TypeError:
        return ("json", json.dumps(value, sort_keys=True, default=str))
    return value


def _rows_matching(config, using, objs, keys) -> dict[Any, tuple]:
    """Read the rows whose unique keys equal those of `objs`, keyed by primary key.

    Keys are grouped by all their columns but the last, which is matched with IN: a
    many-to-many `add()` (one source, many targets) is one query however many rows it adds.
    An object with no unique value to look it up by is looked up by its content.
    """
    groups: dict[tuple, set] = {}
    by_content: list[dict] = []
    for obj in objs:
        values = config.normalize(config.values_of(obj))
        usable = False
        for key in keys:
            picked = _key_values(config, values, key)
            if picked is None:
                continue
            if isinstance(key, _ContentKey):
                if not usable:
                    by_content.append(_content_condition(config, key, picked))
                continue
            usable = True
            prefix = tuple(
                (config.attnames[index], value)
                for index, value in zip(key[:-1], picked[:-1], strict=True)
            )
            groups.setdefault((prefix, config.attnames[key[-1]]), set()).add(picked[-1])
    rows: dict[Any, tuple] = {}
    manager = config.model._base_manager.using(using)
    size = max_parameters(connections[using]) - 100
    for (prefix, last), values in groups.items():
        values = list(values)
        for start in range(0, len(values), size):
            lookup = {**dict(prefix), f"{last}__in": values[start : start + size]}
            for row in manager.filter(**lookup).values_list(*config.attnames):
                rows[config.key(config.pk_of(row))] = tuple(row)
    if by_content:
        per_query = max(1, size // max(1, len(by_content[0])))
        for start in range(0, len(by_content), per_query):
            conditions = by_content[start : start + per_query]
            query = functools.reduce(operator.or_, (Q(**condition) for condition in conditions))
            for row in manager.filter(query).values_list(*config.attnames):
                rows[config.key(config.pk_of(row))] = tuple(row)
    return rows


def _index_by_keys(config, rows, keys) -> dict[tuple, tuple]:
    index: dict[tuple, tuple] = {}
    for row in rows:
        for number, key in enumerate(keys):
            picked = _key_values(config, row, key)
            if picked is not None:
                index[(number, _hashable(picked))] = row
    return index


def _lookup(config, obj, keys, by_key) -> tuple | None:
    values = config.normalize(config.values_of(obj))
    for number, key in enumerate(keys):
        picked = _key_values(config, values, key)
        if picked is not None and (number, _hashable(picked)) in by_key:
            return by_key[(number, _hashable(picked))]
    return None


# bulk_update ------------------------------------------------------------------------------


_BULK_UPDATE_SIGNATURE = inspect.signature(_django_bulk_update)


class _Batches:
    """A set-based bulk_update() in progress: the writer of its batches (Django sends each
    as a `QuerySet.update()`), the primary keys whose new rows it must read back, and those
    of them the batches updated."""

    __slots__ = ("updated", "watched", "writer")

    def __init__(self, writer: SetBasedUpdate, watched: list[Any]) -> None:
        self.writer = writer
        self.watched = watched
        self.updated: list[Any] = []


_bulk_batches: contextvars.ContextVar[_Batches | None] = contextvars.ContextVar(
    "revy_bulk_batches", default=None
)


def _bulk_update(self: QuerySet, objs, fields, *args: Any, **kwargs: Any):
    config = _recording_config(self.model)
    if config is None or not fields or not config.knows(fields) or config.pk_names & set(fields):
        # Wrong usage: Django raises its own error before writing anything.
        return _django_bulk_update(self, objs, fields, *args, **kwargs)
    objs = list(objs)
    using = _write_db(self)
    indexes = frozenset(config.index_of(name) for name in fields)
    actor = Context.get_actor()
    description = Context.get_attribute_delta_description()
    if SET_BASED_UPDATES:
        done = _set_based_bulk_update(self, config, using, objs, fields, args, kwargs)
        if done is not None:
            return done[0]
    with atomic_unit(using):
        known: dict[Any, tuple] = {}
        missing = []
        for obj in objs:
            state = attribution.state_of(obj)
            base = attribution.known_base(state, config, obj.pk, using) if state else None
            if base is not None:
                known[config.key(obj.pk)] = base
            else:
                missing.append(obj.pk)
        if missing:
            known.update(config.read_rows(using, missing))
        # Django's bulk_update runs QuerySet.update() per batch: record once, here.
        with Context.as_disabled():
            count = _django_bulk_update(self, objs, fields, *args, **kwargs)
        # Expressions (F("pages") + 1, Lower("title")): only the database knows the values.
        computed = [
            obj.pk
            for obj in objs
            if any(hasattr(getattr(obj, config.attnames[i]), "resolve_expression") for i in indexes)
        ]
        computed_rows = config.read_rows(using, computed) if computed else {}
        changes = []
        written = {}
        for obj in objs:
            key = config.key(obj.pk)
            before = known.get(key)
            if before is None:
                continue
            values = config.values_of(obj)
            current = computed_rows.get(key) or config.normalize(values)
            after = written[key] = tuple(
                current[index] if index in indexes else value for index, value in enumerate(before)
            )
            state = attribution.state_of(obj)
            spans = {}
            if state is not None:
                attribution.attribute(obj, state, config, actor, description, values)
                spans = {
                    index: chain
                    for index, chain in (state.spans or {}).items()
                    if not hasattr(values[index], "resolve_expression")
                }
            change = tracking.update_change(
                config, obj, before, after, indexes, spans, actor, description
            )
            if change is not None:
                changes.append(change)
            if state is not None:
                state.base = config.frozen(after)
                for index in indexes:
                    (state.spans or {}).pop(index, None)
        with guard(using):
            recorder.write(using, with_relatives(using, changes))
    attribution.refresh_bases(self.model, written, using)
    return count


def _set_based_bulk_update(
    queryset: QuerySet, config: ModelConfig, using: str, objs: list, fields, args, kwargs
) -> tuple[int] | None:
    """Run bulk_update() with each of Django's batches recorded in its own statement
    (`SetBasedUpdate`); None when it must be recorded in Python instead.

    That is when an instance carries changes attributed to another actor or description
    than the context's (attribute deltas of their own), or when, outside a context, Django
    would send several batches (each would create its own revision). The instances' new
    bases are computed from their known ones; only the rows of instances revy knows no
    trusted base of, or whose values are expressions, are read back (one SELECT).
    """
    writer = SetBasedUpdate.build(config, using)
    if isinstance(writer, str):
        return None
    options = _BULK_UPDATE_SIGNATURE.bind(queryset, objs, fields, *args, **kwargs).arguments
    batch_size = options.get("batch_size")
    if current_scope() is None and batch_size and batch_size < len(objs):
        return None
    actor = Context.get_actor()
    description = Context.get_attribute_delta_description()
    indexes = frozenset(config.index_of(name) for name in fields)
    states = []
    for obj in objs:
        state = attribution.state_of(obj)
        if state is None:
            continue
        values = attribution.attribute(obj, state, config, actor, description)
        for index in indexes:
            chain = (state.spans or {}).get(index)
            if (
                chain
                and not hasattr(values[index], "resolve_expression")  # its span is ignored
                and not _the_context_s(chain, actor, description)
            ):
                return None
        states.append((obj, state, values))
    # The rows after the update, by key: merged into the instances' known bases, or read.
    written: dict[Any, tuple] = {}
    for obj, state, values in states:
        base = attribution.known_base(state, config, obj.pk, using)
        if base is not None and not any(
            hasattr(values[index], "resolve_expression") for index in indexes
        ):
            current = config.normalize(values)
            written[config.key(obj.pk)] = attribution.merge(base, current, indexes)
    unknown = {config.key(obj.pk): obj.pk for obj, _, _ in states}
    unknown.update((config.key(pk), pk) for pk in attribution.watched_pks(config.model))
    batches = _Batches(writer, [pk for key, pk in unknown.items() if key not in written])
    token = _bulk_batches.set(batches)
    try:
        count = _django_bulk_update(queryset, objs, fields, *args, **kwargs)
    finally:
        _bulk_batches.reset(token)
    if batches.updated:
        written.update(config.read_rows(using, batches.updated))
    for obj, state, _ in states:
        after = written.get(config.key(obj.pk))
        if after is not None:
            state.base = config.frozen(after)
            for index in indexes:
                (state.spans or {}).pop(index, None)
    attribution.refresh_bases(queryset.model, written, using)
    return (count,)


def _the_context_s(chain: list[list], actor: Any, description: str | None) -> bool:
    """True when a field's pending changes are all by `actor` with `description` (one span):
    its attribute delta is then the one a set-based statement writes."""
    if len(chain) != 1:
        return False
    span_actor, span_description = chain[0][0], chain[0][1]
    same = span_actor is actor or (span_actor is not None and span_actor == actor)
    return same and (span_description or "") == (description or "")


# QuerySet.delete -----------------------------------------------------------------------------

# What `Collector.delete` was when `install` wrapped it (`deletion.record_delete`, installed by
# `tracking`).
_wrapped_collector_delete = Collector.delete


def _collector_delete(self: Collector):
    """`Collector.delete`: a queryset Django deletes with one DELETE is recorded by that
    statement where `SetBasedDelete` can (PostgreSQL); anything else by `deletion`."""
    if SET_BASED_DELETES and attribution.recording():
        writer = SetBasedDelete.build(self)
        if not isinstance(writer, str):
            return deletion.delete_set_based(self, writer)
    return _wrapped_collector_delete(self)


_installed = False


def install() -> None:
    """Wrap the bulk QuerySet methods and the deletion collector (idempotent; after
    `tracking.install`, whose `Collector.delete` this wraps)."""
    global _installed, _wrapped_collector_delete
    if _installed:
        return
    QuerySet.update = _update
    QuerySet.bulk_create = _bulk_create
    QuerySet.bulk_update = _bulk_update
    _wrapped_collector_delete = Collector.delete
    Collector.delete = _collector_delete
    _installed = True


def uninstall() -> None:
    global _installed
    QuerySet.update = _django_update
    QuerySet.bulk_create = _django_bulk_create
    QuerySet.bulk_update = _django_bulk_update
    if _installed:
        Collector.delete = _wrapped_collector_delete
    _installed = False
