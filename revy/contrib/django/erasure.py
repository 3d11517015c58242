"""Erasure (the right to be forgotten): redact a person's or a row's values in history.

`erase(actor=...)` and `erase(obj=...)` keep the structure of history (every revision, object
delta and attribute delta stays, with its action, fields, times and order) and remove what it
held about the person or the row:

- an erased **object** (`obj=`, a row of any model, also one deleted since): the state its
  state-bearing deltas stored keeps only the primary key (a snapshot then gives the other
  fields their default, as for masked fields, and a rollback leaves them as they are); the
  data of custom events about it keeps its keys, each value becoming `ERASED`; the old and
  new values of its attribute deltas become `ERASED` (an empty value stays empty: it hides
  nothing);
- an erased **actor** (`actor=`): every object and attribute delta made by it loses its actor
  reference: `actor_type` becomes NULL and `actor_id` the flag `ERASED`, so the tables still
  tell an erased actor from the system (`actor_id` NULL), while the APIs show both as no
  actor (`null`); the request metadata of the revisions it acted in keeps its keys, each value
  becoming `ERASED`.

Descriptions (the free text of revisions and deltas) are left alone: they describe changes,
not the row. The erasure itself is recorded as a custom event `revy.erased` about the erased
row (its key, never its values) in the current revision (one of its own when no context is
active), with the reason, what was erased and the counts; its actor is the context's actor.
Erasing twice is harmless: the second run finds only markers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import models, router, transaction
from django.db.models import Q, Value

from revy.contrib.django._meta import concrete_model
from revy.contrib.django.events import record_event
from revy.contrib.django.references import type_label
from revy.contrib.django.registry import content_id
from revy.contrib.django.snapshots import STATE_ACTIONS
from revy.contrib.django.utils import (
    get_attribute_delta_model,
    get_object_delta_model,
    get_revision_model,
)

__all__ = ["ERASED", "ERASURE_EVENT", "Erasure", "erase"]

#: What an erased value (and an erased actor's `actor_id`) becomes.
ERASED = "[erased]"
#: The event type of the delta that records an erasure.
ERASURE_EVENT = "revy.erased"

Row = models.Model | tuple[type[models.Model], Any]
CHUNK = 500


@dataclass(frozen=True)
class Erasure:
    """What `erase` changed (or, with `dry_run`, would change)."""

    subject: str  # "actor" or "object"
    type: str  # app_label.model
    id: str  # the key as history stores it
    object_deltas: int
    attribute_deltas: int
    revisions: int
    dry_run: bool

    def counts(self) -> dict[str, int]:
        return {
            "object_deltas": self.object_deltas,
            "attribute_deltas": self.attribute_deltas,
            "revisions": self.revisions,
        }


def erase(
    *,
    actor: Row | None = None,
    obj: Row | None = None,
    reason: str = "",
    dry_run: bool = False,
    using: str | None = None,
) -> list[Erasure]:
    """Redact the history of an actor and/or an object; return what was (would be) erased.

    `actor` and `obj` are model instances or `(model, pk)` pairs (rows deleted since can be
    erased). One transaction; with `dry_run`, counts only and writes nothing. ValueError when
    neither is given.
    """
    if actor is None and obj is None:
        raise ValueError(
            "Say what to erase: actor=... and/or obj=... (an instance or (model, pk))."
        )
    using = using or router.db_for_write(get_object_delta_model())
    results: list[Erasure] = []
    with transaction.atomic(using=using):
        if actor is not None:
            results.append(_erase(_resolve(actor), "actor", reason, dry_run, using))
        if obj is not None:
            results.append(_erase(_resolve(obj), "object", reason, dry_run, using))
    return results


def _resolve(row: Row) -> tuple[type[models.Model], Any]:
    if isinstance(row, models.Model):
        if row.pk is None:
            raise ValueError(f"Cannot erase an unsaved {row._meta.label}.")
        return concrete_model(row.__class__), row.pk
    model, pk = row
    if pk is None:
        raise ValueError(f"Cannot erase a {model._meta.label} without a primary key.")
    return concrete_model(model), pk


def _erase(
    row: tuple[type[models.Model], Any], subject: str, reason: str, dry_run: bool, using: str
) -> Erasure:
    model, pk = row
    stored = content_id(model, pk)
    content_type = ContentType.objects.db_manager(using).get_for_model(model)
    field = "actor" if subject == "actor" else "content"
    match = {f"{field}_type": content_type, f"{field}_id": stored}
    deltas = get_object_delta_model()._base_manager.using(using).filter(**match)
    # A row's field changes are found through their parents (indexed by content).
    attribute_match = (
        match if subject == "actor" else {f"parent__{key}": v for key, v in match.items()}
    )
    attributes = get_attribute_delta_model()._base_manager.using(using).filter(**attribute_match)
    revision_ids = set(deltas.values_list("revision_id", flat=True).distinct())
    revision_ids.update(attributes.values_list("revision_id", flat=True).distinct())
    result = Erasure(
        subject=subject,
        type=type_label(model),
        id=stored,
        object_deltas=deltas.count(),
        attribute_deltas=attributes.count(),
        revisions=len(revision_ids),
        dry_run=dry_run,
    )
    if dry_run:
        return result
    if subject == "actor":
        deltas.update(actor_type=None, actor_id=ERASED)
        attributes.update(actor_type=None, actor_id=ERASED)
        revisions = get_revision_model()._base_manager.using(using)
        _redact_json(revisions.filter(pk__in=revision_ids), "metadata", _redact_values)
    else:
        keys = [f.attname for f in getattr(model._meta, "pk_fields", [model._meta.pk])]
        _redact_json(
            deltas.filter(action__in=STATE_ACTIONS),
            "data",
            lambda state: {key: state[key] for key in keys if key in state},
        )
        _redact_json(deltas.exclude(action__in=STATE_ACTIONS), "data", _redact_values)
        marker = Value(ERASED, output_field=models.JSONField())
        attributes.filter(old_value__isnull=False).update(old_value=marker)
        attributes.filter(new_value__isnull=False).update(new_value=marker)
    _record(model, pk, result, reason, using)
    return result


def _redact_values(value: Any) -> Any:
    """Keep a mapping's keys, every value becoming the marker; anything else: the marker."""
    if isinstance(value, dict):
        return {key: ERASED for key in value}
    return ERASED


def _redact_json(rows: models.QuerySet, column: str, redact) -> None:
    """Rewrite a JSON column in key order, a chunk at a time (constant memory)."""
    model = rows.model
    rows = rows.exclude(Q(**{f"{column}__isnull": True})).order_by("pk")
    last = None
    while True:
        page = rows if last is None else rows.filter(pk__gt=last)
        chunk = list(page.values_list("pk", column)[:CHUNK])
        if not chunk:
            return
        last = chunk[-1][0]
        batch = [
            model(pk=pk, **{column: redacted})
            for pk, value in chunk
            if (redacted := redact(value)) != value
        ]
        if batch:
            model._base_manager.using(rows.db).bulk_update(batch, [column])


def _record(model: type[models.Model], pk: Any, result: Erasure, reason: str, using: str) -> None:
    """The erasure's own delta: who (the context's actor), when, why; never the values."""
    target = model._base_manager.using(using).filter(pk=pk).first()
    if target is None:  # deleted since: an unsaved stand-in names the row
        target = model()
        target.pk = pk
        target._state.db = using
    data = {"erased": result.subject, "reason": reason, **result.counts()}
    record_event(target, ERASURE_EVENT, data)
