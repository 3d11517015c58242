"""Factories and readers shared by the read-side tests (history, snapshots, baseline)."""

from __future__ import annotations

import datetime
import time
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils import timezone

from revy import Context
from revy.contrib.django.registry import content_id
from tests.history_models import AttributeDelta, ObjectDelta, Revision


def change(instance: models.Model, **fields: Any) -> models.Model:
    """Assign `fields` and save, in a revision of its own; return that revision."""
    with Context():
        for name, value in fields.items():
            setattr(instance, name, value)
        instance.save()
    return last_revision()


def created(model: type[models.Model], **fields: Any) -> tuple[models.Model, models.Model]:
    """Create a row in a revision of its own; return (row, revision)."""
    with Context():
        instance = model.objects.create(**fields)
    return instance, last_revision()


def deleted(instance: models.Model) -> models.Model:
    """Delete a row in a revision of its own; return that revision."""
    with Context():
        instance.delete()
    return last_revision()


def last_revision() -> Revision:
    return Revision.objects.order_by("-id").first()


def revision_count() -> int:
    return Revision.objects.count()


def deltas_of(obj_or_model: Any, pk: Any = None) -> list[ObjectDelta]:
    """The object deltas of one row, oldest first."""
    if isinstance(obj_or_model, models.Model):
        model, pk = type(obj_or_model), obj_or_model.pk
    else:
        model = obj_or_model
    return list(
        ObjectDelta.objects.filter(
            content_type=ContentType.objects.get_for_model(model), content_id=content_id(model, pk)
        ).order_by("id")
    )


def last_delta_of(obj_or_model: Any, pk: Any = None) -> ObjectDelta:
    return deltas_of(obj_or_model, pk)[-1]


def changed_fields(delta: ObjectDelta) -> dict[str, tuple[Any, Any]]:
    """Map each attribute delta of `delta` to its (old, new) JSON values."""
    return {
        attribute.field_name: (attribute.old_value, attribute.new_value)
        for attribute in AttributeDelta.objects.filter(parent=delta).order_by("id")
    }


def moment() -> datetime.datetime:
    """Return the current time, strictly after every delta already written and before every
    delta written afterwards (deltas take `timezone.now()` with microseconds)."""
    time.sleep(0.002)
    now = timezone.now()
    time.sleep(0.002)
    return now


def row_values(instance: models.Model) -> dict[str, Any]:
    """The concrete field values of an instance (primary key included), by attname."""
    return {
        field.attname: getattr(instance, field.attname) for field in instance._meta.concrete_fields
    }
