"""What revy's resolvers keep for one GraphQL request: the user and the visibility policy.

The policy keeps what the user may see on the request's user object: computed once per
request, shared by every field that filters history, however many the operation has.
"""

from __future__ import annotations

import contextlib
from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.db import models
from django.http import HttpRequest
from strawberry import Info

from revy_api import operations
from revy_api.graphql.errors import forbidden, translating_errors
from revy_api.visibility import VisibilityPolicy, get_policy

__all__ = [
    "RequestState",
    "get_request",
    "state_of",
]


_ATTRIBUTE = "_revy_graphql_state"


def get_request(context: Any) -> HttpRequest | None:
    """Return the Django request of a strawberry context (object or mapping), if any."""
    request = getattr(context, "request", None)
    if request is None and isinstance(context, dict):
        request = context.get("request")
    return request


class RequestState:
    """The user and a visibility policy that remembers what the user may see."""

    def __init__(self, request: HttpRequest | None) -> None:
        self.request = request
        self.user = getattr(request, "user", None) or AnonymousUser()
        self.policy: VisibilityPolicy = get_policy()

    def require_login(self) -> None:
        """Raise FORBIDDEN for anonymous users: history is never public."""
        if not getattr(self.user, "is_authenticated", False):
            raise forbidden("Log in to see revision history.")

    def require_view(
        self, model: type[models.Model], pk: Any, obj: models.Model | None = None
    ) -> None:
        """Raise FORBIDDEN unless the user may see the history of that row (`obj`, if loaded)."""
        self.require_login()
        with translating_errors():
            operations.require_view(model, pk, user=self.user, policy=self.policy, obj=obj)

    def history(self, model: type[models.Model], pk: Any, *, aggregates: bool) -> models.QuerySet:
        """Return the deltas of one row's history the user may see (after `require_view`)."""
        with translating_errors():
            return self.policy.filter_history(self.user, model, pk, aggregates=aggregates)

    def visible_deltas(self, queryset: models.QuerySet) -> models.QuerySet:
        """Narrow object (or attribute) deltas to those the user may see."""
        return self.policy.filter_deltas(self.user, queryset)

    def visible_revisions(self, queryset: models.QuerySet) -> models.QuerySet:
        """Narrow revisions to those with at least one delta the user may see."""
        return self.policy.filter_revisions(self.user, queryset)


def state_of(info: Info) -> RequestState:
    """Return the request state of this operation, created on first use."""
    context = info.context
    request = get_request(context)
    holder: Any = request if request is not None else context
    state = getattr(holder, _ATTRIBUTE, None)
    if state is None:
        state = RequestState(request)
        # A context that takes no attributes recomputes the state per field.
        with contextlib.suppress(AttributeError, TypeError):
            setattr(holder, _ATTRIBUTE, state)
    return state
