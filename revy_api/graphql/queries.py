"""`RevisionQuery`: the read side of revy's history as root query fields.

Mix it into your schema's query type::

    @strawberry.type
    class Query(RevisionQuery):
        ...

Everything needs a logged-in user; a row's history needs the visibility policy's consent
(`revy_api.visibility`: by default the `view` or `change` permission on the model or on the
row), and lists show only what the user may see.
"""

from __future__ import annotations

import datetime
from typing import Annotated, cast

import strawberry
from strawberry import Info, relay
from strawberry_django import django_resolver

from revy.contrib.django import feed
from revy.contrib.django.utils import get_object_delta_model, get_revision_model
from revy_api import inputs, operations
from revy_api.graphql import arguments
from revy_api.graphql.connections import page_size, resolve_connection
from revy_api.graphql.errors import bad_request, not_found, translating_errors
from revy_api.graphql.filters import HistoryFilter, filter_revisions
from revy_api.graphql.pages import attach_page
from revy_api.graphql.past import (
    DeletedObjectConnection,
    PastObjectConnection,
    deleted_objects,
    objects_as_of,
)
from revy_api.graphql.payloads import ObjectDiff, Snapshot, field_changes
from revy_api.graphql.state import state_of
from revy_api.graphql.types import (
    ObjectDelta,
    ObjectDeltaConnection,
    Revision,
    RevisionConnection,
)

__all__ = ["ChangesPage", "RevisionQuery"]

_TYPE = "The row's model as `app_label.model` (lower case), e.g. `ledger.transaction`."
_ID = "The row's primary key (the row may have been deleted since)."
_FIRST = "How many rows to return (default 50, at most 500)."
_AFTER = "The `endCursor` of the previous page."


_NODE_TYPES: dict[str, type[relay.Node]] = {"Revision": Revision, "ObjectDelta": ObjectDelta}


def _ids(pk: int | None) -> list[int]:
    return [pk] if pk is not None else []


@strawberry.type(
    name="ChangesPage", description="Object deltas in commit order, and where to resume."
)
class ChangesPage:
    deltas: list[ObjectDelta] = strawberry.field(description="Oldest first.")
    cursor: str = strawberry.field(
        description="Pass it as `after` to get what follows: the position after the last "
        "delta, or the one you sent when there is nothing new yet. Opaque."
    )
    has_more: bool = strawberry.field(
        description="More deltas are ready now: ask again at once rather than waiting."
    )


@strawberry.type
class RevisionQuery:
    """Root query fields over revy's history."""

    @strawberry.field(description="Revisions with changes you may see, newest first.")
    @django_resolver
    def revisions(
        self,
        info: Info,
        filters: HistoryFilter | None = None,
        first: Annotated[int | None, strawberry.argument(description=_FIRST)] = None,
        after: Annotated[str | None, strawberry.argument(description=_AFTER)] = None,
    ) -> RevisionConnection:
        state = state_of(info)
        state.require_login()
        visible = state.visible_revisions(get_revision_model()._base_manager.all())
        revisions = filter_revisions(visible, filters, state).order_by("-id")
        return resolve_connection(
            RevisionConnection,
            revisions,
            info,
            first=first,
            after=after,
            count_source=lambda: filter_revisions(visible, filters, state, paged=False),
        )

    @strawberry.field(description="One revision, by its Relay id (NOT_FOUND if not visible).")
    @django_resolver
    def revision(self, info: Info, id: strawberry.ID) -> Revision:
        state = state_of(info)
        state.require_login()
        with translating_errors():
            pk = arguments.node_pk(id, "Revision", "id")
            found = state.visible_revisions(
                get_revision_model()._base_manager.filter(pk__in=_ids(inputs.row_id(pk)))
            ).first()
        if found is None:
            raise not_found(f"There is no revision {id} that you may see.")
        attach_page([found])
        return found

    @strawberry.field(
        description="A `Revision` or an `ObjectDelta` by its Relay id (NOT_FOUND when there "
        "is none that you may see)."
    )
    @django_resolver
    def node(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The Relay id.")],
    ) -> relay.Node | None:
        state = state_of(info)
        state.require_login()
        try:
            global_id = relay.GlobalID.from_id(str(id))
        except (relay.GlobalIDValueError, ValueError, TypeError):
            global_id = None
        kind = _NODE_TYPES.get(global_id.type_name) if global_id is not None else None
        if global_id is None or kind is None:
            raise bad_request(
                f"id {id!r} is not the Relay id of a Revision or an ObjectDelta.", argument="id"
            )
        # An awaitable under the async view, which strawberry awaits; its typing says so.
        return kind.resolve_node(  # type: ignore[return-value]
            global_id.node_id, info=info, required=True
        )

    @strawberry.field(description="The history of one row, newest first.")
    @django_resolver
    def object_history(
        self,
        info: Info,
        type: Annotated[str, strawberry.argument(description=_TYPE)],
        id: Annotated[strawberry.ID, strawberry.argument(description=_ID)],
        aggregates: Annotated[
            bool | None,
            strawberry.argument(
                description="Also the changes of rows that name this one as an aggregate.",
            ),
        ] = False,
        first: Annotated[int | None, strawberry.argument(description=_FIRST)] = None,
        after: Annotated[str | None, strawberry.argument(description=_AFTER)] = None,
    ) -> ObjectDeltaConnection:
        state = state_of(info)
        model = arguments.model_for(type)
        pk = arguments.pk_for(model, id)
        state.require_view(model, pk)
        deltas = state.history(model, pk, aggregates=bool(aggregates)).order_by("-id")
        return resolve_connection(ObjectDeltaConnection, deltas, info, first=first, after=after)

    @strawberry.field(
        description="The rows of a model that are deleted now (their latest recorded change "
        "is a deletion), newest deletion first; only deletions you may see."
    )
    @django_resolver
    def deleted_objects(
        self,
        info: Info,
        type: Annotated[str, strawberry.argument(description=_TYPE)],
        first: Annotated[int | None, strawberry.argument(description=_FIRST)] = None,
        after: Annotated[str | None, strawberry.argument(description=_AFTER)] = None,
    ) -> DeletedObjectConnection:
        return deleted_objects(info, type, first=first, after=after)

    @strawberry.field(
        description="The rows of a model as they were at a moment, by primary key: rows "
        "deleted since included, rows created since not (FORBIDDEN without the view of the "
        "model's history)."
    )
    @django_resolver
    def objects_as_of(
        self,
        info: Info,
        type: Annotated[str, strawberry.argument(description=_TYPE)],
        at: Annotated[
            datetime.datetime,
            strawberry.argument(
                description="The moment (after every change made at or before it)."
            ),
        ],
        first: Annotated[int | None, strawberry.argument(description=_FIRST)] = None,
        after: Annotated[str | None, strawberry.argument(description=_AFTER)] = None,
    ) -> PastObjectConnection:
        return objects_as_of(info, type, at, first=first, after=after)

    @strawberry.field(
        description="A row as it was at one point (the latest recorded state without one); "
        "null when the row did not exist then."
    )
    @django_resolver
    def snapshot(
        self,
        info: Info,
        type: Annotated[str, strawberry.argument(description=_TYPE)],
        id: Annotated[strawberry.ID, strawberry.argument(description=_ID)],
        revision: Annotated[
            strawberry.ID | None,
            strawberry.argument(description="After all of this revision's changes."),
        ] = None,
        delta: Annotated[
            strawberry.ID | None,
            strawberry.argument(
                description="Right after this object delta (just before it, for a deletion).",
            ),
        ] = None,
        at: Annotated[
            datetime.datetime | None,
            strawberry.argument(description="After every change made at or before this moment."),
        ] = None,
    ) -> Snapshot | None:
        state = state_of(info)
        model = arguments.model_for(type)
        pk = arguments.pk_for(model, id)
        state.require_view(model, pk)
        with translating_errors():
            at_point = arguments.point(revision=revision, delta=delta, at=at, required=False)
            instance = operations.snapshot(model, pk, at_point)
        return Snapshot.of(type.lower(), pk, instance) if instance is not None else None

    @strawberry.field(description="The fields of one row that differ between two points.")
    @django_resolver
    def object_diff(
        self,
        info: Info,
        type: Annotated[str, strawberry.argument(description=_TYPE)],
        id: Annotated[strawberry.ID, strawberry.argument(description=_ID)],
        since: Annotated[
            str | None,
            strawberry.argument(
                description="A Revision or ObjectDelta id, or an ISO 8601 datetime; omitted: "
                "before the row's history began.",
            ),
        ] = None,
        until: Annotated[
            str | None,
            strawberry.argument(
                description="A Revision or ObjectDelta id, or an ISO 8601 datetime; omitted: "
                "the latest recorded state.",
            ),
        ] = None,
    ) -> ObjectDiff:
        state = state_of(info)
        model = arguments.model_for(type)
        pk = arguments.pk_for(model, id)
        state.require_view(model, pk)
        with translating_errors():
            changes = operations.diff(
                model,
                pk,
                arguments.diff_point(since, "since"),
                arguments.diff_point(until, "until"),
            )
        return ObjectDiff(
            type=type.lower(),
            id=strawberry.ID(str(pk)),
            since=since,
            until=until,
            changes=field_changes(changes),
        )

    @strawberry.field(
        description="Every object delta you may see, once, in commit order, from a cursor: "
        "a feed to follow history. A delta whose transaction commits after a later one is "
        "never skipped."
    )
    @django_resolver
    def changes(
        self,
        info: Info,
        after: Annotated[
            str | None,
            strawberry.argument(
                description="The `cursor` of the previous page; omitted: from the beginning."
            ),
        ] = None,
        first: Annotated[int | None, strawberry.argument(description=_FIRST)] = None,
    ) -> ChangesPage:
        state = state_of(info)
        state.require_login()
        size = page_size(first)
        if size == 0:
            raise bad_request("first must be at least 1.", argument="first")
        deltas = state.visible_deltas(get_object_delta_model()._base_manager.all())
        try:
            page = feed.changes(deltas, after=after or None, limit=size)
        except feed.InvalidCursor as error:
            raise bad_request(str(error), argument="after") from None
        attach_page(page.deltas)
        # strawberry-django resolves the object delta model's instances through `ObjectDelta`.
        shown = cast("list[ObjectDelta]", page.deltas)
        return ChangesPage(deltas=shown, cursor=page.cursor, has_more=page.has_more)
