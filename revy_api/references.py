"""How actors and objects appear in API responses: `{type, id, display}`.

`References` resolves the actors and objects of a whole page of deltas with one query per
model, so list endpoints cost the same number of queries for 10 rows as for 500.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import models

from revy.contrib.django._meta import related_model
from revy.contrib.django.registry import content_id, pk_from_content_id
from revy_api.field_changes import loaded_field_changes

__all__ = [
    "References",
    "content_type_for_label",
    "type_label",
]


def type_label(content_type_id: int) -> str:
    """Return `app_label.model` for a content type id (cached by Django)."""
    content_type = ContentType.objects.get_for_id(content_type_id)
    return f"{content_type.app_label}.{content_type.model}"


def content_type_for_label(label: str) -> ContentType | None:
    """Return the content type for `app_label.model` (case-insensitive), or None."""
    app_label, _, model = label.lower().partition(".")
    if not app_label or not model:
        return None
    try:
        return ContentType.objects.get_by_natural_key(app_label, model)
    except ContentType.DoesNotExist:
        return None


@cache
def _required_relations(model: type[models.Model], depth: int = 3) -> tuple[str, ...]:
    """The `select_related()` paths of the model's non-null foreign keys, `depth` deep."""
    if depth == 0:
        return ()
    paths: list[str] = []
    for field in model._meta.concrete_fields:
        forward = field.is_relation and (field.many_to_one or field.one_to_one)
        if forward and not field.null:
            paths.append(field.name)
            related = related_model(field)
            paths += [f"{field.name}__{path}" for path in _required_relations(related, depth - 1)]
    return tuple(paths)


class References:
    """Display data for (content type id, object id) pairs, loaded in one batch per model."""

    def __init__(self) -> None:
        self._wanted: dict[int, set[str]] = {}
        self._found: dict[tuple[int, str], models.Model] = {}

    def want(self, content_type_id: int | None, object_id: str | None) -> None:
        if content_type_id is not None and object_id is not None:
            self._wanted.setdefault(content_type_id, set()).add(str(object_id))

    def want_deltas(self, deltas: Iterable[Any]) -> References:
        """Queue the actors and contents of object deltas and their attribute deltas."""
        for delta in deltas:
            self.want(delta.actor_type_id, delta.actor_id)
            self.want(delta.content_type_id, delta.content_id)
            for child in loaded_field_changes(delta) or ():
                self.want(child.actor_type_id, child.actor_id)
        return self

    def load(self) -> References:
        for content_type_id, ids in self._wanted.items():
            model = ContentType.objects.get_for_id(content_type_id).model_class()
            if model is None:
                continue
            pk_field = model._meta.pk
            try:
                keys = [pk_field.to_python(pk_from_content_id(model, value)) for value in ids]
            except Exception:
                continue
            # str() often names related rows ("Engine of Saab"): bring the non-null foreign
            # keys along, or showing a page would cost a query per row.
            rows = model._base_manager.all()
            if relations := _required_relations(model):
                rows = rows.select_related(*relations)
            for instance in rows.filter(pk__in=keys):
                self._found[(content_type_id, content_id(model, instance.pk))] = instance
        self._wanted = {}
        return self

    def ref(self, content_type_id: int | None, object_id: str | None) -> dict[str, Any] | None:
        """Return `{type, id, display}`, or None for the system (no content type)."""
        if content_type_id is None:
            return None
        instance = self._found.get((content_type_id, str(object_id)))
        label = type_label(content_type_id)
        display = str(instance) if instance is not None else f"{label} #{object_id} (deleted)"
        return {"type": label, "id": str(object_id), "display": display}
