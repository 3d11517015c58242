"""The field changes (attribute deltas) a page of object deltas shows, read in one query.

REST's delta lists and GraphQL's `changes` show of each field change its field, action,
values, actor, description and time. `load_field_changes` reads only those columns, as
plain rows (`FieldChange`), for a whole page at once, and keeps them as a list on each
object delta. Model instances and Django's `prefetch_related` cost twice the query itself
for a page of 50 deltas and their 150 field changes (measured in `benchmarks/API-SCALE.md`):
a model's `__init__` and revy's loading hook per row, and a related manager's queryset per
object delta.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from typing import Any

from revy.contrib.django.utils import get_attribute_delta_model

__all__ = [
    "SHOWN_FIELDS",
    "FieldChange",
    "field_changes",
    "load_field_changes",
    "loaded_field_changes",
]

#: The columns of an attribute delta that the APIs show (and `parent_id`, to group them).
SHOWN_FIELDS = (
    "id",
    "parent_id",
    "field_name",
    "action",
    "old_value",
    "new_value",
    "actor_type_id",
    "actor_id",
    "description",
    "created_at",
)

# Straight into the object delta's __dict__: a plain attribute, never mistaken for a field.
_ATTRIBUTE = "_revy_field_changes"


class FieldChange:
    """One field change as the APIs show it: an attribute delta's shown columns
    (`SHOWN_FIELDS`, the key as `pk`), and `parent`, the object delta it belongs to."""

    __slots__ = (
        "action",
        "actor_id",
        "actor_type_id",
        "created_at",
        "description",
        "field_name",
        "new_value",
        "old_value",
        "parent",
        "pk",
    )

    def __init__(self, row: Sequence[Any], parent: Any) -> None:
        (
            self.pk,
            _,
            self.field_name,
            self.action,
            self.old_value,
            self.new_value,
            self.actor_type_id,
            self.actor_id,
            self.description,
            self.created_at,
        ) = row
        self.parent = parent

    pk: Any
    field_name: str
    action: str
    old_value: Any
    new_value: Any
    actor_type_id: int | None
    actor_id: str | None
    description: str
    created_at: datetime.datetime
    parent: Any


def load_field_changes(deltas: Iterable[Any]) -> None:
    """Read the field changes of `deltas` (object deltas of one database) in one query, in id
    order, unless they are loaded already; read them with `loaded_field_changes`."""
    wanted: dict[Any, list[Any]] = {}  # by key: a page may hold one row twice
    for delta in deltas:
        if delta.pk is not None and _ATTRIBUTE not in delta.__dict__:
            wanted.setdefault(delta.pk, []).append(delta)
    if not wanted:
        return
    using = next(iter(wanted.values()))[0]._state.db
    loaded: dict[Any, list[FieldChange]] = {pk: [] for pk in wanted}
    rows = (
        get_attribute_delta_model()
        ._base_manager.db_manager(using)
        .filter(parent_id__in=list(wanted))
        .order_by("id")
        .values_list(*SHOWN_FIELDS)
    )
    for row in rows:
        parent = row[1]
        loaded[parent].append(FieldChange(row, wanted[parent][0]))
    for pk, same in wanted.items():
        for delta in same:
            delta.__dict__[_ATTRIBUTE] = loaded[pk]


def loaded_field_changes(delta: Any) -> Sequence[FieldChange] | None:
    """The field changes `load_field_changes` read for `delta`, or None."""
    return delta.__dict__.get(_ATTRIBUTE)


def field_changes(delta: Any) -> Sequence[FieldChange]:
    """The field changes of `delta` in id order: loaded already, or read now (one query)."""
    loaded = loaded_field_changes(delta)
    if loaded is None:
        load_field_changes([delta])
        loaded = loaded_field_changes(delta) or ()
    return loaded
