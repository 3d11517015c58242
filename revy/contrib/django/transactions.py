"""Keeping a change and its history in one transaction, without changing Django's behaviour.

A tracked write and the deltas that record it must commit together or not at all. Django
itself runs most single-row writes without a transaction of their own in autocommit mode, and
inside the caller's `atomic()` it marks the transaction for rollback only when its own SQL
fails. revy keeps exactly that behaviour:

- inside an atomic block, revy opens nothing: the caller's transaction already holds the
  change and its deltas together. Only a failure while writing history marks it for rollback
  (`guard`), so that a change can never commit without its history. An exception Django
  raises before any SQL (a sliced `update()`, a raising `pre_save` receiver) leaves the
  caller's block usable, as it does without revy.
- in autocommit mode, revy opens a transaction around the write and its deltas (`block`).
  An exception that is not a database error (a raising `post_save` receiver, say) does not
  undo what Django would have committed: the block commits first, then the exception
  propagates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from django.db import DatabaseError, connections, transaction

__all__ = ["atomic_unit", "guard", "run_atomically"]

T = TypeVar("T")


def guard(using: str):
    """Mark the caller's transaction for rollback if writing history fails."""
    return transaction.mark_for_rollback_on_error(using)


def run_atomically(using: str, write: Callable[[], T]) -> T:
    """Run `write` (a change and the recording of its history) as one atomic unit.

    See the module docstring for what happens inside an atomic block and in autocommit mode.
    """
    connection = connections[using]
    if connection.in_atomic_block:
        return write()
    error: BaseException | None = None
    with transaction.atomic(using=using):
        try:
            return write()
        except DatabaseError:
            raise
        except Exception as raised:
            if connection.needs_rollback:
                raise
            # Not a failed statement: commit what Django would have committed, then raise.
            error = raised
    raise error


@contextmanager
def atomic_unit(using: str) -> Iterator[None]:
    """Context-manager form of `run_atomically` for code that has no exception to keep."""
    if connections[using].in_atomic_block:
        yield
    else:
        with transaction.atomic(using=using):
            yield
