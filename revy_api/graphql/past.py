"""The past of whole tables over GraphQL: deleted rows and a table as it was at a moment.

- `deletedObjects(type, first, after)`: the rows of a model that are deleted now, newest
  deletion first (`revy.contrib.django.history.deleted`), each its `Delete` delta seen as a
  `DeletedObject`; only deletions the visibility policy lets the user see (`filter_deltas`).
- `objectsAsOf(type, at, first, after)`: the rows of a model as they were at `at`
  (`revy.contrib.django.history.as_of`), as `PastObject`s ordered by primary key; it needs
  the policy's view of the model's history (`can_view_model`).

Either is a fixed number of SQL queries per page, whatever its size: one for the rows, one
for `totalCount` when asked, and for deletions one for their revisions and one per actor
model.
"""

from __future__ import annotations

import datetime
import json
from typing import TYPE_CHECKING, Any, cast

import strawberry
import strawberry_django
from django.core.exceptions import ValidationError
from django.db import models
from strawberry import Info, relay
from strawberry.relay import PageInfo
from strawberry.scalars import JSON
from strawberry_django import django_resolver

from revy.contrib.django import history, registry
from revy.contrib.django.utils import get_object_delta_model
from revy_api import inputs
from revy_api.graphql import arguments
from revy_api.graphql.connections import HistoryConnection, page_size, resolve_connection
from revy_api.graphql.errors import bad_request, forbidden
from revy_api.graphql.pages import page_of
from revy_api.graphql.payloads import recorded_state
from revy_api.graphql.state import state_of
from revy_api.graphql.types import ActorRef, ObjectDelta, Revision, prefetch_revisions
from revy_api.references import References, type_label

if TYPE_CHECKING:
    from django.db.models.fields.composite import CompositePrimaryKey

__all__ = [
    "DeletedObject",
    "DeletedObjectConnection",
    "PastObject",
    "PastObjectConnection",
    "PastObjectEdge",
    "deleted_objects",
    "objects_as_of",
]


# Deleted rows ------------------------------------------------------------------------------


def _actors(deletions: list[Any]) -> References:
    """The actors of a page of deletions, one query per actor model (the deleted rows
    themselves, which a page's references would also look for, are gone)."""
    references = References()
    for deletion in deletions:
        references.want(deletion.actor_type_id, deletion.actor_id)
    return references.load()


@strawberry_django.type(
    get_object_delta_model(),
    name="DeletedObject",
    description="A row deleted now: its last state, and when, by whom and why it was deleted.",
)
class DeletedObject:
    @strawberry_django.field(description="`app_label.model` of the row.")
    def type(self, root: Any) -> str:
        return type_label(root.content_type_id)

    @strawberry_django.field(description="The row's primary key.")
    def id(self, root: Any) -> strawberry.ID:
        return strawberry.ID(root.content_id)

    @strawberry_django.field(
        description="Its last recorded state (just before the deletion), by attname (JSON)."
    )
    def state(self, root: Any) -> JSON:
        return cast(JSON, root.data)

    @strawberry_django.field(description="When it was deleted.")
    def deleted_at(self, root: Any) -> datetime.datetime:
        return root.created_at

    @strawberry_django.field(description="Who deleted it; null for the system (a cascade).")
    @django_resolver
    def actor(self, root: Any) -> ActorRef | None:
        ref = page_of(root).batch("deleting actors", _actors).ref(root.actor_type_id, root.actor_id)
        return ActorRef(**ref) if ref is not None else None

    @strawberry_django.field(description="Why it was deleted.")
    def description(self, root: Any) -> str:
        return root.description

    @strawberry_django.field(description="The revision that deleted it.")
    @django_resolver
    def revision(self, root: Any) -> Revision:
        page_of(root).batch("revisions", prefetch_revisions)
        return root.revision

    @strawberry_django.field(
        description="The `Delete` object delta (pass its id as `delta` to `rollbackObject` "
        "to re-create the row)."
    )
    def delta(self, root: Any) -> ObjectDelta:
        return root


# strawberry pages any type at run time (a deletion has no global id); its typing bounds a
# connection's type to Node.
DeletedObjectConnection = HistoryConnection[DeletedObject]  # type: ignore[type-var]


def deleted_objects(
    info: Info, label: str, *, first: int | None, after: str | None
) -> HistoryConnection:
    """One page of the visible deletions of the model `label` names, newest first."""
    state = state_of(info)
    state.require_login()
    model = arguments.model_for(label)
    deletions = state.visible_deltas(history.deleted(model))
    return resolve_connection(
        DeletedObjectConnection,  # type: ignore[type-var]  # see DeletedObjectConnection
        deletions,
        info,
        first=first,
        after=after,
    )


# A table at a past moment ------------------------------------------------------------------


@strawberry.type(description="A row as it was at a past moment.")
class PastObject:
    type: str = strawberry.field(description="`app_label.model` of the row.")
    id: strawberry.ID = strawberry.field(description="The row's primary key.")
    state: JSON = strawberry.field(description="Its recorded fields by attname (JSON values).")


@strawberry.type(name="PastObjectEdge", description="A past row and its cursor.")
class PastObjectEdge:
    cursor: str = strawberry.field(description="Pass it as `after` to get the rows after it.")
    node: PastObject = strawberry.field(description="The row.")


@strawberry.type(
    name="PastObjectConnection",
    description="A page of rows as they were at a moment, by primary key: `first` of them "
    "(default 50, at most 500) after the `after` cursor.",
)
class PastObjectConnection:
    edges: list[PastObjectEdge] = strawberry.field(description="The rows of this page.")
    page_info: PageInfo = strawberry.field(description="Where this page starts and ends.")
    rows: strawberry.Private[models.QuerySet]

    @strawberry.field(description="How many rows the table had at that moment.")
    @django_resolver
    def total_count(self) -> int:
        return self.rows.count()


_CURSOR = "PastObject"


def _cursor(model: type[models.Model], pk: Any) -> str:
    return relay.to_base64(_CURSOR, registry.content_id(model, pk))


def _after_pk(model: type[models.Model], cursor: str) -> Any:
    """The primary key an `after` cursor holds; BAD_REQUEST if it holds none of `model`'s."""
    kind: str | None
    content_id: str | None
    try:
        kind, content_id = relay.from_base64(cursor)
    except (ValueError, TypeError):
        kind = content_id = None
    if kind != _CURSOR or content_id is None:
        raise bad_request("after is not a cursor of objectsAsOf.", argument="after")
    if not registry.is_composite(model):
        return arguments.checked(inputs.primary_key, model, content_id, "after", argument="after")
    try:  # a composite key: the JSON list of its parts, each checked as its column's value
        parts = json.loads(content_id)
        # Its columns' fields (django-stubs admits reverse relations among them).
        pk_fields = cast("CompositePrimaryKey", model._meta.pk).fields
        fields = cast("tuple[models.Field[Any, Any], ...]", pk_fields)
        if not isinstance(parts, list) or len(parts) != len(fields):
            raise ValueError(content_id)
        pk = []
        for field, part in zip(fields, parts, strict=True):
            value = field.to_python(part)
            field.run_validators(value)
            if isinstance(value, str) and "\x00" in value:
                raise ValueError(value)
            pk.append(value)
        return tuple(pk)
    except (ValueError, TypeError, OverflowError, ValidationError):
        raise bad_request("after is not a cursor of objectsAsOf.", argument="after") from None


def objects_as_of(
    info: Info,
    label: str,
    at: datetime.datetime,
    *,
    first: int | None,
    after: str | None,
) -> PastObjectConnection:
    """One page of the rows of the model `label` names as they were at `at`, by primary key."""
    state = state_of(info)
    state.require_login()
    model = arguments.model_for(label)
    moment = arguments.checked(inputs.moment, at, "at", argument="at")
    if not state.policy.can_view_model(state.user, model):
        raise forbidden(f"You may not see the history of {model._meta.verbose_name_plural}.")
    rows = history.as_of(model, moment)
    page = rows.order_by("pk")
    if after:
        page = page.filter(pk__gt=_after_pk(model, after))
    size = page_size(first)
    found = list(page[: size + 1]) if size else []
    has_next = len(found) > size
    label = label.lower()
    edges = [
        PastObjectEdge(
            cursor=_cursor(model, row.pk),
            node=PastObject(
                type=label,
                id=strawberry.ID(registry.content_id(model, row.pk)),
                state=cast(JSON, recorded_state(row)),
            ),
        )
        for row in found[:size]
    ]
    return PastObjectConnection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=has_next,
            has_previous_page=bool(after),
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        rows=rows,
    )
