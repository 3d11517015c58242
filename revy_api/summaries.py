"""What a list of revisions shows of each one: who acted, and how many deltas the user sees.

REST's revision lists and GraphQL's `actors` and `deltaCount` read it the same way: one
query over the page's object deltas (grouped by revision and actor, counted) and one over
their attribute deltas (distinct actors), both narrowed by the visibility policy.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db.models import Count

from revy.contrib.django.utils import get_attribute_delta_model, get_object_delta_model
from revy_api.visibility import VisibilityPolicy

__all__ = ["RevisionSummaries", "revision_summaries", "sorted_actors"]

#: Per revision pk: the (actor content type id, actor id) pairs, and the visible delta count.
RevisionSummaries = tuple[dict[Any, set[tuple[Any, Any]]], dict[Any, int]]


def revision_summaries(
    ids: Iterable[Any], policy: VisibilityPolicy, user: Any
) -> RevisionSummaries:
    """Return the actors and the visible object delta count of each revision, in two queries."""
    ids = list(ids)
    deltas = policy.filter_deltas(
        user, get_object_delta_model()._base_manager.filter(revision_id__in=ids)
    )
    counted = (
        deltas.order_by()
        .values_list("revision_id", "actor_type_id", "actor_id")
        .annotate(count=Count("id"))
    )
    # Values Django assigned by itself (auto keys) make nobody an actor.
    attributes = policy.filter_deltas(
        user,
        get_attribute_delta_model()._base_manager.filter(revision_id__in=ids, automatic=False),
    )
    attribute_rows = (
        attributes.order_by().values_list("revision_id", "actor_type_id", "actor_id").distinct()
    )
    actors: dict[Any, set[tuple[Any, Any]]] = {pk: set() for pk in ids}
    counts: dict[Any, int] = dict.fromkeys(ids, 0)
    for revision_id, type_id, actor_id, count in counted:
        actors[revision_id].add((type_id, actor_id))
        counts[revision_id] += count
    for revision_id, type_id, actor_id in attribute_rows:
        actors[revision_id].add((type_id, actor_id))
    return actors, counts


def sorted_actors(pairs: Iterable[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """The distinct actor pairs in the order lists show them: by content type, then id."""
    return sorted(set(pairs), key=lambda pair: (pair[0] or 0, pair[1] or ""))
