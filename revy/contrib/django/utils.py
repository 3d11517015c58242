"""Look up the (swappable) history models."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from revy.contrib.django import settings as revy_settings

if TYPE_CHECKING:
    from django.db import models

    from revy.contrib.django.models import (
        AbstractAttributeDelta,
        AbstractObjectDelta,
        AbstractRevision,
    )

__all__ = [
    "get_attribute_delta_model",
    "get_object_delta_model",
    "get_revision_model",
]


@revy_settings.cached
def _get(setting: str) -> type[models.Model]:
    # Cached (every write asks): cleared when a REVY_* setting changes.
    return revy_settings.history_model(setting)


# The casts below: history_model() checks that the model a REVY_*_MODEL setting names
# subclasses the setting's abstract base (revy.E005 otherwise), which the checker cannot see.


def get_revision_model() -> type[AbstractRevision]:
    """Return the model named by REVY_REVISION_MODEL (default `revy.Revision`)."""
    return cast("type[AbstractRevision]", _get("REVY_REVISION_MODEL"))


def get_object_delta_model() -> type[AbstractObjectDelta]:
    """Return the model named by REVY_OBJECT_DELTA_MODEL (default `revy.ObjectDelta`)."""
    return cast("type[AbstractObjectDelta]", _get("REVY_OBJECT_DELTA_MODEL"))


def get_attribute_delta_model() -> type[AbstractAttributeDelta]:
    """Return the model named by REVY_ATTRIBUTE_DELTA_MODEL (default `revy.AttributeDelta`)."""
    return cast("type[AbstractAttributeDelta]", _get("REVY_ATTRIBUTE_DELTA_MODEL"))
