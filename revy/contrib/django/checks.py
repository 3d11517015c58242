"""System checks for revy's settings: one stable id per kind of problem.

The ids and what they mean are listed in `revy.contrib.django.settings`, where the settings
are parsed, and in the README's settings reference. `REVY_API` is checked by `revy_api.checks`
when `revy_api` is in INSTALLED_APPS.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.core import checks

from revy.contrib.django import settings as revy_settings

__all__ = ["check_settings", "register"]


def check_settings(
    app_configs: Sequence[AppConfig] | None = None,
    databases: Sequence[str] | None = None,
    **kwargs: Any,
) -> list[checks.CheckMessage]:
    """Report every problem of the REVY_* settings (`revy.E001`... and `revy.W001`)."""
    return [problem.check_message() for problem in revy_settings.problems()]


def register() -> None:
    """Register revy's checks with Django (idempotent)."""
    checks.register(check_settings, checks.Tags.compatibility)
