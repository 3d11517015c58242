"""Who may read and restore which history: the one policy REST, GraphQL and the admin ask.

History is data about people, so every surface that shows or restores it goes through one
`VisibilityPolicy` (`get_policy()`), and a project changes the rules in one place:
`REVY_API["VISIBILITY_POLICY"] = "dotted.path.Policy"` (a subclass). The admin, REST and
GraphQL all read that setting. `revy_api.visibility.VisibilityPolicy` is this class.

The default rules are Django's permissions, object-aware:

- a model's deltas (lists of revisions and deltas) are visible with its `view` or `change`
  permission; superusers see everything;
- one row's history is visible with those permissions on the model, or on the row itself
  (`user.has_perm(perm, obj)`, for object-permission backends such as django-guardian);
- restoring needs, on every row it touches, `change` to update it, `add` to re-create it and
  `delete` to delete it, including every row the deletion cascades to or updates
  (`check_restore`, used by rollback and revert through their `check=` argument).

The visible content types are computed once per user object (a request's user lives as long
as the request), like Django's own permission cache, and cost no query once content types are
cached.

`in_queryset(queryset, instance)` decides whether a deleted row, as last recorded, belongs to
a view's queryset: the queryset's filter is evaluated in SQL on the recorded values.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from contextlib import nullcontext
from typing import Any, cast

from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import (
    EmptyResultSet,
    FullResultSet,
    PermissionDenied,
)
from django.db import DatabaseError, connections, models, router, transaction
from django.db.models import Exists, OuterRef, Value
from django.db.models.deletion import Collector
from django.db.models.expressions import Col
from django.db.models.sql import Query
from django.db.models.sql.constants import SINGLE
from django.db.models.sql.where import AND, WhereNode

from revy.contrib.django import history
from revy.contrib.django import settings as revy_settings
from revy.contrib.django._meta import concrete_model
from revy.contrib.django.snapshots import STATE_ACTIONS, build_instance
from revy.contrib.django.utils import get_object_delta_model

__all__ = [
    "RESTORE_ACTIONS",
    "RestoreForbidden",
    "VisibilityPolicy",
    "deletion_effects",
    "get_policy",
    "in_queryset",
    "last_recorded_state",
    "parse_policy_class",
]

logger = logging.getLogger(__name__)

#: What a restore does to a row, named like Django's permissions.
RESTORE_ACTIONS = ("add", "change", "delete")

_VERBS = {"add": "re-create", "change": "change", "delete": "delete"}

# Per user object: {(policy class, what): value}. Dropped with the user object, i.e. with
# the request (a test that grants permissions to a user it keeps must pop it, as it pops
# Django's `_perm_cache`).
CACHE_ATTRIBUTE = "_revy_access_cache"


class RestoreForbidden(PermissionDenied):
    """A restore would touch rows the user may not change; nothing was written.

    The message names only the rows the user may see, and counts the others.
    """


class VisibilityPolicy:
    """Django permissions, object-aware: see the module documentation.

    Override any method in a subclass and name it in `REVY_API["VISIBILITY_POLICY"]`. Methods
    that take `obj` get the row when the caller holds it (for a deleted row: its last recorded
    state, unsaved), or None; `last_recorded_state(model, pk)` loads it when needed.
    """

    # Models ---------------------------------------------------------------------------

    def can_view_model(self, user: Any, model: type[models.Model]) -> bool:
        """Return True if `user` may see the deltas of every row of `model`."""
        return self._has_perm(user, "view", model) or self._has_perm(user, "change", model)

    def visible_content_type_ids(self, user: Any) -> frozenset[int] | None:
        """Return the content types whose deltas `user` may see; None means all.

        Computed once per user object (the request's user): every later call is a dictionary
        lookup.
        """
        if getattr(user, "is_superuser", False) and getattr(user, "is_active", False):
            return None
        cache = _user_cache(user)
        key = (type(self), "content types")
        if cache is not None and key in cache:
            return cache[key]
        models_ = [
            model
            for model in apps.get_models(include_auto_created=True)
            if not model._meta.proxy and self.can_view_model(user, model)
        ]
        # Content types are cached by Django once loaded: no query after the first request.
        found = ContentType.objects.get_for_models(*models_) if models_ else {}
        ids = frozenset(content_type.pk for content_type in found.values())
        if cache is not None:
            cache[key] = ids
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
        deltas = self.filter_deltas(
            user, get_object_delta_model()._base_manager.filter(revision=OuterRef("pk"))
        )
        return queryset.filter(Exists(deltas))

    # One row ----------------------------------------------------------------------------

    def can_view_object(
        self, user: Any, model: type[models.Model], pk: Any, obj: models.Model | None = None
    ) -> bool:
        """Return True if `user` may see the history of one row (it may be deleted)."""
        if self.can_view_model(user, model):
            return True
        if not getattr(user, "is_authenticated", False):
            return False  # nothing to look up: the default rules show anonymous users nothing
        if obj is None:
            obj = last_recorded_state(model, pk)
        return obj is not None and (
            self._has_perm(user, "view", model, obj) or self._has_perm(user, "change", model, obj)
        )

    def filter_history(
        self, user: Any, model: type[models.Model], pk: Any, *, aggregates: bool = False
    ) -> models.QuerySet:
        """Return the deltas of one row's history `user` may see, newest first.

        Call it once `can_view_object` allowed the row: its own deltas, and with `aggregates`
        the deltas of the rows that name it as an aggregate, as far as `filter_deltas` shows
        them.
        """
        own = history.history_of(model, pk)
        if not aggregates:
            return own
        related = history.history_of(model, pk, aggregates=True)
        return own | self.filter_deltas(user, related)

    def can_restore_object(
        self,
        user: Any,
        model: type[models.Model],
        pk: Any,
        *,
        action: str,
        obj: models.Model | None = None,
    ) -> bool:
        """Return True if `user` may `action` ("add", "change" or "delete") the row."""
        if action not in RESTORE_ACTIONS:
            raise ValueError(f"action must be one of {RESTORE_ACTIONS}, not {action!r}.")
        return self._has_perm(user, action, model) or (
            obj is not None and self._has_perm(user, action, model, obj)
        )

    def check_restore(self, user: Any, action: str, instance: models.Model) -> None:
        """Raise `RestoreForbidden` unless `user` may `action` the row and all it entails.

        A deletion entails the rows it cascades to (deleted) and the rows whose foreign keys
        it sets (changed), collected as Django's `Collector` would delete them. A row of an
        automatic many-to-many table has no permissions of its own: adding or removing it
        changes the row that declares the relation, as in Django's admin. Pass
        `functools.partial(policy.check_restore, user)` as the `check=` of
        `revy.contrib.django.history.rollback` and `revert`.
        """
        if type(instance)._meta.auto_created:
            touched = [("change", _relation_owner(instance))]
        elif action == "delete":
            touched = deletion_effects(instance)
        else:
            touched = [(action, instance)]
        refused = [
            (each, row)
            for each, row in touched
            if not self.can_restore_object(
                user, concrete_model(type(row)), row.pk, action=each, obj=row
            )
        ]
        if refused:
            raise RestoreForbidden(self._refusal(user, refused))

    def _refusal(self, user: Any, refused: list[tuple[str, models.Model]]) -> str:
        """Say what may not be done, naming only the rows `user` may see."""
        named: dict[str, list[str]] = {}
        hidden = 0
        for action, row in refused:
            model = concrete_model(type(row))
            if self.can_view_object(user, model, row.pk, obj=row):
                named.setdefault(_VERBS[action], []).append(f"{model._meta.label} {row.pk}")
            else:
                hidden += 1
        parts = [f"{verb} {', '.join(labels)}" for verb, labels in named.items()]
        if hidden:
            rows = "row" if hidden == 1 else "rows"
            parts.append(f"touch {hidden} {rows} you may not see")
        return f"You may not {' or '.join(parts)}; nothing was changed."

    # Helpers ------------------------------------------------------------------------------

    @staticmethod
    def _has_perm(
        user: Any, action: str, model: type[models.Model], obj: models.Model | None = None
    ) -> bool:
        # History is never public: anonymous users get nothing from the default rules.
        if user is None or not getattr(user, "is_authenticated", False):
            return False
        opts = model._meta
        perm = f"{opts.app_label}.{action}_{opts.model_name}"
        return user.has_perm(perm) if obj is None else user.has_perm(perm, obj)


def _user_cache(user: Any) -> dict | None:
    try:
        return user.__dict__.setdefault(CACHE_ATTRIBUTE, {})
    except AttributeError:  # None, or an object without a __dict__
        return None


def deletion_effects(instance: models.Model) -> list[tuple[str, models.Model]]:
    """Every row deleting `instance` deletes ("delete") or updates ("change"), itself first.

    Collected without deleting anything. The parent rows of a multi-table child are the same
    object, and automatic many-to-many rows belong to the relation: neither counts on its own.
    """
    model = concrete_model(type(instance))
    using = instance._state.db or router.db_for_write(model)
    collector = Collector(using=using, origin=instance)
    collector.collect([instance])
    same_object = {model, *model._meta.get_parent_list()}
    touched: list[tuple[str, models.Model]] = [("delete", instance)]

    def counts(row: models.Model) -> bool:
        row_model = concrete_model(type(row))
        if row_model._meta.auto_created:
            return False
        return not (row_model in same_object and row.pk == instance.pk)

    for rows in collector.data.values():
        touched.extend(("delete", row) for row in rows if counts(row))
    for queryset in collector.fast_deletes:
        if not queryset.model._meta.auto_created:
            touched.extend(("delete", row) for row in queryset if counts(row))
    updated: dict[tuple[type, Any], models.Model] = {}
    for (field, _), batches in collector.field_updates.items():
        if field.model._meta.auto_created:
            continue
        # Django appends whole batches (querysets or lists of rows); django-stubs types
        # the entries as single rows.
        for batch in cast("list[Iterable[models.Model] | models.QuerySet[Any]]", batches):
            for row in _instances(batch):
                updated.setdefault((concrete_model(type(row)), row.pk), row)
    touched.extend(("change", row) for row in updated.values())
    return touched


def _relation_owner(link: models.Model) -> models.Model:
    """The row that declares the many-to-many relation `link` (a row of its table) is part of."""
    opts = type(link)._meta
    # A through model's auto_created is the model declaring the relation (django-stubs: bool).
    owner_model = cast("type[models.Model]", opts.auto_created)
    key = next(
        field
        for field in opts.concrete_fields
        if field.is_relation and field.related_model is owner_model
    )
    pk = getattr(link, key.attname)
    rows = owner_model._base_manager.using(link._state.db or router.db_for_read(owner_model))
    owner = rows.filter(pk=pk).first()
    return owner if owner is not None else owner_model(pk=pk)


def _instances(batch: Iterable[models.Model] | models.QuerySet[Any]) -> Iterable[models.Model]:
    return batch.iterator() if isinstance(batch, models.QuerySet) else batch


# Rows that may be gone ------------------------------------------------------------------------


def last_recorded_state(model: type[models.Model], pk: Any) -> models.Model | None:
    """Return the row (one query), or when it was deleted its last recorded state (unsaved).

    None when the row does not exist and has no recorded state.
    """
    concrete = concrete_model(model)
    row = concrete._base_manager.filter(pk=pk).first()
    if row is not None:
        return row
    data = (
        history.history_of(concrete, pk)
        .filter(action__in=STATE_ACTIONS)
        .values_list("data", flat=True)
        .first()
    )
    return build_instance(concrete, data)


class _Unevaluable(Exception):
    """The filter needs more than the row's own values (joins, the table itself)."""


def in_queryset(queryset: models.QuerySet, instance: models.Model) -> bool:
    """Return True if `instance` (e.g. a deleted row's last recorded state) passes `queryset`.

    The queryset's filter is evaluated in SQL on the instance's values, without reading its
    table, so it also answers for rows that no longer exist: `owner=request.user`,
    `tenant_id=...`, `published=True` and any lookup or function of the row's own columns.
    A filter that needs other tables (joins, correlated subqueries) or a sliced or combined
    queryset cannot be evaluated this way: the answer is then False (refuse rather than guess).
    """
    query = queryset.query
    if query.is_sliced or query.combinator:
        return False
    if not query.where.children:
        return True
    alias = query.base_table
    try:
        condition = _substitute(query.where, alias, instance)
    except _Unevaluable:
        return False
    check = Query(None)
    check.add_annotation(Value(1), "_check")
    check.where.add(condition, AND)
    using = queryset.db
    connection = connections[using]
    # A failed statement must not break the caller's transaction (PostgreSQL).
    block = transaction.atomic(using=using) if connection.in_atomic_block else nullcontext()
    try:
        with block:
            return check.get_compiler(using=using).execute_sql(SINGLE) is not None
    except EmptyResultSet:  # e.g. .none(), or `pk__in=[]`
        return False
    except FullResultSet:
        return True
    except DatabaseError as error:
        logger.info("The filter of %r cannot be evaluated on a recorded state: %s", query, error)
        return False


def _substitute(node: Any, alias: str, instance: models.Model) -> Any:
    """Return `node` with the columns of the table `alias` replaced by `instance`'s values."""
    if isinstance(node, Col):
        if node.alias != alias:
            raise _Unevaluable(node.alias)
        value = getattr(instance, node.target.attname)
        return Value(value, output_field=node.output_field)
    if isinstance(node, WhereNode):
        clone = node.create(connector=node.connector, negated=node.negated)
        clone.children = [_substitute(child, alias, instance) for child in node.children]
        return clone
    get_sources = getattr(node, "get_source_expressions", None)
    if get_sources is None or isinstance(node, Query):
        return node  # a plain value, or an (uncorrelated) subquery
    sources = get_sources()
    if not sources:
        return node
    clone = node.copy()
    clone.set_source_expressions(
        [None if source is None else _substitute(source, alias, instance) for source in sources]
    )
    return clone


# The configured policy --------------------------------------------------------------------------


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
