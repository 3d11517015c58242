"""The read side, and putting things back: history, snapshots, diffs, rollback and revert.

A point in a row's history is a revision, an object delta or a datetime. The state at a point
is the `data` of the row's latest state-bearing delta at or before it (one indexed query);
`None` when the row did not exist there (before its creation, or after its deletion).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import models, router, transaction
from django.db.models import Max

from revy.context import Context
from revy.contrib.django import registry
from revy.contrib.django.encoding import decode
from revy.contrib.django.snapshots import STATE_ACTIONS, build_instance
from revy.contrib.django.utils import (
    get_attribute_delta_model,
    get_object_delta_model,
    get_revision_model,
)

__all__ = [
    "HistoryError",
    "HistoryNotFound",
    "ObjectAbsent",
    "RevisionConflict",
    "diff",
    "history_of",
    "revert",
    "rollback",
    "snapshot",
]

Point = models.Model | datetime.datetime


class HistoryError(Exception):
    """Base class of revy's history errors."""


class HistoryNotFound(HistoryError, LookupError):
    """There is no recorded history for that row, revision or delta."""


class ObjectAbsent(HistoryError):
    """The row did not exist at the requested point, so there is nothing to restore."""


class RevisionConflict(HistoryError):
    """Later changes touched what a revert would undo.

    `conflicts` lists the later attribute and object deltas, newest last.
    """

    def __init__(self, revision: models.Model, conflicts: list[models.Model]) -> None:
        self.revision = revision
        self.conflicts = conflicts
        names = ", ".join(_describe_conflict(delta) for delta in conflicts[:10])
        more = f" and {len(conflicts) - 10} more" if len(conflicts) > 10 else ""
        super().__init__(
            f"Cannot revert revision {revision.pk}: later changes touched the same data "
            f"({names}{more}). Pass force=True to revert anyway."
        )


def _describe_conflict(delta: models.Model) -> str:
    field = getattr(delta, "field_name", None)
    target = f"{delta.content_type.app_label}.{delta.content_type.model}#{delta.content_id}"
    return (
        f"{target}.{field} in revision {delta.revision_id}"
        if field
        else (f"{target} {delta.action.lower()} in revision {delta.revision_id}")
    )


# Lookups ----------------------------------------------------------------------------------


def _target(obj_or_model, pk) -> tuple[type[models.Model], Any]:
    if isinstance(obj_or_model, models.Model):
        return type(obj_or_model)._meta.concrete_model, obj_or_model.pk
    if pk is None:
        raise TypeError("history_of(Model) needs the primary key: history_of(Model, pk).")
    return obj_or_model._meta.concrete_model, pk


def _deltas_of(model: type[models.Model], pk: Any) -> models.QuerySet:
    return get_object_delta_model().objects.filter(
        content_type=ContentType.objects.get_for_model(model), content_id=str(pk)
    )


def history_of(
    obj_or_model: models.Model | type[models.Model],
    pk: Any = None,
    *,
    aggregates: bool = False,
) -> models.QuerySet:
    """Return the object deltas of one row, newest first.

    `history_of(obj)` or `history_of(Model, pk)`; with `aggregates=True`, also the deltas of
    the objects that name this row as an aggregate.
    """
    model, pk = _target(obj_or_model, pk)
    manager = get_object_delta_model().objects
    if aggregates:
        return manager.for_aggregate(_reference(model, pk)).order_by("-id")
    return _deltas_of(model, pk).order_by("-id")


def _reference(model: type[models.Model], pk: Any) -> models.Model:
    """An unsaved stand-in carrying only the pk, enough for content type lookups."""
    instance = model.__new__(model)
    instance.__dict__[model._meta.pk.attname] = pk
    return instance


def _delta_bound(point: Point, using: str | None = None) -> dict[str, Any]:
    """Translate a point into filter arguments on the row's deltas."""
    delta_model = get_object_delta_model()
    if isinstance(point, datetime.datetime):
        return {"created_at__lte": point}
    if isinstance(point, get_revision_model()):
        last = delta_model._base_manager.filter(revision=point).aggregate(last=Max("id"))["last"]
        if last is None:
            return {"created_at__lte": point.created_at}
        return {"id__lte": last}
    if isinstance(point, delta_model):
        return {"id__lte": point.pk}
    raise TypeError(
        f"A point in history is a revision, an object delta or a datetime, not {point!r}."
    )


def _state_delta(model, pk, point: Point | None) -> models.Model | None:
    deltas = _deltas_of(model, pk).filter(action__in=STATE_ACTIONS)
    if point is not None:
        deltas = deltas.filter(**_delta_bound(point))
    return deltas.order_by("-id").only("id", "action", "data").first()


def _ensure_history(model, pk) -> None:
    if not _deltas_of(model, pk).exists():
        raise HistoryNotFound(
            f"No history is recorded for {model._meta.label} with pk={pk!r}. If the row "
            "predates tracking, record its current state with `manage.py revy_baseline`."
        )


def _point(revision=None, delta=None, at=None) -> Point | None:
    given = [value for value in (revision, delta, at) if value is not None]
    if len(given) > 1:
        raise TypeError("Give at most one of revision=, delta= and at=.")
    return given[0] if given else None


def _state_at(model, pk, point: Point | None) -> dict | None:
    """Return the row's state dict at `point`, None if absent there; raise if unknown."""
    found = _state_delta(model, pk, point)
    if found is None:
        _ensure_history(model, pk)
        return None
    if found.action == "Delete" and not (
        isinstance(point, get_object_delta_model()) and point.pk == found.pk
    ):
        return None
    return found.data


def snapshot(
    model: type[models.Model],
    pk: Any,
    *,
    revision: models.Model | None = None,
    delta: models.Model | None = None,
    at: datetime.datetime | None = None,
) -> models.Model | None:
    """Return an unsaved instance as the row was at that point, or None if it did not exist.

    Without a point: the latest recorded state. `delta=D` gives the state right after D, or
    just before it when D is a deletion. Raises `HistoryNotFound` when the row has no history.
    """
    model = model._meta.concrete_model
    return build_instance(model, _state_at(model, pk, _point(revision, delta, at)))


def diff(
    model: type[models.Model],
    pk: Any,
    *,
    since: Point | None,
    until: Point | None,
) -> dict[str, dict[str, Any]]:
    """Return `{field: {"old": ..., "new": ...}}` for the fields that differ between two points.

    A point where the row did not exist counts as every field being None.
    """
    model = model._meta.concrete_model
    before = _state_at(model, pk, since) or {}
    after = _state_at(model, pk, until) or {}
    changes = {}
    for field in model._meta.concrete_fields:
        name = field.attname
        old, new = before.get(name), after.get(name)
        if old != new:
            changes[name] = {"old": old, "new": new}
    return changes


# Writing history back -----------------------------------------------------------------------


def _recording_context() -> Context:
    """Rollback and revert always record: open a context when none is open."""
    return Context() if not Context.is_active() else _NoBlock()


class _NoBlock:
    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return None


def rollback(
    model: type[models.Model],
    pk: Any,
    *,
    revision: models.Model | None = None,
    delta: models.Model | None = None,
    at: datetime.datetime | None = None,
) -> models.Model:
    """Restore the row to its state at that point, as a new revision; return the instance.

    Re-creates the row if it was deleted since. Rolling back to the state the row already has
    records nothing. Masked fields keep their current value. Raises `ObjectAbsent` when the
    row did not exist at that point and `HistoryNotFound` when it has no history.
    """
    model = model._meta.concrete_model
    point = _point(revision, delta, at)
    state = _state_at(model, pk, point)
    if state is None:
        raise ObjectAbsent(
            f"{model._meta.label} with pk={pk!r} did not exist at {_describe_point(point)}; "
            "there is no state to roll back to."
        )
    using = router.db_for_write(model)
    with _recording_context(), transaction.atomic(using=using):
        current = model._base_manager.using(using).filter(pk=pk).first()
        if current is None:
            restored = build_instance(model, state)
            restored.save(using=using, force_insert=True)
            return restored
        _assign_state(current, state)
        current.save(using=using)
        return current


def _assign_state(instance: models.Model, state: dict[str, Any]) -> None:
    config = registry.config_for(type(instance))
    masked = {config.attnames[index] for index in config.masked} if config else set()
    for field in instance._meta.concrete_fields:
        if field.primary_key or field.attname in masked:
            continue
        if field.attname in state:
            setattr(instance, field.attname, decode(field, state[field.attname]))
        else:
            setattr(instance, field.attname, field.get_default())


def _describe_point(point: Point | None) -> str:
    if point is None:
        return "the latest point"
    if isinstance(point, datetime.datetime):
        return point.isoformat()
    return f"{point._meta.verbose_name} {point.pk}"


def revert(revision: models.Model, *, force: bool = False) -> models.Model | None:
    """Undo every change of `revision`, atomically, as a new revision; return that revision.

    Creations are deleted, deletions re-created and updated fields set back to their old
    values. Raises `RevisionConflict`, naming the later deltas that touched the same fields
    or rows, unless `force=True`. Returns None when there was nothing to undo.
    """
    from revy.contrib.django.recorder import pending_revision

    delta_model = get_object_delta_model()
    deltas = list(
        delta_model._base_manager.filter(revision=revision, action__in=STATE_ACTIONS)
        .exclude(action="Baseline")
        .select_related("content_type")
        .prefetch_related("children")
        .order_by("-id")
    )
    if not deltas:
        return None
    conflicts = [] if force else find_conflicts(revision, deltas)
    if conflicts:
        raise RevisionConflict(revision, conflicts)
    using = router.db_for_write(delta_model)
    with _recording_context(), transaction.atomic(using=using):
        for delta in deltas:
            _undo(delta)
        return pending_revision(using)


def find_conflicts(revision: models.Model, deltas: Iterable[models.Model]) -> list[models.Model]:
    """Return the later deltas that touched the rows and fields `deltas` changed."""
    delta_model, attribute_model = get_object_delta_model(), get_attribute_delta_model()
    object_filter, field_filter = models.Q(pk__in=[]), models.Q(pk__in=[])
    for delta in deltas:
        row = models.Q(content_type_id=delta.content_type_id, content_id=delta.content_id)
        if delta.action == "Update":
            fields = {child.field_name for child in delta.children.all()}
            field_filter |= row & models.Q(field_name__in=fields, id__gt=_last_child(delta))
            object_filter |= row & models.Q(action="Delete", id__gt=delta.pk)
        else:
            object_filter |= row & models.Q(
                action__in=("Create", "Update", "Delete"), id__gt=delta.pk
            )
    later_objects = delta_model._base_manager.filter(object_filter).exclude(revision=revision)
    later_fields = attribute_model._base_manager.filter(field_filter).exclude(revision=revision)
    conflicts = list(later_objects.select_related("content_type")) + list(
        later_fields.select_related("content_type")
    )
    return sorted(conflicts, key=lambda delta: delta.created_at)


def _last_child(delta: models.Model) -> int:
    children = list(delta.children.all())
    return max((child.pk for child in children), default=0)


def _undo(delta: models.Model) -> None:
    model = delta.content_type.model_class()
    if model is None:
        return
    manager = model._base_manager
    current = manager.filter(pk=delta.content_id).first()
    if delta.action == "Create":
        if current is not None:
            current.delete()
    elif delta.action == "Delete":
        if current is None:
            build_instance(model, delta.data).save(force_insert=True)
    elif current is not None:
        firsts: dict[str, Any] = {}
        for child in sorted(delta.children.all(), key=lambda child: child.pk):
            firsts.setdefault(child.field_name, child.old_value)
        _assign_state(current, {**_current_state(current), **firsts})
        current.save()


def _current_state(instance: models.Model) -> dict[str, Any]:
    return {
        field.attname: getattr(instance, field.attname) for field in instance._meta.concrete_fields
    }
