"""History as JSON lines or CSV, streamed in constant memory.

`manage.py revy_export` and the APIs' `/deltas/` (with `Accept: application/x-ndjson` or
`text/csv`) write the same formats:

- **JSON lines** (`jsonl`): one object delta per line, the APIs' object delta JSON without
  the `display` texts (which would cost a query per model and chunk)::

    {"id": 7, "revision": 3, "action": "Update", "event_type": "ledger.transaction.updated",
     "description": "", "created_at": "2026-11-30T14:35:07.123456+00:00",
     "actor": {"type": "auth.user", "id": "5"}, "content": {"type": "ledger.transaction",
     "id": "1"}, "changes": [{"field": "amount", "action": "Set", "old": "1200.00",
     "new": "1250.00", "actor": {"type": "auth.user", "id": "5"}, "description": ""}]}

  `actor` is null for the system and for an erased actor (`revy.contrib.django.erasure`).
- **CSV** (`csv`): a header, then one row per field change (`CSV_COLUMNS`), the object
  delta's columns repeated on each; a delta without field changes (a deletion, an event) has
  one row with the change columns empty. `old` and `new` are JSON (so `"5"` and `5` stay
  apart). Free-text cells (the descriptions) that a spreadsheet would run as a formula
  (starting with `=`, `+`, `-`, `@`, tab or carriage return) are prefixed with `'`.

Deltas are read by keyset pagination on the primary key (`chunk_size` object deltas and their
attribute deltas per step, as tuples, no model instances), so memory stays flat whatever the
size of the history and no long-running server-side cursor holds the table.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import connections, models, router
from django.db.models import Exists, F, Func, OuterRef, Q

from revy.contrib.django.utils import (
    get_attribute_delta_model,
    get_object_delta_model,
    get_revision_model,
)

__all__ = [
    "CSV_COLUMNS",
    "DENSE_ACTOR_ROWS",
    "DENSE_SEARCH_REVISIONS",
    "FORMATS",
    "SMALL_WINDOW_ROWS",
    "actor_condition",
    "by_actor",
    "csv_lines",
    "jsonl_lines",
    "lines",
    "records",
    "revision_window_conditions",
    "search_condition",
    "window_condition",
]

FORMATS = ("jsonl", "csv")
CHUNK_SIZE = 2000

CSV_COLUMNS = (
    "delta_id",
    "revision_id",
    "created_at",
    "action",
    "event_type",
    "content_type",
    "content_id",
    "actor_type",
    "actor_id",
    "description",
    "field",
    "change_action",
    "old",
    "new",
    "change_actor_type",
    "change_actor_id",
    "change_description",
)

_DELTA_COLUMNS = (
    "id",
    "revision_id",
    "action",
    "event_type",
    "description",
    "created_at",
    "actor_type_id",
    "actor_id",
    "content_type_id",
    "content_id",
)
_CHANGE_COLUMNS = (
    "parent_id",
    "field_name",
    "action",
    "old_value",
    "new_value",
    "actor_type_id",
    "actor_id",
    "description",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


#: Up to this many rows of an actor in either delta table, `actor_condition` lists the
#: actor's deltas from the actor indexes; beyond, it tests deltas newest first (see there).
DENSE_ACTOR_ROWS = 5000


def actor_condition(
    type_id: int | None, actor_id: Any, using: str | None = None, *, paged: bool = True
) -> Q:
    """The object deltas an actor made or changed a field of (None, None: the system), as a Q.

    Values Django assigned by itself (auto keys, `auto_now`) are the system's but nobody's
    action: they do not make the system an actor of a delta.

    Building the condition costs one or two small queries (an index-only count of the actor's
    rows, capped at `DENSE_ACTOR_ROWS`), which choose the shape a page newest first needs
    whatever the actor's share of history (measured at a million deltas in
    `benchmarks/API-SCALE.md`):

    - an actor with few rows: `id IN (<their object deltas> UNION ALL <the parents of their
      attribute deltas>)`, two index scans as long as what the actor did (an actor without
      deltas matches nothing without reading history);
    - an actor with many rows: their own deltas, or a probe of the attribute delta index per
      delta, so a page stops after about `page size * history / actor rows` deltas. The probe
      compares `parent_id` by a range (`>=` and `<=` the delta's id), which the database
      cannot turn into a hash of all the actor's rows (it did for `=`: 100,000 rows hashed
      for each page of a 3% actor).

    `paged=False` (to count or read every match, not a page newest first) always takes the
    first shape, without the counts: the second tests every delta of history then.
    """
    if type_id is None:
        condition = Q(actor_type__isnull=True)
    else:
        condition = Q(actor_type_id=type_id, actor_id=str(actor_id))
    own = get_object_delta_model()._base_manager.filter(condition).order_by()
    changes = (
        get_attribute_delta_model()._base_manager.filter(condition, automatic=False).order_by()
    )
    if using is not None:
        own, changes = own.using(using), changes.using(using)
    rows = 0
    if paged:
        rows = own.values("pk")[:DENSE_ACTOR_ROWS].count()
        if rows < DENSE_ACTOR_ROWS:
            rows += changes.values("pk")[:DENSE_ACTOR_ROWS].count()
    if rows < DENSE_ACTOR_ROWS:
        return Q(pk__in=own.values("pk").union(changes.values("parent_id"), all=True))
    probe = changes.filter(parent__gte=OuterRef("pk"), parent__lte=OuterRef("pk"))
    return condition | Q(Exists(probe))


#: Up to this many object deltas in a `since`/`until` window, `window_condition` lists them
#: from the `created_at` index on PostgreSQL; beyond, it filters deltas newest first.
SMALL_WINDOW_ROWS = 20_000


def window_condition(
    since: datetime.datetime | None, until: datetime.datetime | None, using: str | None = None
) -> Q:
    """The object deltas recorded in `[since, until]` (either may be None), as a Q.

    On PostgreSQL a window of at most `SMALL_WINDOW_ROWS` deltas becomes `id = ANY(ARRAY(<their
    ids from the (created_at, id, revision) index>))`: a page newest first then reads only the
    window, where the plain range let the planner scan ids backwards from the newest delta to
    the window (700,000 deltas for an hour a day into a million). One capped index-only count
    decides; a larger window keeps the plain range, which is right for recent windows (a
    large old window still scans from the newest delta: see `benchmarks/API-SCALE.md`).
    """
    condition = _window_range(since, until)
    using = _small_window_database(condition, using)
    if using is None:
        return condition
    window = get_object_delta_model()._base_manager.using(using).filter(condition)
    return Q(_AnyOf(F("pk"), _array(window.order_by().values("pk"))))


def revision_window_conditions(
    since: datetime.datetime | None, until: datetime.datetime | None, using: str | None = None
) -> tuple[Q, Q]:
    """Conditions for the revisions having a delta recorded in `[since, until]`.

    Returns `(on the deltas, on the revisions)`. The deltas' condition is the plain range,
    which a page of revisions newest first tests on each revision's few deltas (found by their
    revision key). On PostgreSQL, for a window of at most `SMALL_WINDOW_ROWS` deltas, the
    revisions' condition is `id = ANY(ARRAY(<the window's revision ids, from the (created_at,
    id, revision) index alone>))`, so that page probes only revisions with a delta in the
    window; it was walking every revision newer than the window, or reading the window's
    deltas by key for their revisions (an hour a day into a million deltas: 31 ms, now 5 ms).
    Otherwise the revisions' condition is empty.
    """
    condition = _window_range(since, until)
    using = _small_window_database(condition, using)
    if using is None:
        return condition, Q()
    window = get_object_delta_model()._base_manager.using(using).filter(condition)
    revisions = _array(window.order_by().values("revision_id").distinct())
    return condition, Q(_AnyOf(F("pk"), revisions))


def _window_range(since: datetime.datetime | None, until: datetime.datetime | None) -> Q:
    condition = Q()
    if since is not None:
        condition &= Q(created_at__gte=since)
    if until is not None:
        condition &= Q(created_at__lte=until)
    return condition


def _small_window_database(condition: Q, using: str | None) -> str | None:
    """The database, when it is PostgreSQL and `condition` holds few deltas; else None."""
    model = get_object_delta_model()
    using = using or router.db_for_read(model)
    if not condition or connections[using].vendor != "postgresql":
        return None
    window = model._base_manager.using(using).filter(condition).order_by()
    if window.values("pk")[:SMALL_WINDOW_ROWS].count() >= SMALL_WINDOW_ROWS:
        return None
    return using


def _array(values: models.QuerySet) -> Any:
    from django.contrib.postgres.expressions import ArraySubquery

    return ArraySubquery(values)


class _AnyOf(Func):
    """`value = ANY(array)` (PostgreSQL): the array is built once, as an InitPlan."""

    arg_joiner = " = ANY("
    template = "%(expressions)s)"
    output_field = models.BooleanField()


#: Up to this many revisions whose description matches, `search_condition` lists their ids;
#: beyond, it tests each delta's revision (a page newest first then fills soon).
DENSE_SEARCH_REVISIONS = 500


def search_condition(text: str, using: str | None = None) -> Q:
    """The object deltas whose description, event type or revision's description contains
    `text` (case-insensitive, as `icontains`), as a Q.

    The plain OR across the two tables reads deltas newest first, each joined to its
    revision, until a page is full: right when matches are many and recent, but every delta
    of history for a rare text (8 to 10 s for a search without matches at a million
    deltas). Two small queries first:

    - the event types that match, from the distinct values of the `event_type` index (one
      index probe per event type, on PostgreSQL and SQLite);
    - the revisions whose description matches, up to `DENSE_SEARCH_REVISIONS + 1` of them.

    With at most `DENSE_SEARCH_REVISIONS` matching revisions the condition names their ids
    and the event types, so every part has an index and the database combines them (on
    PostgreSQL the descriptions' trigram indexes, see the `0006_search_indexes` migration;
    without them the descriptions are read in full). With more, the revision's description is
    tested per delta as before: a page newest first fills soon, unless the matches are
    concentrated far back in history (`benchmarks/API-SCALE.md`).
    """
    model = get_object_delta_model()
    using = using or router.db_for_read(model)
    revisions = get_revision_model()._base_manager.using(using)
    matching = revisions.filter(description__icontains=text).order_by().values_list("pk", flat=True)
    ids = list(matching[: DENSE_SEARCH_REVISIONS + 1])
    condition = Q(description__icontains=text)
    if len(ids) > DENSE_SEARCH_REVISIONS:
        condition |= Q(revision__description__icontains=text)
    elif ids:
        condition |= Q(revision__in=ids)
    types = _matching_event_types(text, using)
    if types is None:
        condition |= Q(event_type__icontains=text)
    elif types:
        condition |= Q(event_type__in=types)
    return condition


def _matching_event_types(text: str, using: str) -> list[str] | None:
    """The recorded event types containing `text` as `icontains` matches (None: not known).

    Reads the distinct values of the `event_type` index, one probe per value (a recursive
    query where the database has one: PostgreSQL and SQLite).
    """
    connection = connections[using]
    if connection.vendor not in ("postgresql", "sqlite"):
        return None
    model = get_object_delta_model()
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    field = model._meta.get_field("event_type")
    assert isinstance(field, models.Field) and field.column is not None  # a concrete column
    column = quote(field.column)
    # The comparison Django writes for `icontains` on this database, applied to the values.
    value = connection.ops.lookup_cast("icontains", "CharField") % "value"
    operators: dict[str, str] = connection.operators  # type: ignore[attr-defined]
    operator = operators["icontains"] % "%s"
    pattern = f"%{connection.ops.prep_for_like_query(text)}%"
    sql = (
        f"WITH RECURSIVE found (value) AS (SELECT MIN({column}) FROM {table} UNION ALL "
        f"SELECT (SELECT MIN({column}) FROM {table} WHERE {column} > found.value) FROM found "
        f"WHERE found.value IS NOT NULL) "
        f"SELECT value FROM found WHERE value IS NOT NULL AND {value} {operator}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [pattern])
        return [row[0] for row in cursor.fetchall()]


def by_actor(queryset: models.QuerySet, type_id: int | None, actor_id: Any) -> models.QuerySet:
    """Object deltas made by an actor, or with a field change by them (None, None: the system).

    See `actor_condition`.
    """
    return queryset.filter(actor_condition(type_id, actor_id, using=queryset.db))


def _label(content_type_id: int | None, cache: dict[int, str]) -> str | None:
    if content_type_id is None:
        return None
    label = cache.get(content_type_id)
    if label is None:
        content_type = ContentType.objects.get_for_id(content_type_id)
        label = cache[content_type_id] = f"{content_type.app_label}.{content_type.model}"
    return label


def _ref(content_type_id: int | None, object_id: Any, cache: dict[int, str]) -> Any:
    if content_type_id is None:
        return None
    return {"type": _label(content_type_id, cache), "id": object_id}


def records(
    queryset: models.QuerySet, *, newest_first: bool = False, chunk_size: int = CHUNK_SIZE
) -> Iterator[dict[str, Any]]:
    """Yield the export record of every object delta of `queryset`, by id.

    Two queries per `chunk_size` deltas (the deltas, then their field changes); the
    queryset's own ordering and slicing are replaced.
    """
    using = queryset.db
    changes_table = get_attribute_delta_model()._base_manager.using(using)
    labels: dict[int, str] = {}
    order = "-pk" if newest_first else "pk"
    last = None
    while True:
        chunk = queryset.order_by(order)
        if last is not None:
            chunk = chunk.filter(pk__lt=last) if newest_first else chunk.filter(pk__gt=last)
        rows = list(chunk.values_list(*_DELTA_COLUMNS)[:chunk_size])
        if not rows:
            return
        last = rows[-1][0]
        by_parent: dict[Any, list[dict[str, Any]]] = {row[0]: [] for row in rows}
        for parent, field, action, old, new, type_id, actor_id, description in (
            changes_table.filter(parent_id__in=list(by_parent))
            .order_by("parent_id", "pk")
            .values_list(*_CHANGE_COLUMNS)
        ):
            by_parent[parent].append(
                {
                    "field": field,
                    "action": action,
                    "old": old,
                    "new": new,
                    "actor": _ref(type_id, actor_id, labels),
                    "description": description,
                }
            )
        for (
            pk,
            revision_id,
            action,
            event_type,
            description,
            created_at,
            actor_type_id,
            actor_id,
            content_type_id,
            content_id,
        ) in rows:
            yield {
                "id": pk,
                "revision": revision_id,
                "action": action,
                "event_type": event_type,
                "description": description,
                "created_at": created_at.isoformat(),
                "actor": _ref(actor_type_id, actor_id, labels),
                "content": _ref(content_type_id, content_id, labels),
                "changes": by_parent[pk],
            }


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def jsonl_lines(items: Iterable[dict[str, Any]]) -> Iterator[str]:
    """Yield one JSON line (ending with a newline) per record."""
    for record in items:
        yield _json(record) + "\n"


def _text(value: str) -> str:
    """A free-text cell a spreadsheet shows as text, never runs as a formula."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def csv_lines(items: Iterable[dict[str, Any]]) -> Iterator[str]:
    """Yield the CSV header, then one line per field change (see `CSV_COLUMNS`)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(CSV_COLUMNS)
    yield flush()
    for record in items:
        actor = record["actor"] or {}
        content = record["content"]
        head = [
            record["id"],
            record["revision"],
            record["created_at"],
            record["action"],
            record["event_type"],
            content["type"],
            content["id"],
            actor.get("type", ""),
            actor.get("id") or "",
            _text(record["description"]),
        ]
        if not record["changes"]:
            writer.writerow(head + [""] * 7)
        for change in record["changes"]:
            change_actor = change["actor"] or {}
            writer.writerow(
                [
                    *head,
                    change["field"],
                    change["action"],
                    _json(change["old"]),
                    _json(change["new"]),
                    change_actor.get("type", ""),
                    change_actor.get("id") or "",
                    _text(change["description"]),
                ]
            )
        yield flush()


def lines(format: str, items: Iterable[dict[str, Any]]) -> Iterator[str]:
    """Yield `items` in `format` ("jsonl" or "csv")."""
    if format == "jsonl":
        return jsonl_lines(items)
    if format == "csv":
        return csv_lines(items)
    raise ValueError(f"Unknown export format {format!r}: use one of {', '.join(FORMATS)}.")
