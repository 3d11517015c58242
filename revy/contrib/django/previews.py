"""What a restore would do, before it does it: the previews the admin shows before a confirm.

- `revert_preview(revision)`: every row reverting the revision would write (re-created,
  deleted with what its deletion takes along, or fields set back), in the order `revert`
  writes them, and the later changes it conflicts with (`find_conflicts`);
- `rollback_preview(model, pk, delta)`: the fields a rollback of one row to that version
  would change (the diff between now and then), and, for a deleted row with `cascade`, the
  rows re-created with it (`cascade_of`).

Nothing is written, not even in a rolled-back transaction (signal receivers would run). Each
planned write is put to `check(action, instance)`, the visibility policy's `check_restore`,
so that the preview says what the user may not do; the restore checks again as it writes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from django.core.exceptions import PermissionDenied
from django.db import models, router

from revy.contrib.django import history
from revy.contrib.django._meta import concrete_model, related_model
from revy.contrib.django.access import deletion_effects
from revy.contrib.django.encoding import encode
from revy.contrib.django.models import (
    AbstractAttributeDelta,
    AbstractObjectDelta,
    AbstractRevision,
)
from revy.contrib.django.recovery import cascade_of
from revy.contrib.django.registry import content_id, pk_from_content_id
from revy.contrib.django.snapshots import build_instance
from revy.contrib.django.states import recorded_fields
from revy.contrib.django.utils import get_object_delta_model

__all__ = [
    "FieldChange",
    "PlannedWrite",
    "RestorePreview",
    "revert_preview",
    "rollback_preview",
]

Check = Callable[[str, models.Model], None]

# The deltas `revert` undoes (custom events and baselines change nothing).
_CHANGE_ACTIONS = ("Create", "Update", "Delete")


@dataclass
class FieldChange:
    """One field a write changes: stored (JSON) values before and after."""

    attname: str
    old: Any
    new: Any


@dataclass
class PlannedWrite:
    """One row a restore would write.

    `action` is "add" (re-create), "change" or "delete", as the policy names them; `instance`
    is the row as it is now (or as it would be re-created); `effects` are the rows a deletion
    would delete or change too; `refused` the policy's message when the user may not do it.
    """

    action: str
    model: type[models.Model]
    pk: Any
    instance: models.Model
    changes: list[FieldChange] = field(default_factory=list)
    effects: list[tuple[str, models.Model]] = field(default_factory=list)
    refused: str | None = None
    delta: AbstractObjectDelta | None = None


@dataclass
class RestorePreview:
    """What a revert or a rollback would write, and what stands in its way."""

    writes: list[PlannedWrite] = field(default_factory=list)
    conflicts: list[AbstractObjectDelta | AbstractAttributeDelta] = field(default_factory=list)

    @property
    def refusals(self) -> list[str]:
        """The policy's refusals, each once."""
        return list(dict.fromkeys(write.refused for write in self.writes if write.refused))


def _state_of(row: models.Model) -> dict[str, Any]:
    """The row's recorded fields as history stores them (JSON values)."""
    return {
        field.attname: json.loads(encode(field.value_from_object(row)))
        for field in recorded_fields(type(row))
    }


def _changes(before: dict[str, Any] | None, after: dict[str, Any]) -> list[FieldChange]:
    return [
        FieldChange(attname, None if before is None else before.get(attname), value)
        for attname, value in after.items()
        if before is None or before.get(attname) != value
    ]


def _checked(write: PlannedWrite, check: Check | None) -> PlannedWrite:
    if check is not None:
        try:
            check(write.action, write.instance)
        except PermissionDenied as error:
            write.refused = str(error)
    return write


def revert_preview(revision: AbstractRevision, *, check: Check | None = None) -> RestorePreview:
    """Return what `history.revert(revision)` would write now, and its conflicts.

    The writes come in the order `revert` makes them (the revision's deltas newest first),
    each from the state the previous ones leave. A few queries: one per model for the rows,
    plus those of `find_conflicts`; a deletion's effects are collected per deleted row.
    """
    using = revision._state.db or router.db_for_write(type(revision))
    # Any: the swappable model's reverse relation (`children`) is unknown to the checker.
    manager = cast("models.Manager[Any]", get_object_delta_model()._base_manager)
    deltas = list(
        manager.using(using)
        .filter(revision=revision.pk, action__in=_CHANGE_ACTIONS)
        .select_related("content_type")
        .prefetch_related("children")
        .order_by("-id")
    )
    rows = _current_rows(deltas, using)
    first_creation: dict[tuple[int, str], int] = {}
    for delta in deltas:
        if delta.action == "Create":
            first_creation[(delta.content_type_id, delta.content_id)] = delta.pk
    # Per row: its state as the writes planned so far leave it (None: absent).
    states: dict[tuple[int, str], dict[str, Any] | None] = {}
    preview = RestorePreview(conflicts=history.find_conflicts(revision) if deltas else [])
    for delta in deltas:
        model = delta.content_type.model_class()
        if model is None:  # the model is gone: revert leaves it alone too
            continue
        key = (delta.content_type_id, delta.content_id)
        pk = pk_from_content_id(model, delta.content_id)
        current = rows.get(key)
        if key not in states:
            states[key] = None if current is None else _state_of(current)
        state = states[key]
        if delta.action == "Create":
            if state is None:
                continue
            instance = current if current is not None else build_instance(model, state)
            write = PlannedWrite("delete", model, pk, instance, delta=delta)
            if current is not None:
                write.effects = [(action, row) for action, row in deletion_effects(current)[1:]]
            preview.writes.append(_checked(write, check))
            states[key] = None
        elif delta.action == "Delete":
            created = first_creation.get(key)
            if (created is not None and created < delta.pk) or state is not None:
                continue
            if delta.data is None:
                continue
            instance = build_instance(model, delta.data)
            write = PlannedWrite(
                "add", model, pk, instance, _changes(None, dict(delta.data)), delta=delta
            )
            preview.writes.append(_checked(write, check))
            states[key] = dict(delta.data)
        elif state is not None:
            old: dict[str, Any] = {}
            for child in sorted(delta.children.all(), key=lambda child: child.pk):
                if child.field_name in state:
                    old.setdefault(child.field_name, child.old_value)
            after = {**state, **old}
            changes = _changes(state, after)
            if not changes:
                continue
            instance = current if current is not None else build_instance(model, state)
            preview.writes.append(
                _checked(PlannedWrite("change", model, pk, instance, changes, delta=delta), check)
            )
            states[key] = after
    _link([write.instance for write in preview.writes if write.action == "add"])
    return preview


def _current_rows(deltas: list[Any], using: str) -> dict[tuple[int, str], models.Model]:
    """The rows the deltas name that exist now, by (content type id, content id): one query
    per model."""
    wanted: dict[int, tuple[type[models.Model], set[Any]]] = {}
    for delta in deltas:
        model = delta.content_type.model_class()
        if model is None:
            continue
        _, keys = wanted.setdefault(delta.content_type_id, (model, set()))
        keys.add(pk_from_content_id(model, delta.content_id))
    found: dict[tuple[int, str], models.Model] = {}
    for type_id, (model, keys) in wanted.items():
        for row in model._base_manager.using(using).filter(pk__in=keys):
            found[(type_id, content_id(model, row.pk))] = row
    return found


def rollback_preview(
    model: type[models.Model],
    pk: Any,
    delta: AbstractObjectDelta,
    *,
    cascade: bool = False,
    check: Check | None = None,
) -> RestorePreview:
    """Return what `history.rollback(model, pk, delta=delta, cascade=cascade)` would write.

    No write at all when the row already is in that state. Raises what `history.snapshot`
    raises, and `history.ObjectAbsent` when the row did not exist at that point.
    """
    model = concrete_model(model)
    using = router.db_for_write(model)
    target = history.snapshot(model, pk, delta=delta)
    if target is None:
        raise history.ObjectAbsent(
            f"{model._meta.label} {pk} did not exist at that version; there is nothing to restore."
        )
    current = model._base_manager.using(using).filter(pk=pk).first()
    after = _state_of(target)
    preview = RestorePreview()
    if current is not None:
        changes = _changes(_state_of(current), after)
        changes = [change for change in changes if change.attname != model._meta.pk.attname]
        if changes:
            write = PlannedWrite("change", model, pk, current, changes, delta=delta)
            preview.writes.append(_checked(write, check))
        return preview
    preview.writes.append(
        _checked(PlannedWrite("add", model, pk, target, _changes(None, after), delta=delta), check)
    )
    if cascade:
        for row in cascade_of(model, pk, using=using):
            instance = row.instance()
            write = PlannedWrite(
                "add", row.model, row.pk, instance, _changes(None, _state_of(instance))
            )
            preview.writes.append(_checked(write, check))
        _link([write.instance for write in preview.writes])
    return preview


def _link(instances: list[models.Model]) -> None:
    """Point the foreign keys of rows re-created together at each other's instances.

    A re-created row's `__str__` may name the row it refers to ("Engine of Trabant 601"),
    which does not exist yet: it is one of the others.
    """
    found = {(concrete_model(type(row)), row.pk): row for row in instances}
    for row in instances:
        for relation in type(row)._meta.concrete_fields:
            if (
                not (relation.many_to_one or relation.one_to_one)
                or not cast("models.ForeignKey[Any, Any]", relation).target_field.primary_key
            ):
                continue
            target = found.get((related_model(relation), relation.value_from_object(row)))
            if target is not None:
                setattr(row, relation.name, target)
