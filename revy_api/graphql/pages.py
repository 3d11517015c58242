"""Pages: rows fetched together, whose related data is loaded for all of them at once.

A connection's page of object deltas needs their revisions, attribute deltas, actors and
contents. Loading them per row would cost queries per row (N+1); instead every row of a page
points to one `Page`, and the first field that needs related data loads it for the whole page:
one query per relation, and one per actor or content model through
`revy_api.references.References`. A page of 50 deltas costs what a page of 5 does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.db import models

from revy_api.field_changes import FieldChange, loaded_field_changes
from revy_api.references import References

__all__ = [
    "Page",
    "attach_page",
    "page_of",
]


_PAGE = "_revy_page"


class Page:
    """Rows fetched together; loads their related data once, on first use."""

    __slots__ = ("_asked", "_batches", "_pending", "nodes", "references")

    def __init__(self, nodes: Iterable[models.Model]) -> None:
        self.nodes = list(nodes)
        self.references = References()
        self._asked: set[tuple[int, str]] = set()
        self._pending = False
        self._batches: dict[str, Any] = {}

    def batch(self, key: str, compute: Callable[[list[models.Model]], Any]) -> Any:
        """Return `compute(rows)`, computed once per page and `key`."""
        if key not in self._batches:
            self._batches[key] = compute(self.nodes)
        return self._batches[key]

    def want(self, content_type_id: int | None, object_id: Any) -> None:
        """Queue an actor or object for the next batched reference load."""
        if content_type_id is None or object_id is None:
            return
        key = (content_type_id, str(object_id))
        if key not in self._asked:
            self._asked.add(key)
            self.references.want(content_type_id, object_id)
            self._pending = True

    def ref(self, content_type_id: int | None, object_id: Any) -> dict[str, Any] | None:
        """Return `{type, id, display}` of an actor or object of the page (None: the system)."""
        if content_type_id is None:
            return None
        if (content_type_id, str(object_id)) not in self._asked:
            self._want_rows()
            self.want(content_type_id, object_id)
        if self._pending:
            self.references.load()
            self._pending = False
        return self.references.ref(content_type_id, object_id)

    def _want_rows(self) -> None:
        # Everything the page's deltas name, so that one load serves the whole page.
        for node in self.nodes:
            self.want(getattr(node, "actor_type_id", None), getattr(node, "actor_id", None))
            self.want(getattr(node, "content_type_id", None), getattr(node, "content_id", None))
            for child in loaded_field_changes(node) or ():
                self.want(child.actor_type_id, child.actor_id)


def attach_page(nodes: Iterable[models.Model]) -> Page:
    """Make `nodes` one page: their related data will be loaded together."""
    page = Page(nodes)
    for node in page.nodes:
        # Straight into __dict__: a plain attribute, never mistaken for a field change.
        node.__dict__[_PAGE] = page
    return page


def page_of(node: models.Model | FieldChange) -> Page:
    """Return the page of a row; a row fetched on its own is a page of one.

    A field change (`revy_api.field_changes.FieldChange`) belongs to the page of its object
    delta.
    """
    row = node.parent if isinstance(node, FieldChange) else node
    page = row.__dict__.get(_PAGE)
    if page is None:
        page = attach_page([row])
    return page
