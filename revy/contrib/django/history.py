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
from typing import TYPE_CHECKING, Any, TypeVar

from django.db import models
from django.db.models import Q

from revy.contrib.django import registry
from revy.contrib.django._meta import concrete_model
from revy.contrib.django.models import ObjectDeltaAggregate
from revy.contrib.django.snapshots import build_instance
from revy.contrib.django.states import (
    HistoryError,
    HistoryNotFound,
    ObjectAbsent,
    Point,
    RevisionConflict,
    Row,
    find_row,
    json_value,
    recorded_fields,
    resolve_point,
    state_at,
)
from revy.contrib.django.utils import (
    get_object_delta_model,
    get_revision_model,
)

if TYPE_CHECKING:
    from revy.contrib.django.models import AbstractObjectDelta, AbstractRevision

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

M = TypeVar("M", bound=models.Model)


def history_of(
    obj_or_model: models.Model | type[models.Model],
    pk: Any = None,
    *,
    aggregates: bool = False,
    using: str | None = None,
) -> models.QuerySet[AbstractObjectDelta]:
    """Return the object deltas of one row, newest first.

    `history_of(obj)` or `history_of(Model, pk)`: the row's own deltas and those of its
    many-to-many links (the through rows that link it, added and removed). With
    `aggregates=True`, also the deltas of the rows that name this one as an aggregate
    (`get_event_aggregates()`, `REVY_AGGREGATES`). One query either way; the row need not
    exist any more.
    """
    row = find_row(obj_or_model, pk, using)
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


def _reference(row: Row) -> models.Model:
    """An unsaved stand-in carrying only the pk: enough for content type lookups."""
    model = concrete_model(row.model)
    instance = model.__new__(model)
    instance.__dict__[model._meta.pk.attname] = row.pk
    return instance


def snapshot(
    model: type[M],
    pk: Any,
    *,
    revision: AbstractRevision | None = None,
    delta: AbstractObjectDelta | None = None,
    at: datetime.datetime | None = None,
    using: str | None = None,
) -> M | None:
    """Return an unsaved instance of `model` as the row was at that point.

    Without a point: its latest recorded state. Returns None when the row did not exist at
    that point (not created yet, or deleted). `delta=D` gives the state right after D, or
    just before it when D is a deletion. Saving the instance re-creates the row with its pk.

    Raises `HistoryNotFound` when the row has no history, or no known state at that point.
    `using` names the row's database (default: the one the router writes the model to).
    """
    row = Row(model, pk, using)
    return build_instance(model, state_at(row, resolve_point(revision, delta, at)))


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
    row = Row(model, pk, using)
    before = state_at(row, _as_point(since)) if since is not None else None
    after = state_at(row, _as_point(until))
    changes = {}
    for field in recorded_fields(row.model):
        old, new = json_value(field, before), json_value(field, after)
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


# Writing history back lives in `restore`, whole tables at a past time in `asof`, deleted
# rows in `recovery` and erasure in `erasure`; their names belong to this module's public API.
from revy.contrib.django.asof import as_of  # noqa: E402
from revy.contrib.django.erasure import erase  # noqa: E402
from revy.contrib.django.recovery import deleted  # noqa: E402
from revy.contrib.django.restore import find_conflicts, revert, rollback  # noqa: E402
