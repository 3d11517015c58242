"""Admin integration: read-only history admins and `HistoryAdminMixin`.

`HistoryAdminMixin` replaces a ModelAdmin's "History" page with the object's revy history
(its aggregates' changes, as far as the viewer may see them), the field changes of each
delta (fields by their `verbose_name`, related rows by name), and a "Restore this version"
button: a POST (CSRF-protected). A restore is recorded as a new revision by the requesting
user; restoring the state the object already has records nothing and says so.

Access needs both the ModelAdmin and the visibility policy (`revy.contrib.django.access`, the
one REST and GraphQL ask, `REVY_API["VISIBILITY_POLICY"]`):

- the page: the ModelAdmin's view (or change) permission and the policy's `can_view_object`;
  a row outside `get_queryset(request)` is not found, even if it exists. A deleted row is
  found when its last recorded state passes the filter of `get_queryset(request)`;
- a restore: the ModelAdmin's change permission (add, for a deleted row) and the policy's
  `check_restore` on the row as it is written.

The revision and delta admins list only the deltas the policy lets the viewer see.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, ClassVar, cast

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.db.models import Count, Q
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext as _

from revy.context import Context
from revy.contrib.django import history
from revy.contrib.django.access import (
    VisibilityPolicy,
    get_policy,
    in_queryset,
    last_recorded_state,
)
from revy.contrib.django.models import ObjectDelta, Revision
from revy.contrib.django.snapshots import STATE_ACTIONS
from revy.contrib.django.utils import (
    get_attribute_delta_model,
    get_object_delta_model,
    get_revision_model,
)

if TYPE_CHECKING:
    from django.template.response import _TemplateForResponseT  # django-stubs' alias

    # A mixin of model admins, checked against what it is mixed into.
    _ModelAdmin = admin.ModelAdmin[Any]
else:
    _ModelAdmin = object

__all__ = [
    "AttributeDeltaInline",
    "HistoryAdminMixin",
    "ObjectDeltaAdmin",
    "ReadOnlyAdminMixin",
    "RevisionAdmin",
]


class ReadOnlyAdminMixin:
    """History is evidence: nobody edits or deletes it from the admin."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _actor_label(delta: Any) -> str:
    if delta.actor_type_id is None:
        return _("system")
    actor = delta.actor
    return str(actor) if actor is not None else f"{delta.actor_type} #{delta.actor_id}"


class AttributeDeltaInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = get_attribute_delta_model()
    fk_name = "parent"
    extra = 0
    fields = ("field_name", "action", "old_value", "new_value", "actor_display", "description")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest):
        return get_policy().filter_deltas(request.user, super().get_queryset(request))

    @admin.display(description=_("actor"))
    def actor_display(self, obj: Any) -> str:
        return _actor_label(obj)


class ObjectDeltaAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "created_at",
        "action",
        "event_type",
        "content_type",
        "content_id",
        "actor_display",
        "revision_link",
    )
    list_filter = ("action", "content_type", "event_type", "actor_type", "created_at")
    search_fields = ("event_type", "description", "content_id", "revision__description")
    date_hierarchy = "created_at"
    list_select_related = ("content_type", "actor_type", "revision")
    inlines = [AttributeDeltaInline]

    def get_queryset(self, request: HttpRequest):
        """Only the deltas the visibility policy lets the viewer see."""
        return get_policy().filter_deltas(request.user, super().get_queryset(request))

    @admin.display(description=_("actor"))
    def actor_display(self, obj: Any) -> str:
        return _actor_label(obj)

    @admin.display(description=_("revision"), ordering="revision")
    def revision_link(self, obj: Any) -> str:
        opts = get_revision_model()._meta
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.revision_id])
        return format_html('<a href="{}">{}</a>', url, obj.revision_id)


class RevisionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "created_at", "description", "delta_count")
    list_filter = ("created_at", "object_deltas__action", "object_deltas__content_type")
    search_fields = ("description", "object_deltas__event_type")
    date_hierarchy = "created_at"

    def get_queryset(self, request: HttpRequest):
        """Only the revisions with deltas the viewer may see, counting those."""
        policy = get_policy()
        ids = policy.visible_content_type_ids(request.user)
        visible = None if ids is None else Q(object_deltas__content_type_id__in=ids)
        revisions = policy.filter_revisions(request.user, super().get_queryset(request))
        return revisions.annotate(delta_count=Count("object_deltas", filter=visible))

    @admin.display(description=_("deltas"), ordering="delta_count")
    def delta_count(self, obj: Any) -> int:
        return obj.delta_count


if get_revision_model() is Revision:
    admin.site.register(Revision, RevisionAdmin)
if get_object_delta_model() is ObjectDelta:
    admin.site.register(ObjectDelta, ObjectDeltaAdmin)


class HistoryAdminMixin(_ModelAdmin):
    """Show revy's history on the admin "History" page, with diffs and restore buttons."""

    # Typed as Django types ModelAdmin's, so that a ModelAdmin mixing this class in type-checks.
    object_history_template: ClassVar[_TemplateForResponseT | None] = (
        "revy/admin/object_history.html"
    )
    history_page_size = 100

    def get_visibility_policy(self) -> VisibilityPolicy:
        """Return the policy deciding who sees and restores history (shared with the APIs)."""
        return get_policy()

    def get_urls(self):
        opts = self.model._meta
        name = f"{opts.app_label}_{opts.model_name}_revy_restore"
        return [
            path(
                "<path:object_id>/history/restore/<int:delta_id>/",
                self.admin_site.admin_view(self.restore_view),
                name=name,
            ),
            *super().get_urls(),
        ]

    def _history_target(self, request: HttpRequest, object_id: str):
        """Return (object or None, pk, object or its last recorded state); else 404.

        Deleted objects keep a history page, when their last recorded state passes the
        filter of `get_queryset(request)`; an object that exists but is outside it is not
        treated as deleted.
        """
        obj = self.get_object(request, unquote(object_id))
        if obj is not None:
            return obj, obj.pk, obj
        try:
            pk = self.model._meta.pk.to_python(unquote(object_id))
        except ValidationError:  # no row can have this id ("abc" for an integer key)
            raise Http404(_("No object and no history with this id.")) from None
        # NUL characters never reach the database (PostgreSQL refuses them).
        state = None if "\x00" in str(pk) else last_recorded_state(self.model, pk)
        if (
            state is None
            or not state._state.adding  # it exists, hidden from this user
            or not in_queryset(self.get_queryset(request), state)
        ):
            raise Http404(_("No object and no history with this id."))
        return None, pk, state

    def history_view(self, request: HttpRequest, object_id: str, extra_context=None):
        obj, pk, state = self._history_target(request, object_id)
        if not self.has_view_or_change_permission(request, obj):
            raise PermissionDenied
        policy = self.get_visibility_policy()
        if not policy.can_view_object(request.user, self.model, pk, obj=state):
            raise PermissionDenied
        deltas = list(
            policy.filter_history(request.user, self.model, pk, aggregates=True)
            .select_related("content_type", "actor_type", "revision")
            .prefetch_related("actor", "children", "children__actor")[: self.history_page_size]
        )
        own_type = None
        describe = _DiffLabels(request.user, policy, deltas)
        for delta in deltas:
            delta.actor_label = _actor_label(delta)
            delta.changes = [
                {
                    "field": describe.label(delta, child.field_name),
                    "attname": child.field_name,
                    "action": child.action,
                    "old": describe.value(delta, child.field_name, child.old_value),
                    "new": describe.value(delta, child.field_name, child.new_value),
                    "actor": _actor_label(child),
                    "description": child.description,
                }
                for child in delta.children.all()
            ]
            is_own = delta.content_id == str(pk) and (
                delta.content_type.model_class() is not None
                and delta.content_type.model_class()._meta.concrete_model
                is self.model._meta.concrete_model
            )
            own_type = own_type or (delta.content_type if is_own else None)
            delta.is_own = is_own
            delta.restorable = is_own and delta.action in STATE_ACTIONS
        opts = self.model._meta
        context = {
            **self.admin_site.each_context(request),
            "title": _("History: %s") % (obj if obj is not None else f"{opts.verbose_name} {pk}"),
            "subtitle": None,
            "object": obj,
            "object_id": object_id,
            "deltas": deltas,
            "opts": opts,
            "app_label": opts.app_label,
            "module_name": str(opts.verbose_name_plural).capitalize(),
            "can_restore": self._can_restore(request, obj, pk, state),
            "restore_url_name": f"admin:{opts.app_label}_{opts.model_name}_revy_restore",
            **(extra_context or {}),
        }
        request.current_app = self.admin_site.name
        template = cast("_TemplateForResponseT", self.object_history_template)  # set above
        return TemplateResponse(request, template, context)

    def _can_restore(self, request: HttpRequest, obj: Any, pk: Any, state: Any) -> bool:
        """The ModelAdmin's change (or add, for a deleted row) permission and the policy's."""
        allowed = (
            self.has_add_permission(request)
            if obj is None
            else (self.has_change_permission(request, obj))
        )
        action = "add" if obj is None else "change"
        return allowed and self.get_visibility_policy().can_restore_object(
            request.user, self.model, pk, action=action, obj=state
        )

    def restore_view(self, request: HttpRequest, object_id: str, delta_id: int) -> HttpResponse:
        """Roll the object back to a version (POST only; the admin checks CSRF)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        return _restore(self, request, object_id, delta_id)

    def get_revision_description(self, request: HttpRequest, delta: Any) -> str:
        """Return the description of the revision a restore records."""
        return _("Restored the version of %(date)s from the admin.") % {
            "date": delta.created_at.isoformat(timespec="seconds")
        }


def _restore(model_admin: HistoryAdminMixin, request, object_id, delta_id) -> HttpResponse:
    obj, pk, state = model_admin._history_target(request, object_id)
    if not model_admin._can_restore(request, obj, pk, state):
        raise PermissionDenied
    try:
        delta = history.history_of(model_admin.model, pk).get(pk=delta_id)
    except get_object_delta_model().DoesNotExist:
        raise Http404(_("This version does not belong to this object.")) from None
    opts = model_admin.model._meta
    # Checked again on the row as it is written; a refusal (PermissionDenied) writes nothing.
    check = functools.partial(model_admin.get_visibility_policy().check_restore, request.user)
    with Context(
        actor=request.user,
        revision_description=model_admin.get_revision_description(request, delta),
    ):
        latest = _latest_delta_id(model_admin.model, pk)
        try:
            history.rollback(model_admin.model, pk, delta=delta, check=check)
        except history.HistoryError as error:
            model_admin.message_user(request, str(error), messages.ERROR)
        else:
            # A rollback to the state the row has records nothing: say so, claim nothing.
            if _latest_delta_id(model_admin.model, pk) == latest:
                message = _("The object already is in this state: nothing was restored.")
            else:
                message = _("The version was restored and recorded as a new revision.")
            model_admin.message_user(request, message, messages.INFO)
    url = reverse(
        f"admin:{opts.app_label}_{opts.model_name}_history",
        args=[object_id],
        current_app=model_admin.admin_site.name,
    )
    return HttpResponseRedirect(url)


def _latest_delta_id(model: type[models.Model], pk: Any) -> int | None:
    """The id of the row's newest delta: a restore that records nothing leaves it as it is."""
    return history.history_of(model, pk).values_list("pk", flat=True).first()


class _DiffLabels:
    """Field labels and related rows' names for the diffs of one history page.

    Attribute deltas name fields by attname (`engine_id`) and store related rows by key: the
    page shows the field's `verbose_name` and `str()` of the related row, when it exists and
    the viewer may see its model's history, else the stored key. The related rows are loaded
    up front, one query per related model, whatever the number of deltas.
    """

    def __init__(self, user: Any, policy: VisibilityPolicy, deltas: list[Any]) -> None:
        self._fields: dict[tuple[int, str], models.Field | None] = {}
        wanted: dict[models.Field, set[Any]] = {}
        for delta in deltas:
            for child in delta.children.all():
                field = self._field(delta, child.field_name)
                if field is None or not field.is_relation or not field.many_to_one:
                    continue
                for value in (child.old_value, child.new_value):
                    key = _target_key(field, value)
                    if key is not None:
                        wanted.setdefault(field, set()).add(key)
        self._names: dict[tuple[type[models.Model], str, Any], str] = {}
        loaded: dict[tuple[type[models.Model], str], set[Any]] = {}
        for field, keys in wanted.items():
            target = cast("models.ForeignKey[Any, Any]", field).target_field  # many-to-one
            if policy.can_view_model(user, target.model):
                loaded.setdefault((target.model, target.attname), set()).update(keys)
        for (model, attname), keys in loaded.items():
            for row in model._base_manager.filter(**{f"{attname}__in": keys}):
                self._names[(model, attname, getattr(row, attname))] = str(row)

    def _field(self, delta: Any, attname: str) -> models.Field | None:
        key = (delta.content_type_id, attname)
        if key not in self._fields:
            model = delta.content_type.model_class()
            fields = {} if model is None else {f.attname: f for f in model._meta.concrete_fields}
            self._fields[key] = fields.get(attname)
        return self._fields[key]

    def label(self, delta: Any, attname: str) -> str:
        """The field's `verbose_name`, or the stored name for a field the model lost."""
        field = self._field(delta, attname)
        return attname if field is None else str(field.verbose_name)

    def value(self, delta: Any, attname: str, value: Any) -> Any:
        """The related row's name for a foreign key, else the stored value."""
        field = self._field(delta, attname)
        if field is None or not field.is_relation or not field.many_to_one:
            return value
        target = cast("models.ForeignKey[Any, Any]", field).target_field  # many-to-one
        key = _target_key(field, value)
        return self._names.get((target.model, target.attname, key), value)


def _target_key(field: models.Field, value: Any) -> Any:
    """The stored value as the related model's key, or None when no row can have it."""
    if value is None:
        return None
    try:
        return cast("models.ForeignKey[Any, Any]", field).target_field.to_python(value)
    except (ValidationError, TypeError, ValueError):
        return None
