"""Drop-in replacements for Django's `on_delete` handlers.

Inside an enabled context, every row a deletion touches gets its own delta in the deleting
revision, with the system (None) as actor and the context's `deletion_description`. The deltas
are written by the deletion hook in `tracking`, inside the deletion's transaction; these
handlers make sure the affected rows are fully loaded so that their pre-deletion state is known
without another query. Outside an enabled context Django's handler runs unchanged.

Migrations refer to these functions by their import path, which stays stable.
"""

from __future__ import annotations

from typing import Any

from django.db.models import deletion as django_deletion

from revy.context import Context

__all__ = ["CASCADE", "SET", "SET_DEFAULT", "SET_NULL"]


def _full_rows(sub_objs: Any) -> Any:
    # Django loads cascaded rows with only() when nobody listens to signals; recording needs
    # every field, so load them whole in the same single query.
    if Context.is_enabled() and hasattr(sub_objs, "defer"):
        return sub_objs.defer(None)
    return sub_objs


def CASCADE(collector, field, sub_objs, using) -> None:
    """Delete the rows that point at the deleted one, recording each deletion."""
    django_deletion.CASCADE(collector, field, _full_rows(sub_objs), using)


# Django fast-deletes the rows of a relation whose handler is its own CASCADE, without
# reading them; for any other handler it reads them before calling it, unless the handler is
# lazy. Being lazy lets the collector read the rows once, whole (see `_full_rows`), or
# fast-delete them when it can, instead of reading their keys first and the rows again.
CASCADE.lazy_sub_objs = True


def SET_NULL(collector, field, sub_objs, using) -> None:
    """Set the foreign key to NULL, recording each row's update."""
    django_deletion.SET_NULL(collector, field, sub_objs, using)


SET_NULL.lazy_sub_objs = True


def SET_DEFAULT(collector, field, sub_objs, using) -> None:
    """Set the foreign key to its default, recording each row's update."""
    # Not lazy, like Django's: a callable default only runs when rows point at the deleted one.
    django_deletion.SET_DEFAULT(collector, field, sub_objs, using)


def SET(value: Any):
    """Set the foreign key to `value` (or its result, if callable), recording each update."""
    handler = django_deletion.SET(value)

    def set_on_delete(collector, field, sub_objs, using) -> None:
        handler(collector, field, sub_objs, using)

    if getattr(handler, "lazy_sub_objs", False):
        set_on_delete.lazy_sub_objs = True
    set_on_delete.deconstruct = lambda: ("revy.contrib.django.deletion.SET", (value,), {})
    return set_on_delete
