"""Restores the database refuses: answered as `RestoreConflict` (409), with nothing written.

A rollback or a revert writes rows back as they were. The database may refuse that state
now: a unique value was taken by another row since, a row it refers to was deleted, or
another request restored the same row at the same moment. `restoring()` runs the restore in
its own transaction (a savepoint when one is open), checks the deferred foreign keys before
it ends, so that the refusal comes while the restore can still be undone, and turns the
database's `IntegrityError` into a `RestoreConflict` naming the reason and the columns.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from django.core.exceptions import ObjectDoesNotExist
from django.db import IntegrityError, connections, models, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from revy_api.errors import RestoreConflict

__all__ = ["check_constraints", "restoring"]

# PostgreSQL's SQLSTATE codes (psycopg exposes them as `sqlstate`).
_UNIQUE_VIOLATION = "23505"
_FOREIGN_KEY_VIOLATION = "23503"
# 'Key (author_id)=(5) is not present in table "testapp_author".'
_PG_KEY = re.compile(r"Key \(([^)]*)\)=")
# 'UNIQUE constraint failed: testapp_book.isbn, testapp_book.lang'
_SQLITE_UNIQUE = re.compile(r"UNIQUE constraint failed: (.+)$")
# Django's check_constraints() on SQLite: '... testapp_book.author_id contains a value ...'
_SQLITE_FOREIGN_KEY = re.compile(r"(\w+)\.(\w+) contains a value")

_EXPLANATIONS = {
    "unique": "a unique value it would restore ({fields}) is taken by another row since",
    "missing-related": "a row it refers to ({fields}) no longer exists",
    "concurrent": "another request restored or created the same row meanwhile; read it again",
    "constraint": "the database refuses the restored state",
}


def check_constraints(using: str, touched: Iterable[type[models.Model]]) -> None:
    """Check the deferred constraints of the tables a restore wrote, now.

    Foreign keys are checked at commit by default; a restore nested in an outer transaction
    would only fail when that one commits, after the response was sent.
    """
    connection = connections[using]
    if connection.vendor == "postgresql":
        connection.check_constraints()  # SET CONSTRAINTS ALL IMMEDIATE, then DEFERRED
    else:
        tables = sorted({model._meta.db_table for model in touched})
        connection.check_constraints(table_names=tables)


@contextmanager
def restoring(using: str, what: str, touched: Iterable[type[models.Model]] = ()) -> Iterator[None]:
    """Run the block atomically; raise `RestoreConflict` for an `IntegrityError`.

    `what` names the restore in the message ("The rollback of testapp.Book 3"); `touched`
    are the models written, whose primary key columns tell a concurrent restore apart.
    """
    touched = list(touched)
    try:
        with transaction.atomic(using=using):
            yield
    except ObjectDoesNotExist:
        # Recording the restored row looked up a row it refers to, which is gone (the core
        # raises this before the database can refuse the foreign key).
        raise RestoreConflict(
            f"{what} cannot be done: {_EXPLANATIONS['missing-related'].format(fields='unknown')}."
            " Nothing was written.",
            reason="missing-related",
            fields=[],
        ) from None
    except IntegrityError as error:
        connection = connections[using]
        if connection.vendor == "postgresql" and connection.in_atomic_block:
            # A failed `SET CONSTRAINTS ALL IMMEDIATE` may outlive the savepoint's rollback.
            with connection.cursor() as cursor:
                cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        reason, fields = _classify(connection, error, touched)
        explanation = _EXPLANATIONS[reason].format(fields=", ".join(fields) or "unknown")
        raise RestoreConflict(
            f"{what} cannot be done: {explanation}. Nothing was written.",
            reason=reason,
            fields=fields,
        ) from None


def _classify(
    connection: BaseDatabaseWrapper, error: IntegrityError, touched: list[type[models.Model]]
) -> tuple[str, list[str]]:
    """Return (reason, columns at fault) of a refused restore."""
    cause = error.__cause__
    sqlstate = getattr(cause, "sqlstate", None)
    message = str(error)
    if sqlstate is not None:
        diag = getattr(cause, "diag", None)
        fields = _constraint_columns(connection, getattr(diag, "constraint_name", None), touched)
        if not fields and (match := _PG_KEY.search(getattr(diag, "message_detail", None) or "")):
            fields = [name.strip().strip('"') for name in match.group(1).split(",")]
        if sqlstate == _UNIQUE_VIOLATION:
            return (_unique_reason(fields, touched), fields)
        if sqlstate == _FOREIGN_KEY_VIOLATION:
            return ("missing-related", fields)
        return ("constraint", fields)
    if match := _SQLITE_UNIQUE.search(message):
        fields = [column.strip().rpartition(".")[2] for column in match.group(1).split(",")]
        return (_unique_reason(fields, touched), fields)
    if match := _SQLITE_FOREIGN_KEY.search(message):
        return ("missing-related", [match.group(2)])
    if "FOREIGN KEY constraint failed" in message:
        return ("missing-related", [])
    return ("constraint", [])


def _constraint_columns(
    connection: BaseDatabaseWrapper, name: str | None, touched: list[type[models.Model]]
) -> list[str]:
    """The columns of the constraint `name` on one of the tables written, if it is there.

    The error's own text may name the other side of a foreign key (when the referenced row
    was deleted in the same transaction: "Key (id)=(1) is still referenced"); the constraint
    says which columns of the restored row are at fault.
    """
    if not name:
        return []
    with connection.cursor() as cursor:
        for model in touched:
            found = connection.introspection.get_constraints(cursor, model._meta.db_table)
            if name in found:
                return list(found[name]["columns"])
    return []


def _unique_reason(fields: list[str], touched: list[type[models.Model]]) -> str:
    # A primary key taken: the row itself came back meanwhile (a concurrent restore).
    primary_keys = {model._meta.pk.column for model in touched}
    return "concurrent" if fields and set(fields) <= primary_keys else "unique"
