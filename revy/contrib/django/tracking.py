"""Hooks on model instances: what was loaded or built, and what a save changed.

Instances loaded or built inside an enabled context are watched (see `attribution`). A save
attributes what changed since the last checkpoint to the actor of the moment, adds what Django
itself set during the save (auto keys, `auto_now`) as the system's, and writes one object
delta with its attribute deltas, in the save's transaction. Deletions are recorded by
`deletion.record_delete`, the bulk paths by `bulk`.

Cost outside a context: one context-variable read per row loaded, instance built or save.
Loading inside a context adds one small object and one weak reference per row; an actor
change costs one tuple comparison per watched instance.

Installed once by the app's `ready()`: `Model.__init__`, `Model.from_db`,
`Model.save_base`, `Model.refresh_from_db` and `Collector.delete` are wrapped.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from django.db import DatabaseError, connections, models, router
from django.db.models.deletion import Collector

from revy.context import Context, add_boundary_listener, current_scope, enabled_scope
from revy.contrib.django import deletion, onestatement, recorder
from revy.contrib.django.attribution import (
    STATE_KEY,
    InstanceState,
    attribute,
    known_base,
    merge,
    note_write,
    on_boundary,
    recording,
    seen_now,
    state_of,
    watch,
    watch_loaded,
)
from revy.contrib.django.inheritance import with_relatives
from revy.contrib.django.recorder import (
    ACTION_SET,
    AUTOMATIC,
    Change,
    attribute_action,
    state_json,
)
from revy.contrib.django.registry import ModelConfig, config_for
from revy.contrib.django.revisions import transaction_marker
from revy.contrib.django.transactions import guard, run_atomically

__all__ = [
    "creation_change",
    "install",
    "select_row",
    "uninstall",
    "update_change",
]


DEFERRED = models.DEFERRED

_django_init = models.Model.__init__
_django_from_db = models.Model.from_db.__func__  # type: ignore[attr-defined]  # the classmethod's function
_django_save_base = models.Model.save_base
_django_refresh_from_db = models.Model.refresh_from_db


# Loading and building instances ------------------------------------------------------------


def _init(self, *args: Any, **kwargs: Any) -> None:
    _django_init(self, *args, **kwargs)
    # Hot path: every instance built anywhere.
    if not recording():
        return
    config = config_for(self.__class__)
    if config is not None and state_of(self) is None:
        watch(self, None, None)
        if (
            config.pk_default
            and len(args) <= config.pk_index
            and config.pk_names.isdisjoint(kwargs)
        ):
            _generated_pk(self, config)


def _generated_pk(instance: models.Model, config: ModelConfig) -> None:
    # A primary key Django generated from its default (a UUID, say) is the system's, like an
    # auto-incremented one; every other value set at construction is the constructing actor's.
    state = cast(InstanceState, state_of(instance))  # watched by _init
    pk_index = config.pk_index
    pk = instance.__dict__.get(config.pk_attname)
    checkpoint = [None] * len(config.attnames)
    checkpoint[pk_index] = pk
    state.checkpoint = tuple(checkpoint)
    state.spans = {pk_index: [[AUTOMATIC, "", None, pk]]}


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
    scope = enabled_scope()
    if scope is not None or recording():
        config = config_for(cls)
        if config is not None:
            if loaded is None:  # built by the model's own __init__, which may have watched it
                loaded = config.frozen(config.values_of(new))
                watch(new, loaded, loaded)
            else:
                loaded = config.frozen(tuple(loaded))
                watch_loaded(new, loaded, loaded, scope)
    return new


def _refresh_from_db(self, *args: Any, **kwargs: Any) -> None:
    result = _django_refresh_from_db(self, *args, **kwargs)
    state = state_of(self)
    if state is not None:
        config = cast(ModelConfig, config_for(self.__class__))  # watched: tracked
        current = config.frozen(config.values_of(self))
        fields = kwargs.get("fields", args[1] if len(args) > 1 else None)
        if fields is None or state.base is None:
            state.base = state.checkpoint = current
            state.spans = None
            seen_now(state)
        else:
            # Reverse relations, prefetched names and generic keys refresh no column.
            refreshed = {config.index_of(name) for name in fields if name in config.indexes}
            state.base = merge(state.base, current, refreshed)
            if state.checkpoint is not None:
                state.checkpoint = merge(state.checkpoint, current, refreshed)
            if state.spans:
                for index in refreshed:
                    state.spans.pop(index, None)
    return result


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
    if onestatement.enabled(using) and onestatement.applies(config, self, raw, update_fields):
        # The history goes in Django's own statement, atomic by itself: no block of revy's.
        return _record_save(
            self, config, using, raw, force_insert, force_update, update_fields, False, True
        )
    # In autocommit mode the save and its deltas get a transaction of their own, which
    # commits as soon as the save returns.
    own_block = not connections[using].in_atomic_block
    return run_atomically(
        using,
        lambda: _record_save(
            self, config, using, raw, force_insert, force_update, update_fields, own_block
        ),
    )


def _key_on_save(config: ModelConfig, instance: models.Model, pk: Any) -> Any:
    """The key Django saves the instance under: a multi-table child's nearest parent key that
    is set, else its own (`ModelConfig.parent_key_attnames`); without one, the root key field's
    constant default (`ModelConfig.pk_from_default`); None for a new key, an insert."""
    for attname in config.parent_key_attnames:
        parent_key = getattr(instance, attname)
        if parent_key is not None:
            pk = parent_key
    if pk is None and config.pk_from_default:
        return config.root_pk.get_pk_value_on_save(instance)
    return pk


def _certain_insert(instance, config, raw, force_insert, force_update, pk) -> bool:
    if force_insert or pk is None:
        return True
    pk_field = config.model._meta.pk
    has_default = pk_field.has_default() or pk_field.has_db_default()
    return instance._state.adding and has_default and not raw and not force_update


def select_row(config: ModelConfig, using: str, pk: Any) -> tuple | None:
    """Return the row's current values from the database, or None if it does not exist."""
    return next(iter(config.read_rows(using, [pk]).values()), None)


def _record_save(
    self, config, using, raw, force_insert, force_update, update_fields, own_block, one=False
):
    actor = Context.get_actor()
    description = Context.get_attribute_delta_description()
    state = state_of(self)
    if state is not None:
        _record_earlier_save(self, state)
    current = config.values_of(self)
    pk = _key_on_save(config, self, config.pk_of(current))
    adding = self._state.adding
    # On PostgreSQL the statement of a full save can read the old row itself (`Diff`), unless
    # an assignment of the instance's has an actor of its own.
    unread = False
    if _certain_insert(self, config, raw, force_insert, force_update, pk):
        base = None
    else:
        base = None
        if state is not None and not adding:
            base = known_base(state, config, pk, using)
        if base is None:
            unread = (
                one
                and update_fields is None
                # Deferred fields are loaded during the save (saved to another database).
                and DEFERRED not in current
                and (state is None or not state.spans)
                and onestatement.state_in_sql(config, using)
            )
            if not unread:
                base = select_row(config, using, pk)
    if state is None:
        # Assignments made before revy saw the instance belong to whoever saves it.
        state = InstanceState(self, base, base, current_scope())
        self.__dict__[STATE_KEY] = state
    attribute(self, state, config, actor, description, current)
    saving = _Saving(config, using, update_fields, actor, description, current, base, own_block)
    watch: onestatement.RowWrite
    statement = None
    if one:

        def diff() -> onestatement.Diff:
            saving.note_write(self)
            after = config.normalize(saving.at_write)
            return onestatement.Diff(config, self, config.normalize(current), after)

        def build(adding: bool) -> Change | None:
            saving.note_write(self)
            if unread:  # Django's INSERT after an UPDATE that found no row
                return None
            return _planned_change(self, state, saving, adding)

        watch = statement = onestatement.Statement(
            config, using, build, diff=diff if unread else None
        )
    else:
        watch = onestatement.RowWrite(config, using, lambda: saving.note_write(self))
    # What its post_save receivers do comes after the save in history: the save is recorded
    # before their first statement, or when they save the instance again. (Not an attribute
    # of `saving`: the statement's closures refer to it, and a cycle would keep the instance
    # alive until the garbage collector runs.)
    state.saving = (saving, statement)
    watch.then = lambda: _record_earlier_save(self, state)
    try:
        with watch:
            result = _django_save_base(self, raw, force_insert, force_update, using, update_fields)
    except Exception:
        # Django raised before writing (pre_save, validation, a failed statement) or after
        # (post_save): in the second case the row changed, and its history must say so.
        if not saving.recorded and (
            (statement is not None and statement.change is not None)
            or _written(self, saving, adding)
        ):
            _record_saved(self, state, saving, statement)
        raise
    finally:
        state.saving = None
    if not saving.recorded:
        _record_saved(self, state, saving, statement)
    return result


def _record_earlier_save(instance: models.Model, state: InstanceState) -> None:
    """Record the save of `instance` in progress, if its row is written: the instance is being
    saved again by one of that save's post_save receivers (`instance.save()` after creating,
    say), and history must keep the order the row was written in."""
    in_progress = getattr(state, "saving", None)
    if in_progress is None:
        return
    saving, statement = in_progress
    if saving.at_write is not None and not saving.recorded:
        _record_saved(instance, state, saving, statement)


def _planned_change(self, state, saving: _Saving, adding: bool) -> Change | None:
    """The change `_record_saved` will find, built while Django sends the row's statement
    (`onestatement`), from copies of the instance's spans; None when it cannot be known yet
    (Django inserts a row revy took for existing, or updates one it did not find)."""
    config, base = saving.config, saving.base
    if adding != (base is None):
        return None
    after = saving.at_write if saving.at_write is not None else config.values_of(self)
    if adding and config.pk_of(after) is None:
        pending = onestatement.PENDING_KEY
        after = (*after[: config.pk_index], pending, *after[config.pk_index + 1 :])
    spans = {index: [list(span) for span in chain] for index, chain in (state.spans or {}).items()}
    # attribute() reads and writes only a state's checkpoint and spans: a stand-in with
    # copies of them leaves the instance's own state for _record_saved.
    shadow = cast(InstanceState, SimpleNamespace(checkpoint=state.checkpoint, spans=spans))
    if after != shadow.checkpoint:
        attribute(self, shadow, config, AUTOMATIC, "", after)
    written = config.normalize(after)
    spans = shadow.spans or {}
    if adding:
        return creation_change(config, self, written, spans, saving.actor, saving.description)
    saved = config.indexes_of(saving.update_fields)
    return update_change(
        config, self, base, written, saved, spans, saving.actor, saving.description
    )


class _Saving:
    """What a save knew before Django wrote the row."""

    __slots__ = (
        "actor",
        "at_write",
        "base",
        "config",
        "current",
        "description",
        "own_block",
        "recorded",
        "update_fields",
        "using",
    )

    def __init__(self, config, using, update_fields, actor, description, current, base, own):
        self.config, self.using, self.update_fields = config, using, update_fields
        self.actor, self.description = actor, description
        self.current, self.base, self.own_block = current, base, own
        # The instance's values when Django sent the row's statement (`onestatement.RowWrite`).
        self.at_write: tuple | None = None
        self.recorded = False

    def note_write(self, instance: models.Model) -> None:
        self.at_write = self.config.values_of(instance)

    def as_written(self, after: tuple) -> tuple:
        """The row as the save wrote it, from the instance's values `after` the save: those it
        had when Django sent the row's statement, whatever post_save receivers assigned since,
        except the values Django sets after it (an inserted key, values read back in place of
        expressions). `after` itself when no statement of the row was seen."""
        at_write = self.at_write
        if at_write is None:
            return after
        pk_index = self.config.pk_index
        return tuple(
            now
            if then is DEFERRED
            or hasattr(then, "resolve_expression")
            or (then is None and index == pk_index)
            else then
            for index, (then, now) in enumerate(zip(at_write, after, strict=True))
        )


def _written(instance, saving: _Saving, adding: bool) -> bool:
    """After an exception from Django's save, tell whether the row was written."""
    config, using = saving.config, saving.using
    connection = connections[using]
    if connection.needs_rollback:
        return False  # a statement failed: the caller's transaction cannot keep the row
    if adding and not instance._state.adding:
        return True  # Django marks the instance saved right after writing it
    base = saving.base
    if base is None:
        return False
    try:
        row = select_row(config, using, config.pk_of(saving.current))
    except DatabaseError:
        return False
    if row is None:
        return False
    current = config.normalize(saving.current)
    changed = [
        index
        for index in config.indexes_of(saving.update_fields)
        if current[index] is not DEFERRED
        and not hasattr(current[index], "resolve_expression")
        and not config.same(index, current[index], base[index])
    ]
    return bool(changed) and all(
        config.same(index, row[index], current[index]) for index in changed
    )


def _record_saved(self, state, saving: _Saving, statement=None) -> None:
    """Record what the save wrote, in the save's transaction (unless the save's own statement
    did: `statement`, an `onestatement.Statement`)."""
    saving.recorded = True
    config, using, update_fields = saving.config, saving.using, saving.update_fields
    if statement is not None and statement.diffed and statement.found:
        # The save's statement read the old row and recorded what changed.
        written = config.normalize(saving.as_written(config.values_of(self)))
        _statement_wrote(statement, config, using, written)
        _after_save(self, state, config, update_fields, None, written)
        state.pending = transaction_marker(using, own_block=saving.own_block)
        return
    actor, description, current, base = (
        saving.actor,
        saving.description,
        saving.current,
        saving.base,
    )
    after = saving.as_written(config.values_of(self))
    written = config.normalize(after)
    written_indexes = None if update_fields is None else set(config.indexes_of(update_fields))
    expressions = [
        index
        for index in config.recorded
        if hasattr(current[index], "resolve_expression")
        # An expression `update_fields` leaves out was not written: it stays the instance's
        # pending assignment, resolved by the save that writes it.
        and (written_indexes is None or index in written_indexes)
    ]
    if expressions:
        # F() expressions and database defaults: the values are only known to the database.
        written = _resolve_expressions(state, config, using, current, written, expressions)
    if not config.same_row(
        after, state.checkpoint
    ):  # values Django set during the save are the system's
        attribute(self, state, config, AUTOMATIC, "", after)
    spans = state.spans or {}
    after = written
    change: Change | None
    if statement is not None and statement.change is not None:
        # The save's own statement wrote the change planned as it was sent
        # (`_planned_change`): the hooks get that one, not one rebuilt from the instance as
        # post_save receivers left it.
        _statement_wrote(statement, config, using, written)
        _after_save(self, state, config, update_fields, base, written)
        state.pending = transaction_marker(using, own_block=saving.own_block)
        return
    if base is None:
        change = creation_change(config, self, after, spans, actor, description)
    else:
        saved = config.indexes_of(update_fields)
        # What the save wrote, values Django set during it (auto_now) included: a save that
        # only moves an auto_now field changed the row, and history follows the row.
        if not any(
            after[index] is not DEFERRED and not config.same(index, after[index], base[index])
            for index in saved
        ):
            # `written`, not the instance: an expression that changed nothing is no value.
            _after_save(self, state, config, update_fields, base, written)
            state.pending = transaction_marker(using, own_block=saving.own_block)
            return
        change = update_change(config, self, base, after, saved, spans, actor, description)
    if change is not None:
        with guard(using):
            recorder.write(using, with_relatives(using, [change]))
        note_write(config, config.pk_of(after))
    _after_save(self, state, config, update_fields, base, written)
    state.pending = transaction_marker(using, own_block=saving.own_block)


def _statement_wrote(statement, config: ModelConfig, using: str, written: tuple) -> None:
    """Run the hooks of the change the save's own statement wrote, if any, with the key the
    row's INSERT returned in place of `PENDING_KEY`, and note the write."""
    change = statement.change
    if change is None:
        return
    if change.pk == onestatement.PENDING_KEY:
        change.pk = config.pk_of(written)
        if change.values is not None:
            index = config.pk_index
            change.values = (*change.values[:index], change.pk, *change.values[index + 1 :])
    recorder.written(using, [change], [statement.delta_id])
    note_write(config, change.pk)


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
                row = select_row(config, using, config.pk_of(after))
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
    """Build the Create delta of a new row from its spans (fields never assigned: `actor`).

    `after` is the row as stored (`ModelConfig.normalize`); the spans' values are brought to
    that form too, and consecutive assignments that store the same value are one.
    """
    attributes = []
    for index in config.recorded:
        chain = spans.get(index)
        if not chain:
            attributes.append((index, ACTION_SET, None, after[index], actor, description))
            continue
        old = None
        for position, (span_actor, span_description, _, new) in enumerate(chain):
            # An expression (Now(), Lower(...)) stands for the value the database stored.
            new = after[index] if hasattr(new, "resolve_expression") else config.normal(index, new)
            if position and config.same(index, new, old):
                continue
            attributes.append((index, ACTION_SET, old, new, span_actor, span_description))
            old = new
    return Change(
        config,
        config.pk_of(after),
        "Create",
        actor=actor,
        description=Context.get_object_delta_description(),
        data=state_json(config, after),
        attributes=attributes,
        instance=instance,
        values=after,
    )


def update_change(config, instance, base, after, saved, spans, actor, description) -> Change | None:
    """Build the Update delta of the fields in `saved` that differ from `base`, if any.

    `base` and `after` are rows as stored (`ModelConfig.normalize`); so are the values of
    the attribute deltas built from the spans.
    """
    attributes = []
    for index in config.recorded:
        if index not in saved:
            continue
        start, final = base[index], after[index]
        if final is DEFERRED or config.same(index, final, start):
            continue
        chain = spans.get(index) or [[actor, description, start, final]]
        old = start
        for span_actor, span_description, _, new in chain:
            # An expression (F(), Lower(...)) stands for the value the database stored.
            new = final if hasattr(new, "resolve_expression") else config.normal(index, new)
            if not config.same(index, new, old):
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
        config.pk_of(after),
        "Update",
        actor=actor,
        description=Context.get_object_delta_description(),
        data=state_json(config, state),
        attributes=attributes,
        instance=instance,
        values=state,
    )


def _after_save(instance, state, config, update_fields, base=None, written=None) -> None:
    """Make the saved values (`written`: as stored, when they differ from the instance's)
    the instance's new base and forget their spans."""
    if config is None:
        return
    current = config.frozen(config.values_of(instance))
    after = current if written is None else config.frozen(written)
    base = base if base is not None else state.base
    if update_fields is None or base is None:
        state.base = after
        state.spans = None
    else:
        saved = config.indexes_of(update_fields)
        state.base = merge(base, after, saved)
        if state.spans:
            for index in saved:
                state.spans.pop(index, None)
    state.checkpoint = current
    seen_now(state)


# Installation -----------------------------------------------------------------------------

_installed = False


def install() -> None:
    """Wrap Django's model and deletion methods (idempotent; `hooks.install` adds the bulk
    paths)."""
    global _installed
    if _installed:
        return
    _init.__wrapped__ = _django_init  # type: ignore[attr-defined]  # for inspect.signature()
    models.Model.__init__ = _init
    models.Model.from_db = classmethod(_from_db)  # type: ignore[assignment]  # a classmethod for a classmethod
    models.Model.save_base = _save_base
    models.Model.refresh_from_db = _refresh_from_db
    Collector.delete = deletion.record_delete
    add_boundary_listener(on_boundary)
    _installed = True


def uninstall() -> None:
    """Restore Django's own model and deletion methods."""
    global _installed
    if not _installed:
        return
    models.Model.__init__ = _django_init
    models.Model.from_db = classmethod(_django_from_db)  # type: ignore[assignment]  # see install
    models.Model.save_base = _django_save_base
    models.Model.refresh_from_db = _django_refresh_from_db
    Collector.delete = deletion._django_collector_delete
    _installed = False
