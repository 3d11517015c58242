"""Background tasks: carry a context to a task queue's worker or another thread.

`Context.capture()` returns a JSON-able token and `Context.restore(token)` a block that
continues it. `revy.context` is framework-free; this module is the hook it delegates to for
what only Django knows:

- the actor, as `{"type": "app_label.model", "id": "<pk>"}` (`null` for the system), loaded
  again on its first use in the task (one query; a row deleted since still records its
  reference);
- the revisions the context has written so far, per database (`{"default": 12}`): a task
  restored as the outermost block continues them while they exist;
- the request metadata of the scope (who made the request, `X-Request-ID`), which a new
  revision of the task carries.

A recipe with Celery::

    from celery import shared_task
    from django.db import transaction
    from revy import Context

    @shared_task
    def recompute_balance(token, account_id):
        with Context.restore(token):
            Account.objects.get(pk=account_id).recompute_balance()

    # In a view, inside the request's context: queue the task once the request's
    # transaction has committed, so that the worker finds the revision.
    token = Context.capture()
    transaction.on_commit(lambda: recompute_balance.delay(token, account.pk))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from django.db import models, router

from revy.context import Scope, TokenHook
from revy.contrib.django.references import model_for_label, reference, row_of
from revy.contrib.django.revisions import adopt_revision, written_revisions
from revy.contrib.django.utils import get_revision_model

__all__ = ["DjangoTokenHook", "install"]


class DjangoTokenHook(TokenHook):
    """Model instances in context tokens: references out, instances back."""

    def dump(self, values: dict[str, Any], scope: Scope) -> dict[str, Any]:
        token: dict[str, Any] = {}
        if "actor" in values:
            actor = values["actor"]
            token["actor"] = None if actor is None else reference(actor)
        revisions = written_revisions(scope)
        given = values.get("revision")
        if given is not None and given.pk is not None:
            revisions[given._state.db or router.db_for_write(type(given))] = given.pk
        if revisions:
            token["revisions"] = revisions
        metadata = scope.extras.get("metadata")
        if metadata:
            token["metadata"] = dict(metadata)
        return token

    def load(self, token: Mapping[str, Any]) -> tuple[dict[str, Any], Callable[[Scope], None]]:
        values: dict[str, Any] = {}
        if "actor" in token:
            values["actor"] = _actor_loader(token["actor"])
        revisions = token.get("revisions") or {}
        if not isinstance(revisions, Mapping) or not all(
            isinstance(using, str) and type(pk) is int for using, pk in revisions.items()
        ):
            raise ValueError("revisions must map database aliases to revision ids in a token.")
        metadata = token.get("metadata")
        if metadata is not None and not isinstance(metadata, Mapping):
            raise ValueError("metadata must be an object in a context token.")

        def on_enter(scope: Scope) -> None:
            if metadata:
                scope.extras["metadata"] = dict(metadata)
            model = get_revision_model()
            for using, pk in revisions.items():
                revision = model._base_manager.using(using).filter(pk=pk).first()
                if revision is not None:
                    adopt_revision(scope, using, revision)

        return values, on_enter


def _actor_loader(ref: Any) -> Callable[[], models.Model | None]:
    """Return a function giving the actor a token names, loaded once on first use."""
    if ref is None:
        return lambda: None
    if not isinstance(ref, Mapping) or not isinstance(ref.get("type"), str):
        raise ValueError('actor must be null or {"type": "app_label.model", "id": ...}.')
    model = model_for_label(ref["type"])
    pk = row_of(model, str(ref.get("id")))
    loaded: list[models.Model] = []

    def actor() -> models.Model:
        if not loaded:
            rows = model._base_manager.using(router.db_for_read(model))
            # Deleted since: its reference is still who acted.
            loaded.append(rows.filter(pk=pk).first() or model(pk=pk))
        return loaded[0]

    return actor


def install() -> None:
    """Make `Context.capture()` and `Context.restore()` understand Django models."""
    from revy.context import set_token_hook

    set_token_hook(DjangoTokenHook())
