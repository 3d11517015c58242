"""Hooks on model instances: what was loaded, who assigned what, and what a save changed.

How attribution works without intercepting every assignment: an instance loaded or built
inside an enabled context gets an `InstanceState` (its database values and a checkpoint of
its field values) and is watched by the context's scope. When the actor or the attribute
description is about to change, every watched instance is compared with its checkpoint and
the differences are attributed to the outgoing actor ("spans"). A save attributes what is
left to the actor of the moment, adds what Django itself set during the save (auto keys,
`auto_now`) as the system's, and writes one object delta with its attribute deltas.

Cost outside a context: one context-variable read per row loaded, instance built or save.
Loading inside a context adds one small object and one weak reference per row; an actor
change costs one tuple comparison per watched instance.

Installed once by the app's `ready()`: `Model.__init__`, `Model.from_db`,
`Model.save_base`, `Model.refresh_from_db` and `Collector.delete` are wrapped.
"""

from __future__ import annotations

import contextvars
import functools
import operator
import weakref
from typing import Any

from django.db import models, router, transaction
from django.db.models.deletion import Collector

from revy.context import Context, Scope, add_boundary_listener, current_scope, enabled_scope
from revy.contrib.django import recorder
from revy.contrib.django import settings as revy_settings
from revy.contrib.django.recorder import ACTION_SET, Change, attribute_action, state_json
from revy.contrib.django.registry import ModelConfig, config_for
from revy.contrib.django.revisions import marker_alive, transaction_marker

DEFERRED = models.DEFERRED
STATE_KEY = "_revy_state"

# (model, field name) pairs a deletion in progress sets through QuerySet.update().
deletion_updates: contextvars.ContextVar[frozenset] = contextvars.ContextVar(
    "revy_deletion_updates", default=frozenset()
)
WRITES_KEY = "revy.writes"
TRACKED_LIMIT_KEY = "revy.tracked_limit"

_django_init = models.Model.__init__
_django_from_db = models.Model.from_db.__func__
_django_save_base = models.Model.save_base
_django_refresh_from_db = models.Model.refresh_from_db
_django_collector_delete = Collector.delete


class InstanceState:
    """What revy knows about one instance.

    `base`: the row's values in the database as last seen (None when unknown or new), in the
    context `scope` when its write counter was at `seen`; `pending` marks a base written by a
    save inside a transaction that may still roll back (see `known_base`).
    `checkpoint`: field values at the last attribution (None: nothing attributed since the
    instance was built). `spans`: per field index, the pending `[actor, description, old,
    new]` changes not yet saved, consecutive changes by one actor collapsed.
    """

    __slots__ = ("base", "checkpoint", "owner", "pending", "scope", "seen", "spans")

    def __init__(
        self,
        owner: int,
        base: tuple | None,
        checkpoint: tuple | None,
        scope: Scope | None = None,
    ) -> None:
        self.owner = owner
        self.base = base
        self.checkpoint = checkpoint
        self.spans: dict[int, list[list]] | None = None
        self.scope = scope
        self.seen = 0 if scope is None else scope.serial
        self.pending: tuple | None = None


def state_of(instance: models.Model) -> InstanceState | None:
    """Return the instance's state; a copy of an instance does not inherit it."""
    state = instance.__dict__.get(STATE_KEY)
    if state is not None and state.owner == id(instance):
        return state
    return None


def recording() -> bool:
    """Return True when changes made here are recorded."""
    if enabled_scope() is not None:
        return True
    return revy_settings.track_outside_context() and not Context.is_active()


def watch_new(instance: models.Model) -> InstanceState:
    """Start tracking an instance revy has not seen being built; return its state."""
    _watch(instance, None, None)
    return state_of(instance)


def _watch(instance: models.Model, base: tuple | None, checkpoint: tuple | None) -> None:
    scope = enabled_scope()
    state = state_of(instance)
    if state is not None:
        state.base, state.checkpoint, state.spans = base, checkpoint, None
        _seen_now(state)
        return
    instance.__dict__[STATE_KEY] = InstanceState(id(instance), base, checkpoint, scope)
    if scope is not None:
        tracked = scope.tracked
        tracked.append(weakref.ref(instance))
        if not len(tracked) & 1023:
            _forget_dead(scope)


def _forget_dead(scope: Scope) -> None:
    # A context that loads rows by the million without a boundary would otherwise keep a
    # dead weak reference per row. Compacting only when the list has doubled since the last
    # time keeps the cost amortized O(1) per row, even when most instances stay alive.
    tracked = scope.tracked
    if len(tracked) < scope.extras.get(TRACKED_LIMIT_KEY, 0):
        return
    alive = [ref for ref in tracked if ref() is not None]
    scope.tracked = alive
    scope.extras[TRACKED_LIMIT_KEY] = 2 * len(alive)


def _seen_now(state: InstanceState) -> None:
    """Mark the state's base as what the database holds at this point of the context."""
    scope = current_scope()
    state.scope = scope
    state.seen = 0 if scope is None else scope.serial
    state.pending = None


def known_base(state: InstanceState, config: ModelConfig, pk: Any, using: str) -> tuple | None:
    """Return the row as the instance last saw it, unless it may have changed since.

    The base is trusted only for the row it was read from (the instance's primary key may
    have been changed since), only within the context it was read in, only if no other instance
    of the same row was saved or deleted there since, and only if the transaction of the save
    that wrote it was not rolled back: otherwise the caller reads the row again, so that old
    values and states are the database's, not a stale copy's.
    """
    base = state.base
    if base is None or DEFERRED in base or base[config.pk_index] != pk:
        return None
    scope = current_scope()
    if state.scope is not scope:
        return None
    if scope is not None:
        writes = scope.extras.get(WRITES_KEY)
        if writes is not None and writes.get((config.model, pk), 0) > state.seen:
            return None
    if state.pending is not None and not marker_alive(state.pending, using):
        return None
    return base


def note_write(config: ModelConfig, pk: Any) -> None:
    """Record that the row changed, so that other instances' bases of it become stale."""
    scope = current_scope()
    if scope is None:
        return
    scope.serial += 1
    writes = scope.extras.get(WRITES_KEY)
    if writes is None:
        writes = scope.extras[WRITES_KEY] = {}
    writes[(config.model, pk)] = scope.serial


# Loading and building instances ------------------------------------------------------------


def _init(self, *args: Any, **kwargs: Any) -> None:
    _django_init(self, *args, **kwargs)
    # Hot path: every instance built anywhere.
    if not recording():
        return
    config = config_for(self.__class__)
    if config is not None and state_of(self) is None:
        _watch(self, None, None)
        if (
            config.pk_default
            and len(args) <= config.pk_index
            and config.pk_names.isdisjoint(kwargs)
        ):
            _generated_pk(self, config)


def _generated_pk(instance: models.Model, config: ModelConfig) -> None:
    # A primary key Django generated from its default (a UUID, say) is the system's, like an
    # auto-incremented one; every other value set at construction is the constructing actor's.
    state = state_of(instance)
    pk_index = config.pk_index
    pk = instance.__dict__.get(config.pk_attname)
    checkpoint = [None] * len(config.attnames)
    checkpoint[pk_index] = pk
    state.checkpoint = tuple(checkpoint)
    state.spans = {pk_index: [[None, "", None, pk]]}


def _from_db(cls, db, field_names, values, **kwargs):
    # Hot path: every row loaded. Same as Django's Model.from_db, except that it calls Django's
    # own Model.__init__ directly when the model does not override it (skipping `_init`).
    fetch_mode = kwargs.pop("fetch_mode", None)
    if kwargs or cls.__init__ is not _init:
        if fetch_mode is not None:
            kwargs["fetch_mode"] = fetch_mode
        new = _django_from_db(cls, db, field_names, values, **kwargs)
        loaded = None
    else:
        if len(values) != len(cls._meta.concrete_fields):
            values_iter = iter(values)
            values = [
                next(values_iter) if f.attname in field_names else DEFERRED
                for f in cls._meta.concrete_fields
            ]
        new = cls.__new__(cls)
        _django_init(new, *values)
        new._state.adding = False
        new._state.db = db
        if fetch_mode is not None:
            new._state.fetch_mode = fetch_mode
        loaded = values
    if recording():
        config = config_for(cls)
        if config is not None:
            loaded = tuple(loaded) if loaded is not None else config.values_of(new)
            _watch(new, loaded, loaded)
    return new


def _refresh_from_db(self, *args: Any, **kwargs: Any) -> None:
    result = _django_refresh_from_db(self, *args, **kwargs)
    state = state_of(self)
    if state is not None:
        config = config_for(self.__class__)
        current = config.values_of(self)
        fields = kwargs.get("fields", args[1] if len(args) > 1 else None)
        if fields is None or state.base is None:
            state.base = state.checkpoint = current
            state.spans = None
            _seen_now(state)
        else:
            refreshed = {config.index_of(name) for name in fields}
            state.base = _merge(state.base, current, refreshed)
            if state.checkpoint is not None:
                state.checkpoint = _merge(state.checkpoint, current, refreshed)
            if state.spans:
                for index in refreshed:
                    state.spans.pop(index, None)
    return result


def _merge(base: tuple, current: tuple, indexes) -> tuple:
    return tuple(current[i] if i in indexes else base[i] for i in range(len(base)))


# Attribution ------------------------------------------------------------------------------


def attribute(
    instance: models.Model,
    state: InstanceState,
    config: ModelConfig,
    actor: Any,
    description: str,
    current: tuple | None = None,
) -> tuple:
    """Attribute the changes since the checkpoint to `actor`; return the current values."""
    if current is None:
        current = config.values_of(instance)
    checkpoint = state.checkpoint
    if checkpoint is not None and current == checkpoint:
        return current
    spans = state.spans
    if spans is None:
        spans = state.spans = {}
    for index in config.recorded:
        new = current[index]
        old = None if checkpoint is None else checkpoint[index]
        if new is old or new is DEFERRED or old is DEFERRED:
            continue
        if checkpoint is not None and new == old:
            continue
        chain = spans.get(index)
        if chain is None:
            spans[index] = [[actor, description, old, new]]
            continue
        last = chain[-1]
        if last[0] is actor or (last[0] is not None and last[0] == actor):
            last[1] = description
            last[3] = new
        else:
            chain.append([actor, description, old, new])
    state.checkpoint = current
    return current


def refresh_bases(model: type[models.Model], rows: dict[Any, tuple]) -> None:
    """Tell the instances watched in this context that these rows changed in the database.

    Bulk writes change rows behind their instances' backs; a later save of such an instance
    must compare with what the database holds now.
    """
    scope = enabled_scope()
    if scope is None or not rows:
        return
    concrete = model._meta.concrete_model
    for ref in scope.tracked:
        instance = ref()
        if instance is None or instance._meta.concrete_model is not concrete:
            continue
        row = rows.get(instance.pk)
        state = state_of(instance) if row is not None else None
        if state is not None and state.base is not None:
            state.base = row
            _seen_now(state)


def _on_boundary(scope) -> None:
    actor = Context.get_actor()
    description = Context.get_attribute_delta_description()
    alive = []
    for ref in scope.tracked:
        instance = ref()
        if instance is None:
            continue
        alive.append(ref)
        state = state_of(instance)
        config = config_for(instance.__class__)
        if state is not None and config is not None:
            attribute(instance, state, config, actor, description)
    scope.tracked = alive


# Saving -----------------------------------------------------------------------------------


def _save_base(
    self,
    raw=False,
    force_insert=False,
    force_update=False,
    using=None,
    update_fields=None,
):
    config = config_for(self.__class__) if recording() else None
    if config is None:
        result = _django_save_base(self, raw, force_insert, force_update, using, update_fields)
        state = state_of(self)
        if state is not None:
            config = config_for(self.__class__)
            if config is not None:
                note_write(config, self.pk)
            _after_save(self, state, config, update_fields)
            if config is not None:
                state.pending = transaction_marker(self._state.db or "default")
        return result
    using = using or router.db_for_write(self.__class__, instance=self)
    with transaction.atomic(using=using, savepoint=False):
        return _record_save(self, config, using, raw, force_insert, force_update, update_fields)


def _certain_insert(instance, config, raw, force_insert, force_update, pk) -> bool:
    if force_insert or pk is None:
        return True
    pk_field = config.model._meta.pk
    has_default = pk_field.has_default() or pk_field.has_db_default()
    return instance._state.adding and has_default and not raw and not force_update


def select_row(config: ModelConfig, using: str, pk: Any) -> tuple | None:
    """Return the row's current values from the database, or None if it does not exist."""
    rows = list(
        config.model._base_manager.using(using).filter(pk=pk).values_list(*config.attnames)[:1]
    )
    return tuple(rows[0]) if rows else None


def _record_save(self, config, using, raw, force_insert, force_update, update_fields):
    actor = Context.get_actor()
    description = Context.get_attribute_delta_description()
    current = config.values_of(self)
    pk = current[config.pk_index]
    state = state_of(self)
    if _certain_insert(self, config, raw, force_insert, force_update, pk):
        base = None
    else:
        base = None
        if state is not None and not self._state.adding:
            base = known_base(state, config, pk, using)
        if base is None:
            base = select_row(config, using, pk)
    if state is None:
        # Assignments made before revy saw the instance belong to whoever saves it.
        state = InstanceState(id(self), base, base, current_scope())
        self.__dict__[STATE_KEY] = state
    attribute(self, state, config, actor, description, current)

    result = _django_save_base(self, raw, force_insert, force_update, using, update_fields)

    after = config.values_of(self)
    written = after
    expressions = [
        index for index in config.recorded if hasattr(current[index], "resolve_expression")
    ]
    if expressions:
        # F() expressions and database defaults: the values are only known to the database.
        written = _resolve_expressions(state, config, using, current, after, expressions)
    if after != state.checkpoint:  # values Django set during the save are the system's
        attribute(self, state, config, None, "", after)
    spans = state.spans or {}
    after = written
    if base is None:
        change = creation_change(config, self, after, spans, actor, description)
    else:
        saved = config.indexes_of(update_fields)
        if not any(
            current[index] != base[index] and current[index] is not DEFERRED for index in saved
        ):
            _after_save(self, state, config, update_fields)
            state.pending = transaction_marker(using, own_block=True)
            return result
        change = update_change(config, self, base, after, saved, spans, actor, description)
    if change is not None:
        recorder.write(using, [change])
        note_write(config, after[config.pk_index])
    _after_save(self, state, config, update_fields, base, written)
    state.pending = transaction_marker(using, own_block=True)
    return result


def _resolve_expressions(state, config, using, current, after, indexes) -> tuple:
    """Return `after` with the values the database computed for the expressions assigned at
    `indexes`, and put those values in the spans in place of the expressions.

    Django 6 reads such values back during the save; before it, the instance keeps the
    expression and the row is read once here.
    """
    resolved = list(after)
    checkpoint = list(state.checkpoint)
    spans = state.spans or {}
    row = None
    for index in indexes:
        expression, value = current[index], after[index]
        if hasattr(value, "resolve_expression"):
            if row is None:
                row = select_row(config, using, after[config.pk_index])
                if row is None:
                    return after
            value = row[index]
        resolved[index] = value
        # Whatever the instance holds now is not a new assignment by anyone.
        checkpoint[index] = after[index]
        for span in spans.get(index, ()):
            if span[2] is expression:
                span[2] = value
            if span[3] is expression:
                span[3] = value
    state.checkpoint = tuple(checkpoint)
    return tuple(resolved)


def creation_change(config, instance, after, spans, actor, description) -> Change:
    """Build the Create delta of a new row from its spans (fields never assigned: `actor`)."""
    attributes = []
    for index in config.recorded:
        chain = spans.get(index)
        if not chain:
            attributes.append((index, ACTION_SET, None, after[index], actor, description))
            continue
        old = None
        for span_actor, span_description, _, new in chain:
            attributes.append((index, ACTION_SET, old, new, span_actor, span_description))
            old = new
    return Change(
        config,
        after[config.pk_index],
        "Create",
        actor=actor,
        description=Context.get_object_delta_description(),
        data=state_json(config, after),
        attributes=attributes,
        instance=instance,
    )


def update_change(config, instance, base, after, saved, spans, actor, description) -> Change | None:
    """Build the Update delta of the fields in `saved` that differ from `base`, if any."""
    attributes = []
    for index in config.recorded:
        if index not in saved:
            continue
        start, final = base[index], after[index]
        if final is DEFERRED or final == start:
            continue
        chain = spans.get(index) or [[actor, description, start, final]]
        old = start
        for span_actor, span_description, _, new in chain:
            if new != old:
                attributes.append(
                    (index, attribute_action(new), old, new, span_actor, span_description)
                )
            old = new
    if not attributes:
        return None
    state = tuple(
        after[index] if index in saved and after[index] is not DEFERRED else base[index]
        for index in range(len(base))
    )
    return Change(
        config,
        after[config.pk_index],
        "Update",
        actor=actor,
        description=Context.get_object_delta_description(),
        data=state_json(config, state),
        attributes=attributes,
        instance=instance,
    )


def _after_save(instance, state, config, update_fields, base=None, written=None) -> None:
    """Make the saved values (`written`: as stored, when they differ from the instance's)
    the instance's new base and forget their spans."""
    if config is None:
        return
    current = config.values_of(instance)
    after = current if written is None else written
    base = base if base is not None else state.base
    if update_fields is None or base is None:
        state.base = after
        state.spans = None
    else:
        saved = config.indexes_of(update_fields)
        state.base = _merge(base, after, saved)
        if state.spans:
            for index in saved:
                state.spans.pop(index, None)
    state.checkpoint = current
    _seen_now(state)


# Deleting ---------------------------------------------------------------------------------


def _collector_delete(self):
    if not recording():
        return _django_collector_delete(self)
    with transaction.atomic(using=self.using, savepoint=False):
        changes = _deletion_changes(self)
        recorder.write(self.using, changes)
        # Django applies SET_NULL & co. with QuerySet.update(): already recorded above.
        handled = frozenset(
            (field.model._meta.concrete_model, field.name) for field, _ in self.field_updates
        )
        token = deletion_updates.set(handled)
        try:
            result = _django_collector_delete(self)
        finally:
            deletion_updates.reset(token)
    for change in changes:
        note_write(change.config, change.pk)
    for instances in self.data.values():
        for instance in instances:
            state = state_of(instance)
            if state is not None:
                state.base, state.spans = None, None
    return result


def _deletion_changes(collector: Collector) -> list[Change]:
    using = collector.using
    origin = collector.origin
    if isinstance(origin, models.Model):
        origin_model, origin_pk = origin._meta.concrete_model, origin.pk
    elif origin is not None and hasattr(origin, "model"):
        origin_model, origin_pk = origin.model._meta.concrete_model, None
    else:
        origin_model = origin_pk = None
    # The parent rows of a multi-table child are the same object as the child.
    origin_models = (
        {origin_model, *origin_model._meta.get_parent_list()} if origin_model is not None else ()
    )

    actor = Context.get_actor()
    object_description = Context.get_object_delta_description()
    deletion_description = Context.get_deletion_description()

    def deleted(config, row, instance=None) -> Change:
        pk = row[config.pk_index]
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
            data=state_json(config, row),
            instance=instance,
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
                key = (config.model, row[config.pk_index])
                entry = updated.setdefault(key, [config, row, list(row)])
                entry[2][index] = value
    for config, row, after in updated.values():
        attributes = [
            (index, attribute_action(new), old, new, None, deletion_description)
            for index, (old, new) in enumerate(zip(row, after, strict=True))
            if old != new and index in config.recorded
        ]
        if attributes:
            changes.append(
                Change(
                    config,
                    row[config.pk_index],
                    "Update",
                    actor=None,
                    description=deletion_description,
                    data=state_json(config, after),
                    attributes=attributes,
                )
            )
    for model, instances in collector.data.items():
        config = config_for(model)
        if config is not None:
            changes.extend(
                deleted(config, row, obj) for row, obj in _rows(config, instances, using)
            )
    # Django splits fast deletes into batches; one SELECT per model reads them all.
    fast_deletes: dict[type, list[models.QuerySet]] = {}
    for queryset in collector.fast_deletes:
        fast_deletes.setdefault(queryset.model._meta.concrete_model, []).append(queryset)
    for model, querysets in fast_deletes.items():
        config = config_for(model)
        if config is not None:
            combined = functools.reduce(operator.or_, querysets)
            changes.extend(deleted(config, row) for row, _ in _rows(config, combined, using))
    return changes


def _rows(config: ModelConfig, objs, using: str) -> list[tuple[tuple, Any]]:
    """Return (full row, instance or None) for a queryset or a collection of instances."""
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
            missing[instance.pk] = instance
    if missing:
        rows = config.model._base_manager.using(using).filter(pk__in=list(missing))
        for row in rows.values_list(*config.attnames):
            known.append((tuple(row), missing[row[config.pk_index]]))
    return known


# Installation -----------------------------------------------------------------------------

_installed = False


def install() -> None:
    """Wrap Django's model and deletion methods, and the bulk paths (idempotent)."""
    from revy.contrib.django import bulk

    global _installed
    if _installed:
        return
    _init.__wrapped__ = _django_init
    models.Model.__init__ = _init
    models.Model.from_db = classmethod(_from_db)
    models.Model.save_base = _save_base
    models.Model.refresh_from_db = _refresh_from_db
    Collector.delete = _collector_delete
    add_boundary_listener(_on_boundary)
    bulk.install()
    _installed = True


def uninstall() -> None:
    """Restore Django's own methods (benchmarks use it to measure Django alone)."""
    from revy.contrib.django import bulk

    global _installed
    if not _installed:
        return
    models.Model.__init__ = _django_init
    models.Model.from_db = classmethod(_django_from_db)
    models.Model.save_base = _django_save_base
    models.Model.refresh_from_db = _django_refresh_from_db
    Collector.delete = _django_collector_delete
    bulk.uninstall()
    _installed = False
