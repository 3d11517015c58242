"""Rebuild model instances from history: the `ObjectSnapshot` expression.

Every state-bearing object delta (create, update, baseline, delete) stores the row's full
state, so the state at any delta is a single indexed lookup. `ObjectSnapshot(Model)` annotates
an ObjectDelta queryset with the instance as it was at each delta (for a deletion, just before
it); a custom event delta gets the state of the latest state-bearing delta before it (None when
that was the row's deletion, or when there is none).
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import Case, F, OuterRef, Subquery, Value, When

from revy.contrib.django.encoding import decode

__all__ = ["STATE_ACTIONS", "ObjectSnapshot", "SnapshotField", "build_instance"]

STATE_ACTIONS = ("Create", "Update", "Delete", "Baseline")


def build_instance(model: type[models.Model], state: dict[str, Any] | None) -> models.Model | None:
    """Return an unsaved instance of `model` holding `state` (a delta's `data`).

    Fields the model no longer has are skipped; fields added since, and the masked and
    excluded fields whose values revy never stores, get their default. Saving the instance
    re-creates the row with its primary key.
    """
    if state is None:
        return None
    values = []
    for field in model._meta.concrete_fields:
        if field.attname in state:
            values.append(decode(field, state[field.attname]))
        else:
            values.append(field.get_default())
    return model(*values)


class SnapshotField(models.JSONField):
    """Output field of `ObjectSnapshot`: turns the stored state into a model instance."""

    def __init__(self, model: type[models.Model], *args: Any, **kwargs: Any) -> None:
        self.snapshot_model = model
        super().__init__(*args, **kwargs)

    def from_db_value(self, value, expression, connection):
        state = super().from_db_value(value, expression, connection)
        return build_instance(self.snapshot_model, state)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        return name, path, [self.snapshot_model, *args], kwargs


class ObjectSnapshot(Case):
    """Annotate object deltas with the instance of `model` as it was at each delta.

    One SQL query whatever the history length::

        ObjectDelta.objects.filter(...).annotate(snapshot=ObjectSnapshot(User))

    The instance is unsaved; `.save()` re-creates the row with its primary key. Deltas of
    other models (in a history with aggregates, say) are annotated with None.
    """

    def __init__(self, model: type[models.Model]) -> None:
        from django.contrib.contenttypes.models import ContentType

        from revy.contrib.django.utils import get_object_delta_model

        # Deltas are recorded under the concrete model's content type (proxies included).
        content_type_id = ContentType.objects.get_for_model(model).pk
        latest_state = (
            get_object_delta_model()
            ._base_manager.filter(
                content_type_id=OuterRef("content_type_id"),
                content_id=OuterRef("content_id"),
                action__in=STATE_ACTIONS,
                id__lte=OuterRef("id"),
            )
            .order_by("-id")
            # After a deletion the row no longer exists: an event then has no snapshot.
            .annotate(
                state=Case(
                    When(action="Delete", then=Value(None, output_field=models.JSONField())),
                    default=F("data"),
                    output_field=models.JSONField(),
                )
            )
            .values("state")[:1]
        )
        self.snapshot_model = model
        super().__init__(
            When(content_type_id=content_type_id, action__in=STATE_ACTIONS, then=F("data")),
            When(content_type_id=content_type_id, then=Subquery(latest_state)),
            default=Value(None),
            output_field=SnapshotField(model),
        )
