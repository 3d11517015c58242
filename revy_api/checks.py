"""System checks for `REVY_API`, the API plugin's settings (ids `revy_api.E001`...).

Registered by the `revy_api` app: add `"revy_api"` to INSTALLED_APPS. The ids are listed in
`revy.contrib.django.settings` and the README's settings reference. Without the app the same
problems surface as `ImproperlyConfigured` on the first request that needs the setting.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.core import checks

from revy.contrib.django import settings as revy_settings
from revy.contrib.django.settings import (
    API_OUT_OF_RANGE,
    API_SCHEMA_CLASS,
    API_UNKNOWN_KEY,
    API_WRONG_TYPE,
    Problem,
)
from revy_api.visibility import parse_policy_class

__all__ = [
    "API_SETTINGS",
    "api_problems",
    "check_api_settings",
    "register",
    "schema_class_problems",
]

# Every key REVY_API may hold, and the type of its value ("path": a dotted import path,
# checked by its own parser below).
API_SETTINGS: dict[str, str] = {
    "ORGANIZATION_RESOLVER": "path",
    "VISIBILITY_POLICY": "path",
    "REQUIRE_IF_MATCH": "bool",
    "GRAPHQL_MAX_ALIASES": "limit",
    "GRAPHQL_MAX_DEPTH": "limit",
    "GRAPHQL_MAX_TOKENS": "limit",
}


def _check_values(values: Any, found: list[Problem]) -> None:
    for key, value in values.items():
        kind = API_SETTINGS.get(key)
        where = f"REVY_API[{key!r}]"
        if kind is None:
            found.append(
                Problem(
                    API_UNKNOWN_KEY,
                    f"{where} is not a setting of revy_api; it has no effect.",
                    revy_settings.close_match_hint(
                        str(key),
                        API_SETTINGS,
                        f"The keys are: {', '.join(API_SETTINGS)}.",
                    ),
                )
            )
        elif kind == "bool" and not isinstance(value, bool):
            found.append(
                Problem(
                    API_WRONG_TYPE,
                    f"{where} must be True or False, not {type(value).__name__} {value!r}.",
                    f"Write {where} = True (or False, the default).",
                )
            )
        elif kind == "limit" and value is not None:
            if not isinstance(value, int) or isinstance(value, bool):
                found.append(
                    Problem(
                        API_WRONG_TYPE,
                        f"{where} must be a positive integer or None, "
                        f"not {type(value).__name__} {value!r}.",
                        f"Write a number, e.g. {where} = 20.",
                    )
                )
            elif value < 1:
                found.append(
                    Problem(
                        API_OUT_OF_RANGE,
                        f"{where} must be a positive integer or None, not {value!r}.",
                        "Write a limit of 1 or more, or None for no limit.",
                    )
                )


def api_problems() -> list[Problem]:
    """Return every problem of REVY_API."""
    found: list[Problem] = []
    values = revy_settings.parse_api_settings(found)
    if found:
        return found  # REVY_API is not a dict: nothing more to say
    _check_values(values, found)
    revy_settings.parse_organization_resolver(found)
    parse_policy_class(found)
    return found


def schema_class_problems() -> list[Problem]:
    """revy_api.W002: drf-spectacular is installed but is not DRF's schema class."""
    from django.apps import apps
    from rest_framework.settings import api_settings

    if not apps.is_installed("drf_spectacular"):
        return []
    from drf_spectacular.openapi import AutoSchema

    schema_class = api_settings.DEFAULT_SCHEMA_CLASS
    if isinstance(schema_class, type) and issubclass(schema_class, AutoSchema):
        return []
    name = getattr(schema_class, "__qualname__", repr(schema_class))
    module = getattr(schema_class, "__module__", "")
    return [
        Problem(
            API_SCHEMA_CLASS,
            f"REST_FRAMEWORK['DEFAULT_SCHEMA_CLASS'] is {module}.{name}, not drf-spectacular's: "
            "revy's views cannot be described with it (`manage.py spectacular` and the schema "
            "view fail with a TypeError).",
            'Add "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema" to REST_FRAMEWORK.',
        )
    ]


def check_api_settings(
    app_configs: Sequence[AppConfig] | None = None,
    databases: Sequence[str] | None = None,
    **kwargs: Any,
) -> list[checks.CheckMessage]:
    """Report every problem of REVY_API (`revy_api.E001`...), and a DRF schema class that
    drf-spectacular cannot work with (`revy_api.W002`)."""
    return [problem.check_message() for problem in [*api_problems(), *schema_class_problems()]]


def register() -> None:
    """Register the API plugin's checks with Django (idempotent)."""
    checks.register(check_api_settings, checks.Tags.compatibility)
