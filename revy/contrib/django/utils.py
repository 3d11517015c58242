"""Look up the (swappable) history models."""

from __future__ import annotations

from django.db import models

from revy.contrib.django import settings as revy_settings


@revy_settings.cached
def _get(setting: str) -> type[models.Model]:
    # Cached (every write asks): cleared when a REVY_* setting changes.
    return revy_settings.history_model(setting)


def get_revision_model() -> type[models.Model]:
    """Return the model named by REVY_REVISION_MODEL (default `revy.Revision`)."""
    return _get("REVY_REVISION_MODEL")


def get_object_delta_model() -> type[models.Model]:
    """Return the model named by REVY_OBJECT_DELTA_MODEL (default `revy.ObjectDelta`)."""
    return _get("REVY_OBJECT_DELTA_MODEL")


def get_attribute_delta_model() -> type[models.Model]:
    """Return the model named by REVY_ATTRIBUTE_DELTA_MODEL (default `revy.AttributeDelta`)."""
    return _get("REVY_ATTRIBUTE_DELTA_MODEL")
