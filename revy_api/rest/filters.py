"""Filters of `/deltas/` and `/revisions/` (django-filter).

`DeltaFilterSet` filters object deltas. `/revisions/` takes the same parameters and keeps the
revisions having at least one visible delta that matches all of them
(`RevisionFilterBackend`), so both endpoints answer the same question.

- `actor`: `app_label.model:pk` (e.g. `auth.user:5`) or `system`; a delta matches when it or
  one of its attribute deltas was made by that actor (values Django assigned by itself, such
  as auto primary keys, make the system no actor: as in the `actors` lists).
- `content_type`: `app_label.model`; `object_id`: the row's primary key.
- `action`, `event_type`: exact values.
- `since`, `until`: ISO 8601 bounds on `created_at`, both inclusive.
- `search`: text in the delta's or its revision's description, or in the event type.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.db.models import Exists, OuterRef, Q, QuerySet
from django_filters import rest_framework as filters
from django_filters import utils
from django_filters.fields import IsoDateTimeField
from rest_framework.request import Request

from revy.contrib.django.export import (
    by_actor,
    revision_window_conditions,
    search_condition,
    window_condition,
)
from revy.contrib.django.models import Actions
from revy.contrib.django.utils import get_object_delta_model
from revy_api import inputs
from revy_api.errors import BadRequest
from revy_api.visibility import get_policy

__all__ = [
    "ActorFilter",
    "ContentTypeFilter",
    "DeltaFilterBackend",
    "DeltaFilterSet",
    "MomentFilter",
    "RevisionFilterBackend",
]

SYSTEM = inputs.SYSTEM


def _checked(parse: Any, value: Any) -> Any:
    """Run one of `revy_api.inputs`' parsers; its error becomes a form error."""
    try:
        return parse(value)
    except BadRequest as error:
        # The message holds client input: passed as a parameter, never as a format string.
        raise forms.ValidationError("%(message)s", params={"message": error.detail}) from None


class _ContentTypeField(forms.CharField):
    def clean(self, value: Any) -> Any:
        value = super().clean(value)
        if not value:
            return None
        return _checked(lambda label: inputs.content_type(label, "content_type"), value)


class _ActorField(forms.CharField):
    def clean(self, value: Any) -> Any:
        value = super().clean(value)
        if not value:
            return None
        return _checked(inputs.actor, value)


class _MomentField(IsoDateTimeField):
    """An ISO 8601 datetime that can be converted to UTC (naive: UTC)."""

    def clean(self, value: Any) -> Any:
        if value in self.empty_values:
            return None
        return _checked(lambda text: inputs.moment(text, "datetime"), value)


class MomentFilter(filters.IsoDateTimeFilter):
    """A bound on a datetime field: ISO 8601, within what every database stores."""

    field_class = _MomentField


class ContentTypeFilter(filters.CharFilter):
    """`app_label.model`, matched against a content type foreign key."""

    field_class = _ContentTypeField

    def filter(self, qs: QuerySet, value: Any) -> QuerySet:
        if value is None:
            return qs
        return qs.filter(**{self.field_name: value.pk})


class ActorFilter(filters.CharFilter):
    """`app_label.model:pk` or `system`: deltas that actor made, or took part in."""

    field_class = _ActorField

    def filter(self, qs: QuerySet, value: Any) -> QuerySet:
        if value is None:
            return qs
        # The same rule as `manage.py revy_export --actor`: on the object delta or one of its
        # attribute deltas, values Django assigned by itself (auto keys) not counting.
        return by_actor(qs, *value)


class DeltaFilterSet(filters.FilterSet):
    actor = ActorFilter(
        help_text="`app_label.model:pk` (e.g. `auth.user:5`) or `system`.",
        strip=False,  # the pk is taken as given: "auth.user:5 " names no one
    )
    content_type = ContentTypeFilter(
        field_name="content_type_id", help_text="The changed row's model: `app_label.model`."
    )
    object_id = filters.CharFilter(
        field_name="content_id",
        max_length=inputs.MAX_TEXT,
        help_text="The changed row's primary key.",
    )
    action = filters.ChoiceFilter(choices=Actions.choices)
    event_type = filters.CharFilter(
        max_length=inputs.MAX_TEXT, help_text="e.g. `ledger.transaction.updated`."
    )
    # Applied together by `filter_queryset` (`export.window_condition`: the query shape
    # depends on the window's size).
    since = MomentFilter(
        field_name="created_at",
        lookup_expr="gte",
        method="filter_window",
        help_text="Recorded at or after (ISO 8601).",
    )
    until = MomentFilter(
        field_name="created_at",
        lookup_expr="lte",
        method="filter_window",
        help_text="Recorded at or before (ISO 8601).",
    )
    search = filters.CharFilter(
        method="filter_search",
        max_length=inputs.MAX_SEARCH,
        help_text="Text in the descriptions or the event type.",
    )

    class Meta:
        model = get_object_delta_model()
        fields: list[str] = []

    def __init__(self, *args: Any, for_revisions: bool = False, **kwargs: Any) -> None:
        """`for_revisions`: the deltas are tested per revision (`RevisionFilterBackend`)."""
        super().__init__(*args, **kwargs)
        self.for_revisions = for_revisions
        #: What the revisions must satisfy beyond having a matching delta (`for_revisions`).
        self.revision_condition = Q()

    def filter_window(self, queryset: QuerySet, name: str, value: Any) -> QuerySet:
        return queryset  # both bounds at once, in `filter_queryset`

    def filter_queryset(self, queryset: QuerySet) -> QuerySet:
        queryset = super().filter_queryset(queryset)
        data = self.form.cleaned_data
        since, until = data.get("since"), data.get("until")
        if since is None and until is None:
            return queryset
        if self.for_revisions:
            condition, self.revision_condition = revision_window_conditions(
                since, until, using=queryset.db
            )
            return queryset.filter(condition)
        return queryset.filter(window_condition(since, until, using=queryset.db))

    def filter_search(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(search_condition(value, using=queryset.db))

    def is_filtering(self) -> bool:
        """Return True if any filter was given a value (call after `is_valid()`)."""
        data = self.form.cleaned_data
        return any(data.get(name) not in (None, "") for name in self.filters)


class DeltaFilterBackend(filters.DjangoFilterBackend):
    """Filter object deltas with the view's `filterset_class` (default `DeltaFilterSet`)."""

    def get_filterset_class(self, view: Any, queryset: QuerySet | None = None) -> type:
        return getattr(view, "filterset_class", None) or DeltaFilterSet


class RevisionFilterBackend(DeltaFilterBackend):
    """Keep the revisions having at least one visible delta that matches every filter."""

    def filter_queryset(self, request: Request, queryset: QuerySet, view: Any) -> QuerySet:
        policy = view.get_visibility_policy() if hasattr(view, "get_visibility_policy") else None
        visible = (policy or get_policy()).filter_deltas(
            request.user, get_object_delta_model()._base_manager.all()
        )
        filterset_class = self.get_filterset_class(view, queryset)
        filterset = filterset_class(
            request.query_params, queryset=visible, request=request, for_revisions=True
        )
        if not filterset.is_valid():
            raise utils.translate_validation(filterset.errors)
        if not filterset.is_filtering():
            return queryset
        deltas = filterset.qs  # sets `revision_condition`
        return queryset.filter(
            filterset.revision_condition, Exists(deltas.filter(revision=OuterRef("pk")))
        )
