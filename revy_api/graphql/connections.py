"""Relay connections of history rows, paginated with opaque keyset cursors.

Cursors encode the position in the ordering (the row id), not an offset: a page fetched with
`after` stays right while new history is being written. Each page becomes a `Page`, so related
data is loaded once for all its rows.

A connection nested in a list (the deltas of each revision of a page of revisions) is fetched
for the whole list at once: one query with a window function numbers the rows of each parent.
"""

from __future__ import annotations

import inspect
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable
from typing import Any, cast

import strawberry
from django.db import models
from django.db.models import F, Window
from django.db.models.functions import RowNumber
from strawberry import Info
from strawberry.relay import NodeType, PageInfo
from strawberry.relay.utils import should_resolve_list_connection_edges
from strawberry_django import django_resolver
from strawberry_django.relay import DjangoCursorConnection, DjangoCursorEdge
from strawberry_django.relay.cursor_connection import (
    OrderedCollectionCursor,
    annotate_ordering_fields,
)
from strawberry_django.relay.utils import resolve_edge_class

from revy_api.graphql.errors import bad_request
from revy_api.graphql.pages import attach_page

__all__ = [
    "TOTAL_COUNT_CAP",
    "HistoryConnection",
    "HistoryEdge",
    "capped_count",
    "page_size",
    "resolve_connection",
    "resolve_grouped_connections",
]


DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
#: `totalCount` counts at most this many rows: an exact count of a filtered history reads all
#: of it (8 s for one actor's revisions at a million deltas), a capped one stops here.
TOTAL_COUNT_CAP = 10_000


def capped_count(queryset: models.QuerySet) -> int:
    """Return `queryset.count()`, or `TOTAL_COUNT_CAP` when there are more rows."""
    return queryset.order_by()[:TOTAL_COUNT_CAP].count()


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
    known_total: strawberry.Private[int | None] = None
    # Builds the queryset to count when it differs from the page's (query shapes that suit a
    # page newest first can cost a scan of history to count): called only for totalCount.
    count_source: strawberry.Private[Callable[[], models.QuerySet] | None] = None

    @strawberry.field(
        description=f"How many rows there are in all pages, counted up to {TOTAL_COUNT_CAP:,}: "
        f"a larger history reports {TOTAL_COUNT_CAP:,} (page through it to know more)."
    )
    def total_count(self) -> int:
        if self.known_total is not None:
            return min(self.known_total, TOTAL_COUNT_CAP)
        source, rows = self.count_source, self.total_count_qs

        def count() -> int:
            # Building the queryset may query too (the filters' capped counts).
            counted = source() if source is not None else rows
            assert counted is not None
            return capped_count(counted)

        # django_resolver runs the queries in a worker thread in an async execution (and then
        # returns an awaitable, which strawberry awaits).
        return django_resolver(count)()  # type: ignore[return-value]


def page_size(first: int | None) -> int:
    """Return the number of rows to show: `first`, 50 by default, at most 500."""
    if first is None:
        return DEFAULT_PAGE_SIZE
    if first < 0:
        raise bad_request(f"first must not be negative, not {first}.", argument="first")
    return min(first, MAX_PAGE_SIZE)


def resolve_connection(
    connection: type[HistoryConnection],
    queryset: models.QuerySet,
    info: Info,
    *,
    first: int | None,
    after: str | None,
    count_source: Callable[[], models.QuerySet] | None = None,
) -> HistoryConnection:
    """Return one page of `queryset` (ordered) as `connection`.

    `count_source` builds the queryset `totalCount` counts, if not `queryset`.

    Runs synchronously: call it from a resolver wrapped with `django_resolver`.
    """
    size = page_size(first)
    try:
        result: Any = connection.resolve_connection(
            queryset, info=info, first=size, after=after or None, max_results=MAX_PAGE_SIZE
        )
    except ValueError as error:  # strawberry-django's message for a malformed cursor
        raise bad_request(f"after is not a valid cursor: {error}.", argument="after") from None
    if inspect.isawaitable(result):  # pragma: no cover - only without django_resolver
        raise RuntimeError("resolve_connection() must run in a synchronous resolver.")
    attach_page(edge.node for edge in result.edges)
    result.count_source = count_source
    return result


def resolve_grouped_connections(
    connection: type[HistoryConnection],
    queryset: models.QuerySet,
    info: Info,
    *,
    group_by: str,
    groups: Iterable[Hashable],
    first: int | None,
    totals: dict[Hashable, int],
) -> dict[Hashable, HistoryConnection]:
    """Return the first page of `queryset` for each value of `group_by`, in one query.

    `queryset` must be ordered by its primary key (ascending or descending); `totals` gives
    each group's number of rows. The cursors are those `resolve_connection` understands, so
    the next pages are fetched per group with `after`.
    """
    size = page_size(first)
    groups = list(groups)
    rows: dict[Hashable, list[models.Model]] = defaultdict(list)
    ordered, descriptors, _ = annotate_ordering_fields(queryset)
    if should_resolve_list_connection_edges(info) and size > 0:
        names = cast("tuple[str, ...]", queryset.query.order_by)  # field names: see above
        order_by = [F(name[1:]).desc() if name.startswith("-") else F(name).asc() for name in names]
        numbered = ordered.annotate(
            _revy_row=Window(RowNumber(), partition_by=[F(group_by)], order_by=order_by)
        ).filter(_revy_row__lte=size)
        for row in numbered:
            rows[getattr(row, group_by)].append(row)
    edge_class = resolve_edge_class(connection)
    connections = {}
    for key in groups:
        nodes = rows.get(key, [])
        edges = [
            edge_class.resolve_edge(
                node, cursor=OrderedCollectionCursor.from_model(node, descriptors)
            )
            for node in nodes[:size]
        ]
        connections[key] = connection(
            edges=edges,  # type: ignore[arg-type]
            page_info=PageInfo(
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
                has_previous_page=False,
                has_next_page=totals.get(key, 0) > len(edges),
            ),
            total_count_qs=queryset.filter(**{group_by: key}),
            known_total=totals.get(key, 0),
        )
    attach_page(edge.node for page in connections.values() for edge in page.edges)
    return connections
