"""History of a row: `history_of`, `snapshot` and `diff`, and the errors of the history API.

`rollback`, `revert` and `find_conflicts` (which write history back) live in `restore` and
are re-exported here, where the public API names them.

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
from typing import Any

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import connections, models, router
from django.db.models import Max, Q
from django.utils import timezone

from revy.contrib.django import registry
from revy.contrib.django.encoding import encode
from revy.contrib.django.models import ObjectDeltaAggregate
from revy.contrib.django.snapshots import STATE_ACTIONS, build_instance
from revy.contrib.django.utils import (
    get_object_delta_model,
    get_revision_model,
)

__all__ = [
    "HistoryError",
    "HistoryNotFound",
    "ObjectAbsent",
    "RevisionConflict",
    "as_of",
    "deleted",
    "diff",
    "erase",
    "find_conflicts",
    "history_of",
    "revert",
    "rollback",
    "snapshot",
]

Point = models.Model | datetime.datetime


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
    content_type = ContentType.objects.db_manager(delta._state.db).get_for_id(delta.content_type_id)
    target = f"{content_type.app_label}.{content_type.model}#{delta.content_id}"
    if field:
        return f"{target}.{field} in revision {delta.revision_id} (attribute delta {delta.pk})"
    return f"{target} {delta.action.lower()} in revision {delta.revision_id} (delta {delta.pk})"


# Rows and points --------------------------------------------------------------------------


class _Row:
    """One row's identity in the history tables: its model, pk, content id and database.

    A row's history lives in the row's database: `using`, or the database the router
    writes the model to.
    """

    __slots__ = ("content_id", "content_type", "model", "pk", "using")

    def __init__(self, model: type[models.Model], pk: Any, using: str | None = None) -> None:
        if pk is None:
            raise ValueError(
                f"A {model._meta.label} without a primary key (unsaved) has no history."
            )
        concrete = model._meta.concrete_model
        try:
            if registry.is_composite(concrete) and isinstance(pk, str):
                pk = registry.pk_from_content_id(concrete, pk)
            pk = concrete._meta.pk.to_python(pk)
        except (ValidationError, ValueError, TypeError):
            raise HistoryNotFound(
                f"{pk!r} is not a valid primary key for {concrete._meta.label}."
            ) from None
        self.model = model
        self.pk = pk
        self.using = using or router.db_for_write(concrete)
        self.content_type = ContentType.objects.db_manager(self.using).get_for_model(concrete)
        self.content_id = registry.content_id(concrete, pk)

    @property
    def label(self) -> str:
        return f"{self.model._meta.label} with pk={self.pk!r}"

    def deltas(self) -> models.QuerySet:
        return (
            get_object_delta_model()
            ._base_manager.using(self.using)
            .filter(content_type=self.content_type, content_id=self.content_id)
        )


def _target(obj_or_model: models.Model | type[models.Model], pk: Any, using: str | None) -> _Row:
    if isinstance(obj_or_model, models.Model):
        if pk is not None:
            raise TypeError("Give either an instance or a model and a pk, not both.")
        return _Row(type(obj_or_model), obj_or_model.pk, using or obj_or_model._state.db)
    if not (isinstance(obj_or_model, type) and issubclass(obj_or_model, models.Model)):
        raise TypeError(f"Expected a model instance or a model class, not {obj_or_model!r}.")
    if pk is None:
        raise TypeError("A model class needs the primary key too: history_of(Model, pk).")
    return _Row(obj_or_model, pk, using)


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
    last = (
        delta_model._base_manager.using(row.using)
        .filter(revision=point)
        .aggregate(last=Max("id"))["last"]
    )
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
    connection = connections[row.using]
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
    using: str | None = None,
) -> models.QuerySet:
    """Return the object deltas of one row, newest first.

    `history_of(obj)` or `history_of(Model, pk)`: the row's own deltas and those of its
    many-to-many links (the through rows that link it, added and removed). With
    `aggregates=True`, also the deltas of the rows that name this one as an aggregate
    (`get_event_aggregates()`, `REVY_AGGREGATES`). One query either way; the row need not
    exist any more.
    """
    row = _target(obj_or_model, pk, using)
    manager = get_object_delta_model().objects.db_manager(row.using)
    if aggregates:
        return manager.for_aggregate(_reference(row)).order_by("-id")
    own = Q(content_type=row.content_type, content_id=row.content_id)
    links = [
        registry.content_type_id(through, row.using)
        for through in registry.through_models(row.model)
        if registry.is_tracked(through)
    ]
    if links:
        # Its many-to-many links are part of a row's history: they are stored as aggregates
        # of the link's delta (see `ModelConfig.links`).
        own |= Q(
            content_type_id__in=links,
            pk__in=ObjectDeltaAggregate.objects.using(row.using)
            .filter(content_type=row.content_type, content_id=row.content_id)
            .values("delta_id"),
        )
    return manager.filter(own).order_by("-id")


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
    using: str | None = None,
) -> models.Model | None:
    """Return an unsaved instance of `model` as the row was at that point.

    Without a point: its latest recorded state. Returns None when the row did not exist at
    that point (not created yet, or deleted). `delta=D` gives the state right after D, or
    just before it when D is a deletion. Saving the instance re-creates the row with its pk.

    Raises `HistoryNotFound` when the row has no history, or no known state at that point.
    `using` names the row's database (default: the one the router writes the model to).
    """
    row = _Row(model, pk, using)
    return build_instance(model, _state_at(row, _point(revision, delta, at)))


def diff(
    model: type[models.Model],
    pk: Any,
    *,
    since: Point | None,
    until: Point | None,
    using: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Return `{attname: {"old": ..., "new": ...}}` for the fields that differ between two points.

    Each point is a revision, an object delta of the row or a datetime; `since=None` stands
    for before the row's history began, `until=None` for its latest recorded state. Values
    are the stored JSON values (as in attribute deltas); a point where the row did not exist
    counts as every field being None. Masked and excluded fields are never compared.
    """
    row = _Row(model, pk, using)
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


# Writing history back lives in `restore`, whole tables at a past time in `asof`, deleted
# rows in `recovery` and erasure in `erasure`; their names belong to this module's public API.
from revy.contrib.django.asof import as_of  # noqa: E402
from revy.contrib.django.erasure import erase  # noqa: E402
from revy.contrib.django.recovery import deleted  # noqa: E402
from revy.contrib.django.restore import find_conflicts, revert, rollback  # noqa: E402
