"""Field values to JSON in SQL, exactly as `encoding` turns them into JSON in Python.

Set-based writers (`revy_baseline`) let the database build the history rows from the rows
themselves (`INSERT ... SELECT`): the JSON of a row's state and of each attribute delta's
value are then SQL expressions over its columns. They must give the JSON the recorder writes
for the same values (`recorder.state_json`, `recorder.value_json`): decimals as strings with
the field's decimal places, datetimes in ISO 8601 (microseconds when there are any, `+00:00`),
dates `YYYY-MM-DD`, UUIDs hyphenated, bytes in base64, durations as Django's ISO strings,
masked fields as the mask, excluded fields absent.

Only fields whose stored form is known are encoded in SQL: Django's own field classes of the
kinds below (a subclass may convert values in Python, so it is never assumed to store what its
parent stores), with datetimes only under `USE_TZ` in UTC. `encoder(field, connection)`
returns None for any other field; a writer then uses the Python path for that model.

Expressions are typed `jsonb` on PostgreSQL, and JSON text (with SQLite's JSON subtype, so
that `json_object` embeds them as values) on SQLite. They are written for statements with
parameters (a literal `%` doubled), as Django's cursors take them.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from django.conf import settings
from django.db import models

from revy.contrib.django import settings as revy_settings
from revy.contrib.django.encoding import encode
from revy.contrib.django.recorder import ACTION_SET, ACTION_UNSET

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper

    from revy.contrib.django.registry import ModelConfig

__all__ = [
    "FieldEncoder",
    "attribute_action",
    "attribute_value",
    "encoder",
    "mask_json",
    "state_object",
    "state_sql",
    "string_literal",
    "text_key",
    "unsupported_field",
]

_INTEGER = (
    models.AutoField,
    models.BigAutoField,
    models.SmallAutoField,
    models.IntegerField,
    models.BigIntegerField,
    models.SmallIntegerField,
    models.PositiveIntegerField,
    models.PositiveBigIntegerField,
    models.PositiveSmallIntegerField,
)
_TEXT = (models.CharField, models.TextField, models.EmailField, models.SlugField, models.URLField)
_KINDS: dict[type, str] = {
    **dict.fromkeys(_INTEGER, "integer"),
    **dict.fromkeys(_TEXT, "text"),
    models.BooleanField: "boolean",
    models.DecimalField: "decimal",
    models.DateField: "date",
    models.DateTimeField: "datetime",
    models.UUIDField: "uuid",
    models.JSONField: "json",
    models.BinaryField: "binary",
    models.DurationField: "duration",
}
_RELATIONS = (models.ForeignKey, models.OneToOneField)

# Python's str(Decimal) turns to exponent notation below 1e-6 ("1E-7"): fields with more
# decimal places than this are encoded in Python.
_MAX_DECIMAL_PLACES = 6
# SQLite keeps decimals as doubles: 15 significant digits survive, as Django's converter knows.
_SQLITE_MAX_DIGITS = 15
# Arguments per json_object()/jsonb_build_object() call (PostgreSQL allows 100).
_PAIRS_PER_CALL = 40

SQLITE_BASE64 = "revy_base64"


def _kind(field: models.Field[Any, Any]) -> str | None:
    """The kind of a field's stored values, following relations to the field they point to."""
    return _KINDS.get(type(_storage_field(field)))


def _storage_field(field: models.Field[Any, Any]) -> models.Field[Any, Any]:
    while type(field) in _RELATIONS:
        field = cast("models.ForeignKey[Any, Any]", field).target_field
    return field


def unsupported_field(field: models.Field, connection: BaseDatabaseWrapper) -> str | None:
    """Return why `field`'s values cannot be encoded in SQL on `connection`, or None."""
    if connection.vendor not in ("postgresql", "sqlite"):
        return f"no SQL encoding for {connection.vendor}"
    stored = _storage_field(field)
    kind = _kind(field)
    if kind is None:
        return f"{type(stored).__name__} has no SQL encoding"
    # The kinds are of these exact types (a subclass has no kind): isinstance() is `kind ==`.
    if isinstance(stored, models.DecimalField):
        if stored.decimal_places > _MAX_DECIMAL_PLACES:
            return f"more than {_MAX_DECIMAL_PLACES} decimal places"
        if connection.vendor == "sqlite" and stored.max_digits > _SQLITE_MAX_DIGITS:
            return f"more than {_SQLITE_MAX_DIGITS} digits on SQLite"
    if kind == "datetime" and not (settings.USE_TZ and connection.timezone_name == "UTC"):
        return "datetimes are encoded in SQL with USE_TZ in UTC only"
    if isinstance(stored, models.JSONField) and stored.decoder is not None:
        return "a JSONField with a decoder"
    return None


@dataclass(frozen=True)
class FieldEncoder:
    """SQL expressions over one column: its JSON, and whether it holds no value."""

    kind: str
    vendor: str
    decimal_places: int | None = None

    def json(self, column: str) -> str:
        """The column's value as JSON (`jsonb` / JSON text); SQL NULL stays NULL."""
        if self.vendor == "postgresql":
            return self._postgres(column)  # PostgreSQL's functions keep NULL NULL
        if self.kind == "json":
            return f"json({column})"
        return f"CASE WHEN {column} IS NULL THEN NULL ELSE {self._sqlite(column)} END"

    def is_none(self, column: str) -> str:
        """True where Python reads the value as None (a JSONField's `null` included)."""
        if self.kind == "json":
            null = "'null'::jsonb" if self.vendor == "postgresql" else "'null'"
            value = column if self.vendor == "postgresql" else f"json({column})"
            return f"({column} IS NULL OR {value} = {null})"
        return f"{column} IS NULL"

    def value(self, column: str) -> str:
        """An attribute delta's value: NULL where Python has None, else the JSON."""
        if self.kind == "json":
            return f"CASE WHEN {self.is_none(column)} THEN NULL ELSE {self.json(column)} END"
        return self.json(column)

    def _postgres(self, column: str) -> str:
        kind = self.kind
        if kind in ("integer", "text", "boolean"):
            return f"to_jsonb({column})"
        if kind in ("decimal", "uuid"):
            return f"to_jsonb({column}::text)"
        if kind == "date":
            return f"to_jsonb(to_char({column}, 'YYYY-MM-DD'))"
        if kind == "datetime":
            # isoformat(): the microseconds only when there are some. Kept short: a
            # statement's text over 4 KB is parsed again by psycopg at every execution.
            iso = f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US+00:00')"
            return f"to_jsonb(replace({iso}, '.000000+', '+'))"
        if kind == "json":
            return column
        if kind == "binary":
            # PostgreSQL breaks base64 into lines of 76 characters; Python does not.
            return f"to_jsonb(translate(encode({column}, 'base64'), E'\\n', ''))"
        if kind == "duration":
            micro = f"(extract(epoch FROM {column}) * 1000000)::bigint"
            return f"to_jsonb({_duration(micro, 'postgresql')})"
        raise AssertionError(kind)

    def _sqlite(self, column: str) -> str:
        """The JSON of a value that is not NULL."""
        kind = self.kind
        if kind in ("integer", "text", "date"):
            return f"json_quote({column})"
        if kind == "boolean":
            return f"CASE WHEN {column} THEN json('true') ELSE json('false') END"
        if kind == "decimal":
            # Stored as a double (or an integer); Django quantizes it to the decimal places.
            return f"json_quote(printf('%%.{self.decimal_places}f', {column}))"
        if kind == "datetime":
            # Django stores `YYYY-MM-DD HH:MM:SS[.ffffff]` in UTC.
            return f"json_quote(replace({column}, ' ', 'T') || '+00:00')"
        if kind == "uuid":
            return f"json_quote({_sqlite_uuid(column)})"
        if kind == "binary":
            return f"json_quote({SQLITE_BASE64}({column}))"
        if kind == "duration":
            return f"json_quote({_duration(column, 'sqlite')})"
        raise AssertionError(kind)


def _duration(micro: str, vendor: str) -> str:
    """Django's `duration_iso_string` of a number of microseconds: `-P1DT02H03M04.000005S`."""
    total = f"abs({micro})"

    def padded(value: str, width: int) -> str:
        if vendor == "postgresql":
            return f"lpad(({value})::text, {width}, '0')"
        return f"printf('%%0{width}d', {value})"

    days = f"({total} / 86400000000)"
    hours = padded(f"({total} / 3600000000) %% 24", 2)
    minutes = padded(f"({total} / 60000000) %% 60", 2)
    seconds = padded(f"({total} / 1000000) %% 60", 2)
    fraction = f"{total} %% 1000000"
    text = "::text" if vendor == "postgresql" else ""
    return (
        f"CASE WHEN {micro} < 0 THEN '-' ELSE '' END || 'P' || {days}{text} || 'DT' || "
        f"{hours} || 'H' || {minutes} || 'M' || {seconds} || "
        f"CASE WHEN {fraction} = 0 THEN '' ELSE '.' || {padded(fraction, 6)} END || 'S'"
    )


def encoder(field: models.Field, connection: BaseDatabaseWrapper) -> FieldEncoder | None:
    """Return the SQL encoder of `field` on `connection`, or None when it has none."""
    if unsupported_field(field, connection) is not None:
        return None
    stored = _storage_field(field)
    kind = _kind(field)
    assert kind is not None
    if connection.vendor == "sqlite" and kind == "binary":
        _register_sqlite_base64(connection)
    return FieldEncoder(
        kind,
        connection.vendor,
        getattr(stored, "decimal_places", None) if kind == "decimal" else None,
    )


def mask_json(connection: BaseDatabaseWrapper) -> str:
    """The mask as a JSON literal of the connection's JSON type."""
    literal = string_literal(encode(revy_settings.MASK))
    if connection.vendor == "postgresql":
        return f"{literal}::jsonb"
    return f"json({literal})"


def state_object(connection: BaseDatabaseWrapper, pairs: Sequence[tuple[str, str]]) -> str:
    """A JSON object of `(key, JSON expression)` pairs, in as many calls as it takes."""
    if connection.vendor == "postgresql":
        function, join = "jsonb_build_object", " || "
    else:
        function, join = "json_object", None
    calls = []
    for start in range(0, max(len(pairs), 1), _PAIRS_PER_CALL):
        arguments = ", ".join(
            f"{string_literal(key)}, {value}"
            for key, value in pairs[start : start + _PAIRS_PER_CALL]
        )
        calls.append(f"{function}({arguments})")
    if len(calls) == 1:
        return calls[0]
    if join is not None:
        return "(" + join.join(calls) + ")"
    merged = calls[0]
    for call in calls[1:]:
        merged = f"json_patch({merged}, {call})"
    return merged


def text_key(field: models.Field, connection: BaseDatabaseWrapper, column: str) -> str | None:
    """The text of a key column as `str(value)` gives it in Python (history's `content_id`),
    or None when it cannot be computed in SQL."""
    if unsupported_field(field, connection) is not None:
        return None
    kind = _kind(field)
    if kind in ("integer", "text"):
        return f"CAST({column} AS {'text' if connection.vendor == 'postgresql' else 'TEXT'})"
    if kind == "uuid":
        return f"{column}::text" if connection.vendor == "postgresql" else _sqlite_uuid(column)
    return None


def _sqlite_uuid(column: str) -> str:
    # Django stores a UUID as its 32 hexadecimal digits on SQLite; Python writes it hyphenated.
    return " || '-' || ".join(
        f"substr({column}, {start}, {length})"
        for start, length in ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))
    )


def string_literal(value: str) -> str:
    return "'" + value.replace("'", "''").replace("%", "%%") + "'"


def _base64(value: bytes | None) -> str | None:
    return None if value is None else base64.b64encode(bytes(value)).decode("ascii")


def _register_sqlite_base64(connection: BaseDatabaseWrapper) -> None:
    """SQLite has no base64 function: give the connection Python's (`SQLITE_BASE64`).

    Registering again (a connection per statement plan) costs next to nothing.
    """
    connection.ensure_connection()
    connection.connection.create_function(SQLITE_BASE64, 1, _base64, deterministic=True)


def state_sql(
    config: ModelConfig,
    connection: BaseDatabaseWrapper,
    column: Callable[[int], str],
    encoders: dict[int, FieldEncoder | None] | None = None,
) -> str:
    """A row's state as `recorder.state_json` encodes it, built in SQL from the row's columns
    (`column(index)`: the SQL of the field at `index`). `SetBasedUpdate.unsupported` says
    whether every recorded field has an encoder; `encoders`: theirs, when already built."""
    pairs = []
    for index in config.recorded:
        if index in config.masked:
            continue
        field_encoder = (
            encoders[index] if encoders is not None else encoder(config.fields[index], connection)
        )
        assert field_encoder is not None
        pairs.append((config.attnames[index], field_encoder.json(column(index))))
    return state_object(connection, pairs)


def attribute_value(
    field_encoder: FieldEncoder, connection: BaseDatabaseWrapper, column: str, masked: bool
) -> str:
    """An attribute delta's JSON value of `column` (NULL for None; the mask if `masked`), as
    `recorder.value_json` encodes it."""
    if masked:
        mask = mask_json(connection)
        return f"CASE WHEN {field_encoder.is_none(column)} THEN NULL ELSE {mask} END"
    return field_encoder.value(column)


def attribute_action(field_encoder: FieldEncoder, column: str) -> str:
    """`recorder.attribute_action` of the value of `column`: Unset for None and '', else Set."""
    empty = field_encoder.is_none(column)
    if field_encoder.kind == "text":
        empty = f"({empty} OR {column} = '')"
    elif field_encoder.kind == "json":
        empty = f"({empty} OR {column} = '\"\"'::jsonb)"
    return f"CASE WHEN {empty} THEN '{ACTION_UNSET}' ELSE '{ACTION_SET}' END"
