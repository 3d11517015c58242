"""Who may see and change which history: one policy shared by REST and GraphQL.

History is data about people, so a user sees the deltas of a model only with that model's
`view` (or `change`) permission; superusers see everything. Replace the policy with
`REVY_API["VISIBILITY_POLICY"] = "dotted.path.Policy"` (a subclass of `VisibilityPolicy`).
"""

from __future__ import annotations

from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Exists, OuterRef

from revy.contrib.django import settings as revy_settings
from revy.contrib.django.utils import get_object_delta_model


class VisibilityPolicy:
    """Django model permissions: `view` or `change` to see, `change` (and `add` to
    re-create a deleted row) to roll back."""

    def can_view_model(self, user: Any, model: type[models.Model]) -> bool:
        if not getattr(user, "is_authenticated", False):
            return False
        opts = model._meta
        return user.has_perm(f"{opts.app_label}.view_{opts.model_name}") or user.has_perm(
            f"{opts.app_label}.change_{opts.model_name}"
        )

    def can_view_object(self, user: Any, model: type[models.Model], pk: Any) -> bool:
        """Return True if `user` may see the history of one row (it may be deleted)."""
        return self.can_view_model(user, model)

    def can_restore_object(
        self, user: Any, model: type[models.Model], pk: Any, *, exists: bool
    ) -> bool:
        """Return True if `user` may roll the row back (re-creating it when deleted)."""
        if not getattr(user, "is_authenticated", False):
            return False
        opts = model._meta
        action = "change" if exists else "add"
        return user.has_perm(f"{opts.app_label}.{action}_{opts.model_name}")

    def visible_content_type_ids(self, user: Any) -> list[int] | None:
        """Return the content types whose deltas `user` may see; None means all."""
        if getattr(user, "is_superuser", False) and user.is_active:
            return None
        ids = []
        for content_type in ContentType.objects.all():
            model = content_type.model_class()
            if model is not None and self.can_view_model(user, model):
                ids.append(content_type.pk)
        return ids

    def filter_deltas(self, user: Any, queryset: models.QuerySet) -> models.QuerySet:
        """Narrow an ObjectDelta (or AttributeDelta) queryset to what `user` may see."""
        ids = self.visible_content_type_ids(user)
        return queryset if ids is None else queryset.filter(content_type_id__in=ids)

    def filter_revisions(self, user: Any, queryset: models.QuerySet) -> models.QuerySet:
        """Narrow a Revision queryset to revisions with at least one visible delta."""
        ids = self.visible_content_type_ids(user)
        if ids is None:
            return queryset
        # A semi-join (EXISTS) rather than a JOIN + DISTINCT: no duplicates to remove, and
        # the queryset stays free for ordering and pagination.
        deltas = get_object_delta_model()._base_manager.filter(
            revision=OuterRef("pk"), content_type_id__in=ids
        )
        return queryset.filter(Exists(deltas))


def parse_policy_class(found: list[revy_settings.Problem]) -> type[VisibilityPolicy]:
    """Return the class `REVY_API["VISIBILITY_POLICY"]` names (default `VisibilityPolicy`)."""
    policy = revy_settings.api_object(
        "VISIBILITY_POLICY",
        found,
        accept=lambda value: isinstance(value, type) and issubclass(value, VisibilityPolicy),
        kind="a subclass of revy_api.visibility.VisibilityPolicy",
        example="myproject.policies.ProjectPolicy",
    )
    return policy or VisibilityPolicy


@revy_settings.cached
def _policy_class() -> type[VisibilityPolicy]:
    return revy_settings.strict(parse_policy_class)


def get_policy() -> VisibilityPolicy:
    """Return the configured visibility policy.

    Raises ImproperlyConfigured when `REVY_API["VISIBILITY_POLICY"]` does not import or is not
    a `VisibilityPolicy` subclass (the system check `revy_api.E002`/`E003` reports it first).
    """
    return _policy_class()()
