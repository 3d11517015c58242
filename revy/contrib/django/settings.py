"""Lazy accessors for revy's settings, and what can be wrong with them.

Every value is read from `django.conf.settings` at call time and cached until a setting
changes (`override_settings` sends `setting_changed`), so tests can change any of them.

Each setting has one parser, which reports everything wrong with it as `Problem`s: a stable
system check id (one per kind of problem, listed below), a message naming the faulty entry and
a hint saying how to fix it. The system checks (`revy.contrib.django.checks` and
`revy_api.checks`) report every problem at start-up (`manage.py check`, `runserver`,
`migrate`); a process started without them (a WSGI server) gets the first problem as an
`ImproperlyConfigured` with the same text when the setting is first used.

| id | problem |
| --- | --- |
| `revy.E001` | a setting has the wrong type (e.g. a string where a list or tuple is expected) |
| `revy.E002` | it names a model or app that is not installed |
| `revy.E003` | an entry is not a label of the expected form (`app_label.ModelName[.field]`) |
| `revy.E004` | it names a field the model does not have |
| `revy.E005` | it names a field or model of the wrong kind (not a foreign key or history model) |
| `revy.E006` | a number is out of range (`REVY_BATCH_SIZE` < 1) |
| `revy.E007` | `django.contrib.contenttypes` is not installed |
| `revy.W001` | a `REVY_*` setting revy does not know (a typo?) |
| `revy_api.E001` | `REVY_API` or one of its values has the wrong type |
| `revy_api.E002` | a dotted path in `REVY_API` cannot be imported |
| `revy_api.E003` | a dotted path in `REVY_API` imports something of the wrong kind |
| `revy_api.E004` | a number in `REVY_API` is out of range |
| `revy_api.W001` | a `REVY_API` key revy does not know (a typo?) |
| `revy_api.W002` | drf-spectacular is installed, but DRF's `DEFAULT_SCHEMA_CLASS` is not its |

The `REVY_API` entries are the API plugin's, but the organization resolver is read here, by
`revy.contrib.django.headers`, which `RevisionMiddleware` uses without `revy_api`.
"""

from __future__ import annotations

import difflib
import functools
import types
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

from django.apps import apps
from django.conf import settings
from django.core import checks
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

if TYPE_CHECKING:
    from django.db.models import Model

__all__ = [
    "ALWAYS_EXCLUDED_APPS",
    "ALWAYS_EXCLUDED_MODELS",
    "DEFAULTS",
    "HISTORY_BASES",
    "MASK",
    "Problem",
    "aggregates",
    "api",
    "api_object",
    "batch_size",
    "cached",
    "clear_caches",
    "close_match_hint",
    "excluded_fields",
    "excluded_models",
    "get",
    "history_model",
    "included",
    "masked_fields",
    "one_statement",
    "organization_resolver",
    "parse_api_settings",
    "parse_organization_resolver",
    "problems",
    "strict",
    "track_outside_context",
    "validate",
]

DEFAULTS: dict[str, Any] = {
    "REVY_MODELS": ("*",),
    "REVY_EXCLUDED_MODELS": (),
    "REVY_EXCLUDED_FIELDS": (),
    "REVY_MASKED_FIELDS": ("auth.User.password",),
    "REVY_TRACK_OUTSIDE_CONTEXT": False,
    "REVY_BATCH_SIZE": 1000,
    "REVY_ONE_STATEMENT": True,
    "REVY_AGGREGATES": {},
    "REVY_REVISION_MODEL": "revy.Revision",
    "REVY_OBJECT_DELTA_MODEL": "revy.ObjectDelta",
    "REVY_ATTRIBUTE_DELTA_MODEL": "revy.AttributeDelta",
}
# Settings of revy that are not in DEFAULTS: the API plugin's dictionary.
_OTHER_SETTINGS = ("REVY_API",)

# Never tracked: revy's own tables and framework bookkeeping.
ALWAYS_EXCLUDED_APPS = frozenset({"revy", "contenttypes", "sessions", "migrations"})
ALWAYS_EXCLUDED_MODELS = frozenset({"admin.logentry", "auth.permission"})

MASK = "**********"

# The abstract model that the model each REVY_*_MODEL setting names must subclass. Filled in
# by `revy.contrib.django.models` as it is imported: it reads these settings, so this module
# cannot import it.
HISTORY_BASES: dict[str, type[Model]] = {}

WRONG_TYPE = "revy.E001"
NOT_INSTALLED = "revy.E002"
MALFORMED = "revy.E003"
NO_SUCH_FIELD = "revy.E004"
WRONG_FIELD_KIND = "revy.E005"
OUT_OF_RANGE = "revy.E006"
NO_CONTENTTYPES = "revy.E007"
UNKNOWN_SETTING = "revy.W001"
API_WRONG_TYPE = "revy_api.E001"
API_NOT_IMPORTABLE = "revy_api.E002"
API_WRONG_KIND = "revy_api.E003"
API_OUT_OF_RANGE = "revy_api.E004"
API_UNKNOWN_KEY = "revy_api.W001"
API_SCHEMA_CLASS = "revy_api.W002"

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a setting: its check id, what is wrong, and how to fix it."""

    id: str
    msg: str
    hint: str

    def __str__(self) -> str:
        return f"{self.msg} HINT: {self.hint} ({self.id})"

    def error(self) -> ImproperlyConfigured:
        """Return the exception runtime code raises for this problem."""
        return ImproperlyConfigured(str(self))

    def check_message(self) -> checks.CheckMessage:
        """Return the system check message for this problem."""
        level = checks.WARNING if self.id.partition(".")[2].startswith("W") else checks.ERROR
        return checks.CheckMessage(level, self.msg, hint=self.hint, id=self.id)


Parser = Callable[[list[Problem]], T]

_caches: list[functools._lru_cache_wrapper] = []
_parsers: list[Parser[Any]] = []


def cached(function: F) -> F:
    """Cache `function`'s results until a REVY_* setting changes."""
    cached_function = functools.cache(function)
    _caches.append(cached_function)
    return cast(F, cached_function)


def strict(parse: Parser[T]) -> T:
    """Run a parser (a function filling a list of problems); raise its first problem as
    ImproperlyConfigured, with the text of the system check that reports it."""
    found: list[Problem] = []
    value = parse(found)
    if found:
        raise found[0].error()
    return value


def _parser(parse: Parser[T]) -> Parser[T]:
    """Register a parser whose problems the system check reports."""
    _parsers.append(parse)
    return parse


def get(name: str) -> Any:
    """Return the setting `name`, or revy's default for it."""
    return getattr(settings, name, DEFAULTS[name])


def close_match_hint(name: str, known: Collection[str], fallback: str, prefix: str = "") -> str:
    """Return "Did you mean 'x'?" for the nearest of `known` to `name`, else `fallback`.

    Names are compared without `prefix`, which would make every pair of names look close.
    """
    candidates = {option.removeprefix(prefix): option for option in known}
    matches = difflib.get_close_matches(
        name.removeprefix(prefix), sorted(candidates), n=1, cutoff=0.6
    )
    return f"Did you mean {candidates[matches[0]]!r}?" if matches else fallback


def _describe(value: Any) -> str:
    """Name a value for a message: "the module 'os.path'", "str 'False'"."""
    if isinstance(value, types.ModuleType):
        return f"the module {value.__name__!r}"
    if isinstance(value, type):
        return f"the class {value.__module__}.{value.__qualname__}"
    if isinstance(value, types.FunctionType | types.BuiltinFunctionType):
        return f"the function {value.__module__}.{value.__qualname__}"
    return f"{type(value).__name__} {value!r}"


# Labels -----------------------------------------------------------------------------------------


def _labels(setting: str, value: Any, found: list[Problem], example: str) -> list[str]:
    """Return the string entries of a list-like setting; anything else is a problem."""
    if isinstance(value, str):
        # Iterating over a string would read each character as a label.
        found.append(
            Problem(
                WRONG_TYPE,
                f"{setting} is the string {value!r}, where a list or tuple is expected.",
                f"Write {setting} = [{value!r}] (or ({value!r},) with the trailing comma).",
            )
        )
        return []
    if not isinstance(value, list | tuple | set | frozenset):
        found.append(
            Problem(
                WRONG_TYPE,
                f"{setting} must be a list or tuple, not {_describe(value)}.",
                f"Write it as a list of strings, e.g. {setting} = [{example!r}].",
            )
        )
        return []
    labels = []
    for entry in value:
        if isinstance(entry, str):
            labels.append(entry)
        else:
            found.append(
                Problem(
                    WRONG_TYPE,
                    f"{setting} entry {entry!r} is a {type(entry).__name__}, not a string.",
                    f"Write every entry as a string, e.g. {example!r}.",
                )
            )
    return labels


def _model(label: str, setting: str, found: list[Problem]) -> type[Model] | None:
    """Return the concrete model `label` ('app_label.ModelName') names, or None."""
    app_label, dot, model_name = label.partition(".")
    if not dot or not app_label or not model_name or "." in model_name:
        found.append(
            Problem(
                MALFORMED,
                f"{setting} entry {label!r} is not a model label.",
                "Use 'app_label.ModelName', e.g. 'auth.User'.",
            )
        )
        return None
    try:
        model = apps.get_model(label)
    except LookupError:
        found.append(_model_not_installed(label, setting, label))
        return None
    return model._meta.concrete_model


def _model_not_installed(model_label: str, setting: str, entry: str) -> Problem:
    app_label = model_label.partition(".")[0]
    try:
        app = apps.get_app_config(app_label)
    except LookupError:
        hint = close_match_hint(
            app_label,
            [config.label for config in apps.get_app_configs()],
            f"Add the app {app_label!r} to INSTALLED_APPS, or fix the label.",
        )
        return Problem(
            NOT_INSTALLED,
            f"{setting} names {entry!r}, but no installed app has the label {app_label!r}.",
            hint,
        )
    names = [model.__name__ for model in app.get_models()]
    return Problem(
        NOT_INSTALLED,
        f"{setting} names {entry!r}, but the app {app_label!r} has no model "
        f"{model_label.partition('.')[2]!r}.",
        close_match_hint(
            model_label.partition(".")[2],
            names,
            f"Its models are: {', '.join(sorted(names)) or 'none'}.",
        ),
    )


def _field(label: str, setting: str, found: list[Problem]) -> tuple[type[Model], str] | None:
    """Return (concrete model, attname) of 'app_label.ModelName.field', or None."""
    parts = label.split(".")
    if len(parts) != 3 or not all(parts):
        found.append(
            Problem(
                MALFORMED,
                f"{setting} entry {label!r} is not a field label.",
                "Use 'app_label.ModelName.field', e.g. 'auth.User.last_login'.",
            )
        )
        return None
    model_label, field_name = f"{parts[0]}.{parts[1]}", parts[2]
    try:
        model = apps.get_model(model_label)
    except LookupError:
        found.append(_model_not_installed(model_label, setting, label))
        return None
    try:
        field = model._meta.get_field(field_name)
    except FieldDoesNotExist:
        found.append(_no_such_field(model, field_name, setting, label))
        return None
    return model._meta.concrete_model, field.attname


def _no_such_field(model: type[Model], name: str, setting: str, entry: str) -> Problem:
    names = [field.name for field in model._meta.get_fields() if not field.auto_created]
    return Problem(
        NO_SUCH_FIELD,
        f"{setting} names {entry!r}, but {model._meta.label} has no field {name!r}.",
        close_match_hint(name, names, f"Its fields are: {', '.join(names)}."),
    )


def _fields_by_model(
    labels: list[str], setting: str, found: list[Problem]
) -> dict[type[Model], frozenset[str]]:
    grouped: dict[type[Model], set[str]] = {}
    for label in labels:
        parsed = _field(label, setting, found)
        if parsed is not None:
            grouped.setdefault(parsed[0], set()).add(parsed[1])
    return {model: frozenset(names) for model, names in grouped.items()}


# The settings -----------------------------------------------------------------------------------


@_parser
def _parse_track_outside_context(found: list[Problem]) -> bool:
    value = get("REVY_TRACK_OUTSIDE_CONTEXT")
    if not isinstance(value, bool):
        found.append(
            Problem(
                WRONG_TYPE,
                f"REVY_TRACK_OUTSIDE_CONTEXT must be True or False, not {_describe(value)}.",
                "Write REVY_TRACK_OUTSIDE_CONTEXT = True (or False, the default).",
            )
        )
        return False
    return value


@cached
def track_outside_context() -> bool:
    """Return True when changes outside any context are recorded too."""
    return strict(_parse_track_outside_context)


@_parser
def _parse_one_statement(found: list[Problem]) -> bool:
    value = get("REVY_ONE_STATEMENT")
    if not isinstance(value, bool):
        found.append(
            Problem(
                WRONG_TYPE,
                f"REVY_ONE_STATEMENT must be True or False, not {_describe(value)}.",
                "Write REVY_ONE_STATEMENT = True (the default) or False.",
            )
        )
        return False
    return value


@cached
def one_statement() -> bool:
    """Return True when tracked single-row saves on PostgreSQL are recorded in Django's own
    statement (experimental; `revy.contrib.django.onestatement`)."""
    return strict(_parse_one_statement)


@_parser
def _parse_batch_size(found: list[Problem]) -> int:
    size = get("REVY_BATCH_SIZE")
    if not isinstance(size, int) or isinstance(size, bool):
        found.append(
            Problem(
                WRONG_TYPE,
                f"REVY_BATCH_SIZE must be a positive integer, not {_describe(size)}.",
                "Write a number of rows, e.g. REVY_BATCH_SIZE = 1000 (the default).",
            )
        )
        return DEFAULTS["REVY_BATCH_SIZE"]
    if size < 1:
        found.append(
            Problem(
                OUT_OF_RANGE,
                f"REVY_BATCH_SIZE must be a positive integer, not {size!r}.",
                "Write a number of rows of 1 or more, e.g. 1000 (the default).",
            )
        )
        return DEFAULTS["REVY_BATCH_SIZE"]
    return size


@cached
def batch_size() -> int:
    """Return the number of rows per statement of bulk writes and history inserts."""
    return strict(_parse_batch_size)


@_parser
def _parse_included(found: list[Problem]) -> tuple[bool, frozenset[str], frozenset[type[Model]]]:
    everything, app_labels, models = False, set(), set()
    for label in _labels("REVY_MODELS", get("REVY_MODELS"), found, "shop"):
        if label == "*":
            everything = True
        elif "." in label:
            model = _model(label, "REVY_MODELS", found)
            if model is not None:
                models.add(model)
        elif label in apps.app_configs:
            app_labels.add(label)
        else:
            found.append(
                Problem(
                    NOT_INSTALLED,
                    f"REVY_MODELS names {label!r}, which is neither '*', an installed app "
                    "label nor 'app_label.ModelName'.",
                    close_match_hint(
                        label,
                        [config.label for config in apps.get_app_configs()],
                        "Use an app label from INSTALLED_APPS (e.g. 'shop', not 'myproject.shop').",
                    ),
                )
            )
    return everything, frozenset(app_labels), frozenset(models)


@cached
def included() -> tuple[bool, frozenset[str], frozenset[type[Model]]]:
    """Return (everything, app labels, models) that REVY_MODELS includes."""
    return strict(_parse_included)


@_parser
def _parse_excluded_models(found: list[Problem]) -> frozenset[type[Model]]:
    labels = _labels("REVY_EXCLUDED_MODELS", get("REVY_EXCLUDED_MODELS"), found, "shop.Product")
    models = (_model(label, "REVY_EXCLUDED_MODELS", found) for label in labels)
    return frozenset(model for model in models if model is not None)


@cached
def excluded_models() -> frozenset[type[Model]]:
    """Return the models REVY_EXCLUDED_MODELS leaves out."""
    return strict(_parse_excluded_models)


@_parser
def _parse_excluded_fields(found: list[Problem]) -> dict[type[Model], frozenset[str]]:
    setting = "REVY_EXCLUDED_FIELDS"
    labels = _labels(setting, get(setting), found, "auth.User.last_login")
    return _fields_by_model(labels, setting, found)


@cached
def excluded_fields() -> dict[type[Model], frozenset[str]]:
    """Map models to the attnames REVY_EXCLUDED_FIELDS keeps out of the history."""
    return strict(_parse_excluded_fields)


@_parser
def _parse_masked_fields(found: list[Problem]) -> dict[type[Model], frozenset[str]]:
    setting = "REVY_MASKED_FIELDS"
    labels = _labels(setting, get(setting), found, "auth.User.password")
    if not apps.is_installed("django.contrib.auth"):
        # The default names auth.User; a project without django.contrib.auth has no such model.
        labels = [label for label in labels if label != "auth.User.password"]
    return _fields_by_model(labels, setting, found)


@cached
def masked_fields() -> dict[type[Model], frozenset[str]]:
    """Map models to the attnames recorded as a mask instead of their value."""
    return strict(_parse_masked_fields)


@_parser
def _parse_aggregates(found: list[Problem]) -> dict[type[Model], tuple[str, ...]]:
    setting = "REVY_AGGREGATES"
    value = get(setting)
    if not isinstance(value, Mapping):
        found.append(
            Problem(
                WRONG_TYPE,
                f"{setting} must be a dict, not {_describe(value)}.",
                f'Map model labels to foreign key names: {setting} = {{"shop.Line": ["order"]}}.',
            )
        )
        return {}
    result: dict[type[Model], tuple[str, ...]] = {}
    for label, field_names in value.items():
        if not isinstance(label, str):
            found.append(
                Problem(
                    WRONG_TYPE,
                    f"{setting} key {label!r} is a {type(label).__name__}, not a model label.",
                    "Use 'app_label.ModelName' strings as keys, e.g. 'shop.Line'.",
                )
            )
            continue
        model = _model(label, setting, found)
        names = _labels(f"{setting}[{label!r}]", field_names, found, "order")
        if model is None:
            continue
        kept = []
        for name in names:
            try:
                field = model._meta.get_field(name)
            except FieldDoesNotExist:
                found.append(_no_such_field(model, name, setting, f"{label}.{name}"))
                continue
            if not (field.many_to_one or field.one_to_one) or not field.concrete:
                found.append(
                    Problem(
                        WRONG_FIELD_KIND,
                        f"{setting} entry '{label}.{name}' is a {type(field).__name__}, "
                        "not a ForeignKey or OneToOneField.",
                        "An aggregate is the row a foreign key points to: name such a field.",
                    )
                )
                continue
            kept.append(name)
        result[model] = tuple(kept)
    return result


@cached
def aggregates() -> dict[type[Model], tuple[str, ...]]:
    """Map models to the foreign keys whose targets are aggregates of their changes."""
    return strict(_parse_aggregates)


def _parse_history_model(setting: str, found: list[Problem]) -> type[Model] | None:
    label = get(setting)
    if not isinstance(label, str):
        found.append(
            Problem(
                WRONG_TYPE,
                f"{setting} must be a model label string, not {_describe(label)}.",
                f"Write {setting} = {DEFAULTS[setting]!r} or the label of your subclass.",
            )
        )
        return None
    app_label, dot, model_name = label.partition(".")
    if not dot or not app_label or not model_name or "." in model_name:
        found.append(
            Problem(
                MALFORMED,
                f"{setting} = {label!r} is not a model label.",
                f"Use 'app_label.ModelName', e.g. {DEFAULTS[setting]!r}.",
            )
        )
        return None
    try:
        model = apps.get_model(label, require_ready=False)
    except LookupError:
        found.append(_model_not_installed(label, setting, label))
        return None
    base = HISTORY_BASES.get(setting)
    if base is not None and not issubclass(model, base):
        found.append(
            Problem(
                WRONG_FIELD_KIND,
                f"{setting} = {label!r} names a model that does not subclass "
                f"{base.__module__}.{base.__name__}.",
                f"Subclass {base.__name__} (to add fields) and name that model, or use the "
                f"default {DEFAULTS[setting]!r}.",
            )
        )
        return None
    return model


for _setting in ("REVY_REVISION_MODEL", "REVY_OBJECT_DELTA_MODEL", "REVY_ATTRIBUTE_DELTA_MODEL"):
    _parser(functools.partial(_parse_history_model, _setting))


def history_model(setting: str) -> type[Model]:
    """Return the history model a REVY_*_MODEL setting names (not cached: see utils)."""
    found: list[Problem] = []
    model = _parse_history_model(setting, found)
    if model is None:
        raise found[0].error()
    return model


@_parser
def _parse_unknown_settings(found: list[Problem]) -> None:
    known = [*DEFAULTS, *_OTHER_SETTINGS]
    for name in dir(settings):
        if name.startswith("REVY_") and name not in known:
            found.append(
                Problem(
                    UNKNOWN_SETTING,
                    f"{name} is not a revy setting; it has no effect.",
                    close_match_hint(
                        name,
                        known,
                        "See the settings reference in revy's README for the names.",
                        prefix="REVY_",
                    ),
                )
            )


# REVY_API -----------------------------------------------------------------------------------------


def parse_api_settings(found: list[Problem]) -> Mapping[str, Any]:
    """Return the REVY_API dictionary ({} when unset)."""
    value = getattr(settings, "REVY_API", {})
    if not isinstance(value, Mapping):
        found.append(
            Problem(
                API_WRONG_TYPE,
                f"REVY_API must be a dict, not {_describe(value)}.",
                'Write a dict, e.g. REVY_API = {"VISIBILITY_POLICY": "shop.policies.Policy"}.',
            )
        )
        return {}
    return value


def api(name: str, default: Any = None) -> Any:
    """Return `REVY_API[name]` (the API plugin's settings), read at call time."""
    value = getattr(settings, "REVY_API", {})
    if not isinstance(value, Mapping):
        strict(parse_api_settings)  # raises
    return value.get(name, default)


def api_object(
    name: str,
    found: list[Problem],
    *,
    accept: Callable[[Any], bool],
    kind: str,
    example: str,
) -> Any:
    """Import the object whose dotted path is `REVY_API[name]`; None when unset (or "").

    Problems go to `found`: a value that is not a string, a path that cannot be imported, or
    an object that `accept` refuses (`kind` says what is expected, e.g. "a function").
    """
    path = parse_api_settings(found).get(name)
    if path is None or path == "":
        return None
    where = f"REVY_API[{name!r}]"
    if not isinstance(path, str):
        found.append(
            Problem(
                API_WRONG_TYPE,
                f"{where} must be a dotted path string, not {_describe(path)}.",
                f"Write the path of {kind}, e.g. {example!r}.",
            )
        )
        return None
    try:
        value = import_string(path)
    except ImportError as error:
        found.append(
            Problem(
                API_NOT_IMPORTABLE,
                f"{where} = {path!r} cannot be imported: {str(error).rstrip('.')}.",
                f"Check the module and the name: the value is the dotted path of {kind}, "
                "importable from the project's Python path.",
            )
        )
        return None
    if not accept(value):
        found.append(
            Problem(
                API_WRONG_KIND,
                f"{where} = {path!r} is {_describe(value)}, not {kind}.",
                f"Give the dotted path of {kind}, e.g. {example!r}.",
            )
        )
        return None
    return value


def parse_organization_resolver(found: list[Problem]) -> Callable[..., Any] | None:
    """Return the function `REVY_API["ORGANIZATION_RESOLVER"]` names, or None when unset."""
    return api_object(
        "ORGANIZATION_RESOLVER",
        found,
        accept=lambda value: callable(value) and not isinstance(value, type),
        kind="a function (request, value) -> organization or None",
        example="myproject.resolvers.member_organization",
    )


@cached
def organization_resolver() -> Callable[..., Any] | None:
    """Return the organization resolver, None when unset; raise ImproperlyConfigured if bad."""
    return strict(parse_organization_resolver)


# Everything at once ------------------------------------------------------------------------------


def problems() -> list[Problem]:
    """Return every problem of revy's own settings (REVY_API's are `revy_api.checks`')."""
    found: list[Problem] = []
    for parse in _parsers:
        parse(found)
    return found


def validate() -> None:
    """Raise the first error in revy's own settings as ImproperlyConfigured (warnings pass)."""
    for problem in problems():
        if problem.check_message().is_serious():
            raise problem.error()


def clear_caches() -> None:
    """Forget the parsed settings (the registry forgets its model configs on its own)."""
    for cached_function in _caches:
        cached_function.cache_clear()


def _on_setting_changed(setting: str, **kwargs: Any) -> None:
    if setting.startswith("REVY_"):
        clear_caches()


setting_changed.connect(_on_setting_changed, dispatch_uid="revy.settings")
