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

from revy.contrib.django.utils import get_attribute_delta_model, get_object_delta_model
from revy_api.graphql.errors import bad_request
from revy_api.graphql.state import RequestState
from revy_api.graphql.types import DeltaAction
from revy_api.operations import parse_datetime_value
from revy_api.references import content_type_for_label

__all__ = ["HistoryFilter", "delta_conditions", "filter_revisions"]

SYSTEM = "system"


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


def _content_type_id(label: str, argument: str) -> int:
    content_type = content_type_for_label(label)
    if content_type is None:
        raise bad_request(
            f"{argument} {label!r} names no model; use `app_label.model`, e.g. `auth.user`.",
            argument=argument,
        )
    return content_type.pk


def _actor_condition(value: str) -> Q:
    """Deltas the actor made, or took part in through one of their attribute deltas."""
    if value == SYSTEM:
        by_actor = Q(actor_type__isnull=True)
    else:
        label, separator, pk = value.rpartition(":")
        if not separator or not label or not pk:
            raise bad_request(
                f"actor must look like `app_label.model:pk` or `{SYSTEM}`, not {value!r}.",
                argument="actor",
            )
        by_actor = Q(actor_type_id=_content_type_id(label, "actor"), actor_id=pk)
    # Values Django assigned by itself (auto keys) make the system no actor: as REST's filter
    # and the `actors` lists.
    attributes = get_attribute_delta_model()._base_manager.filter(
        by_actor, parent=OuterRef("pk"), automatic=False
    )
    return by_actor | Q(Exists(attributes))


def delta_conditions(filters: HistoryFilter | None) -> Q:
    """Return the object delta conditions `filters` ask for (an empty Q for none)."""
    conditions = Q()
    if filters is None:
        return conditions
    if filters.actor:
        conditions &= _actor_condition(filters.actor)
    if filters.content_type:
        conditions &= Q(content_type_id=_content_type_id(filters.content_type, "contentType"))
    if filters.object_id is not None:
        conditions &= Q(content_id=str(filters.object_id))
    if filters.action is not None:
        conditions &= Q(action=filters.action.value)
    if filters.event_type:
        conditions &= Q(event_type=filters.event_type)
    if filters.since is not None:
        conditions &= Q(created_at__gte=parse_datetime_value(filters.since, "since"))
    if filters.until is not None:
        conditions &= Q(created_at__lte=parse_datetime_value(filters.until, "until"))
    if filters.search:
        conditions &= (
            Q(description__icontains=filters.search)
            | Q(event_type__icontains=filters.search)
            | Q(revision__description__icontains=filters.search)
        )
    return conditions


def filter_revisions(
    queryset: models.QuerySet, filters: HistoryFilter | None, state: RequestState
) -> models.QuerySet:
    """Narrow revisions to those with a visible delta matching `filters`."""
    conditions = delta_conditions(filters)
    if not conditions:
        return queryset
    deltas = state.visible_deltas(get_object_delta_model()._base_manager.filter(conditions))
    return queryset.filter(pk__in=deltas.values("revision_id"))
