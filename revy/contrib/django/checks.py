"""System checks for revy's settings (ids `revy.E001`...)."""

from __future__ import annotations

from django.core import checks
from django.core.exceptions import ImproperlyConfigured


def check_settings(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """revy.E001: a REVY_* setting names something that does not exist."""
    from revy.contrib.django import settings as revy_settings
    from revy.contrib.django.utils import (
        get_attribute_delta_model,
        get_object_delta_model,
        get_revision_model,
    )

    errors = []
    for validate in (
        revy_settings.validate,
        get_revision_model,
        get_object_delta_model,
        get_attribute_delta_model,
    ):
        try:
            validate()
        except ImproperlyConfigured as error:
            errors.append(
                checks.Error(str(error), hint="Fix the setting it names.", id="revy.E001")
            )
    return errors


def register() -> None:
    checks.register(check_settings, checks.Tags.compatibility)
