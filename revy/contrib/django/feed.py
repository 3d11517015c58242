"""The changes feed: every object delta once, in commit order, from a resumable cursor.

Systems that follow history (search indexers, caches, data warehouses) poll
`changes(deltas, after=cursor)` and keep the returned cursor. Ids alone cannot be a cursor on
a database with concurrent writers: a transaction that took id 10 may commit after another
one took and committed id 11, and a consumer that saw 11 would then skip 10 for ever.

- On PostgreSQL every object delta records the id of the transaction that wrote it
  (`transaction_id`, filled in by the database during the INSERT: `pg_current_xact_id()`).
  The feed is ordered by (transaction id, id) and shows only the deltas of transactions older
  than the visibility horizon, the oldest transaction of this database still running
  (from `pg_current_snapshot()`), read in the same statement as the deltas: every
  transaction below it has ended, so no delta can ever appear behind a cursor. A transaction
  that stays open holds the feed back (not the writers) until it ends.
- SQLite has one writer at a time, so ids follow commit order; `transaction_id` is 0 there.

History recorded before the `transaction_id` column existed has 0 and comes first, by id.

Cursors are opaque, signed with the project's `SECRET_KEY` (salted): a cursor that was not
returned by the feed raises `InvalidCursor`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.core import signing
from django.db import connections, models
from django.db.models import Q
from django.db.models.expressions import RawSQL

__all__ = [
    "START",
    "ChangesPage",
    "InvalidCursor",
    "after_position",
    "changes",
    "committed",
    "decode_cursor",
    "encode_cursor",
    "position_of",
]

_SALT = "revy.contrib.django.feed"

#: The position before every delta.
START = (0, 0)

# The horizon: the oldest transaction of this database still running when the statement's
# snapshot was taken (its xmax when none is). Transaction ids are shared by every database of
# the server, so the running transactions of the others (pg_stat_activity names their
# database; a transaction's database never changes) are left out: they cannot write here.
# Any transaction pg_stat_activity does not place (it has just ended, or is a prepared one)
# counts, which can only delay a delta, never skip one. One evaluation per statement (an init
# plan), so that it bounds the index scan, with the statement's own snapshot: what the query
# sees and the horizon agree. A transaction keeps what it first read of pg_stat_activity until
# it ends, so a consumer polling inside one transaction would take every transaction another
# database began since for one of its own and be held back: the init plan discards that copy
# first (pg_stat_clear_snapshot(), evaluated in FROM before the select list reads the view).
_HORIZON = """(SELECT LEAST(
    pg_snapshot_xmax(pg_current_snapshot())::text::bigint,
    (SELECT MIN(running::text::bigint) FROM pg_snapshot_xip(pg_current_snapshot()) AS running
     WHERE NOT EXISTS (
        SELECT 1 FROM pg_stat_activity AS activity
        WHERE activity.backend_xid = running::xid
        AND activity.datid IS DISTINCT FROM (
            SELECT oid FROM pg_database WHERE datname = current_database()
        )
     ))
) FROM (SELECT pg_stat_clear_snapshot() OFFSET 0) AS fresh_activity)"""


class InvalidCursor(ValueError):
    """A cursor that the feed did not hand out (malformed, altered or signed by another key)."""


def _signer() -> signing.Signer:
    return signing.Signer(salt=_SALT)


def encode_cursor(position: tuple[int, int]) -> str:
    """Return the opaque cursor of a feed position (transaction id, delta id)."""
    # Signer, not signing.dumps(): no timestamp, so a position always has the same cursor.
    return _signer().sign_object([int(position[0]), int(position[1])])


def decode_cursor(cursor: str) -> tuple[int, int]:
    """Return the position of a cursor; raise `InvalidCursor` for anything else."""
    try:
        value = _signer().unsign_object(cursor)
    except (signing.BadSignature, ValueError, TypeError):
        raise InvalidCursor(
            "This cursor was not returned by the changes feed (or the server's secret key "
            "changed since): start again without one, or from a cursor the feed returned."
        ) from None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(type(part) is int and part >= 0 for part in value)
    ):
        raise InvalidCursor("This cursor does not name a position in the changes feed.")
    return value[0], value[1]


@dataclass
class ChangesPage:
    """One page of the feed: the deltas, where to resume, and whether more are ready now."""

    deltas: list[models.Model] = field(default_factory=list)
    cursor: str = ""
    has_more: bool = False


def position_of(delta: models.Model) -> tuple[int, int]:
    """The feed position of an object delta read from the database."""
    return (getattr(delta, "transaction_id", 0) or 0, delta.pk)


def committed(queryset: models.QuerySet) -> models.QuerySet:
    """Narrow `queryset` (object deltas) to the deltas no later commit can precede."""
    if connections[queryset.db].vendor == "postgresql":
        return queryset.filter(transaction_id__lt=RawSQL(_HORIZON, ()))
    return queryset


def after_position(queryset: models.QuerySet, position: tuple[int, int]) -> models.QuerySet:
    """The deltas of `queryset` after `position`, in feed order."""
    transaction_id, delta_id = position
    # `transaction_id >= t` bounds the index scan; the OR only sorts out that one transaction.
    return (
        queryset.filter(transaction_id__gte=transaction_id)
        .filter(Q(transaction_id__gt=transaction_id) | Q(pk__gt=delta_id))
        .order_by("transaction_id", "pk")
    )


def changes(queryset: models.QuerySet, *, after: str | None = None, limit: int = 50) -> ChangesPage:
    """Return up to `limit` object deltas of `queryset` after the cursor `after`.

    `queryset` is an object delta queryset (already narrowed to what the reader may see, and
    filtered as the reader wishes); its ordering is replaced by the feed's. Without `after`
    the feed starts at the beginning of history. The page's `cursor` is where to resume: the
    last delta's position, or `after` itself when nothing new is ready. Raises
    `InvalidCursor` for a cursor the feed did not return, `ValueError` for a `limit` below 1.
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}.")
    position = decode_cursor(after) if after else START
    rows = list(committed(after_position(queryset, position))[: limit + 1])
    has_more = len(rows) > limit
    rows = rows[:limit]
    if rows:
        position = position_of(rows[-1])
    return ChangesPage(deltas=rows, cursor=encode_cursor(position), has_more=has_more)
