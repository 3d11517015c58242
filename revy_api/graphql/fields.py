"""`history_field()`: a row's history as a connection field of any strawberry(-django) type.

::

    @strawberry_django.type(Transaction)
    class TransactionType(relay.Node):
        memo: str
        history: ObjectDeltaConnection = history_field()

The field needs the same permission as `objectHistory` (the visibility policy's consent for
the row). Its page
of deltas loads their related data at once, so its cost does not grow with the page size or
the history's length; but each row that shows its history costs its own few queries (a list of
rows cannot be seen from one row's field). For the changes of many rows, query `revisions`
with `filters: {contentType: ...}` instead.
"""

from __future__ import annotations

from typing import Any

import strawberry_django
from strawberry import Info
from strawberry_django import django_resolver

from revy.contrib.django._meta import concrete_model
from revy_api.graphql.connections import resolve_connection
from revy_api.graphql.state import state_of
from revy_api.graphql.types import ObjectDeltaConnection

__all__ = ["history_field"]


def history_field(
    *,
    aggregates: bool = False,
    name: str | None = None,
    description: str | None = None,
) -> Any:
    """Return a field listing the object deltas of the row it is resolved on, newest first.

    `aggregates=True` makes the `aggregates` argument default to true: the history then also
    holds the changes of rows that name this one as an aggregate (a car's engine and
    cylinders). Arguments: `aggregates`, `first` and `after`, as for `objectHistory`.
    """

    def resolve(
        root: Any,
        info: Info,
        aggregates: bool | None = aggregates,
        first: int | None = None,
        after: str | None = None,
    ) -> ObjectDeltaConnection:
        state = state_of(info)
        model = concrete_model(type(root))
        state.require_view(model, root.pk, obj=root)
        deltas = state.history(model, root.pk, aggregates=bool(aggregates)).order_by("-id")
        return resolve_connection(ObjectDeltaConnection, deltas, info, first=first, after=after)

    return strawberry_django.field(
        resolver=django_resolver(resolve),
        name=name,
        description=description or "The history of this row, newest first.",
        graphql_type=ObjectDeltaConnection,
        disable_optimization=True,
    )
