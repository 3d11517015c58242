"""What history says a row was at a point: the reading that `history` and `restore` share.

A point is a revision, one of the row's object deltas or a datetime (see `history`). Every
state-bearing delta stores the row's full state, so the state at a point is the `data` of the
row's latest state-bearing delta at or before it: one indexed query.
"""

from __future__ import annotations

import datetime
import enum
import json
from typing import TYPE_CHECKING, Any, Final, TypeAlias, cast

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import connections, models, router
from django.db.models import Max, Q
from django.utils import timezone

from revy.contrib.django import registry
from revy.contrib.django._meta import column as column_of
from revy.contrib.django._meta import concrete_field, concrete_model
from revy.contrib.django.encoding import encode
from revy.contrib.django.snapshots import STATE_ACTIONS
from revy.contrib.django.utils import (
    get_object_delta_model,
    get_revision_model,
)

if TYPE_CHECKING:
    from revy.contrib.django.models import (
        AbstractAttributeDelta,
        AbstractObjectDelta,
        AbstractRevision,
    )

__all__ = [
    "HistoryError",
    "HistoryNotFound",
    "ObjectAbsent",
    "RevisionConflict",
    "Row",
    "aware",
    "describe_conflict",
    "describe_point",
    "find_row",
    "json_value",
    "latest_state",
    "point_bound",
    "recorded_fields",
    "resolve_point",
    "state_at",
]


# A revision, one of a row's object deltas, or a moment.
Point: TypeAlias = "AbstractRevision | AbstractObjectDelta | datetime.datetime"


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

    def __init__(
        self,
        revision: AbstractRevision,
        conflicts: list[AbstractObjectDelta | AbstractAttributeDelta],
    ) -> None:
        self.revision = revision
        self.conflicts = conflicts
        names = ", ".join(describe_conflict(delta) for delta in conflicts[:10])
        more = f" and {len(conflicts) - 10} more" if len(conflicts) > 10 else ""
        super().__init__(
            f"Cannot revert revision {revision.pk}: later changes touched the same data "
            f"({names}{more}). Pass force=True to revert anyway."
        )


def describe_conflict(delta: AbstractObjectDelta | AbstractAttributeDelta) -> str:
    """Name a conflicting delta: the row (and field) it changed, its revision and its id."""
    field = getattr(delta, "field_name", None)
    content_type = ContentType.objects.db_manager(delta._state.db).get_for_id(delta.content_type_id)
    target = f"{content_type.app_label}.{content_type.model}#{delta.content_id}"
    if field:
        return f"{target}.{field} in revision {delta.revision_id} (attribute delta {delta.pk})"
    return f"{target} {delta.action.lower()} in revision {delta.revision_id} (delta {delta.pk})"


# Rows and points --------------------------------------------------------------------------


class Row:
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
        concrete = concrete_model(model)
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


def find_row(obj_or_model: models.Model | type[models.Model], pk: Any, using: str | None) -> Row:
    if isinstance(obj_or_model, models.Model):
        if pk is not None:
            raise TypeError("Give either an instance or a model and a pk, not both.")
        return Row(type(obj_or_model), obj_or_model.pk, using or obj_or_model._state.db)
    if not (isinstance(obj_or_model, type) and issubclass(obj_or_model, models.Model)):
        raise TypeError(f"Expected a model instance or a model class, not {obj_or_model!r}.")
    if pk is None:
        raise TypeError("A model class needs the primary key too: history_of(Model, pk).")
    return Row(obj_or_model, pk, using)


def resolve_point(
    revision: AbstractRevision | None,
    delta: AbstractObjectDelta | None,
    at: datetime.datetime | None,
) -> Point | None:
    given: list[Point] = [value for value in (revision, delta, at) if value is not None]
    if len(given) > 1:
        raise TypeError("Give at most one of revision=, delta= and at=.")
    if revision is not None and not isinstance(revision, get_revision_model()):
        raise TypeError(f"revision= takes a revision, not {revision!r}.")
    if delta is not None and not isinstance(delta, get_object_delta_model()):
        raise TypeError(f"delta= takes an object delta, not {delta!r}.")
    if at is not None and not isinstance(at, datetime.datetime):
        raise TypeError(f"at= takes a datetime, not {at!r}.")
    return given[0] if given else None


def aware(moment: datetime.datetime) -> datetime.datetime:
    # A naive datetime means the current time zone, as in Django's forms and filters.
    if settings.USE_TZ and timezone.is_naive(moment):
        return timezone.make_aware(moment)
    return moment


def point_bound(row: Row, point: Point) -> Q:
    """Return the filter selecting the row's deltas at or before `point`."""
    delta_model = get_object_delta_model()
    if isinstance(point, datetime.datetime):
        return Q(created_at__lte=aware(point))
    if isinstance(point, delta_model):
        if point.content_type_id != row.content_type.pk or point.content_id != row.content_id:
            raise HistoryNotFound(
                f"Object delta {point.pk} is not part of the history of {row.label}."
            )
        return Q(id__lte=point.pk)
    # A revision: after the last of its deltas (of any row: they were written together).
    last = (
        delta_model._base_manager.using(row.using)
        .filter(revision=point.pk)
        .aggregate(last=Max("id"))["last"]
    )
    if last is None:
        return Q(created_at__lte=point.created_at)
    return Q(id__lte=last)


def describe_point(point: Point | None) -> str:
    if point is None:
        return "the latest recorded point"
    if isinstance(point, datetime.datetime):
        return point.isoformat()
    return f"{point._meta.verbose_name} {point.pk}"


class _Unknown(enum.Enum):
    STATE = "unknown"


UNKNOWN_STATE: Final = _Unknown.STATE


def latest_state(row: Row, point: Point | None) -> tuple[int, str, Any] | _Unknown | None:
    """Return (id, action, data) of the row's latest state-bearing delta at `point`.

    The hot path of snapshots, in one prepared statement: building the same query with the
    ORM costs several times more than running it. Returns `UNKNOWN_STATE` for points it leaves
    to the ORM (revisions).
    """
    model = get_object_delta_model()
    if point is not None and not isinstance(point, datetime.datetime | model):
        return UNKNOWN_STATE
    connection = connections[row.using]
    opts = model._meta

    def column(attname: str) -> str:
        return connection.ops.quote_name(column_of(model, attname))

    params: list[Any] = [row.content_type.pk, row.content_id, *STATE_ACTIONS]
    bound = ""
    if isinstance(point, datetime.datetime):
        bound = f" AND {column('created_at')} <= %s"
        params.append(connection.ops.adapt_datetimefield_value(aware(point)))
    elif point is not None:
        point_bound(row, point)  # checks that the delta belongs to the row
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
    # There is no expression for a column read by hand; JSONField's from_db_value only
    # checks whether it is a key transform (django-stubs requires one).
    data_field = cast(models.JSONField, concrete_field(model, "data"))  # AbstractObjectDelta's
    decoded = data_field.from_db_value(data, None, connection)  # type: ignore[arg-type]
    return delta_id, action, decoded


def state_at(row: Row, point: Point | None) -> dict[str, Any] | None:
    """Return the row's recorded state (a delta's `data`) at `point`, or None if absent there.

    Raises `HistoryNotFound` when the row has no recorded state at or before the point and
    was not created (as far as revy knows) after it.
    """
    found = latest_state(row, point)
    if found is UNKNOWN_STATE:
        deltas = row.deltas().filter(action__in=STATE_ACTIONS)
        bounded = deltas if point is None else deltas.filter(point_bound(row, point))
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
        f"The state of {row.label} at {describe_point(point)} is unknown: the row existed "
        "before revy recorded it. `manage.py revy_baseline` records the current state of "
        "such rows."
    )


# Reading --------------------------------------------------------------------------------


def recorded_fields(model: type[models.Model]) -> list[models.Field]:
    config = registry.config_for(model)
    if config is None:  # no longer tracked: everything its old deltas hold is history
        return list(model._meta.concrete_fields)
    return [config.fields[index] for index in config.recorded if index not in config.masked]


def json_value(field: models.Field, state: dict[str, Any] | None) -> Any:
    if state is None:
        return None
    if field.attname in state:
        return state[field.attname]
    # Added since that state was recorded: compare its default, as a snapshot would hold.
    return json.loads(encode(field.get_default()))
