"""Relay connections of history rows, paginated with opaque keyset cursors, newest first.

Cursors encode the position in the ordering (the row id), not an offset: a page fetched with
`after` stays right while new history is being written. Each page becomes a `Page`, so related
data is loaded once for all its rows.
"""

from __future__ import annotations

import inspect
from typing import Any

import strawberry
from django.db import models
from strawberry import Info
from strawberry.relay import NodeType
from strawberry_django.relay import DjangoCursorConnection, DjangoCursorEdge

from revy_api.graphql.errors import bad_request
from revy_api.graphql.pages import attach_page

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


@strawberry.type(name="Edge", description="An edge in a connection: a row and its cursor.")
class HistoryEdge(DjangoCursorEdge[NodeType]):
    pass


@strawberry.type(
    name="Connection",
    description=(
        f"A page of history rows: `first` of them (default {DEFAULT_PAGE_SIZE}, at most "
        f"{MAX_PAGE_SIZE}) after the `after` cursor."
    ),
)
class HistoryConnection(DjangoCursorConnection[NodeType]):
    edges: list[HistoryEdge[NodeType]] = strawberry.field(  # type: ignore[assignment]
        description="The rows of this page and their cursors."
    )


def resolve_connection(
    connection: type[HistoryConnection],
    queryset: models.QuerySet,
    info: Info,
    *,
    first: int | None,
    after: str | None,
) -> HistoryConnection:
    """Return one page of `queryset` (ordered, newest first) as `connection`.

    Runs synchronously: call it from a resolver wrapped with `django_resolver`.
    """
    if first is None:
        first = DEFAULT_PAGE_SIZE
    elif first < 0:
        raise bad_request(f"first must not be negative, not {first}.", argument="first")
    first = min(first, MAX_PAGE_SIZE)
    try:
        result: Any = connection.resolve_connection(
            queryset, info=info, first=first, after=after or None, max_results=MAX_PAGE_SIZE
        )
    except ValueError as error:  # strawberry-django's message for a malformed cursor
        raise bad_request(f"after is not a valid cursor: {error}.", argument="after") from None
    if inspect.isawaitable(result):  # pragma: no cover - only without django_resolver
        raise RuntimeError("resolve_connection() must run in a synchronous resolver.")
    attach_page(edge.node for edge in result.edges)
    return result
