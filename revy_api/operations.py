"""History operations as the APIs offer them: points, dry runs, ETags, rollback and revert.

REST views and GraphQL resolvers translate requests into these calls and `OperationError`s
into their own error formats (problem details, GraphQL errors), so both APIs behave the same.
Every writing operation is atomic: on any error nothing is written.

Access goes through the visibility policy (`revy_api.visibility`) here, once for both APIs:
`require_view` before reading a row's history, and the policy's `check_restore` on every row
a rollback or revert writes (`change`, `add`, `delete`, cascades included). Errors never name
rows the user may not see.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, overload

from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.db import models, router

from revy.context import Context
from revy.contrib.django import history
from revy.contrib.django import settings as revy_settings
from revy.contrib.django._meta import concrete_model
from revy.contrib.django.encoding import encode
from revy.contrib.django.recorder import state_json
from revy.contrib.django.recovery import CascadedRow, cascade_of
from revy.contrib.django.registry import ModelConfig, config_for
from revy.contrib.django.revisions import pending_revision
from revy.contrib.django.utils import get_object_delta_model, get_revision_model
from revy_api import inputs
from revy_api.errors import (
    PROBLEM_BASE,
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    OperationError,
    PreconditionFailed,
    PreconditionRequired,
    RestoreConflict,
)
from revy_api.restoring import check_constraints, restoring
from revy_api.visibility import VisibilityPolicy, get_policy

if TYPE_CHECKING:
    from revy.contrib.django.models import (
        AbstractAttributeDelta,
        AbstractObjectDelta,
        AbstractRevision,
    )

__all__ = [
    "PROBLEM_BASE",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "NotFound",
    "OperationError",
    "PreconditionFailed",
    "PreconditionRequired",
    "RestoreConflict",
    "RollbackResult",
    "changes_between",
    "check_if_match",
    "diff",
    "etag",
    "get_delta",
    "get_revision",
    "get_visible_revision",
    "if_match_required",
    "parse_datetime_value",
    "parse_diff_point",
    "parse_point",
    "require_view",
    "revert",
    "rollback",
    "snapshot",
]

# Points in history -----------------------------------------------------------------------


def parse_datetime_value(value: Any, name: str) -> datetime.datetime:
    """Return an aware datetime from an ISO 8601 string (naive values are UTC)."""
    return inputs.moment(value, name)


def _row_id(value: Any, name: str, what: str) -> int:
    number = inputs.integer(value, name)
    if not 1 <= number <= inputs.MAX_ID:  # no row has it: never sent to the database
        raise NotFound(f"There is no {what} {number}.")
    return number


def get_revision(revision_id: Any) -> AbstractRevision:
    revision_id = _row_id(revision_id, "revision", "revision")
    try:
        return get_revision_model()._base_manager.get(pk=revision_id)
    except get_revision_model().DoesNotExist:
        raise NotFound(f"There is no revision {revision_id}.") from None


def get_visible_revision(
    revision_id: Any, *, user: Any, policy: VisibilityPolicy | None = None
) -> AbstractRevision:
    """Return the revision if `user` may see it (one visible delta); else `NotFound`.

    A revision the user may not see answers exactly like one that does not exist.
    """
    revision_id = _row_id(revision_id, "revision", "revision")
    revisions = get_revision_model()._base_manager.filter(pk=revision_id)
    found = (policy or get_policy()).filter_revisions(user, revisions).first()
    if found is None:
        raise NotFound(f"There is no revision {revision_id} that you may see.")
    return found


def get_delta(delta_id: Any) -> AbstractObjectDelta:
    delta_id = _row_id(delta_id, "delta", "delta")
    try:
        return get_object_delta_model()._base_manager.get(pk=delta_id)
    except get_object_delta_model().DoesNotExist:
        raise NotFound(f"There is no delta {delta_id}.") from None


@overload
def parse_point(
    *, revision: Any = None, delta: Any = None, at: Any = None, required: Literal[True] = True
) -> history.Point: ...
@overload
def parse_point(
    *, revision: Any = None, delta: Any = None, at: Any = None, required: bool
) -> history.Point | None: ...
def parse_point(
    *, revision: Any = None, delta: Any = None, at: Any = None, required: bool = True
) -> history.Point | None:
    """Turn request values (ids, ISO strings) into a history point; exactly one if required."""
    given = {name: value for name, value in (("revision", revision), ("delta", delta), ("at", at))}
    given = {name: value for name, value in given.items() if value not in (None, "")}
    if len(given) > 1:
        raise BadRequest("Give only one of revision, delta and at.")
    if not given:
        if required:
            raise BadRequest("Give one of revision, delta or at.")
        return None
    name, value = next(iter(given.items()))
    if name == "revision":
        return get_revision(value)
    if name == "delta":
        return get_delta(value)
    return parse_datetime_value(value, "at")


def parse_diff_point(value: Any, name: str) -> history.Point | None:
    """A diff bound: a revision id (integer) or an ISO datetime; empty means "now"."""
    if value in (None, ""):
        return None
    if isinstance(value, int) or (isinstance(value, str) and value.isascii() and value.isdigit()):
        return get_revision(value)
    return parse_datetime_value(value, name)


# ETags -----------------------------------------------------------------------------------


def _config(model: type[models.Model]) -> ModelConfig:
    return config_for(model) or ModelConfig(concrete_model(model))


def etag(instance: models.Model) -> str:
    """Return a strong ETag of the instance's recorded state."""
    config = _config(type(instance))
    state = state_json(config, config.values_of(instance))
    return '"' + hashlib.sha256(state.encode()).hexdigest()[:32] + '"'


def if_match_required() -> bool:
    """Return True when writes must come with `If-Match` (`REVY_API["REQUIRE_IF_MATCH"]`)."""
    return bool(revy_settings.api("REQUIRE_IF_MATCH", False))


def check_if_match(
    instance: models.Model | None, if_match: str | None, *, required: bool | None = None
) -> None:
    """Raise `PreconditionFailed` unless `if_match` matches the row's current ETag.

    `instance` is the row as it is now (None: it does not exist). Comparison is strong (RFC
    9110): a weak ETag (`W/"..."`) never matches, `*` matches any existing row. Without
    `if_match`, `PreconditionRequired` when `required` (default: the `REQUIRE_IF_MATCH`
    setting), else nothing to check. Call it while the row is locked for the write.
    """
    if if_match is None or not if_match.strip():
        if required if required is not None else if_match_required():
            raise PreconditionRequired(
                "Send If-Match with the ETag of the object as you last read it.",
                header="If-Match",
            )
        return
    tags = {tag.strip() for tag in if_match.split(",")}
    if instance is not None and ("*" in tags or etag(instance) in tags):
        return
    raise PreconditionFailed(
        "If-Match does not match the current state of the object; read it again.",
        header="If-Match",
    )


# Access ----------------------------------------------------------------------------------


def require_view(
    model: type[models.Model],
    pk: Any,
    *,
    user: Any,
    policy: VisibilityPolicy | None = None,
    obj: models.Model | None = None,
) -> None:
    """Raise `Forbidden` unless `user` may see the history of the row (`obj`: it, if loaded)."""
    if not (policy or get_policy()).can_view_object(user, model, pk, obj=obj):
        raise Forbidden(f"You may not see the history of {model._meta.label} {pk}.")


def _restore_check(user: Any, policy: VisibilityPolicy) -> Any:
    return functools.partial(policy.check_restore, user)


# Rollback --------------------------------------------------------------------------------


@dataclass
class RollbackResult:
    """What a rollback did (or, for a dry run, would do)."""

    instance: models.Model
    changes: dict[str, dict[str, Any]] = field(default_factory=dict)
    created: bool = False
    revision: AbstractRevision | None = None
    dry_run: bool = False
    # The row as the rollback makes it (unsaved for a dry run): what a preview shows.
    target: models.Model | None = None
    # The rows re-created with it (`cascade=True`): what its deletion took along.
    cascaded: list[CascadedRow] = field(default_factory=list)


def _target_state(model: type[models.Model], pk: Any, point: history.Point) -> models.Model:
    try:
        target = history.snapshot(model, pk, **_point_kwargs(point))
    except history.HistoryNotFound as error:
        raise NotFound(str(error)) from None
    if target is None:  # as for a snapshot: no state there to find
        raise NotFound(
            f"{model._meta.label} {pk} did not exist at that point; there is nothing to "
            "roll back to."
        )
    return target


def _point_kwargs(point: history.Point | None) -> dict[str, Any]:
    if point is None:
        return {}
    if isinstance(point, datetime.datetime):
        return {"at": point}
    if isinstance(point, get_revision_model()):
        return {"revision": point}
    return {"delta": point}


def changes_between(before: models.Model | None, after: models.Model) -> dict[str, dict]:
    """Return the recorded, unmasked fields whose values differ, as `{field: {old, new}}`."""
    config = _config(type(after))
    new_values = config.values_of(after)
    old_values = config.values_of(before) if before is not None else (None,) * len(new_values)
    encoded = {}
    for index in config.recorded:
        if index in config.masked or (index == config.pk_index and before is not None):
            continue
        old, new = old_values[index], new_values[index]
        if old != new:
            encoded[config.attnames[index]] = {"old": _plain(old), "new": _plain(new)}
    return encoded


def _plain(value: Any) -> Any:
    """The JSON form of a field value, as the history tables store it."""
    return None if value is None else json.loads(encode(value))


def rollback(
    model: type[models.Model],
    pk: Any,
    point: history.Point,
    *,
    user: Any = None,
    dry_run: bool = False,
    if_match: str | None = None,
    require_if_match: bool | None = None,
    policy: VisibilityPolicy | None = None,
    cascade: bool = False,
) -> RollbackResult:
    """Roll one row back to `point` (re-creating it if deleted); or describe it (`dry_run`).

    `if_match` is compared with the current ETag while the row is locked for the write (see
    `check_if_match`; `require_if_match` defaults to the `REQUIRE_IF_MATCH` setting and
    does not apply to a deleted row, which has no ETag). The policy decides, for a dry run
    too: `change` on the row, or `add` to re-create it (`Forbidden`). With `cascade`,
    re-creating a row also re-creates what its deletion took along (`RollbackResult.cascaded`),
    each needing `add` too. A state the database refuses is a `RestoreConflict`; nothing is
    written.
    """
    model = concrete_model(model)
    using = router.db_for_write(model)
    policy = policy or get_policy()
    rows = model._base_manager.using(using)
    try:
        with restoring(using, f"The rollback of {model._meta.label} {pk}", [model]):
            # Locked until the write commits: a concurrent write waits, then sees a new ETag.
            current = (rows if dry_run else rows.select_for_update()).filter(pk=pk).first()
            if current is not None:
                _check(policy, user, "change", current)
            if require_if_match is None:
                require_if_match = if_match_required()
            check_if_match(current, if_match, required=require_if_match and current is not None)
            target = _target_state(model, pk, point)
            taken_along = cascade_of(model, pk, using=using) if cascade and current is None else []
            if current is None:
                _check(policy, user, "add", target)
                for row in taken_along:
                    _check(policy, user, "add", row.instance())
            changes = changes_between(current, target)
            result = RollbackResult(
                current or target,
                changes,
                created=current is None,
                dry_run=dry_run,
                target=target,
                cascaded=taken_along,
            )
            if dry_run or (current is not None and not changes):
                return result
            # Checked again on the row as it is when written: it may have changed since.
            check = _restore_check(user, policy)
            with Context() if not Context.is_active() else _Nothing():
                result.instance = result.target = history.rollback(
                    model, pk, using=using, check=check, cascade=cascade, **_point_kwargs(point)
                )
                result.revision = pending_revision(using)
                check_constraints(using, [model, *(row.model for row in taken_along)])
    except PermissionDenied as error:
        raise Forbidden(str(error)) from None
    return result


def _check(policy: VisibilityPolicy, user: Any, action: str, instance: models.Model) -> None:
    try:
        policy.check_restore(user, action, instance)
    except PermissionDenied as error:
        raise Forbidden(str(error)) from None


# Reading ---------------------------------------------------------------------------------


def snapshot(
    model: type[models.Model], pk: Any, point: history.Point | None
) -> models.Model | None:
    """Return the row as it was at `point` (its latest recorded state for None).

    None when the row did not exist there; `NotFound` when nothing is known of it there.
    """
    try:
        return history.snapshot(model, pk, **_point_kwargs(point))
    except history.HistoryNotFound as error:
        raise NotFound(str(error)) from None


def diff(
    model: type[models.Model],
    pk: Any,
    since: history.Point | None,
    until: history.Point | None,
) -> dict[str, dict[str, Any]]:
    """Return `{field: {"old", "new"}}` between two points; `NotFound` when unknown."""
    try:
        return history.diff(model, pk, since=since, until=until)
    except history.HistoryNotFound as error:
        raise NotFound(str(error)) from None


def _models_of(deltas: models.QuerySet[AbstractObjectDelta]) -> set[type[models.Model]]:
    """The concrete models of the rows a queryset of object deltas changed."""
    type_ids = deltas.order_by().values_list("content_type_id", flat=True).distinct()
    found = (ContentType.objects.get_for_id(type_id).model_class() for type_id in type_ids)
    return {concrete_model(model) for model in found if model is not None}


class _Nothing:
    def __enter__(self) -> _Nothing:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None


# Revert ----------------------------------------------------------------------------------


def revert(
    revision: AbstractRevision,
    *,
    user: Any = None,
    force: bool = False,
    policy: VisibilityPolicy | None = None,
) -> AbstractRevision | None:
    """Revert a whole revision as `user`; nothing is written on any error.

    `Forbidden` unless the user may change, re-create or delete (cascades included) every row
    the revert writes; `Conflict` listing the later changes the user may see (and how many
    others there are) unless `force`.
    """
    policy = policy or get_policy()
    using = revision._state.db or router.db_for_write(type(revision))
    deltas = get_object_delta_model()._base_manager.using(using).filter(revision=revision.pk)
    touched = _models_of(deltas.exclude(action="Event"))
    try:
        with (
            restoring(using, f"The revert of revision {revision.pk}", touched),
            Context() if not Context.is_active() else _Nothing(),
        ):
            history.revert(revision, force=force, check=_restore_check(user, policy))
            check_constraints(using, touched)
            return pending_revision()
    except history.RevisionConflict as error:
        raise _conflict(error, user, policy) from None
    except PermissionDenied as error:
        raise Forbidden(str(error)) from None


def _conflict(error: history.RevisionConflict, user: Any, policy: VisibilityPolicy) -> Conflict:
    """The 409 of a revert: only the conflicting deltas `user` may see, and a count of the rest."""
    visible = _visible_deltas(error.conflicts, user, policy)
    hidden = len(error.conflicts) - len(visible)
    listed = f"{len(visible)} later change{'s' if len(visible) != 1 else ''} (in `conflicts`)"
    withheld = f"{hidden} later change{'s' if hidden != 1 else ''} you may not see"
    found = " and ".join(
        part for part, count in ((listed, len(visible)), (withheld, hidden)) if count
    )
    return Conflict(
        f"Cannot revert revision {error.revision.pk}: {found} touched the same data. "
        "Revert with force to overwrite them.",
        conflicts=visible,
        hidden_conflicts=hidden,
    )


def _visible_deltas(
    deltas: Sequence[AbstractObjectDelta | AbstractAttributeDelta],
    user: Any,
    policy: VisibilityPolicy,
) -> list[AbstractObjectDelta | AbstractAttributeDelta]:
    """Keep the object and attribute deltas the policy lets `user` see, in their order."""
    shown: set[tuple[type, Any]] = set()
    by_model: dict[type[AbstractObjectDelta | AbstractAttributeDelta], list[Any]] = {}
    for delta in deltas:
        by_model.setdefault(type(delta), []).append(delta.pk)
    for model, ids in by_model.items():
        visible = policy.filter_deltas(user, model._base_manager.filter(pk__in=ids))
        shown.update((model, pk) for pk in visible.values_list("pk", flat=True))
    return [delta for delta in deltas if (type(delta), delta.pk) in shown]
