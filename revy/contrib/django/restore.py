"""Putting history back: `rollback` one row, `revert` a whole revision, `find_conflicts`.

Both write as a new revision in the current context (opening one when none is open), inside
one transaction: on any error nothing is written. Reverting refuses (`RevisionConflict`) when
later changes touched what it would undo, unless forced.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from django.db import models, router, transaction

from revy.context import Context
from revy.contrib.django.encoding import decode
from revy.contrib.django.inheritance import existing_parents
from revy.contrib.django.recovery import cascade_of
from revy.contrib.django.registry import config_for, pk_from_content_id
from revy.contrib.django.snapshots import build_instance
from revy.contrib.django.states import (
    ObjectAbsent,
    RevisionConflict,
    Row,
    describe_point,
    recorded_fields,
    resolve_point,
    state_at,
)
from revy.contrib.django.utils import get_attribute_delta_model, get_object_delta_model

if TYPE_CHECKING:
    from revy.contrib.django.models import (
        AbstractAttributeDelta,
        AbstractObjectDelta,
        AbstractRevision,
    )

__all__ = [
    "find_conflicts",
    "revert",
    "rollback",
]


# Actions whose later occurrence makes undoing a creation or a deletion lose data.
_CHANGE_ACTIONS = ("Create", "Update", "Delete")

#: `check(action, instance)`, called before each row a restore writes: `"change"` (the row
#: as it is), `"add"` (the row about to be re-created) or `"delete"` (the row about to be
#: deleted). Raising refuses: the whole restore is rolled back, nothing is written.
RestoreCheck = Callable[[str, models.Model], None]

M = TypeVar("M", bound=models.Model)
T = TypeVar("T")


class _NoBlock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: Any) -> None:
        return None


def _recording_context() -> Context | _NoBlock:
    """Rollback and revert always record: open a context when none is open.

    Inside a context they record in its revision; where the caller disabled tracking on
    purpose, they record nothing.
    """
    return Context() if not Context.is_active() else _NoBlock()


def rollback(
    model: type[M],
    pk: Any,
    *,
    revision: AbstractRevision | None = None,
    delta: AbstractObjectDelta | None = None,
    at: datetime.datetime | None = None,
    using: str | None = None,
    check: RestoreCheck | None = None,
    cascade: bool = False,
) -> M:
    """Restore the row to its state at one point and return the saved instance.

    Give exactly one of `revision=`, `delta=` (a deletion delta means the state just before
    the deletion) and `at=`. The change is recorded in the current context's revision, or in
    a new one when no context is open: an `Update` with the fields that change, or a `Create`
    when the row was deleted since (it is re-created with the same pk). Rolling back to the
    state the row already has records nothing. Fields revy does not record (masked, like
    `auth.User.password`, or excluded) keep their current value; `auto_now` fields are set
    to now, as on any save. A re-created row keeps its recorded `auto_now_add` values: it is
    saved like a fixture row, so `pre_save`/`post_save` receivers see `raw=True`.

    `check(action, instance)` is called before the row is written (see `RestoreCheck`).

    With `cascade=True`, re-creating a deleted row also re-creates, in the same revision and
    each after the rows it refers to, the rows its latest deletion took along (see
    `revy.contrib.django.recovery.cascade_of`), with their last state; `check` is called
    for each of them too. It changes nothing for a row that exists.

    Raises `ObjectAbsent` when the row did not exist at that point and `HistoryNotFound` when
    its state there is unknown. `using` names the row's database (default: the one the
    router writes the model to); its history is read and written there.
    """
    point = resolve_point(revision, delta, at)
    if point is None:
        raise TypeError("rollback() needs a point: revision=, delta= or at=.")
    row = Row(model, pk, using)
    state = state_at(row, point)
    if state is None:
        raise ObjectAbsent(
            f"{row.label} did not exist at {describe_point(point)}; there is no state to "
            "roll back to."
        )
    using = row.using
    with _recording_context(), transaction.atomic(using=using):
        # Loaded inside the context, so that the save records only the fields that change.
        current = model._base_manager.using(using).select_for_update().filter(pk=row.pk).first()
        if current is None:
            # Found before the re-creation: the row's latest delta is still its deletion.
            taken_along = cascade_of(model, row.pk, using=using) if cascade else []
            instance = _recreate(model, state, using, check)
            for cascaded in taken_along:
                _recreate(cascaded.model, cascaded.state, using, check)
            return instance
        if check is not None:
            check("change", current)
        _assign_state(current, state)
        current.save(using=using)
        return current


def _recreate(
    model: type[M],
    state: dict[str, Any],
    using: str,
    check: RestoreCheck | None = None,
) -> M:
    """Insert the row again with its recorded state and primary key; return the instance.

    Like a fixture, the row is saved "exactly as presented" (`raw=True`, which signal
    receivers see): `auto_now_add` values keep their recorded value instead of becoming now,
    while `auto_now` fields are set to now, as on any save. A multi-table child is saved the
    usual way, since its parent rows must be inserted too.
    """
    instance = build_instance(model, state)
    if check is not None:
        check("add", instance)
    if model._meta.parents:
        # Django inserts the parent rows that are missing and updates those that exist (one
        # may have been restored first): history records each parent as what happened to it.
        existing: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        for parent in model._meta.get_parent_list():
            config = config_for(parent)
            if config is not None:
                for key, row in config.read_rows(using, [instance.pk]).items():
                    existing[(parent, key)] = config.normalize(row)
        with existing_parents(existing):
            instance.save(using=using, force_insert=True)
        return instance
    for field in model._meta.concrete_fields:
        if getattr(field, "auto_now", False):
            field.pre_save(instance, add=False)  # sets the field to now
    instance.save_base(using=using, raw=True, force_insert=True)
    return instance


def _assign_state(instance: models.Model, state: dict[str, Any]) -> None:
    """Set the instance's recorded fields from a stored state (schema changes tolerated)."""
    for field in recorded_fields(type(instance)):
        if field.primary_key:
            continue
        if field.attname in state:
            setattr(instance, field.attname, decode(field, state[field.attname]))
        else:
            setattr(instance, field.attname, field.get_default())


def revert(
    revision: AbstractRevision, *, force: bool = False, check: RestoreCheck | None = None
) -> AbstractRevision | None:
    """Undo every change of `revision`, atomically, as a new revision; return that revision.

    Rows it created are deleted (recorded as `Delete`), rows it deleted are re-created with
    their pre-deletion state (`Create`), updated fields are set back to their old values
    (`Update`). Custom events and baselines are not changes and are left alone.

    Unless `force=True`, raises `RevisionConflict` and changes nothing when later revisions
    touched the same fields of the same rows (or re-created, updated or deleted rows this
    revision created or deleted); changes to other fields are not conflicts. Returns the
    revision the undo was recorded in, or None when there was nothing to undo.

    Everything happens in the revision's own database: its deltas are read, its rows changed
    and the undo recorded there, never in another one.

    `check(action, instance)` is called before each row is written (see `RestoreCheck`).
    """
    from revy.contrib.django.revisions import pending_revision

    using = revision._state.db or router.db_for_write(type(revision))
    with _recording_context(), transaction.atomic(using=using):
        deltas = _changes_of(revision)
        if not deltas:
            return None
        if not force:
            conflicts = find_conflicts(revision, deltas)
            if conflicts:
                raise RevisionConflict(revision, conflicts)
        first_creation: dict[tuple[int, str], int] = {}
        for delta in deltas:
            if delta.action == "Create":
                first_creation[(delta.content_type_id, delta.content_id)] = delta.pk
        for delta in deltas:  # newest first, so that each undo sees the state it left
            created_at = first_creation.get((delta.content_type_id, delta.content_id))
            if delta.action == "Delete" and created_at is not None and created_at < delta.pk:
                continue  # created then deleted by this revision: absent before and after
            _undo(delta, using, check)
        return pending_revision(using)


# Rows per query when filtering by content id: well under every backend's parameter limit.
_CHUNK = 500


def _chunked(items: list[T], size: int = _CHUNK) -> Iterable[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _changes_of(revision: AbstractRevision) -> list[AbstractObjectDelta]:
    """The revision's create, update and delete deltas, newest first, with `undo_children`
    (their attribute deltas, oldest first)."""
    using = revision._state.db
    deltas = list(
        get_object_delta_model()
        ._base_manager.using(using)
        .filter(revision=revision.pk, action__in=_CHANGE_ACTIONS)
        .select_related("content_type")
        .order_by("-id")
    )
    children: dict[int, list[AbstractAttributeDelta]] = {}
    updates = [delta.pk for delta in deltas if delta.action == "Update"]
    for chunk in _chunked(updates):
        rows = get_attribute_delta_model()._base_manager.using(using).filter(parent_id__in=chunk)
        for child in rows.order_by("id"):
            children.setdefault(child.parent_id, []).append(child)
    for delta in deltas:
        # An attribute of these instances only, which `_children` reads.
        vars(delta)["undo_children"] = children.get(delta.pk, [])
    return deltas


def find_conflicts(
    revision: AbstractRevision, deltas: Iterable[AbstractObjectDelta] | None = None
) -> list[AbstractObjectDelta | AbstractAttributeDelta]:
    """Return the deltas of other revisions that touched what `revision` changed, since then.

    For an update: later attribute deltas of the same fields of the same row, and a later
    deletion of the row. For a creation or a deletion: any later change of the row. Oldest
    first. Baselines and custom events change nothing and are never conflicts.
    """
    deltas = _changes_of(revision) if deltas is None else list(deltas)
    using = revision._state.db
    # Per row: after which object delta any change conflicts (creations, deletions), after
    # which a deletion conflicts (updates), and after which attribute delta a field does.
    any_change_after: dict[tuple[int, str], int] = {}
    deletion_after: dict[tuple[int, str], int] = {}
    field_after: dict[tuple[int, str, str], int] = {}
    for delta in deltas:
        row = (delta.content_type_id, delta.content_id)
        if delta.action == "Update":
            deletion_after[row] = min(deletion_after.get(row, delta.pk), delta.pk)
            for child in _children(delta):
                key = (*row, child.field_name)
                field_after[key] = min(field_after.get(key, child.pk), child.pk)
        else:
            any_change_after[row] = min(any_change_after.get(row, delta.pk), delta.pk)

    def earliest(row: tuple[int, str]) -> float:
        return min(any_change_after.get(row, _NEVER), deletion_after.get(row, _NEVER))

    conflicts: list[AbstractObjectDelta | AbstractAttributeDelta] = []
    rows_by_type: dict[int, list[str]] = {}
    for content_type_id, content_id in {*any_change_after, *deletion_after}:
        rows_by_type.setdefault(content_type_id, []).append(content_id)
    for content_type_id, content_ids in rows_by_type.items():
        for chunk in _chunked(sorted(content_ids)):
            later = (
                get_object_delta_model()
                ._base_manager.db_manager(using)
                .filter(
                    content_type_id=content_type_id,
                    content_id__in=chunk,
                    action__in=_CHANGE_ACTIONS,
                    id__gt=min(earliest((content_type_id, content_id)) for content_id in chunk),
                )
            )
            for delta in later.exclude(revision=revision.pk):
                row = (delta.content_type_id, delta.content_id)
                if delta.pk > any_change_after.get(row, _NEVER) or (
                    delta.action == "Delete" and delta.pk > deletion_after.get(row, _NEVER)
                ):
                    conflicts.append(delta)

    fields_by_type: dict[int, set[str]] = {}
    ids_by_type: dict[int, set[str]] = {}
    for content_type_id, content_id, field_name in field_after:
        fields_by_type.setdefault(content_type_id, set()).add(field_name)
        ids_by_type.setdefault(content_type_id, set()).add(content_id)
    for content_type_id, ids in ids_by_type.items():
        for chunk in _chunked(sorted(ids)):
            later_attributes = (
                get_attribute_delta_model()
                ._base_manager.db_manager(using)
                .filter(
                    # Through the parents: their content index finds the rows' deltas.
                    parent__in=get_object_delta_model()
                    ._base_manager.db_manager(using)
                    .filter(content_type_id=content_type_id, content_id__in=chunk),
                    field_name__in=fields_by_type[content_type_id],
                    id__gt=min(
                        after
                        for (type_id, content_id, _), after in field_after.items()
                        if type_id == content_type_id and content_id in chunk
                    ),
                )
                .exclude(revision=revision.pk)
                .exclude(parent__action="Baseline")  # a baseline records, it changes nothing
            )
            for attribute in later_attributes:
                key = (attribute.content_type_id, attribute.content_id, attribute.field_name)
                if attribute.pk > field_after.get(key, _NEVER):
                    conflicts.append(attribute)
    return sorted(conflicts, key=lambda delta: (delta.created_at, delta.pk))


_NEVER = float("inf")


def _children(delta: AbstractObjectDelta) -> list[AbstractAttributeDelta]:
    children = getattr(delta, "undo_children", None)
    if children is None:
        children = list(delta.children.order_by("id"))
    return children


def _undo(delta: AbstractObjectDelta, using: str, check: RestoreCheck | None = None) -> None:
    model = delta.content_type.model_class()
    if model is None:  # the model is gone: nothing left to put back
        return
    manager = model._base_manager.using(using)
    pk = pk_from_content_id(model, delta.content_id)
    current = manager.filter(pk=pk).first()
    if delta.action == "Create":
        if current is not None:
            if check is not None:
                check("delete", current)
            current.delete(using=using)
    elif delta.action == "Delete":
        if current is None and delta.data is not None:
            _recreate(model, delta.data, using, check)
    elif current is not None:
        if check is not None:
            check("change", current)
        fields = {field.attname: field for field in recorded_fields(model)}
        for name, old in _old_values(delta).items():
            field = fields.get(name)
            if field is not None and not field.primary_key:  # masked and removed fields stay
                setattr(current, name, decode(field, old))
        current.save(using=using)


def _old_values(delta: AbstractObjectDelta) -> dict[str, Any]:
    """The value each field had before `delta` (the first of its attribute deltas)."""
    old: dict[str, Any] = {}
    for child in _children(delta):
        old.setdefault(child.field_name, child.old_value)
    return old
