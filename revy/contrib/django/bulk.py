"""Tracking of the bulk paths: `QuerySet.update()`, `bulk_create()`, `bulk_update()` and
many-to-many `add()`.

They record the same deltas a save of each row would, written in batches: the extra SQL
statements are one SELECT of the affected rows (when their state is not already known) and
one INSERT per `REVY_BATCH_SIZE` deltas per table, whatever the number of rows.
`QuerySet.delete()` and many-to-many `remove()`, `clear()` and `set()` go through Django's
deletion collector, which `tracking` already records.

A row inserted by `bulk_create(ignore_conflicts=True)` without a primary key coming back is
not recorded (there is no way to tell it from a conflict); many-to-many `add()` is recorded
from the `m2m_changed` signal instead.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import models
from django.db.models.query import QuerySet
from django.db.models.signals import m2m_changed

from revy.context import Context
from revy.contrib.django import attribution, deletion, recorder, tracking
from revy.contrib.django.registry import ModelConfig, config_for
from revy.contrib.django.transactions import atomic_unit, guard

logger = logging.getLogger("revy.bulk")

DEFERRED = models.DEFERRED

_django_update = QuerySet.update
_django_bulk_create = QuerySet.bulk_create
_django_bulk_update = QuerySet.bulk_update


def _recording_config(model: type[models.Model]) -> ModelConfig | None:
    return config_for(model) if attribution.recording() else None


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
    using = self.db
    indexes = frozenset(config.index_of(name) for name in kwargs)
    actor = Context.get_actor()
    description = Context.get_attribute_delta_description()
    with atomic_unit(using):
        before = [tuple(row) for row in self.values_list(*config.attnames)]
        count = _django_update(self, **kwargs)
        if not before:
            return count
        if _has_expressions(kwargs):
            after_rows = config.read_rows(using, [row[config.pk_index] for row in before])
        else:
            new_values = {
                config.index_of(name): config.normal(config.index_of(name), value)
                for name, value in kwargs.items()
            }
            after_rows = None
        if after_rows is None:
            after_rows = {
                row[config.pk_index]: tuple(
                    new_values.get(index, value) for index, value in enumerate(row)
                )
                for row in before
            }
        changes = []
        for row in before:
            after = after_rows.get(row[config.pk_index])
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
            recorder.write(using, changes)
    attribution.refresh_bases(self.model, after_rows, using)
    return count


# bulk_create ------------------------------------------------------------------------------


def _bulk_create(self: QuerySet, objs, *args: Any, **kwargs: Any):
    config = _recording_config(self.model)
    if config is None or config.model._meta.auto_created or self.model._meta.parents:
        # Django refuses multi-table inherited models before writing anything.
        return _django_bulk_create(self, objs, *args, **kwargs)
    objs = list(objs)
    actor = Context.get_actor()
    description = Context.get_attribute_delta_description()
    using = self.db
    with atomic_unit(using):
        before = []
        for obj in objs:
            state = attribution.state_of(obj) or attribution.watch_new(obj)
            before.append(attribution.attribute(obj, state, config, actor, description))
        created = _django_bulk_create(self, objs, *args, **kwargs)
        changes = []
        skipped = 0
        for obj, current in zip(objs, before, strict=True):
            state = attribution.state_of(obj)
            after = config.normalize(config.values_of(obj))
            if after[config.pk_index] is None:
                skipped += 1
                continue
            if after != current:
                attribution.attribute(obj, state, config, None, "", after)
            changes.append(
                tracking.creation_change(config, obj, after, state.spans or {}, actor, description)
            )
            kept = config.frozen(after)
            state.base, state.checkpoint, state.spans = kept, kept, None
        with guard(using):
            recorder.write(using, changes)
    if skipped:
        logger.warning(
            "revy: %d %s rows from bulk_create() came back without a primary key "
            "(ignore_conflicts?) and were not recorded.",
            skipped,
            config.label,
        )
    return created


# bulk_update ------------------------------------------------------------------------------


def _bulk_update(self: QuerySet, objs, fields, *args: Any, **kwargs: Any):
    config = _recording_config(self.model)
    if config is None or not fields or not config.knows(fields) or config.pk_names & set(fields):
        # Wrong usage: Django raises its own error before writing anything.
        return _django_bulk_update(self, objs, fields, *args, **kwargs)
    objs = list(objs)
    using = self.db
    indexes = frozenset(config.index_of(name) for name in fields)
    actor = Context.get_actor()
    description = Context.get_attribute_delta_description()
    with atomic_unit(using):
        known: dict[Any, tuple] = {}
        missing = []
        for obj in objs:
            state = attribution.state_of(obj)
            base = attribution.known_base(state, config, obj.pk, using) if state else None
            if base is not None:
                known[obj.pk] = base
            else:
                missing.append(obj.pk)
        if missing:
            known.update(config.read_rows(using, missing))
        # Django's bulk_update runs QuerySet.update() per batch: record once, here.
        with Context.as_disabled():
            count = _django_bulk_update(self, objs, fields, *args, **kwargs)
        changes = []
        written = {}
        for obj in objs:
            before = known.get(obj.pk)
            if before is None:
                continue
            current = config.normalize(config.values_of(obj))
            after = written[obj.pk] = tuple(
                current[index] if index in indexes else value for index, value in enumerate(before)
            )
            state = attribution.state_of(obj)
            spans = {}
            if state is not None:
                attribution.attribute(obj, state, config, actor, description, current)
                spans = state.spans or {}
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
            recorder.write(using, changes)
    attribution.refresh_bases(self.model, written, using)
    return count


# Many-to-many add ---------------------------------------------------------------------------


def _m2m_changed(sender, instance, action, reverse, model, pk_set, using, **kwargs) -> None:
    """Record the through rows that `add()` inserted (removals go through the collector)."""
    if action != "post_add" or not pk_set:
        return
    config = _recording_config(sender)
    if config is None:
        return
    source, target = _through_fields(sender, type(instance), model, reverse)
    rows = (
        sender._base_manager.using(using)
        .filter(**{source.attname: instance.pk, f"{target.attname}__in": list(pk_set)})
        .values_list(*config.attnames)
    )
    actor = Context.get_actor()
    description = Context.get_attribute_delta_description()
    changes = [
        # The database chose the key: the system's, as in a save.
        tracking.creation_change(
            config,
            None,
            row,
            {config.pk_index: [[None, "", None, row[config.pk_index]]]},
            actor,
            description,
        )
        for row in map(tuple, rows)
    ]
    recorder.write(using, changes)


def _through_fields(through, instance_model, target_model, reverse):
    """Return (field pointing at the instance, field pointing at the added objects)."""
    source = target = None
    for field in through._meta.concrete_fields:
        remote = getattr(field.remote_field, "model", None)
        if remote is None:
            continue
        if issubclass(instance_model, remote) and source is None:
            source = field
        elif issubclass(target_model, remote):
            target = field
    if target is None:  # self-referential: the second foreign key to the same model
        fks = [f for f in through._meta.concrete_fields if f.remote_field is not None]
        source, target = (fks[1], fks[0]) if reverse else (fks[0], fks[1])
    return source, target


_installed = False


def install() -> None:
    """Wrap the bulk QuerySet methods and listen to many-to-many additions (idempotent)."""
    global _installed
    if _installed:
        return
    QuerySet.update = _update
    QuerySet.bulk_create = _bulk_create
    QuerySet.bulk_update = _bulk_update
    m2m_changed.connect(_m2m_changed, dispatch_uid="revy.bulk.m2m_changed")
    _installed = True


def uninstall() -> None:
    global _installed
    QuerySet.update = _django_update
    QuerySet.bulk_create = _django_bulk_create
    QuerySet.bulk_update = _django_bulk_update
    m2m_changed.disconnect(dispatch_uid="revy.bulk.m2m_changed")
    _installed = False
