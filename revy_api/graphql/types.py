"""GraphQL types of revy's history: revisions, object deltas, attribute deltas and references.

`Revision` and `ObjectDelta` are Relay nodes (`node(id:)` applies the same visibility rules as
every other field); both are strawberry-django types of the (swappable) history models.
`AttributeDelta` is a plain strawberry type, built from each row (`AttributeDelta.of`).
Related data (revisions, attribute deltas, actors, contents, counts) is loaded per page of
rows, never per row (see `revy_api.graphql.pages`).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from enum import Enum
from typing import Any

import strawberry
import strawberry_django
from django.db.models import prefetch_related_objects
from strawberry import Info, relay
from strawberry.scalars import JSON
from strawberry_django import django_resolver

from revy.contrib.django.utils import (
    get_object_delta_model,
    get_revision_model,
)
from revy_api import inputs
from revy_api.field_changes import field_changes, load_field_changes
from revy_api.graphql.connections import (
    HistoryConnection,
    resolve_connection,
    resolve_grouped_connections,
)
from revy_api.graphql.errors import not_found
from revy_api.graphql.pages import attach_page, page_of
from revy_api.graphql.state import state_of
from revy_api.summaries import RevisionSummaries, revision_summaries, sorted_actors

__all__ = [
    "ActorRef",
    "AttributeAction",
    "AttributeDelta",
    "ContentRef",
    "DeltaAction",
    "ObjectDelta",
    "ObjectDeltaConnection",
    "Revision",
    "RevisionConnection",
    "prefetch_revisions",
]


@strawberry.enum(description="What an object delta records.")
class DeltaAction(Enum):
    CREATE = "Create"
    UPDATE = "Update"
    DELETE = "Delete"
    EVENT = "Event"
    BASELINE = "Baseline"


@strawberry.enum(description="What an attribute delta did to its field.")
class AttributeAction(Enum):
    SET = "Set"
    UNSET = "Unset"


@strawberry.type(description="Who made a change: a user, an organization or any other model.")
class ActorRef:
    type: str = strawberry.field(description="`app_label.model` of the actor.")
    id: strawberry.ID = strawberry.field(description="The actor's primary key.")
    display: str = strawberry.field(description="How to show the actor to people.")


@strawberry.type(description="The row a delta changed (it may have been deleted since).")
class ContentRef:
    type: str = strawberry.field(description="`app_label.model` of the row.")
    id: strawberry.ID = strawberry.field(description="The row's primary key.")
    display: str = strawberry.field(
        description="How to show the row to people; `(deleted)` when it no longer exists."
    )


def _actor(node: Any) -> ActorRef | None:
    ref = page_of(node).ref(node.actor_type_id, node.actor_id)
    return ActorRef(**ref) if ref is not None else None


# Attribute deltas --------------------------------------------------------------------------


@strawberry.type(
    name="AttributeDelta",
    description="One field's change within an object delta, by one actor.",
)
class AttributeDelta:
    """Built from an attribute delta row by `of`: plain fields, read without a resolver.

    A page of object deltas shows a few field changes each; resolving every one of their
    fields through strawberry-django (a resolver, its sync/async checks) cost more than
    the rest of the page. Only `actor` has a resolver: it loads the page's actors at once.
    """

    description: str = strawberry.field(description="Why the field changed.")
    created_at: datetime.datetime = strawberry.field(description="When it changed.")
    id: strawberry.ID = strawberry.field(description="The attribute delta's primary key.")
    field: str = strawberry.field(
        description="The field's attname (`author_id` for a foreign key)."
    )
    action: AttributeAction = strawberry.field(
        description="`SET`, or `UNSET` when the new value is empty."
    )
    old: JSON | None = strawberry.field(description="The value before the change (JSON).")
    new: JSON | None = strawberry.field(description="The value after the change (JSON).")
    row: strawberry.Private[Any]

    @strawberry.field(description="Who changed the field; null for the system.")
    @django_resolver
    def actor(self) -> ActorRef | None:
        return _actor(self.row)

    @classmethod
    def of(cls, row: Any) -> AttributeDelta:
        """The field change an attribute delta row records."""
        return cls(
            description=row.description,
            created_at=row.created_at,
            id=strawberry.ID(str(row.pk)),
            field=row.field_name,
            action=AttributeAction(row.action),
            old=row.old_value,
            new=row.new_value,
            row=row,
        )


def prefetch_revisions(deltas: list[Any]) -> None:
    """Load the revisions of a page of deltas at once, and make them a page of their own."""
    prefetch_related_objects(deltas, "revision")
    attach_page({delta.revision_id: delta.revision for delta in deltas}.values())


# Object deltas -----------------------------------------------------------------------------


@strawberry_django.type(
    get_object_delta_model(),
    name="ObjectDelta",
    description="One change to one row: its creation, an update, its deletion or an event.",
)
class ObjectDelta(relay.Node):
    # Declared, so that strawberry finds the id without searching the annotations per row.
    id: relay.NodeID[int]
    event_type: str = strawberry_django.field(
        description="`app_label.model.created|updated|deleted`, or a custom event type."
    )
    description: str = strawberry_django.field(description="Why the row changed.")
    created_at: datetime.datetime = strawberry_django.field(description="When it changed.")
    data: JSON | None = strawberry_django.field(
        description="The row's full state after the change (before it, for a deletion), or "
        "an event's data."
    )

    @strawberry.field(description="What the delta records.")
    def action(self, root: Any) -> DeltaAction:
        return DeltaAction(root.action)

    @strawberry.field(description="The revision this change belongs to.")
    @django_resolver
    def revision(self, root: Any) -> Revision:
        page_of(root).batch("revisions", prefetch_revisions)
        return root.revision

    @strawberry.field(description="Who made the change; null for the system.")
    @django_resolver
    def actor(self, root: Any) -> ActorRef | None:
        return _actor(root)

    @strawberry.field(description="The row that changed.")
    @django_resolver
    def content(self, root: Any) -> ContentRef:
        ref = page_of(root).ref(root.content_type_id, root.content_id)
        assert ref is not None  # every delta has a content type
        return ContentRef(**ref)

    @strawberry.field(description="The field changes of this delta, in order.")
    @django_resolver
    def changes(self, root: Any) -> list[AttributeDelta]:
        page_of(root).batch("field changes", load_field_changes)
        return [AttributeDelta.of(child) for child in field_changes(root)]

    @classmethod
    def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> Any:
        return django_resolver(_resolve_nodes, qs_hook=None)(
            get_object_delta_model(), info, list(node_ids), required, deltas=True
        )

    @classmethod
    def resolve_node(cls, node_id: str, *, info: Info, required: bool = False) -> Any:
        return django_resolver(_resolve_node, qs_hook=None)(
            get_object_delta_model(), info, node_id, required, deltas=True
        )


# Revisions ---------------------------------------------------------------------------------


def _summaries(root: Any, info: Info) -> RevisionSummaries:
    """The actors and visible delta counts of the page of revisions of `root` (as REST's)."""
    page = page_of(root)

    def compute(rows: list[Any]) -> RevisionSummaries:
        state = state_of(info)
        found = revision_summaries([row.pk for row in rows], state.policy, state.user)
        # Every actor of the page at once: one load serves every row's actors.
        for pairs in found[0].values():
            for actor_type_id, actor_id in pairs:
                page.want(actor_type_id, actor_id)
        return found

    return page.batch("summaries", compute)


def _first_delta_pages(revisions: list[Any], info: Info, first: int | None) -> dict:
    ids = [revision.pk for revision in revisions]
    deltas = get_object_delta_model()._base_manager.filter(revision_id__in=ids)
    deltas = state_of(info).visible_deltas(deltas).order_by("id")
    _, totals = _summaries(revisions[0], info)
    return resolve_grouped_connections(
        ObjectDeltaConnection,
        deltas,
        info,
        group_by="revision_id",
        groups=ids,
        first=first,
        totals=totals,
    )


@strawberry_django.type(
    get_revision_model(),
    name="Revision",
    description="Changes made together, by one or more actors, for one reason.",
)
class Revision(relay.Node):
    # Declared, so that strawberry finds the id without searching the annotations per row.
    id: relay.NodeID[int]
    description: str = strawberry_django.field(
        description="Why: the commit message (`X-Commit-Message`) or the code's description."
    )
    created_at: datetime.datetime = strawberry_django.field(description="When it was opened.")
    metadata: JSON = strawberry_django.field(
        description="Request facts: `user` (who acted, even as an organization), `request_id`."
    )

    @strawberry.field(
        description="Everyone who made the visible changes; null stands for the system."
    )
    @django_resolver
    def actors(self, root: Any, info: Info) -> list[ActorRef | None]:
        actors, _ = _summaries(root, info)
        page = page_of(root)
        pairs = sorted_actors(actors[root.pk])
        refs = (page.ref(actor_type_id, actor_id) for actor_type_id, actor_id in pairs)
        return [ActorRef(**ref) if ref is not None else None for ref in refs]

    @strawberry.field(description="How many of its object deltas you may see.")
    @django_resolver
    def delta_count(self, root: Any, info: Info) -> int:
        _, counts = _summaries(root, info)
        return counts[root.pk]

    @strawberry.field(description="Its object deltas you may see, oldest first.")
    @django_resolver
    def deltas(
        self,
        root: Any,
        info: Info,
        first: int | None = None,
        after: str | None = None,
    ) -> ObjectDeltaConnection:
        if after:
            deltas = get_object_delta_model()._base_manager.filter(revision_id=root.pk)
            deltas = state_of(info).visible_deltas(deltas).order_by("id")
            return resolve_connection(ObjectDeltaConnection, deltas, info, first=first, after=after)
        # The first page of every revision of the list, in one query.
        page = page_of(root)
        connections = page.batch(
            f"deltas:{first}", lambda revisions: _first_delta_pages(revisions, info, first)
        )
        return connections[root.pk]

    @classmethod
    def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> Any:
        return django_resolver(_resolve_nodes, qs_hook=None)(
            get_revision_model(), info, list(node_ids), required, deltas=False
        )

    @classmethod
    def resolve_node(cls, node_id: str, *, info: Info, required: bool = False) -> Any:
        return django_resolver(_resolve_node, qs_hook=None)(
            get_revision_model(), info, node_id, required, deltas=False
        )


ObjectDeltaConnection = HistoryConnection[ObjectDelta]
RevisionConnection = HistoryConnection[Revision]


def _resolve_nodes(model, info: Info, node_ids: list[str], required: bool, *, deltas: bool):
    """Fetch nodes by id, hiding what the user may not see (as if it did not exist)."""
    state = state_of(info)
    state.require_login()
    # Ids no row can have (not integers, beyond 64 bits) are not sent to the database.
    keys = [key for key in map(inputs.row_id, node_ids) if key is not None]
    queryset = model._base_manager.filter(pk__in=keys)
    queryset = state.visible_deltas(queryset) if deltas else state.visible_revisions(queryset)
    found = {str(row.pk): row for row in queryset}
    attach_page(found.values())
    rows = [found.get(str(node_id)) for node_id in node_ids]
    if required and any(row is None for row in rows):
        raise not_found(f"There is no {model._meta.verbose_name} with that id that you may see.")
    return rows


def _resolve_node(model, info: Info, node_id: str, required: bool, *, deltas: bool):
    return _resolve_nodes(model, info, [node_id], required, deltas=deltas)[0]
