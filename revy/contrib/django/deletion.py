"""Deletions: drop-in replacements for Django's `on_delete` handlers, and their recording.

Inside an enabled context, every row a deletion touches gets its own delta in the deleting
revision, with the system (None) as actor and the context's `deletion_description`. The deltas
are written by the deletion hook in `tracking`, inside the deletion's transaction; these
handlers make sure the affected rows are fully loaded so that their pre-deletion state is known
without another query. Outside an enabled context Django's handler runs unchanged.

Migrations refer to these functions by their import path, which stays stable.

`record_delete` wraps Django's `Collector.delete`: before Django deletes anything, every row
the collector holds (origin, cascades, fast deletes) gets a Delete delta carrying its
pre-deletion state, and every row a SET handler changes gets one Update, all in the deletion's
transaction. On PostgreSQL, a deletion Django makes with one DELETE (a queryset's fast delete)
is recorded by that statement instead (`sqlwrites.SetBasedDelete`, called by `bulk`).
"""

from __future__ import annotations

import contextvars
import functools
import operator
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.db import models
from django.db.models import deletion as django_deletion
from django.db.models.deletion import Collector

from revy.context import Context
from revy.contrib.django import onestatement, recorder
from revy.contrib.django._meta import concrete_model
from revy.contrib.django.attribution import (
    known_base,
    note_write,
    recording,
    state_of,
    watched_pks,
)
from revy.contrib.django.inheritance import with_relatives
from revy.contrib.django.recorder import Change, attribute_action, state_json
from revy.contrib.django.registry import ModelConfig, config_for
from revy.contrib.django.transactions import atomic_unit, guard

if TYPE_CHECKING:
    from revy.contrib.django.sqlwrites import SetBasedDelete

__all__ = [
    "CASCADE",
    "SET",
    "SET_DEFAULT",
    "SET_NULL",
    "delete_set_based",
    "record_delete",
]


def _full_rows(sub_objs: Any) -> Any:
    # Django loads cascaded rows with only() when nobody listens to signals; recording needs
    # every field, so load them whole in the same single query.
    if Context.is_enabled() and hasattr(sub_objs, "defer"):
        return sub_objs.defer(None)
    return sub_objs


def CASCADE(
    collector: Collector, field: models.Field[Any, Any], sub_objs: models.QuerySet[Any], using: str
) -> None:
    """Delete the rows that point at the deleted one, recording each deletion."""
    django_deletion.CASCADE(collector, field, _full_rows(sub_objs), using)


# Django fast-deletes the rows of a relation whose handler is its own CASCADE, without
# reading them; for any other handler it reads them before calling it, unless the handler is
# lazy. Being lazy lets the collector read the rows once, whole (see `_full_rows`), or
# fast-delete them when it can, instead of reading their keys first and the rows again.
# A function attribute Django reads, as on its own handlers (mypy cannot declare one).
CASCADE.lazy_sub_objs = True  # type: ignore[attr-defined]


def SET_NULL(
    collector: Collector, field: models.Field[Any, Any], sub_objs: models.QuerySet[Any], using: str
) -> None:
    """Set the foreign key to NULL, recording each row's update."""
    django_deletion.SET_NULL(collector, field, sub_objs, using)


SET_NULL.lazy_sub_objs = True  # type: ignore[attr-defined]  # see CASCADE


def SET_DEFAULT(
    collector: Collector, field: models.Field[Any, Any], sub_objs: models.QuerySet[Any], using: str
) -> None:
    """Set the foreign key to its default, recording each row's update."""
    # Not lazy, like Django's: a callable default only runs when rows point at the deleted one.
    django_deletion.SET_DEFAULT(collector, field, sub_objs, using)


def SET(
    value: Any,
) -> Callable[[Collector, models.Field[Any, Any], models.QuerySet[Any], str], None]:
    """Set the foreign key to `value` (or its result, if callable), recording each update."""
    handler = django_deletion.SET(value)

    def set_on_delete(
        collector: Collector,
        field: models.Field[Any, Any],
        sub_objs: models.QuerySet[Any],
        using: str,
    ) -> None:
        handler(collector, field, sub_objs, using)

    if getattr(handler, "lazy_sub_objs", False):
        set_on_delete.lazy_sub_objs = True  # type: ignore[attr-defined]  # see CASCADE
    # What the migration writer calls to name the handler (a function attribute: see CASCADE).
    set_on_delete.deconstruct = lambda: ("revy.contrib.django.deletion.SET", (value,), {})  # type: ignore[attr-defined]
    return set_on_delete


# Recording deletions ------------------------------------------------------------------------

_django_collector_delete = Collector.delete

# (model, field name) pairs a deletion in progress sets through QuerySet.update().
deletion_updates: contextvars.ContextVar[frozenset] = contextvars.ContextVar(
    "revy_deletion_updates", default=frozenset()
)


def record_delete(self):
    """`Collector.delete`, recording every row it deletes or changes (installed by tracking)."""
    if not recording():
        return _django_collector_delete(self)
    if onestatement.enabled(self.using) and onestatement.applies_to_delete(self):
        return _delete_in_one_statement(self)
    with atomic_unit(self.using):
        changes = _deletion_changes(self)
        with guard(self.using):
            recorder.write(self.using, with_relatives(self.using, changes))
        # Django applies SET_NULL & co. with QuerySet.update(): already recorded above.
        handled = frozenset(
            (field.model._meta.concrete_model, field.name) for field, _ in self.field_updates
        )
        token = deletion_updates.set(handled)
        try:
            result = _django_collector_delete(self)
        finally:
            deletion_updates.reset(token)
    _deleted(self, changes)
    return result


def _deleted(collector: Collector, changes: list[Change]) -> None:
    for change in changes:
        note_write(change.config, change.pk)
    for instances in collector.data.values():
        for instance in instances:
            state = state_of(instance)
            if state is not None:
                state.base, state.spans = None, None


def delete_set_based(collector: Collector, writer: SetBasedDelete) -> tuple[int, dict]:
    """Rows Django deletes with one DELETE: that DELETE and their deltas are one statement,
    atomic by itself (what Django's `Collector.delete` returns, without its transaction).
    `bulk` calls it where `writer` applies (sqlwrites needs the models, which import this
    module's handlers: it cannot be imported here)."""
    config = writer.config
    if config.model in _origin(collector)[0]:  # (not an instance: see SetBasedDelete.build)
        actor, description = Context.get_actor(), Context.get_object_delta_description()
    else:
        actor, description = None, Context.get_deletion_description()
    with guard(collector.using):
        count, deleted = writer.run(actor, description, watched_pks(config.model))
    for pk in deleted:
        note_write(config, pk)
    return count, ({writer.queryset.model._meta.label: count} if count else {})


def _delete_in_one_statement(collector: Collector):
    """One row, deleted by Django's one DELETE: its Delete delta goes in that statement,
    which also builds the row's state from what it deletes when that state is not known."""
    using = collector.using
    ((model, instances),) = collector.data.items()
    config = config_for(model)
    assert config is not None  # applies_to_delete() checked it
    changes = _deletion_changes(collector, unread=onestatement.state_in_sql(config, using))
    unknown = bool(changes) and changes[0].data is None
    statement = onestatement.Statement(
        config,
        using,
        lambda adding: changes[0] if changes else None,
        delete=True,
        state_from_row=unknown,
    )
    with statement:
        result = _django_collector_delete(collector)
    if statement.change is not None:
        recorder.written(using, changes, [statement.delta_id])
    elif result[0]:
        # Django deleted the row in a statement not recognised: record it after, with the
        # state the instance holds when the row's was not read.
        for change in changes:
            if change.data is None:
                (instance,) = instances
                change.values = config.values_of(instance)
                change.data = state_json(config, change.values)
        with guard(using):
            recorder.write(using, changes)
    _deleted(collector, changes)
    return result


def _origin(collector: Collector) -> tuple[Any, Any]:
    """The models of the rows the deletion was asked for (a multi-table child's parents
    included: the same object), and the primary key of the instance asked for (None for a
    queryset)."""
    origin = collector.origin
    if isinstance(origin, models.Model):
        origin_model, origin_pk = origin._meta.concrete_model, origin.pk
    elif origin is not None and hasattr(origin, "model"):
        origin_model, origin_pk = origin.model._meta.concrete_model, None
    else:
        origin_model = origin_pk = None
    origin_models = (
        {origin_model, *origin_model._meta.get_parent_list()} if origin_model is not None else ()
    )
    return origin_models, origin_pk


def _deletion_changes(collector: Collector, unread: bool = False) -> list[Change]:
    """The changes a deletion makes, from the rows as they are before it. `unread`: the rows
    of instances whose state is not known are not read; their Delete changes carry no state
    (`data` None: the deleting statement builds it)."""
    using = collector.using
    origin_models, origin_pk = _origin(collector)

    actor = Context.get_actor()
    object_description = Context.get_object_delta_description()
    deletion_description = Context.get_deletion_description()

    def deleted(config, row, instance=None) -> Change:
        pk = config.pk_of(row) if row is not None else instance.pk
        if instance is None and config.has_aggregates:
            # Fast-deleted rows come without instances; aggregates are found through one.
            instance = config.model.from_db(using, config.attnames, row)
        is_origin = config.model in origin_models and (origin_pk is None or pk == origin_pk)
        return Change(
            config,
            pk,
            "Delete",
            actor=actor if is_origin else None,
            description=object_description if is_origin else deletion_description,
            data=state_json(config, row) if row is not None else None,
            instance=instance,
            values=row,
        )

    changes: list[Change] = []
    # One Update per row, however many of its foreign keys the deletion sets.
    updated: dict[tuple[type, Any], list] = {}
    for (field, value), batches in collector.field_updates.items():
        config = config_for(field.model)
        if config is None:
            continue
        index = config.index_of(field.attname)
        for batch in batches:
            for row, _ in _rows(config, batch, using):
                key = (config.model, config.pk_of(row))
                entry = updated.setdefault(key, [config, row, list(row)])
                entry[2][index] = config.normal(index, value)
    for config, row, after in updated.values():
        attributes = [
            (index, attribute_action(new), old, new, None, deletion_description)
            for index, (old, new) in enumerate(zip(row, after, strict=True))
            if not config.same(index, old, new) and index in config.recorded
        ]
        if attributes:
            changes.append(
                Change(
                    config,
                    config.pk_of(row),
                    "Update",
                    actor=None,
                    description=deletion_description,
                    data=state_json(config, after),
                    attributes=attributes,
                    values=tuple(after),
                )
            )
    for model, instances in collector.data.items():
        config = config_for(model)
        if config is not None:
            changes.extend(
                deleted(config, row, obj) for row, obj in _rows(config, instances, using, unread)
            )
    # Django splits fast deletes into batches; one SELECT per model reads them all.
    fast_deletes: dict[type, list[models.QuerySet]] = {}
    for queryset in collector.fast_deletes:
        fast_deletes.setdefault(concrete_model(queryset.model), []).append(queryset)
    for model, querysets in fast_deletes.items():
        config = config_for(model)
        if config is not None:
            combined = functools.reduce(operator.or_, querysets)
            changes.extend(deleted(config, row) for row, _ in _rows(config, combined, using))
    return changes


def _rows(config: ModelConfig, objs, using: str, unread: bool = False) -> list[tuple[Any, Any]]:
    """Return (full row, instance or None) for a queryset or a collection of instances.
    `unread`: the instances whose row is not known come with None instead of being read."""
    if isinstance(objs, models.QuerySet):
        return [(tuple(row), None) for row in objs.values_list(*config.attnames)]
    known, missing = [], {}
    for instance in objs:
        state = state_of(instance)
        base = None
        if state is not None and not instance._state.adding:
            base = known_base(state, config, instance.pk, using)
        if base is not None:
            known.append((base, instance))
        else:
            missing[config.key(instance.pk)] = instance
    if unread:
        return known + [(None, instance) for instance in missing.values()]
    pks = [instance.pk for instance in missing.values()]
    for key, row in config.read_rows(using, pks).items():
        known.append((row, missing[key]))
    return known
