"""Admin integration: read-only history admins, revision pages and `HistoryAdminMixin`.

`HistoryAdminMixin` replaces a ModelAdmin's "History" page with the object's revy history
(its aggregates' changes, as far as the viewer may see them) and the field changes of each
delta (fields by their `verbose_name`, related rows by name). "Restore this version" first
shows what the restore would change (the diff between now and that version); the confirm is
a POST (CSRF-protected), recorded as a new revision by the requesting user; restoring the
state the object already has records nothing and says so. The changelist links to "Recover
deleted": the model's deleted objects with their last state, when and by whom, each with a
recover preview that re-creates what the deletion took along too (`cascade=True`). The
admin's change messages ("Changed title.") become the description of the revision that
recorded the change, unless it has one.

`RevisionAdmin` shows a revision's changes (object, action, field diffs, actors,
description) and "Revert this revision": a preview of every write the revert would make and
every later change it conflicts with (`find_conflicts`), then a confirm (POST).

Access needs both the ModelAdmin and the visibility policy (`revy.contrib.django.access`, the
one REST and GraphQL ask, `REVY_API["VISIBILITY_POLICY"]`):

- the history page: the ModelAdmin's view (or change) permission and the policy's
  `can_view_object`; a row outside `get_queryset(request)` is not found, even if it exists.
  A deleted row is found when its last recorded state passes the filter of
  `get_queryset(request)` (so is it listed among the deleted);
- a restore or recovery: the ModelAdmin's change permission (add, for a deleted row) and the
  policy's `check_restore` on every row as it is written, cascades included;
- a revision page: the revision admin's view permission, and one delta the policy shows; a
  revert: the policy's `check_restore` on every row it writes, as REST and GraphQL check it.
  Previews show what the policy refuses and offer no confirm then.

The revision and delta admins list only the deltas the policy lets the viewer see.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar, cast

from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import (
    BadRequest,
    ObjectDoesNotExist,
    PermissionDenied,
    ValidationError,
)
from django.db import IntegrityError, models, router, transaction
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
from revy.contrib.django import history, previews
from revy.contrib.django._meta import concrete_model
from revy.contrib.django.access import (
    VisibilityPolicy,
    get_policy,
    in_queryset,
    last_recorded_state,
)
from revy.contrib.django.models import ObjectDelta, Revision
from revy.contrib.django.recovery import cascade_of
from revy.contrib.django.registry import content_id, pk_from_content_id
from revy.contrib.django.revisions import pending_revision
from revy.contrib.django.snapshots import STATE_ACTIONS, build_instance
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
    """Revisions: a page per revision listing its changes, and "Revert this revision".

    The revert first shows a preview (every write it would make and every later change it
    conflicts with); the confirm is a POST checked by the visibility policy on every row it
    writes, as REST and GraphQL check a revert.
    """

    list_display = ("id", "created_at", "description", "delta_count")
    list_filter = ("created_at", "object_deltas__action", "object_deltas__content_type")
    search_fields = ("description", "object_deltas__event_type")
    date_hierarchy = "created_at"
    revision_template = "revy/admin/revision.html"
    revert_template = "revy/admin/revert_preview.html"
    #: At most this many changes are listed on a revision page (oldest first); the rest are counted.
    revision_page_size = 200

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

    def get_urls(self):
        opts = self.model._meta
        return [
            path(
                "<path:object_id>/revert/",
                self.admin_site.admin_view(self.revert_view),
                name=f"{opts.app_label}_{opts.model_name}_revy_revert",
            ),
            *super().get_urls(),
        ]

    def _revision(self, request: HttpRequest, object_id: str) -> Any:
        """The revision if the viewer may see it (one visible delta), else 404."""
        try:
            revision = self.get_object(request, unquote(object_id))
        except (ValidationError, ValueError, OverflowError):
            revision = None
        if revision is None:
            raise Http404(_("No revision with this id that you may see."))
        if not self.has_view_or_change_permission(request, revision):
            raise PermissionDenied
        return revision

    def change_view(self, request: HttpRequest, object_id: str, form_url="", extra_context=None):
        """The revision's changes: object, action, field diffs, actors, descriptions."""
        revision = self._revision(request, object_id)
        policy = get_policy()
        in_revision = get_object_delta_model()._base_manager.filter(revision=revision)
        visible = policy.filter_deltas(request.user, in_revision)
        deltas, later_url = _keyset_page(
            visible.select_related("content_type", "actor_type")
            .prefetch_related("actor", "children", "children__actor")
            .order_by("id"),
            request,
            self.revision_page_size,
            newest_first=False,
        )
        describe = _DiffLabels(request.user, policy, deltas)
        names = _ObjectNames(self.admin_site, deltas)
        for delta in deltas:
            _annotate_delta(delta, describe)
            delta.object_label, delta.object_url = names.of(delta)
        context = {
            **self.admin_site.each_context(request),
            **self._page_context(request, revision),
            "title": _("Revision %(id)s") % {"id": revision.pk},
            "deltas": deltas,
            "later_url": later_url,
            # The changes the policy hides from this user (not those of other pages).
            "hidden_count": in_revision.aggregate(
                hidden=Count("pk", filter=~Q(pk__in=visible.values("pk")))
            )["hidden"],
            "actors": [_actor_name(actor) for actor in revision.get_actors()],
            "revertible": any(d.action in ("Create", "Update", "Delete") for d in deltas),
            **(extra_context or {}),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.revision_template, context)

    def _page_context(self, request: HttpRequest, revision: Any) -> dict[str, Any]:
        opts = self.model._meta
        return {
            "subtitle": None,
            "opts": opts,
            "app_label": opts.app_label,
            "module_name": str(opts.verbose_name_plural).capitalize(),
            "original": revision,
            "revision": revision,
            "revert_url": reverse(
                f"admin:{opts.app_label}_{opts.model_name}_revy_revert",
                args=[revision.pk],
                current_app=self.admin_site.name,
            ),
            "revision_url": reverse(
                f"admin:{opts.app_label}_{opts.model_name}_change",
                args=[revision.pk],
                current_app=self.admin_site.name,
            ),
        }

    def revert_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """GET: the preview of a revert; POST (CSRF-checked by the admin): the revert."""
        if request.method not in ("GET", "HEAD", "POST"):
            return HttpResponseNotAllowed(["GET", "POST"])
        revision = self._revision(request, object_id)
        if request.method == "POST":
            return self._revert(request, revision)
        policy = get_policy()
        check = functools.partial(policy.check_restore, request.user)
        preview = previews.revert_preview(revision, check=check)
        shown = _visible(preview.conflicts, request.user, policy)
        describe = _preview_labels(request.user, policy, preview.writes)
        context = {
            **self.admin_site.each_context(request),
            **self._page_context(request, revision),
            "title": _("Revert revision %(id)s?") % {"id": revision.pk},
            "writes": [
                _write_row(write, describe, self.admin_site, request.user, policy)
                for write in preview.writes
            ],
            "refusals": preview.refusals,
            "conflicts": [_conflict_row(conflict) for conflict in shown],
            "hidden_conflicts": len(preview.conflicts) - len(shown),
            "conflict_keys": _conflict_keys(preview.conflicts),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.revert_template, context)

    def get_revert_description(self, request: HttpRequest, revision: Any) -> str:
        """Return the description of the revision a revert records."""
        return _("Reverted revision %(id)s from the admin.") % {"id": revision.pk}

    def _revert(self, request: HttpRequest, revision: Any) -> HttpResponse:
        """Revert as the REST and GraphQL paths do: every write checked by the policy."""
        policy = get_policy()
        check = functools.partial(policy.check_restore, request.user)
        force = request.POST.get("force") == "1"
        seen = set(filter(None, request.POST.get("conflicts", "").split(",")))
        page = self._page_context(request, revision)
        using = revision._state.db or router.db_for_write(type(revision))
        try:
            with (
                Context(
                    actor=request.user,
                    revision_description=self.get_revert_description(request, revision),
                ),
                transaction.atomic(using=using),
            ):
                # Forcing overwrites the later changes the preview showed, never newer ones.
                if force and not _conflict_keys(history.find_conflicts(revision)) <= seen:
                    raise history.RevisionConflict(revision, [])
                undo = history.revert(revision, force=force, check=check)
        except history.RevisionConflict:
            self.message_user(
                request,
                _(
                    "Later changes touched what this revision changed: review them below "
                    "before reverting. Nothing was changed."
                ),
                messages.ERROR,
            )
            return HttpResponseRedirect(page["revert_url"])
        except (IntegrityError, ObjectDoesNotExist) as error:
            self.message_user(request, _restore_failure(error), messages.ERROR)
            return HttpResponseRedirect(page["revert_url"])
        if undo is None:
            self.message_user(request, _("Nothing to revert: nothing was changed."), messages.INFO)
            return HttpResponseRedirect(page["revision_url"])
        self.message_user(
            request,
            _("Revision %(old)s was reverted, recorded as revision %(new)s.")
            % {"old": revision.pk, "new": undo.pk},
            messages.SUCCESS,
        )
        opts = self.model._meta
        return HttpResponseRedirect(
            reverse(
                f"admin:{opts.app_label}_{opts.model_name}_change",
                args=[undo.pk],
                current_app=self.admin_site.name,
            )
        )


if get_revision_model() is Revision:
    admin.site.register(Revision, RevisionAdmin)
if get_object_delta_model() is ObjectDelta:
    admin.site.register(ObjectDelta, ObjectDeltaAdmin)


class HistoryAdminMixin(_ModelAdmin):
    """Show revy's history on the admin "History" page, with diffs and restore previews.

    Also adds a "Recover deleted" list reachable from the changelist, and keeps the admin's
    change messages ("Changed title.") as the description of the revision they recorded.
    """

    # Typed as Django types ModelAdmin's, so that a ModelAdmin mixing this class in type-checks.
    object_history_template: ClassVar[_TemplateForResponseT | None] = (
        "revy/admin/object_history.html"
    )
    change_list_template: ClassVar[_TemplateForResponseT | None] = "revy/admin/change_list.html"
    restore_preview_template = "revy/admin/restore_preview.html"
    deleted_template = "revy/admin/deleted.html"
    history_page_size = 100

    def get_visibility_policy(self) -> VisibilityPolicy:
        """Return the policy deciding who sees and restores history (shared with the APIs)."""
        return get_policy()

    def get_urls(self):
        opts = self.model._meta
        prefix = f"{opts.app_label}_{opts.model_name}"
        return [
            path(
                "<path:object_id>/history/restore/<int:delta_id>/",
                self.admin_site.admin_view(self.restore_view),
                name=f"{prefix}_revy_restore",
            ),
            path(
                "revy-deleted/",
                self.admin_site.admin_view(self.deleted_view),
                name=f"{prefix}_revy_deleted",
            ),
            *super().get_urls(),
        ]

    def _url(self, view: str, *args: Any) -> str:
        opts = self.model._meta
        return reverse(
            f"admin:{opts.app_label}_{opts.model_name}_{view}",
            args=args,
            current_app=self.admin_site.name,
        )

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

    def _base_context(self, request: HttpRequest, object_id: str, obj: Any) -> dict[str, Any]:
        opts = self.model._meta
        return {
            **self.admin_site.each_context(request),
            "subtitle": None,
            "object": obj,
            "object_id": object_id,
            "opts": opts,
            "app_label": opts.app_label,
            "module_name": str(opts.verbose_name_plural).capitalize(),
            "history_url": self._url("history", object_id),
        }

    def history_view(self, request: HttpRequest, object_id: str, extra_context=None):
        obj, pk, state = self._history_target(request, object_id)
        if not self.has_view_or_change_permission(request, obj):
            raise PermissionDenied
        policy = self.get_visibility_policy()
        if not policy.can_view_object(request.user, self.model, pk, obj=state):
            raise PermissionDenied
        deltas, older_url = _keyset_page(
            policy.filter_history(request.user, self.model, pk, aggregates=True)
            .select_related("content_type", "actor_type", "revision")
            .prefetch_related("actor", "children", "children__actor"),
            request,
            self.history_page_size,
        )
        describe = _DiffLabels(request.user, policy, deltas)
        for delta in deltas:
            _annotate_delta(delta, describe)
            is_own = delta.content_id == str(pk) and (
                delta.content_type.model_class() is not None
                and delta.content_type.model_class()._meta.concrete_model
                is self.model._meta.concrete_model
            )
            delta.is_own = is_own
            delta.restorable = is_own and delta.action in STATE_ACTIONS
        opts = self.model._meta
        revisions = get_revision_model()._meta
        context = {
            **self._base_context(request, object_id, obj),
            "title": _("History: %s") % (obj if obj is not None else f"{opts.verbose_name} {pk}"),
            "deltas": deltas,
            "older_url": older_url,
            "can_restore": self._can_restore(request, obj, pk, state),
            "restore_url_name": f"admin:{opts.app_label}_{opts.model_name}_revy_restore",
            "revision_url_name": (
                f"admin:{revisions.app_label}_{revisions.model_name}_change"
                if _revision_pages_for(self.admin_site, request)
                else None
            ),
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
        """GET: what restoring the version would change; POST (the admin checks CSRF): do it."""
        if request.method not in ("GET", "HEAD", "POST"):
            return HttpResponseNotAllowed(["GET", "POST"])
        if request.method == "POST":
            return _restore(self, request, object_id, delta_id)
        obj, pk, state = self._history_target(request, object_id)
        if not self._can_restore(request, obj, pk, state):
            raise PermissionDenied
        delta = _version(self.model, pk, delta_id)
        policy = self.get_visibility_policy()
        cascade = obj is None and request.GET.get("cascade", "1") != "0"
        try:
            preview = previews.rollback_preview(
                self.model,
                pk,
                delta,
                cascade=cascade,
                check=functools.partial(policy.check_restore, request.user),
            )
        except history.HistoryError as error:
            self.message_user(request, str(error), messages.ERROR)
            return HttpResponseRedirect(self._url("history", object_id))
        describe = _preview_labels(request.user, policy, preview.writes)
        context = {
            **self._base_context(request, object_id, obj),
            "title": _("Restore %(object)s?") % {"object": _name(state)},
            "delta": delta,
            "writes": [
                _write_row(write, describe, self.admin_site, request.user, policy)
                for write in preview.writes
            ],
            "refusals": preview.refusals,
            "cascade": cascade,
            "cascade_count": len(preview.writes) - 1 if cascade else 0,
            "restore_url": self._url("revy_restore", object_id, delta.pk),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.restore_preview_template, context)

    def get_revision_description(self, request: HttpRequest, delta: Any) -> str:
        """Return the description of the revision a restore records."""
        return _("Restored the version of %(date)s from the admin.") % {
            "date": delta.created_at.isoformat(timespec="seconds")
        }

    # Deleted objects ---------------------------------------------------------------------

    def changelist_view(self, request: HttpRequest, extra_context=None):
        extra = {"revy_deleted_url": self._url("revy_deleted")}
        return super().changelist_view(request, {**extra, **(extra_context or {})})

    def deleted_view(self, request: HttpRequest) -> HttpResponse:
        """The deleted objects of the model: last state, when, by whom, and "Recover"."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        policy = self.get_visibility_policy()
        queryset = self.get_queryset(request)
        deletions, older_url = _keyset_page(
            history.deleted(self.model)
            .select_related("revision", "actor_type")
            .prefetch_related("actor"),
            request,
            self.history_page_size,
        )
        rows = []
        can_add = self.has_add_permission(request)
        for deletion in deletions:
            state = deletion.snapshot
            if state is None or not in_queryset(queryset, state):
                continue
            if not policy.can_view_object(request.user, self.model, state.pk, obj=state):
                continue
            object_id = quote(str(state.pk))
            rows.append(
                {
                    "deletion": deletion,
                    "state": state,
                    "name": _name(state),
                    "actor": _actor_label(deletion),
                    "history_url": self._url("history", object_id),
                    "recover_url": (
                        self._url("revy_restore", object_id, deletion.pk)
                        if can_add
                        and policy.can_restore_object(
                            request.user, self.model, state.pk, action="add", obj=state
                        )
                        else None
                    ),
                }
            )
        opts = self.model._meta
        context = {
            **self.admin_site.each_context(request),
            "title": _("Recover deleted %(name)s") % {"name": opts.verbose_name_plural},
            "subtitle": None,
            "opts": opts,
            "app_label": opts.app_label,
            "module_name": str(opts.verbose_name_plural).capitalize(),
            "rows": rows,
            "older_url": older_url,
            "revision_url_name": _revision_url_name(self.admin_site, request),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.deleted_template, context)

    # Change messages as revision descriptions --------------------------------------------

    def log_addition(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        entry = super().log_addition(request, obj, message)
        _describe_revision(request, obj, entry.get_change_message() if entry else "")
        return entry

    def log_change(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        entry = super().log_change(request, obj, message)
        _describe_revision(request, obj, entry.get_change_message() if entry else "")
        return entry

    def log_deletions(self, request: HttpRequest, queryset: Any) -> Any:
        entries = super().log_deletions(request, queryset)
        for obj in queryset:
            _describe_revision(request, obj, _("Deleted “%(object)s”.") % {"object": obj})
        return entries


def _keyset_page(
    deltas: models.QuerySet, request: HttpRequest, size: int, *, newest_first: bool = True
) -> tuple[list[Any], str | None]:
    """A page of `deltas` (ordered by id, newest first or oldest first) and the query string
    of the next page (None when there is none).

    The next page starts after the last id shown: `?before=<id>` newest first, `?after=<id>`
    oldest first (keyset paging: a page costs the same at the start of a long history and
    at its end). Anything but digits within a 64-bit key is a 400.
    """
    name = "before" if newest_first else "after"
    key = request.GET.get(name)
    if key is not None:
        # Digits only, within a 64-bit key: anything else would reach the database.
        if not (key.isascii() and key.isdigit() and int(key) < 2**63):
            raise BadRequest(f"{name}: a delta id (a positive integer)")
        deltas = deltas.filter(**{"pk__lt" if newest_first else "pk__gt": int(key)})
    page = list(deltas[: size + 1])
    if len(page) <= size:
        return page, None
    del page[size:]
    query = request.GET.copy()
    query[name] = str(page[-1].pk)
    return page, f"?{query.urlencode()}"


def _version(model: type[models.Model], pk: Any, delta_id: int) -> Any:
    """One of the row's own deltas, else 404."""
    try:
        return history.history_of(model, pk).get(pk=delta_id)
    except get_object_delta_model().DoesNotExist:
        raise Http404(_("This version does not belong to this object.")) from None


def _restore(model_admin: HistoryAdminMixin, request, object_id, delta_id) -> HttpResponse:
    obj, pk, state = model_admin._history_target(request, object_id)
    if not model_admin._can_restore(request, obj, pk, state):
        raise PermissionDenied
    delta = _version(model_admin.model, pk, delta_id)
    cascade = obj is None and request.POST.get("cascade") == "1"
    # Checked again on the row as it is written; a refusal (PermissionDenied) writes nothing.
    check = functools.partial(model_admin.get_visibility_policy().check_restore, request.user)
    using = router.db_for_write(model_admin.model)
    with Context(
        actor=request.user,
        revision_description=model_admin.get_revision_description(request, delta),
    ):
        latest = _latest_delta_id(model_admin.model, pk)
        try:
            with transaction.atomic(using=using):
                taken_along = len(cascade_of(model_admin.model, pk)) if cascade else 0
                history.rollback(model_admin.model, pk, delta=delta, check=check, cascade=cascade)
        except history.HistoryError as error:
            model_admin.message_user(request, str(error), messages.ERROR)
        except (IntegrityError, ObjectDoesNotExist) as error:
            model_admin.message_user(request, _restore_failure(error), messages.ERROR)
        else:
            # A rollback to the state the row has records nothing: say so, claim nothing.
            if _latest_delta_id(model_admin.model, pk) == latest:
                message = _("The object already is in this state: nothing was restored.")
            elif taken_along:
                message = _(
                    "The object was recovered with %(count)s rows its deletion took along, "
                    "recorded as a new revision."
                ) % {"count": taken_along}
            else:
                message = _("The version was restored and recorded as a new revision.")
            model_admin.message_user(request, message, messages.INFO)
    return HttpResponseRedirect(model_admin._url("history", object_id))


def _latest_delta_id(model: type[models.Model], pk: Any) -> int | None:
    """The id of the row's newest delta: a restore that records nothing leaves it as it is."""
    return history.history_of(model, pk).values_list("pk", flat=True).first()


def _restore_failure(error: Exception) -> str:
    """What to say when the database refuses a restored state (nothing was written)."""
    return _(
        "The database refuses the restored state (%(error)s): a unique value may be taken "
        "since, or a row it refers to is gone. Nothing was changed."
    ) % {"error": error}


def _describe_revision(request: HttpRequest, obj: Any, message: str) -> None:
    """Keep an admin change message as the description of the revision of this request.

    A description given otherwise (`X-Commit-Message`, the context) is kept; several
    messages of one request (a changelist's edits) are joined.
    """
    if not message or not Context.is_active():
        return
    using = router.db_for_write(type(obj))
    written: list[str] = request.__dict__.setdefault("_revy_admin_messages", [])
    revision = pending_revision(using)
    ours = " ".join(written)
    if revision is None:
        if Context.get_revision_description() in ("", ours):
            written.append(message)
            Context.set_revision_description(" ".join(written))
        return
    if revision.description in ("", ours):
        written.append(message)
        revision.description = " ".join(written)
        type(revision)._base_manager.using(using).filter(pk=revision.pk).update(
            description=revision.description
        )


def _revision_pages_for(site: admin.AdminSite, request: HttpRequest) -> bool:
    """True when the site has revision pages (`RevisionAdmin`) the viewer may open."""
    revision_admin = site._registry.get(get_revision_model())
    return isinstance(revision_admin, RevisionAdmin) and revision_admin.has_view_permission(request)


def _revision_url_name(site: admin.AdminSite, request: HttpRequest) -> str | None:
    opts = get_revision_model()._meta
    if not _revision_pages_for(site, request):
        return None
    return f"admin:{opts.app_label}_{opts.model_name}_change"


def _actor_name(actor: Any) -> str:
    return _("system") if actor is None else str(actor)


def _annotate_delta(delta: Any, describe: _ValueLabels) -> None:
    """Give a delta (children prefetched) its `actor_label` and labelled `changes`."""
    delta.actor_label = _actor_label(delta)
    model = delta.content_type.model_class()
    delta.changes = [
        {
            "field": describe.label(model, child.field_name),
            "attname": child.field_name,
            "action": child.action,
            "old": describe.value(model, child.field_name, child.old_value),
            "new": describe.value(model, child.field_name, child.new_value),
            "actor": _actor_label(child),
            "description": child.description,
        }
        for child in delta.children.all()
    ]


def _admin_history_url(site: admin.AdminSite, model: type[models.Model], pk: Any) -> str | None:
    """The history page of a row on this site, when its ModelAdmin has revy's."""
    model_admin = site._registry.get(model)
    if not isinstance(model_admin, HistoryAdminMixin):
        return None
    opts = model._meta
    return reverse(
        f"admin:{opts.app_label}_{opts.model_name}_history",
        args=[quote(str(pk))],
        current_app=site.name,
    )


class _ObjectNames:
    """Names and history links of the rows a list of deltas changed.

    Rows that exist are loaded once per model and named by `str()`; deleted rows by their
    recorded state. The name costs what the model's `__str__` costs.
    """

    def __init__(self, site: admin.AdminSite, deltas: list[Any]) -> None:
        self._site = site
        wanted: dict[int, tuple[type[models.Model], set[Any]]] = {}
        for delta in deltas:
            model = delta.content_type.model_class()
            if model is not None:
                model = model._meta.concrete_model
                pk = pk_from_content_id(model, delta.content_id)
                wanted.setdefault(delta.content_type_id, (model, set()))[1].add(pk)
        self._rows: dict[tuple[int, str], models.Model] = {}
        for type_id, (model, keys) in wanted.items():
            for pk, row in model._base_manager.in_bulk(list(keys)).items():
                self._rows[(type_id, content_id(model, pk))] = row

    def of(self, delta: Any) -> tuple[str, str | None]:
        model = delta.content_type.model_class()
        if model is None:
            return f"{delta.content_type} #{delta.content_id}", None
        model = model._meta.concrete_model
        row = self._rows.get((delta.content_type_id, delta.content_id))
        if row is None and delta.data is not None:
            row = build_instance(model, delta.data)
        label = _name(row) if row is not None else f"#{delta.content_id}"
        pk = pk_from_content_id(model, delta.content_id)
        return (
            f"{model._meta.verbose_name}: {label}",
            _admin_history_url(self._site, model, pk),
        )


def _visible(deltas: list[Any], user: Any, policy: VisibilityPolicy) -> list[Any]:
    """Keep the object and attribute deltas the policy lets `user` see, in their order."""
    ids = policy.visible_content_type_ids(user)
    if ids is None:
        return list(deltas)
    return [delta for delta in deltas if delta.content_type_id in ids]


def _conflict_keys(conflicts: list[Any]) -> set[str]:
    """Stable names of conflicting deltas (object and attribute deltas share ids)."""
    attribute_model = get_attribute_delta_model()
    return {
        f"{'a' if isinstance(conflict, attribute_model) else 'o'}{conflict.pk}"
        for conflict in conflicts
    }


def _conflict_row(conflict: Any) -> dict[str, Any]:
    attribute = isinstance(conflict, get_attribute_delta_model())
    return {
        "created_at": conflict.created_at,
        "what": (
            f"{conflict.content_type.name} #{conflict.content_id}"
            + (f" · {conflict.field_name}" if attribute else f" · {conflict.action}")
        ),
        "revision_id": conflict.revision_id,
        "actor": _actor_label(conflict),
        "old": conflict.old_value if attribute else None,
        "new": conflict.new_value if attribute else None,
    }


def _preview_labels(
    user: Any, policy: VisibilityPolicy, writes: list[previews.PlannedWrite]
) -> _ValueLabels:
    """Labels for a preview's values; keys of rows re-created with it are named too."""
    describe = _ValueLabels(
        user,
        policy,
        (
            (write.model, change.attname, value)
            for write in writes
            for change in write.changes
            for value in (change.old, change.new)
        ),
    )
    describe.name_rows(
        write.instance
        for write in writes
        if write.action == "add" and policy.can_view_model(user, write.model)
    )
    return describe


_VERBS = {"add": _("Re-create"), "change": _("Change"), "delete": _("Delete")}


def _write_row(
    write: previews.PlannedWrite,
    describe: _ValueLabels,
    site: admin.AdminSite,
    user: Any,
    policy: VisibilityPolicy,
) -> dict[str, Any]:
    """A planned write as a preview shows it; rows the viewer may not see are not named."""
    if not _can_see(user, policy, write.instance):
        return {
            "action": write.action,
            "verb": _VERBS[write.action],
            "object": _("a row you may not see"),
            "url": None,
            "changes": [],
            "effects": [],
            "refused": write.refused,
        }
    opts = write.model._meta
    effects = [(action, row) for action, row in write.effects if _can_see(user, policy, row)]
    hidden = len(write.effects) - len(effects)
    return {
        "action": write.action,
        "verb": _VERBS[write.action],
        "object": f"{opts.verbose_name}: {_name(write.instance)}",
        "url": _admin_history_url(site, write.model, write.pk),
        "changes": [
            {
                "field": describe.label(write.model, change.attname),
                "attname": change.attname,
                "old": describe.value(write.model, change.attname, change.old),
                "new": describe.value(write.model, change.attname, change.new),
            }
            for change in write.changes
        ],
        "effects": [
            f"{_VERBS[action]} {type(row)._meta.verbose_name}: {_name(row)}"
            for action, row in effects
        ]
        + ([_("and %(count)s rows you may not see") % {"count": hidden}] if hidden else []),
        "refused": write.refused,
    }


def _name(row: models.Model) -> str:
    """`str(row)`, or its model and key when that needs a row that is gone.

    A deleted row's `__str__` may follow a foreign key to a row deleted with it.
    """
    try:
        return str(row)
    except ObjectDoesNotExist:
        return f"{type(row)._meta.verbose_name} #{row.pk}"


def _can_see(user: Any, policy: VisibilityPolicy, row: models.Model) -> bool:
    model = concrete_model(type(row))
    return policy.can_view_object(user, model, row.pk, obj=row)


class _ValueLabels:
    """Field labels and related rows' names for the values shown on one page.

    History names fields by attname (`engine_id`) and stores related rows by key: the page
    shows the field's `verbose_name` and `str()` of the related row, when it exists and the
    viewer may see its model's history, else the stored key. The related rows are loaded up
    front, one query per related model, whatever the number of values.
    """

    def __init__(
        self, user: Any, policy: VisibilityPolicy, values: Iterable[tuple[Any, str, Any]]
    ) -> None:
        self._fields: dict[tuple[Any, str], models.Field | None] = {}
        wanted: dict[models.Field, set[Any]] = {}
        for model, attname, value in values:
            field = self._field(model, attname)
            if (
                field is None
                or not field.is_relation
                or not (field.many_to_one or field.one_to_one)
            ):
                continue
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

    def name_rows(self, rows: Iterable[models.Model]) -> None:
        """Name these rows too (rows about to be re-created, which the database lacks)."""
        for row in rows:
            model = concrete_model(type(row))
            self._names.setdefault((model, model._meta.pk.attname, row.pk), _name(row))

    def _field(self, model: Any, attname: str) -> models.Field | None:
        key = (model, attname)
        if key not in self._fields:
            fields = {} if model is None else {f.attname: f for f in model._meta.concrete_fields}
            self._fields[key] = fields.get(attname)
        return self._fields[key]

    def label(self, model: Any, attname: str) -> str:
        """The field's `verbose_name`, or the stored name for a field the model lost."""
        field = self._field(model, attname)
        return attname if field is None else str(field.verbose_name)

    def value(self, model: Any, attname: str, value: Any) -> Any:
        """The related row's name for a foreign key, else the stored value."""
        field = self._field(model, attname)
        if field is None or not field.is_relation or not (field.many_to_one or field.one_to_one):
            return value
        target = cast("models.ForeignKey[Any, Any]", field).target_field  # many-to-one
        key = _target_key(field, value)
        return self._names.get((target.model, target.attname, key), value)


class _DiffLabels(_ValueLabels):
    """`_ValueLabels` for the attribute deltas of a list of object deltas (children loaded)."""

    def __init__(self, user: Any, policy: VisibilityPolicy, deltas: list[Any]) -> None:
        super().__init__(
            user,
            policy,
            (
                (delta.content_type.model_class(), child.field_name, value)
                for delta in deltas
                for child in delta.children.all()
                for value in (child.old_value, child.new_value)
            ),
        )


def _target_key(field: models.Field, value: Any) -> Any:
    """The stored value as the related model's key, or None when no row can have it."""
    if value is None:
        return None
    try:
        return cast("models.ForeignKey[Any, Any]", field).target_field.to_python(value)
    except (ValidationError, TypeError, ValueError):
        return None
