"""Deleted rows: which they are (`deleted`), and what their deletion took along (`cascade_of`).

A row is deleted, for history, when its latest state-bearing delta is a deletion: that
`Delete` delta holds its last state (just before the deletion), when and by whom. A row
re-created since without revy knowing (outside a context, by raw SQL) still counts as
deleted; restoring it then fails as any insert of an existing key would.

When a deletion cascades, Django's collector deletes the referring rows in the same
statement batch and revy records each of them in the deleting revision, with the system
(None) as actor. `cascade_of(model, pk)` finds them again without any extra bookkeeping, by
following the foreign keys in their recorded states: a row deleted by the system in the same
revision whose recorded state points, through a relation that cascades, at the deleted row (or
at a row found so) was taken along. `rollback(..., cascade=True)` re-creates them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

from django.contrib.contenttypes.fields import GenericRelation
from django.contrib.contenttypes.models import ContentType
from django.db import models, router
from django.db.models import Exists, ExpressionWrapper, F, OuterRef
from django.db.models import deletion as django_deletion

from revy.contrib.django import deletion as revy_deletion
from revy.contrib.django import registry
from revy.contrib.django._meta import concrete_field, concrete_model, related_model
from revy.contrib.django.snapshots import STATE_ACTIONS, SnapshotField, build_instance
from revy.contrib.django.utils import get_object_delta_model

if TYPE_CHECKING:
    from typing import TypedDict

    from django_stubs_ext import WithAnnotations

    from revy.contrib.django.models import AbstractObjectDelta

    class _Snapshot(TypedDict):
        snapshot: models.Model

    # What deleted() gives: Delete deltas annotated with the row's last state.
    DeletionDelta = WithAnnotations[AbstractObjectDelta, _Snapshot]

__all__ = ["CascadedRow", "cascade_of", "deleted", "last_deletions"]

T = TypeVar("T")


def deleted(
    model: type[models.Model], *, using: str | None = None
) -> models.QuerySet[DeletionDelta]:
    """Return the deletions of the rows of `model` that are deleted now, newest first.

    One `Delete` object delta per row whose latest state-bearing delta is that deletion
    (rows deleted by a cascade included), annotated with `snapshot`: the row's last state,
    an unsaved instance. The delta says when (`created_at`), by whom (`actor`, None for the
    system, which is the actor of cascades), why (`description`, `revision`) and which row
    (`content_id`). One query; filter and paginate it like any queryset::

        for delta in deleted(Car)[:20]:
            print(delta.snapshot, delta.created_at, delta.actor)

    `using` names the database of the rows and their history (default: the one the router
    writes the model to).
    """
    concrete = concrete_model(model)
    using = using or router.db_for_write(concrete)
    content_type = ContentType.objects.db_manager(using).get_for_model(concrete)
    deltas = get_object_delta_model().objects.db_manager(using).filter(content_type=content_type)
    return (
        last_deletions(deltas)
        .annotate(snapshot=ExpressionWrapper(F("data"), output_field=SnapshotField(model)))
        .order_by("-id")
    )


def last_deletions(
    deltas: models.QuerySet[AbstractObjectDelta],
) -> models.QuerySet[AbstractObjectDelta]:
    """Narrow an ObjectDelta queryset to the deletions no later state of their row follows."""
    later = get_object_delta_model()._base_manager.filter(
        content_type_id=OuterRef("content_type_id"),
        content_id=OuterRef("content_id"),
        id__gt=OuterRef("id"),
        action__in=STATE_ACTIONS,
    )
    # NOT EXISTS: one index seek per deletion on (content_type, content_id, id).
    return deltas.filter(action="Delete").exclude(Exists(later))


# What a deletion took along ----------------------------------------------------------------


@dataclass(frozen=True)
class CascadedRow:
    """A row a deletion took along: its model, primary key, last state and Delete delta."""

    model: type[models.Model]
    pk: Any
    state: dict[str, Any]
    delta: AbstractObjectDelta

    def instance(self) -> models.Model:
        """The row as it was just before the deletion (unsaved)."""
        instance = build_instance(self.model, self.state)
        assert instance is not None
        return instance


# on_delete handlers that keep the referring row (or refuse): rows they touch are not deleted.
_KEEPING = {
    django_deletion.PROTECT,
    django_deletion.RESTRICT,
    django_deletion.SET_NULL,
    django_deletion.SET_DEFAULT,
    django_deletion.DO_NOTHING,
    revy_deletion.SET_NULL,
    revy_deletion.SET_DEFAULT,
}


def _cascades(field: models.Field[Any, Any]) -> bool:
    """True when deleting the row `field` points at deletes the row holding `field`."""
    # A relation's remote_field is its rel, never None (django-stubs types any field's).
    on_delete = cast(models.ForeignObjectRel, field.remote_field).on_delete
    if on_delete in _KEEPING:
        return False
    # SET(value), Django's and revy's, are closures of this name.
    return getattr(on_delete, "__name__", "") != "set_on_delete"


def _references(
    model: type[models.Model], state: dict[str, Any], using: str
) -> Iterable[tuple[tuple[type[models.Model], str], bool]]:
    """The rows `state` points at, as (concrete model, content id), and whether deleting that
    row cascades to this one."""
    for field in model._meta.concrete_fields:
        if not (field.many_to_one or field.one_to_one):
            continue
        value = state.get(field.attname)
        if value is None or field.related_model is None:
            continue
        target = related_model(field)
        # A many-to-one or one-to-one field: a ForeignKey (django-stubs types the loop's
        # fields as any concrete field).
        if cast(models.ForeignKey[Any, Any], field).target_field.primary_key:
            yield (target, registry.content_id(target, value)), _cascades(field)


def _generic_references(
    model: type[models.Model],
    state: dict[str, Any],
    taken: dict[tuple[type[models.Model], str], None],
    using: str,
) -> bool:
    """True when `state` is a generic relation's row of a taken row whose model declares a
    `GenericRelation` to `model` (Django cascades those)."""
    for target, _ in taken:
        for relation in target._meta.private_fields:
            if not isinstance(relation, GenericRelation) or relation.related_model is not model:
                continue
            type_field = concrete_field(model, relation.content_type_field_name)
            id_field = concrete_field(model, relation.object_id_field_name)
            type_id = ContentType.objects.db_manager(using).get_for_model(target).pk
            if state.get(type_field.attname) == type_id and str(state.get(id_field.attname)) in {
                content_id for model_, content_id in taken if model_ is target
            }:
                return True
    return False


def cascade_of(
    model: type[models.Model], pk: Any, *, using: str | None = None
) -> list[CascadedRow]:
    """Return the rows the latest deletion of one row took along, in the order to re-create
    them (each after the rows it refers to).

    Empty when the row's latest state-bearing delta is not a deletion. The rows are found by
    following the foreign keys (and generic relations) in the recorded states of the rows the
    system deleted in the same revision; rows that exist again, or whose history went on after
    that deletion, are left out. A few queries whatever the number of rows.
    """
    concrete = concrete_model(model)
    using = using or router.db_for_write(concrete)
    delta_model = get_object_delta_model()
    content_type = ContentType.objects.db_manager(using).get_for_model(concrete)
    root_id = registry.content_id(concrete, pk)
    deletion = (
        delta_model._base_manager.using(using)
        .filter(content_type=content_type, content_id=root_id, action__in=STATE_ACTIONS)
        .order_by("-id")
        .first()
    )
    if deletion is None or deletion.action != "Delete":
        return []
    candidates = list(
        delta_model._base_manager.using(using)
        .filter(revision_id=deletion.revision_id, action="Delete", actor_type__isnull=True)
        .exclude(pk=deletion.pk)
        .order_by("id")
    )
    # Deltas that hold a state (a deletion's is the row's last): the rows that may be taken.
    rows: dict[tuple[type[models.Model], str], AbstractObjectDelta] = {}
    for candidate in candidates:
        candidate_model = ContentType.objects.db_manager(using).get_for_id(
            candidate.content_type_id
        )
        found = candidate_model.model_class()
        if found is not None and candidate.data is not None:
            rows.setdefault((concrete_model(found), candidate.content_id), candidate)
    # The deleted row, and its multi-table parents: the same object.
    taken: dict[tuple[type[models.Model], str], None] = {(concrete, root_id): None}
    for parent in concrete._meta.get_parent_list():
        taken[(parent, registry.content_id(parent, pk))] = None
    found_any = True
    while found_any:  # until no row joins: each pass adds the rows pointing at those found
        found_any = False
        for key, candidate in rows.items():
            if key in taken:
                continue
            # Not None: `rows` keeps the deltas that hold a state (so does `chosen` below).
            row_model, state = key[0], cast("dict[str, Any]", candidate.data)
            if any(
                cascades and target in taken
                for target, cascades in _references(row_model, state, using)
            ) or _generic_references(row_model, state, taken, using):
                taken[key] = None
                found_any = True
    chosen = [rows[key] for key in taken if key in rows]
    chosen = _still_deleted(chosen, using)
    return _in_dependency_order(
        [
            CascadedRow(
                row_model,
                registry.pk_from_content_id(row_model, delta.content_id),
                cast("dict[str, Any]", delta.data),
                delta,
            )
            for delta in chosen
            for row_model in [_model_of(delta, using)]
        ],
        using,
    )


def _model_of(delta: AbstractObjectDelta, using: str) -> type[models.Model]:
    found = ContentType.objects.db_manager(using).get_for_id(delta.content_type_id).model_class()
    assert found is not None
    return concrete_model(found)


def _still_deleted(deltas: list[AbstractObjectDelta], using: str) -> list[AbstractObjectDelta]:
    """Keep the deletions that are still their row's latest state, of rows that are absent."""
    if not deltas:
        return []
    by_type: dict[int, list[AbstractObjectDelta]] = {}
    for delta in deltas:
        by_type.setdefault(delta.content_type_id, []).append(delta)
    kept: list[AbstractObjectDelta] = []
    for type_id, group in by_type.items():
        model = _model_of(group[0], using)
        latest: dict[str, int] = {}
        existing: set[str] = set()
        for chunk in _chunked(group):
            later = (
                get_object_delta_model()
                ._base_manager.using(using)
                .filter(
                    content_type_id=type_id,
                    content_id__in=[delta.content_id for delta in chunk],
                    id__gt=min(delta.pk for delta in chunk),
                    action__in=STATE_ACTIONS,
                )
                .values_list("content_id", "id")
            )
            for content_id, pk in later:
                latest[content_id] = max(pk, latest.get(content_id, pk))
            pks = [registry.pk_from_content_id(model, delta.content_id) for delta in chunk]
            rows = model._base_manager.using(using).filter(pk__in=pks)
            existing.update(
                registry.content_id(model, pk) for pk in rows.values_list("pk", flat=True)
            )
        kept.extend(
            delta
            for delta in group
            if latest.get(delta.content_id, delta.pk) <= delta.pk
            and delta.content_id not in existing
        )
    return sorted(kept, key=lambda delta: delta.pk)


def _chunked(items: list[T], size: int = 500) -> Iterable[list[T]]:
    # Well under every backend's limit on query parameters.
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _in_dependency_order(rows: list[CascadedRow], using: str) -> list[CascadedRow]:
    """Sort so that every row comes after the rows of the list it refers to (stable by delta
    id; rows in a reference cycle keep that order)."""
    keys = {(row.model, row.delta.content_id): row for row in rows}
    waiting = {
        key: {
            target
            for target, _ in _references(row.model, row.state, using)
            if target in keys and target != key
        }
        for key, row in keys.items()
    }
    ordered: list[CascadedRow] = []
    while waiting:
        ready = [key for key, needs in waiting.items() if not needs]
        if not ready:  # a cycle: the database checks foreign keys at commit
            ready = [next(iter(waiting))]
        for key in ready:
            ordered.append(keys[key])
            del waiting[key]
        for needs in waiting.values():
            needs.difference_update(ready)
    return ordered
