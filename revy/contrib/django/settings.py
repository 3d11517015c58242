"""Lazy accessors for revy's settings.

Every value is read from `django.conf.settings` at call time and cached until a setting
changes (`override_settings` sends `setting_changed`), so tests can change any of them.
`validate()` raises `ImproperlyConfigured` with a message naming the faulty entry.
"""

from __future__ import annotations

import functools
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.core.signals import setting_changed

DEFAULTS: dict[str, Any] = {
    "REVY_MODELS": ("*",),
    "REVY_EXCLUDED_MODELS": (),
    "REVY_EXCLUDED_FIELDS": (),
    "REVY_MASKED_FIELDS": ("auth.User.password",),
    "REVY_TRACK_OUTSIDE_CONTEXT": False,
    "REVY_BATCH_SIZE": 1000,
    "REVY_AGGREGATES": {},
    "REVY_REVISION_MODEL": "revy.Revision",
    "REVY_OBJECT_DELTA_MODEL": "revy.ObjectDelta",
    "REVY_ATTRIBUTE_DELTA_MODEL": "revy.AttributeDelta",
}

# Never tracked: revy's own tables and framework bookkeeping.
ALWAYS_EXCLUDED_APPS = frozenset({"revy", "contenttypes", "sessions", "migrations"})
ALWAYS_EXCLUDED_MODELS = frozenset({"admin.logentry", "auth.permission"})

MASK = "**********"

_caches: list[functools._lru_cache_wrapper] = []


def cached(function):
    """Cache `function`'s results until a REVY_* setting changes."""
    cached_function = functools.cache(function)
    _caches.append(cached_function)
    return cached_function


def get(name: str) -> Any:
    """Return the setting `name`, or revy's default for it."""
    return getattr(settings, name, DEFAULTS[name])


def api(name: str, default: Any = None) -> Any:
    """Return `REVY_API[name]` (the API plugin's settings), read at call time."""
    return getattr(settings, "REVY_API", {}).get(name, default)


@cached
def track_outside_context() -> bool:
    return bool(get("REVY_TRACK_OUTSIDE_CONTEXT"))


@cached
def batch_size() -> int:
    size = get("REVY_BATCH_SIZE")
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ImproperlyConfigured(f"REVY_BATCH_SIZE must be a positive integer, not {size!r}.")
    return size


def _model(label: str, setting: str):
    try:
        return apps.get_model(label)
    except (LookupError, ValueError):
        raise ImproperlyConfigured(
            f"{setting} names {label!r}, which is not an installed model. "
            "Use 'app_label.ModelName'."
        ) from None


def _field(label: str, setting: str) -> tuple[type, str]:
    model_label, _, field_name = label.rpartition(".")
    if not model_label or not field_name:
        raise ImproperlyConfigured(
            f"{setting} entry {label!r} must look like 'app_label.ModelName.field'."
        )
    try:
        model = apps.get_model(model_label)
    except (LookupError, ValueError):
        raise ImproperlyConfigured(
            f"{setting} names {label!r}, but {model_label!r} is not an installed model. "
            "Use 'app_label.ModelName.field'."
        ) from None
    try:
        field = model._meta.get_field(field_name)
    except FieldDoesNotExist:
        raise ImproperlyConfigured(
            f"{setting} names {label!r}, but {model_label} has no field {field_name!r}."
        ) from None
    return model._meta.concrete_model, field.attname


@cached
def included() -> tuple[bool, frozenset[str], frozenset[type]]:
    """Return (everything, app labels, models) that REVY_MODELS includes."""
    everything, app_labels, models = False, set(), set()
    for label in get("REVY_MODELS"):
        if label == "*":
            everything = True
        elif "." in label:
            models.add(_model(label, "REVY_MODELS")._meta.concrete_model)
        else:
            try:
                apps.get_app_config(label)
            except LookupError:
                raise ImproperlyConfigured(
                    f"REVY_MODELS names {label!r}, which is neither '*', an installed app "
                    "label nor 'app_label.ModelName'."
                ) from None
            app_labels.add(label)
    return everything, frozenset(app_labels), frozenset(models)


@cached
def excluded_models() -> frozenset[type]:
    return frozenset(
        _model(label, "REVY_EXCLUDED_MODELS")._meta.concrete_model
        for label in get("REVY_EXCLUDED_MODELS")
    )


@cached
def excluded_fields() -> dict[type, frozenset[str]]:
    return _fields_by_model(get("REVY_EXCLUDED_FIELDS"), "REVY_EXCLUDED_FIELDS")


@cached
def masked_fields() -> dict[type, frozenset[str]]:
    labels = get("REVY_MASKED_FIELDS")
    if not apps.is_installed("django.contrib.auth"):
        # The default names auth.User; a project without django.contrib.auth has no such model.
        labels = [label for label in labels if label != "auth.User.password"]
    return _fields_by_model(labels, "REVY_MASKED_FIELDS")


@cached
def aggregates() -> dict[type, tuple[str, ...]]:
    """Map models to the foreign keys whose targets are aggregates of their changes."""
    result: dict[type, tuple[str, ...]] = {}
    for label, field_names in get("REVY_AGGREGATES").items():
        model = _model(label, "REVY_AGGREGATES")
        names = []
        for name in field_names:
            try:
                field = model._meta.get_field(name)
            except FieldDoesNotExist:
                raise ImproperlyConfigured(
                    f"REVY_AGGREGATES names {label}.{name}, but {label} has no such field."
                ) from None
            if not (field.many_to_one or field.one_to_one) or not field.concrete:
                raise ImproperlyConfigured(
                    f"REVY_AGGREGATES entry {label}.{name} must be a ForeignKey or OneToOneField."
                )
            names.append(name)
        result[model._meta.concrete_model] = tuple(names)
    return result


def _fields_by_model(labels, setting: str) -> dict[type, frozenset[str]]:
    grouped: dict[type, set[str]] = {}
    for label in labels:
        model, attname = _field(label, setting)
        grouped.setdefault(model, set()).add(attname)
    return {model: frozenset(names) for model, names in grouped.items()}


def validate() -> None:
    """Read every setting once so that a mistake fails at start-up, not mid-request."""
    batch_size()
    included()
    excluded_models()
    excluded_fields()
    masked_fields()
    aggregates()


def clear_caches() -> None:
    for cached in _caches:
        cached.cache_clear()
    from revy.contrib.django import registry

    registry.clear()


def _on_setting_changed(setting: str, **kwargs: Any) -> None:
    if setting.startswith("REVY_"):
        clear_caches()


setting_changed.connect(_on_setting_changed, dispatch_uid="revy.settings")
