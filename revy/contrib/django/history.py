"""The read side, and putting things back: history, snapshots, diffs, rollback and revert.

A point in a row's history is a revision, one of the row's object deltas or a datetime. Every
state-bearing delta (create, update, baseline, delete) stores the row's full state, so the
state at a point is the `data` of the row's latest state-bearing delta at or before it: one
indexed query whatever the length of the history.

- `revision=R`: after all of R's deltas (None if R deleted the row);
- `delta=D`: right after D, except that a deletion gives the state just before it;
- `at=T`: after every delta with `created_at <= T`.

The row "did not exist" at a point (snapshot gives None) when its latest delta there is a
deletion, or when the point precedes its recorded creation. When the point precedes the first
state revy knows of a row that existed before tracking began, the state is unknown and
`HistoryNotFound` is raised instead of guessing.

History survives schema changes: recorded fields the model no longer has are skipped, fields
added since get their default. Fields revy never records (masked or excluded) get their
default in snapshots and keep their current value on rollback.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import connections, models, router, transaction
from django.db.models import Max, Q
from django.utils import timezone

from revy.context import Context
from revy.contrib.django import registry
from revy.contrib.django.encoding import decode, encode
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
    "find_conflicts",
    "history_of",
    "revert",
    "rollback",
    "snapshot",
]

Point = models.Model | datetime.datetime

# Actions whose later occurrence makes undoing a creation or a deletion lose data.
_CHANGE_ACTIONS = ("Create", "Update", "Delete")


class HistoryError(Exception):
    """Base class of revy's history errors."""


class HistoryNotFound(HistoryError, LookupError):
    """There is no recorded history (or no known state) for that row at that point."""


class ObjectAbsent(HistoryError):
    """The row did not exist at the requested point, so there is nothing to restore."""


class RevisionConflict(HistoryError):
    """Later changes touched what a revert would undo.

    `revision` is the revision that could not be reverted; `conflicts` lists the later object
    and attribute deltas that touched the same rows and fields, oldest first.
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
    content_type = ContentType.objects.get_for_id(delta.content_type_id)
    target = f"{content_type.app_label}.{content_type.model}#{delta.content_id}"
    if field:
        return f"{target}.{field} in revision {delta.revision_id} (attribute delta {delta.pk})"
    return f"{target} {delta.action.lower()} in revision {delta.revision_id} (delta {delta.pk})"


# Rows and points --------------------------------------------------------------------------


class _Row:
    """One row's identity in the history tables: its model, pk and content id."""

    __slots__ = ("content_id", "content_type", "model", "pk")

    def __init__(self, model: type[models.Model], pk: Any) -> None:
        if pk is None:
            raise ValueError(
                f"A {model._meta.label} without a primary key (unsaved) has no history."
            )
        concrete = model._meta.concrete_model
        try:
            pk = concrete._meta.pk.to_python(pk)
        except ValidationError:
            raise HistoryNotFound(
                f"{pk!r} is not a valid primary key for {concrete._meta.label}."
            ) from None
        self.model = model
        self.pk = pk
        self.content_type = ContentType.objects.get_for_model(concrete)
        self.content_id = str(pk)

    @property
    def label(self) -> str:
        return f"{self.model._meta.label} with pk={self.pk!r}"

    def deltas(self) -> models.QuerySet:
        return get_object_delta_model()._base_manager.filter(
            content_type=self.content_type, content_id=self.content_id
        )


def _target(obj_or_model: models.Model | type[models.Model], pk: Any) -> _Row:
    if isinstance(obj_or_model, models.Model):
        if pk is not None:
            raise TypeError("Give either an instance or a model and a pk, not both.")
        return _Row(type(obj_or_model), obj_or_model.pk)
    if not (isinstance(obj_or_model, type) and issubclass(obj_or_model, models.Model)):
        raise TypeError(f"Expected a model instance or a model class, not {obj_or_model!r}.")
    if pk is None:
        raise TypeError("A model class needs the primary key too: history_of(Model, pk).")
    return _Row(obj_or_model, pk)


def _point(
    revision: models.Model | None,
    delta: models.Model | None,
    at: datetime.datetime | None,
) -> Point | None:
    given = [value for value in (revision, delta, at) if value is not None]
    if len(given) > 1:
        raise TypeError("Give at most one of revision=, delta= and at=.")
    if revision is not None and not isinstance(revision, get_revision_model()):
        raise TypeError(f"revision= takes a revision, not {revision!r}.")
    if delta is not None and not isinstance(delta, get_object_delta_model()):
        raise TypeError(f"delta= takes an object delta, not {delta!r}.")
    if at is not None and not isinstance(at, datetime.datetime):
        raise TypeError(f"at= takes a datetime, not {at!r}.")
    return given[0] if given else None


def _aware(moment: datetime.datetime) -> datetime.datetime:
    # A naive datetime means the current time zone, as in Django's forms and filters.
    if settings.USE_TZ and timezone.is_naive(moment):
        return timezone.make_aware(moment)
    return moment


def _bound(row: _Row, point: Point) -> Q:
    """Return the filter selecting the row's deltas at or before `point`."""
    delta_model = get_object_delta_model()
    if isinstance(point, datetime.datetime):
        return Q(created_at__lte=_aware(point))
    if isinstance(point, delta_model):
        if point.content_type_id != row.content_type.pk or point.content_id != row.content_id:
            raise HistoryNotFound(
                f"Object delta {point.pk} is not part of the history of {row.label}."
            )
        return Q(id__lte=point.pk)
    # A revision: after the last of its deltas (of any row: they were written together).
    last = delta_model._base_manager.filter(revision=point).aggregate(last=Max("id"))["last"]
    if last is None:
        return Q(created_at__lte=point.created_at)
    return Q(id__lte=last)


def _describe_point(point: Point | None) -> str:
    if point is None:
        return "the latest recorded point"
    if isinstance(point, datetime.datetime):
        return point.isoformat()
    return f"{point._meta.verbose_name} {point.pk}"


_UNKNOWN = object()


def _latest_state(row: _Row, point: Point | None) -> tuple | object | None:
    """Return (id, action, data) of the row's latest state-bearing delta at `point`.

    The hot path of snapshots, in one prepared statement: building the same query with the
    ORM costs several times more than running it. Returns `_UNKNOWN` for points it leaves
    to the ORM (revisions).
    """
    model = get_object_delta_model()
    if point is not None and not isinstance(point, datetime.datetime | model):
        return _UNKNOWN
    connection = connections[router.db_for_read(model)]
    opts = model._meta

    def column(attname: str) -> str:
        return connection.ops.quote_name(opts.get_field(attname).column)

    params: list[Any] = [row.content_type.pk, row.content_id, *STATE_ACTIONS]
    bound = ""
    if isinstance(point, datetime.datetime):
        bound = f" AND {column('created_at')} <= %s"
        params.append(connection.ops.adapt_datetimefield_value(_aware(point)))
    elif point is not None:
        _bound(row, point)  # checks that the delta belongs to the row
        bound = f" AND {column('id')} <= %s"
        params.append(point.pk)
    sql = (
        f"SELECT {column('id')}, {column('action')}, {column('data')} "
        f"FROM {connection.ops.quote_name(opts.db_table)} "
        f"WHERE {column('content_type_id')} = %s AND {column('content_id')} = %s "
        f"AND {column('action')} IN (%s, %s, %s, %s){bound} "
        f"ORDER BY {column('id')} DESC LIMIT 1"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        found = cursor.fetchone()
    if found is None:
        return None
    delta_id, action, data = found
    return delta_id, action, opts.get_field("data").from_db_value(data, None, connection)


def _state_at(row: _Row, point: Point | None) -> dict[str, Any] | None:
    """Return the row's recorded state (a delta's `data`) at `point`, or None if absent there.

    Raises `HistoryNotFound` when the row has no recorded state at or before the point and
    was not created (as far as revy knows) after it.
    """
    found = _latest_state(row, point)
    if found is _UNKNOWN:
        deltas = row.deltas().filter(action__in=STATE_ACTIONS)
        bounded = deltas if point is None else deltas.filter(_bound(row, point))
        found = bounded.order_by("-id").values_list("id", "action", "data").first()
    if found is not None:
        delta_id, action, data = found
        if action != "Delete":
            return data
        # A deletion delta stands for the state just before it, for that delta only.
        deleted_here = isinstance(point, get_object_delta_model()) and point.pk == delta_id
        return data if deleted_here else None
    deltas = row.deltas().filter(action__in=STATE_ACTIONS)
    first = deltas.order_by("id").values_list("action", flat=True).first()
    if first == "Create":
        return None  # the point precedes the row's creation
    if first is None and not row.deltas().exists():
        raise HistoryNotFound(
            f"No history is recorded for {row.label}. If the row predates tracking, record "
            "its current state with `manage.py revy_baseline`."
        )
    raise HistoryNotFound(
        f"The state of {row.label} at {_describe_point(point)} is unknown: the row existed "
        "before revy recorded it. `manage.py revy_baseline` records the current state of "
        "such rows."
    )


# Reading --------------------------------------------------------------------------------


def history_of(
    obj_or_model: models.Model | type[models.Model],
    pk: Any = None,
    *,
    aggregates: bool = False,
) -> models.QuerySet:
    """Return the object deltas of one row, newest first.

    `history_of(obj)` or `history_of(Model, pk)`. With `aggregates=True`, also the deltas of
    the rows that name this one as an aggregate (`get_event_aggregates()`, `REVY_AGGREGATES`),
    in the same single query. The row need not exist any more.
    """
    row = _target(obj_or_model, pk)
    if aggregates:
        manager = get_object_delta_model().objects
        return manager.for_aggregate(_reference(row)).order_by("-id")
    return (
        get_object_delta_model()
        .objects.filter(content_type=row.content_type, content_id=row.content_id)
        .order_by("-id")
    )


def _reference(row: _Row) -> models.Model:
    """An unsaved stand-in carrying only the pk: enough for content type lookups."""
    model = row.model._meta.concrete_model
    instance = model.__new__(model)
    instance.__dict__[model._meta.pk.attname] = row.pk
    return instance


def snapshot(
    model: type[models.Model],
    pk: Any,
    *,
    revision: models.Model | None = None,
    delta: models.Model | None = None,
    at: datetime.datetime | None = None,
) -> models.Model | None:
    """Return an unsaved instance of `model` as the row was at that point.

    Without a point: its latest recorded state. Returns None when the row did not exist at
    that point (not created yet, or deleted). `delta=D` gives the state right after D, or
    just before it when D is a deletion. Saving the instance re-creates the row with its pk.

    Raises `HistoryNotFound` when the row has no history, or no known state at that point.
    """
    row = _Row(model, pk)
    return build_instance(model, _state_at(row, _point(revision, delta, at)))


def diff(
    model: type[models.Model],
    pk: Any,
    *,
    since: Point | None,
    until: Point | None,
) -> dict[str, dict[str, Any]]:
    """Return `{attname: {"old": ..., "new": ...}}` for the fields that differ between two points.

    Each point is a revision, an object delta of the row or a datetime; `since=None` stands
    for before the row's history began, `until=None` for its latest recorded state. Values
    are the stored JSON values (as in attribute deltas); a point where the row did not exist
    counts as every field being None. Masked and excluded fields are never compared.
    """
    row = _Row(model, pk)
    before = _state_at(row, _as_point(since)) if since is not None else None
    after = _state_at(row, _as_point(until))
    changes = {}
    for field in _recorded_fields(row.model):
        old, new = _json_value(field, before), _json_value(field, after)
        if old != new:
            changes[field.attname] = {"old": old, "new": new}
    return changes


def _as_point(point: Point | None) -> Point | None:
    if point is None or isinstance(point, datetime.datetime):
        return point
    if isinstance(point, get_revision_model() | get_object_delta_model()):
        return point
    raise TypeError(
        f"A point in history is a revision, an object delta or a datetime, not {point!r}."
    )


def _recorded_fields(model: type[models.Model]) -> list[models.Field]:
    config = registry.config_for(model)
    if config is None:  # no longer tracked: everything its old deltas hold is history
        return list(model._meta.concrete_fields)
    return [config.fields[index] for index in config.recorded if index not in config.masked]


def _json_value(field: models.Field, state: dict[str, Any] | None) -> Any:
    if state is None:
        return None
    if field.attname in state:
        return state[field.attname]
    # Added since that state was recorded: compare its default, as a snapshot would hold.
    return json.loads(encode(field.get_default()))


# Writing history back -------------------------------------------------------------------


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
    model: type[models.Model],
    pk: Any,
    *,
    revision: models.Model | None = None,
    delta: models.Model | None = None,
    at: datetime.datetime | None = None,
) -> models.Model:
    """Restore the row to its state at one point and return the saved instance.

    Give exactly one of `revision=`, `delta=` (a deletion delta means the state just before
    the deletion) and `at=`. The change is recorded in the current context's revision, or in
    a new one when no context is open: an `Update` with the fields that change, or a `Create`
    when the row was deleted since (it is re-created with the same pk). Rolling back to the
    state the row already has records nothing. Fields revy does not record (masked, like
    `auth.User.password`, or excluded) keep their current value; `auto_now` fields are set
    to now, as on any save. A re-created row keeps its recorded `auto_now_add` values: it is
    saved like a fixture row, so `pre_save`/`post_save` receivers see `raw=True`.

    Raises `ObjectAbsent` when the row did not exist at that point and `HistoryNotFound` when
    its state there is unknown.
    """
    point = _point(revision, delta, at)
    if point is None:
        raise TypeError("rollback() needs a point: revision=, delta= or at=.")
    row = _Row(model, pk)
    state = _state_at(row, point)
    if state is None:
        raise ObjectAbsent(
            f"{row.label} did not exist at {_describe_point(point)}; there is no state to "
            "roll back to."
        )
    using = router.db_for_write(model)
    with _recording_context(), transaction.atomic(using=using):
        # Loaded inside the context, so that the save records only the fields that change.
        current = model._base_manager.using(using).select_for_update().filter(pk=row.pk).first()
        if current is None:
            return _recreate(model, state, using)
        _assign_state(current, state)
        current.save(using=using)
        return current


def _recreate(model: type[models.Model], state: dict[str, Any], using: str) -> models.Model:
    """Insert the row again with its recorded state and primary key; return the instance.

    Like a fixture, the row is saved "exactly as presented" (`raw=True`, which signal
    receivers see): `auto_now_add` values keep their recorded value instead of becoming now,
    while `auto_now` fields are set to now, as on any save. A multi-table child is saved the
    usual way, since its parent rows must be inserted too.
    """
    instance = build_instance(model, state)
    if model._meta.parents:
        instance.save(using=using, force_insert=True)
        return instance
    for field in model._meta.concrete_fields:
        if getattr(field, "auto_now", False):
            field.pre_save(instance, add=False)  # sets the field to now
    instance.save_base(using=using, raw=True, force_insert=True)
    return instance


def _assign_state(instance: models.Model, state: dict[str, Any]) -> None:
    """Set the instance's recorded fields from a stored state (schema changes tolerated)."""
    for field in _recorded_fields(type(instance)):
        if field.primary_key:
            continue
        if field.attname in state:
            setattr(instance, field.attname, decode(field, state[field.attname]))
        else:
            setattr(instance, field.attname, field.get_default())


def revert(revision: models.Model, *, force: bool = False) -> models.Model | None:
    """Undo every change of `revision`, atomically, as a new revision; return that revision.

    Rows it created are deleted (recorded as `Delete`), rows it deleted are re-created with
    their pre-deletion state (`Create`), updated fields are set back to their old values
    (`Update`). Custom events and baselines are not changes and are left alone.

    Unless `force=True`, raises `RevisionConflict` and changes nothing when later revisions
    touched the same fields of the same rows (or re-created, updated or deleted rows this
    revision created or deleted); changes to other fields are not conflicts. Returns the
    revision the undo was recorded in, or None when there was nothing to undo.
    """
    from revy.contrib.django.revisions import pending_revision

    delta_model = get_object_delta_model()
    using = router.db_for_write(delta_model)
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
            _undo(delta, using)
        return pending_revision(using)


# Rows per query when filtering by content id: well under every backend's parameter limit.
_CHUNK = 500


def _chunked(items: list, size: int = _CHUNK) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _changes_of(revision: models.Model) -> list[models.Model]:
    """The revision's create, update and delete deltas, newest first, with `undo_children`
    (their attribute deltas, oldest first)."""
    deltas = list(
        get_object_delta_model()
        ._base_manager.filter(revision=revision, action__in=_CHANGE_ACTIONS)
        .select_related("content_type")
        .order_by("-id")
    )
    children: dict[int, list[models.Model]] = {}
    updates = [delta.pk for delta in deltas if delta.action == "Update"]
    for chunk in _chunked(updates):
        rows = get_attribute_delta_model()._base_manager.filter(parent_id__in=chunk)
        for child in rows.order_by("id"):
            children.setdefault(child.parent_id, []).append(child)
    for delta in deltas:
        delta.undo_children = children.get(delta.pk, [])
    return deltas


def find_conflicts(
    revision: models.Model, deltas: Iterable[models.Model] | None = None
) -> list[models.Model]:
    """Return the deltas of other revisions that touched what `revision` changed, since then.

    For an update: later attribute deltas of the same fields of the same row, and a later
    deletion of the row. For a creation or a deletion: any later change of the row. Oldest
    first. Baselines and custom events change nothing and are never conflicts.
    """
    deltas = _changes_of(revision) if deltas is None else list(deltas)
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

    conflicts: list[models.Model] = []
    rows_by_type: dict[int, list[str]] = {}
    for content_type_id, content_id in {*any_change_after, *deletion_after}:
        rows_by_type.setdefault(content_type_id, []).append(content_id)
    for content_type_id, content_ids in rows_by_type.items():
        for chunk in _chunked(sorted(content_ids)):
            later = get_object_delta_model()._base_manager.filter(
                content_type_id=content_type_id,
                content_id__in=chunk,
                action__in=_CHANGE_ACTIONS,
                id__gt=min(earliest((content_type_id, content_id)) for content_id in chunk),
            )
            for delta in later.exclude(revision=revision):
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
    for content_type_id, content_ids in ids_by_type.items():
        for chunk in _chunked(sorted(content_ids)):
            later = (
                get_attribute_delta_model()
                ._base_manager.filter(
                    content_type_id=content_type_id,
                    content_id__in=chunk,
                    field_name__in=fields_by_type[content_type_id],
                    id__gt=min(
                        after
                        for (type_id, content_id, _), after in field_after.items()
                        if type_id == content_type_id and content_id in chunk
                    ),
                )
                .exclude(revision=revision)
                .exclude(parent__action="Baseline")  # a baseline records, it changes nothing
            )
            for attribute in later:
                key = (attribute.content_type_id, attribute.content_id, attribute.field_name)
                if attribute.pk > field_after.get(key, _NEVER):
                    conflicts.append(attribute)
    return sorted(conflicts, key=lambda delta: (delta.created_at, delta.pk))


_NEVER = float("inf")


def _children(delta: models.Model) -> list[models.Model]:
    children = getattr(delta, "undo_children", None)
    if children is None:
        children = list(delta.children.order_by("id"))
    return children


def _undo(delta: models.Model, using: str) -> None:
    model = delta.content_type.model_class()
    if model is None:  # the model is gone: nothing left to put back
        return
    manager = model._base_manager.using(using)
    current = manager.filter(pk=delta.content_id).first()
    if delta.action == "Create":
        if current is not None:
            current.delete(using=using)
    elif delta.action == "Delete":
        if current is None and delta.data is not None:
            _recreate(model, delta.data, using)
    elif current is not None:
        fields = {field.attname: field for field in _recorded_fields(model)}
        for name, old in _old_values(delta).items():
            field = fields.get(name)
            if field is not None and not field.primary_key:  # masked and removed fields stay
                setattr(current, name, decode(field, old))
        current.save(using=using)


def _old_values(delta: models.Model) -> dict[str, Any]:
    """The value each field had before `delta` (the first of its attribute deltas)."""
    old: dict[str, Any] = {}
    for child in _children(delta):
        old.setdefault(child.field_name, child.old_value)
    return old
