"""Request values checked once, for REST and GraphQL alike: ids, model labels, text, datetimes.

Whatever a client sends, these functions either return a value every supported database
accepts or raise `BadRequest` naming the parameter at fault, so that bad input is a
documented 400 (GraphQL `BAD_REQUEST`) and never reaches the database as something it
refuses (NUL characters on PostgreSQL, integers beyond 64 bits, datetimes that overflow
once converted to UTC, LIKE patterns longer than SQLite allows).
"""

from __future__ import annotations

import datetime
import re
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.dateparse import parse_datetime
from django.utils.timezone import is_naive, make_aware

from revy.contrib.django._meta import concrete_model
from revy_api.errors import BadRequest

__all__ = [
    "MAX_ID",
    "MAX_JSON_DEPTH",
    "MAX_SEARCH",
    "MAX_TEXT",
    "SYSTEM",
    "actor",
    "check_json_depth",
    "content_type",
    "integer",
    "model",
    "moment",
    "primary_key",
    "row_id",
    "search",
    "text",
]

#: The longest text accepted where revy stores at most 255 characters (ids, event types).
MAX_TEXT = 255
#: The longest `search` text (SQLite refuses LIKE patterns beyond 50,000 bytes).
MAX_SEARCH = 200
#: The largest id: a signed 64-bit integer, the widest integer column of every database.
MAX_ID = 2**63 - 1
#: How deeply JSON bodies may nest arrays and objects (revy's own bodies nest two levels).
MAX_JSON_DEPTH = 64
#: The `actor` value naming the system.
SYSTEM = "system"

_INTEGER = re.compile(r"^[0-9]+$")
_MAX_DATETIME = 64


def text(value: Any, name: str, *, max_length: int = MAX_TEXT) -> str:
    """Return `value` if it is text every database stores: no NUL, at most `max_length`."""
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be text.", field=name)
    if "\x00" in value:
        raise BadRequest(f"{name} must not contain NUL characters.", field=name)
    if len(value) > max_length:
        raise BadRequest(
            f"{name} is {len(value):,} characters long; at most {max_length:,} are allowed.",
            field=name,
        )
    return value


def search(value: Any, name: str = "search") -> str:
    """Return a search text (at most `MAX_SEARCH` characters)."""
    return text(value, name, max_length=MAX_SEARCH)


def integer(value: Any, name: str) -> int:
    """Return a non-negative integer given as digits (or an int); `BadRequest` otherwise.

    The result may be larger than any id (`MAX_ID`): callers looking a row up answer "not
    found" for those rather than sending them to the database.
    """
    if isinstance(value, bool):
        raise BadRequest(f"{name} must be an integer id, not {value!r}.", field=name)
    if isinstance(value, int):
        if value < 0:
            raise BadRequest(f"{name} must not be negative, not {value}.", field=name)
        return value
    if isinstance(value, str) and _INTEGER.match(value) and len(value) <= 100:
        return int(value)
    raise BadRequest(f"{name} must be an integer id, not {_shown(value)}.", field=name)


def row_id(value: Any) -> int | None:
    """Return `value` as an integer id if a row can have it (1 to `MAX_ID`), else None."""
    try:
        number = integer(value, "id")
    except BadRequest:
        return None
    return number if 1 <= number <= MAX_ID else None


def moment(value: Any, name: str) -> datetime.datetime:
    """Return an aware datetime in UTC from an ISO 8601 string or a datetime (naive: UTC).

    Databases store and compare datetimes in UTC. A datetime that cannot be converted to UTC
    (`9999-12-31T23:59:59-05:00` lies after 9999-12-31T23:59:59.999999Z) is clamped to the
    first or last moment UTC can hold: no stored datetime lies beyond, so every comparison
    answers as it would with the exact value.
    """
    parsed: datetime.datetime | None = None
    if isinstance(value, datetime.datetime):
        parsed = value
    elif isinstance(value, str) and len(value) <= _MAX_DATETIME:
        try:
            parsed = parse_datetime(value.strip())
        except ValueError:  # well formed, but no such date (2024-02-30)
            parsed = None
    if parsed is None:
        raise BadRequest(f"{name} must be an ISO 8601 datetime, not {_shown(value)}.", field=name)
    if is_naive(parsed):
        parsed = make_aware(parsed, datetime.UTC)
    try:
        # In UTC: PostgreSQL refuses offsets beyond 15:59 (+19:15 is a valid ISO 8601 offset).
        return parsed.astimezone(datetime.UTC)
    except OverflowError:
        limit = datetime.datetime.max if parsed.year == datetime.MAXYEAR else datetime.datetime.min
        return limit.replace(tzinfo=datetime.UTC)


def content_type(label: Any, name: str) -> ContentType:
    """Return the content type of `app_label.model` (case-insensitive); `BadRequest` if none."""
    found = None
    if isinstance(label, str) and len(label) <= MAX_TEXT:
        app_label, _, model_name = label.lower().partition(".")
        if app_label.isidentifier() and model_name.isidentifier():
            try:
                found = ContentType.objects.get_by_natural_key(app_label, model_name)
            except ContentType.DoesNotExist:
                found = None
    if found is None:
        raise BadRequest(
            f"{name} {_shown(label)} names no model: give `app_label.model`, e.g. `auth.user`.",
            field=name,
        )
    return found


def model(label: Any, name: str = "type") -> type[models.Model]:
    """Return the model named `app_label.model`; `BadRequest` if there is none installed."""
    found = content_type(label, name).model_class()
    if found is None:
        raise BadRequest(f"{name} {_shown(label)} names no installed model.", field=name)
    return found


def primary_key(model: type[models.Model], value: Any, name: str = "id") -> Any:
    """Return `value` as a primary key of `model`; `BadRequest` if no row can have it."""
    field = concrete_model(model)._meta.pk
    pk = None
    if isinstance(value, str | int) and not isinstance(value, bool):
        raw = str(value)
        if raw and "\x00" not in raw and len(raw) <= MAX_TEXT:
            try:
                pk = field.to_python(raw)
                field.run_validators(pk)  # integers out of the database's range, among others
            except (ValidationError, ValueError, TypeError, OverflowError):
                pk = None
    if pk is None:
        raise BadRequest(
            f"{name} {_shown(value)} is not a valid primary key for {model._meta.label}.",
            field=name,
        )
    return pk


def actor(value: Any, name: str = "actor") -> tuple[int | None, str | None]:
    """Return (content type id, pk) of `app_label.model:pk`, or (None, None) for `system`."""
    if value == SYSTEM:
        return (None, None)
    value = text(value, name)
    label, separator, pk = value.partition(":")  # labels hold no ":", primary keys may
    if not separator or not label or not pk:
        raise BadRequest(
            f"{name} must look like `app_label.model:pk` (e.g. `auth.user:5`) or `{SYSTEM}`, "
            f"not {_shown(value)}.",
            field=name,
        )
    return (content_type(label, name).pk, pk)


def check_json_depth(value: Any, name: str = "body") -> Any:
    """Return decoded JSON `value` if it nests at most `MAX_JSON_DEPTH` levels.

    Deeper data would exhaust Python's recursion limit wherever it is walked recursively
    (serializers, encoders, GraphQL's variable coercion); it is checked here without
    recursion.
    """
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item
        if isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise BadRequest(
                    f"The {name} nests more than {MAX_JSON_DEPTH} levels of arrays and objects.",
                    field=name,
                )
            pending.extend((child, depth + 1) for child in children)
    return value


def _shown(value: Any, limit: int = 60) -> str:
    """`repr()` of a value for a message, shortened: messages must stay small."""
    shown = repr(value)
    return shown if len(shown) <= limit else shown[: limit - 4] + "...'"
