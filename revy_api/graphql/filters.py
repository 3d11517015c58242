"""The `filters` argument of `revisions`: the same filters as the REST API's `/revisions/`.

Every filter applies to object deltas; a revision matches when at least one of its deltas the
user may see matches them all. The semantics are REST's (`revy_api.rest.filters`): `actor`
also matches deltas the actor took part in through an attribute delta, `system` names the
system, `since` and `until` are inclusive.
"""

from __future__ import annotations

import datetime

import strawberry
from django.db import models
from django.db.models import Exists, OuterRef, Q

from revy.contrib.django.export import (
    actor_condition,
    revision_window_conditions,
    search_condition,
    window_condition,
)
from revy.contrib.django.utils import get_object_delta_model
from revy_api import inputs
from revy_api.graphql.arguments import checked
from revy_api.graphql.state import RequestState
from revy_api.graphql.types import DeltaAction

__all__ = ["HistoryFilter", "delta_conditions", "filter_revisions"]

SYSTEM = inputs.SYSTEM


@strawberry.input(description="Narrow history down; every given filter must match.")
class HistoryFilter:
    actor: str | None = strawberry.field(
        default=None,
        description="`app_label.model:pk` (e.g. `auth.user:5`) or `system`: changes that actor "
        "made, or took part in (one of the fields).",
    )
    content_type: str | None = strawberry.field(
        default=None, description="The changed rows' model as `app_label.model`."
    )
    object_id: strawberry.ID | None = strawberry.field(
        default=None, description="The changed row's primary key (with `contentType`)."
    )
    action: DeltaAction | None = strawberry.field(default=None, description="The delta's action.")
    event_type: str | None = strawberry.field(
        default=None, description="The exact event type, e.g. `ledger.transaction.updated`."
    )
    since: datetime.datetime | None = strawberry.field(
        default=None, description="Changes made at or after this moment (naive: UTC)."
    )
    until: datetime.datetime | None = strawberry.field(
        default=None, description="Changes made at or before this moment (naive: UTC)."
    )
    search: str | None = strawberry.field(
        default=None,
        description="Text contained in the revision's or the delta's description, or in the "
        "event type (case-insensitive).",
    )


def _actor_condition(value: str, paged: bool) -> Q:
    """Deltas the actor made, or took part in through one of their attribute deltas."""
    # The rule and the query shapes of REST's filter and `revy_export --actor`.
    return actor_condition(*checked(inputs.actor, value, argument="actor"), paged=paged)


def delta_conditions(filters: HistoryFilter | None, *, paged: bool = True) -> Q:
    """Return the object delta conditions `filters` ask for (an empty Q for none).

    Values are checked as REST checks them (`revy_api.inputs`); BAD_REQUEST names the
    filter at fault.
    """
    return _conditions(filters, paged=paged, for_revisions=False)[0]


def _conditions(filters: HistoryFilter | None, *, paged: bool, for_revisions: bool) -> tuple[Q, Q]:
    """(on the deltas, on their revisions); `for_revisions`: the deltas are tested per revision."""
    conditions = revisions = Q()
    if filters is None:
        return conditions, revisions
    if filters.actor:
        conditions &= _actor_condition(filters.actor, paged)
    if filters.content_type:
        found = checked(
            inputs.content_type, filters.content_type, "contentType", argument="contentType"
        )
        conditions &= Q(content_type_id=found.pk)
    if filters.object_id is not None:
        object_id = checked(inputs.text, str(filters.object_id), "objectId", argument="objectId")
        conditions &= Q(content_id=object_id)
    if filters.action is not None:
        conditions &= Q(action=filters.action.value)
    if filters.event_type:
        event_type = checked(inputs.text, filters.event_type, "eventType", argument="eventType")
        conditions &= Q(event_type=event_type)
    if filters.since is not None or filters.until is not None:
        since = until = None
        if filters.since is not None:
            since = checked(inputs.moment, filters.since, "since", argument="since")
        if filters.until is not None:
            until = checked(inputs.moment, filters.until, "until", argument="until")
        if for_revisions:
            window, revisions = revision_window_conditions(since, until)
        else:
            window = window_condition(since, until)
        conditions &= window
    if filters.search:
        text = checked(inputs.search, filters.search, argument="search")
        conditions &= search_condition(text)
    return conditions, revisions


def filter_revisions(
    queryset: models.QuerySet,
    filters: HistoryFilter | None,
    state: RequestState,
    *,
    paged: bool = True,
) -> models.QuerySet:
    """Narrow revisions to those with a visible delta matching `filters`.

    `paged`: for a page newest first (an EXISTS per revision, as REST's `/revisions/`, which
    stops with the page); else for a count (the matching deltas' revisions, read once).
    """
    conditions, revisions = _conditions(filters, paged=paged, for_revisions=True)
    if not conditions:
        return queryset
    deltas = state.visible_deltas(get_object_delta_model()._base_manager.filter(conditions))
    if paged:
        return queryset.filter(revisions, Exists(deltas.filter(revision=OuterRef("pk"))))
    return queryset.filter(revisions, pk__in=deltas.values("revision_id"))
