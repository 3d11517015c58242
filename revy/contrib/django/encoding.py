"""Field values to JSON and back, losslessly.

Values are stored as JSON in the history tables: datetimes keep their microseconds, decimals
and UUIDs become strings, bytes become base64. `decode` turns a stored value back into a
Python value with the field's own `to_python`, so snapshots rebuild exact instances.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import json
import uuid
from typing import Any

from django.db.models import Field
from django.db.models.fields.files import FieldFile
from django.utils.duration import duration_iso_string
from django.utils.functional import Promise

__all__ = [
    "JSONEncoder",
    "decode",
]


class JSONEncoder(json.JSONEncoder):
    """Encode the values Django model fields hold, without losing precision."""

    def default(self, o: Any) -> Any:
        if isinstance(o, datetime.datetime | datetime.date | datetime.time):
            return o.isoformat()
        if isinstance(o, datetime.timedelta):
            return duration_iso_string(o)
        if isinstance(o, decimal.Decimal | uuid.UUID | Promise):
            return str(o)
        if isinstance(o, bytes | bytearray | memoryview):
            return base64.b64encode(bytes(o)).decode("ascii")
        if isinstance(o, FieldFile):
            return o.name
        if isinstance(o, set | frozenset | tuple):
            return list(o)
        return super().default(o)


# One encoder for the whole process: building one per call costs more than encoding.
encode = JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def decode(field: Field, value: Any) -> Any:
    """Return the Python value of `field` for a value read back from JSON."""
    if value is None:
        return None
    if field.get_internal_type() == "JSONField":
        return value
    return field.to_python(value)
