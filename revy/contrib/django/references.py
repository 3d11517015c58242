"""Rows named in text: `app_label.model:pk` on command lines, `{type, id}` in tokens.

The same spelling as the APIs' `actor` filter and their `{type, id, display}` references:
`type` is the model's content type as `app_label.model` (lower case), `id` the primary key as
history stores it (`content_id`: its text, or a composite key's JSON list).
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import models

from revy.contrib.django.registry import content_id, is_composite, pk_from_content_id

__all__ = ["model_for_label", "parse_row", "reference", "row_of", "type_label"]


def type_label(model: type[models.Model]) -> str:
    """Return `app_label.model` of a model (its concrete model's, as history records it)."""
    opts = (model._meta.concrete_model or model)._meta
    return f"{opts.app_label}.{opts.model_name}"


def model_for_label(label: str) -> type[models.Model]:
    """Return the model named `app_label.model` (case-insensitive); ValueError if none."""
    app_label, _, name = str(label).partition(".")
    if not app_label or not name:
        raise ValueError(f"{label!r} is not a model label: write app_label.model, e.g. auth.user.")
    try:
        return apps.get_model(app_label, name)
    except LookupError:
        raise ValueError(f"There is no installed model {label!r} (app_label.model).") from None


def row_of(model: type[models.Model], stored_id: str) -> Any:
    """Return the primary key value of a row whose key history stores as `stored_id`."""
    if is_composite(model):
        try:
            return pk_from_content_id(model, stored_id)
        except ValueError:
            raise ValueError(
                f"{stored_id!r} is not a key of {model._meta.label}: a composite key is "
                "written as the JSON list of its parts."
            ) from None
    try:
        return model._meta.pk.to_python(stored_id)
    except ValidationError:
        raise ValueError(f"{stored_id!r} is not a primary key of {model._meta.label}.") from None


def parse_row(text: str) -> tuple[type[models.Model], Any]:
    """Parse `app_label.model:pk` into (model, primary key); ValueError on bad input."""
    label, separator, stored_id = str(text).partition(":")
    if not separator or not stored_id:
        raise ValueError(f"{text!r} names no row: write app_label.model:pk, e.g. auth.user:5.")
    model = model_for_label(label)
    return model, row_of(model, stored_id)


def reference(instance: models.Model) -> dict[str, str]:
    """Return `{"type": "app_label.model", "id": "<pk as history stores it>"}`."""
    # __class__, not type(): request.user is a lazy proxy of the user.
    model = instance.__class__
    return {"type": type_label(model), "id": content_id(model, instance.pk)}
