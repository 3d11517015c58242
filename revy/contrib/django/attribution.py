"""What revy knows about each instance, and who changed what.

How attribution works without intercepting every assignment: an instance loaded or built
inside an enabled context gets an `InstanceState` (its database values and a checkpoint of
its field values) and is watched by the context's scope. When the actor or the attribute
description is about to change, every watched instance is compared with its checkpoint and
the differences are attributed to the outgoing actor ("spans", consecutive changes by one
actor collapsed). A save then attributes what is left to the actor of the moment.

A state's `base` (the row as last read or written) spares a SELECT at save time; it is
trusted only while nothing else can have changed the row (see `known_base`).

Cost: an actor change costs one tuple comparison per watched instance.
"""

from __future__ import annotations

import weakref
from typing import Any, cast

from django.db import models

from revy.context import Context, Scope, current_scope, enabled_scope
from revy.contrib.django import settings as revy_settings
from revy.contrib.django._meta import concrete_model
from revy.contrib.django.registry import ModelConfig, config_for
from revy.contrib.django.revisions import marker_alive, transaction_marker

__all__ = [
    "InstanceState",
    "attribute",
    "known_base",
    "merge",
    "note_write",
    "on_boundary",
    "recording",
    "refresh_bases",
    "seen_now",
    "state_of",
    "watch",
    "watch_loaded",
    "watch_new",
    "watched_pks",
]


DEFERRED = models.DEFERRED
STATE_KEY = "_revy_state"

WRITES_KEY = "revy.writes"
TRACKED_LIMIT_KEY = "revy.tracked_limit"


class InstanceState(weakref.ref):
    """What revy knows about one instance: a weak reference to it, with what it knows.

    `base`: the row's values in the database as last seen (None when unknown or new), in the
    context `scope` when its write counter was at `seen`; `pending` marks a base written by a
    save inside a transaction that may still roll back (see `known_base`).
    `checkpoint`: field values at the last attribution (None: nothing attributed since the
    instance was built). `spans`: per field index, the pending `[actor, description, old,
    new]` changes not yet saved, consecutive changes by one actor collapsed.

    The state is the weak reference the scope watches the instance by: one object per row
    loaded in a context, not two (loading rows is the hot path: every object is also work
    for the garbage collector).
    """

    # `saving`: the save in progress (tracking), set only during a save (read with getattr).
    __slots__ = ("base", "checkpoint", "pending", "saving", "scope", "seen", "spans")

    base: tuple | None
    checkpoint: tuple | None
    spans: dict[int, list[list]] | None
    scope: Scope | None
    seen: int
    pending: tuple | None
    saving: Any  # tracking's save in progress, only while the instance is being saved

    def __new__(
        cls,
        instance: models.Model,
        base: tuple | None,
        checkpoint: tuple | None,
        scope: Scope | None = None,
    ) -> InstanceState:
        self = super().__new__(cls, instance)
        self.base = base
        self.checkpoint = checkpoint
        self.spans = None
        self.scope = scope
        self.seen = 0 if scope is None else scope.serial
        self.pending = None
        return self

    # `__new__` did it all (weakref.ref's own `__init__` takes other arguments).
    __init__ = object.__init__

    def __reduce__(self):
        # A pickled or deep-copied instance (`cache.set(obj)`, `copy.deepcopy(obj)`) starts
        # afresh: what revy knew of the original (its context, its base) belongs to the
        # original. Its next save compares with the database, like any instance revy never saw.
        return (_forgotten, ())


def _forgotten() -> None:
    return None


def state_of(instance: models.Model) -> InstanceState | None:
    """Return the instance's state; a copy of an instance does not inherit it."""
    state = instance.__dict__.get(STATE_KEY)
    if state is not None and state() is instance:
        return state
    return None


def recording() -> bool:
    """Return True when changes made here are recorded."""
    if enabled_scope() is not None:
        return True
    return revy_settings.track_outside_context() and not Context.is_active()


def watch_new(instance: models.Model) -> InstanceState:
    """Start tracking an instance revy has not seen being built; return its state."""
    watch(instance, None, None)
    return cast(InstanceState, state_of(instance))  # watched just now


def watch(instance: models.Model, base: tuple | None, checkpoint: tuple | None) -> None:
    state = state_of(instance)
    if state is not None:
        state.base, state.checkpoint, state.spans = base, checkpoint, None
        seen_now(state)
        return
    watch_loaded(instance, base, checkpoint, enabled_scope())


def watch_loaded(
    instance: models.Model, base: tuple | None, checkpoint: tuple | None, scope: Scope | None
) -> None:
    """Start watching an instance that has no state yet (hot path: every row loaded)."""
    state = instance.__dict__[STATE_KEY] = InstanceState(instance, base, checkpoint, scope)
    if scope is not None:
        tracked = scope.tracked
        tracked.append(state)
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


def seen_now(state: InstanceState) -> None:
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
    if base is None or DEFERRED in base or config.pk_of(base) != pk:
        return None
    scope = current_scope()
    if state.scope is not scope:
        return None
    if scope is not None:
        writes = scope.extras.get(WRITES_KEY)
        if writes is not None and writes.get((config.model, config.key(pk)), 0) > state.seen:
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
    key = config.key(pk)
    writes[(config.model, key)] = scope.serial
    for relative in config.relatives:  # the same row seen through inheritance
        writes[(relative, key)] = scope.serial


def merge(base: tuple, current: tuple, indexes) -> tuple:
    return tuple(current[i] if i in indexes else base[i] for i in range(len(base)))


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
    if checkpoint is not None and config.same_row(current, checkpoint):
        return current
    # What is kept (spans, checkpoint) must not change when the instance's values are
    # changed in place afterwards.
    current = config.frozen(current)
    spans = state.spans
    if spans is None:
        spans = state.spans = {}
    for index in config.recorded:
        new = current[index]
        old = None if checkpoint is None else checkpoint[index]
        if new is old or new is DEFERRED or old is DEFERRED:
            continue
        if checkpoint is not None and config.same(index, new, old):
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


def watched_pks(model: type[models.Model]) -> list[Any]:
    """The primary keys of the instances of `model` this context watches with a known base:
    those whose base a bulk write must refresh (`refresh_bases`)."""
    scope = enabled_scope()
    if scope is None:
        return []
    concrete = model._meta.concrete_model
    found = []
    for ref in scope.tracked:
        instance = ref()
        if instance is None or instance._meta.concrete_model is not concrete:
            continue
        state = state_of(instance)
        if state is not None and state.base is not None and instance.pk is not None:
            found.append(instance.pk)
    return found


def refresh_bases(model: type[models.Model], rows: dict[Any, tuple], using: str) -> None:
    """Tell the instances watched in this context that these rows changed in the database.

    Bulk writes change rows behind their instances' backs; a later save of such an instance
    must compare with what the database holds now. Like a save's, the new base is trusted
    only while the transaction (and savepoints) that wrote it are alive.
    """
    scope = enabled_scope()
    if scope is None or not rows:
        return
    marker = transaction_marker(using)
    concrete = concrete_model(model)
    # Bulk writes of tracked models call this; a watched instance's model is tracked too.
    relatives = cast(ModelConfig, config_for(concrete)).relatives
    for ref in scope.tracked:
        instance = ref()
        if instance is None:
            continue
        other = concrete_model(type(instance))
        if other is not concrete and other not in relatives:
            continue
        row = rows.get(cast(ModelConfig, config_for(other)).key(instance.pk))
        state = state_of(instance) if row is not None else None
        if state is not None and state.base is not None:
            if other is concrete:
                state.base = row
                seen_now(state)
                state.pending = marker
            else:
                state.base = None  # the same row through inheritance: read it again


def on_boundary(scope) -> None:
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
