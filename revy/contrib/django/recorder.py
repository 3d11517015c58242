"""Turn changes into delta rows and write them in batches.

A `Change` is one object delta waiting to be written, with its attribute changes. `write()`
inserts a batch of them (`REVY_BATCH_SIZE` object deltas) with one statement per table, built
from plain tuples: no model instance is created per delta, which is what keeps a tracked save
within two extra statements of an untracked one. Everything is written on the connection of
the change itself, inside its transaction, in the context's revision (`revisions`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.db import connections, models
from django.utils import timezone

from revy.contrib.django import registry
from revy.contrib.django import settings as revy_settings
from revy.contrib.django.encoding import encode
from revy.contrib.django.inserts import table
from revy.contrib.django.registry import ModelConfig
from revy.contrib.django.revisions import current_revision_id
from revy.contrib.django.utils import (
    get_attribute_delta_model,
    get_object_delta_model,
)

__all__ = [
    "ATTRIBUTE_DELTA_COLUMNS",
    "OBJECT_DELTA_COLUMNS",
    "Change",
    "actor_key",
    "after_write",
    "attribute_action",
    "json_safe",
    "json_value",
    "state_json",
    "value_json",
    "write",
    "written",
]


ACTION_SET = "Set"
ACTION_UNSET = "Unset"


class _Automatic:
    """The "actor" of values Django assigns by itself during a save (auto primary keys,
    `auto_now`, database defaults): recorded as the system, flagged `automatic`, and never
    one of a revision's actors, since nobody assigned them."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "AUTOMATIC"


AUTOMATIC = _Automatic()

# The history columns revy writes, in the order its INSERTs (and revy_baseline's) list them.
OBJECT_DELTA_COLUMNS = (
    "revision_id",
    "actor_type_id",
    "actor_id",
    "action",
    "event_type",
    "description",
    "content_type_id",
    "content_id",
    "data",
    "created_at",
)
ATTRIBUTE_DELTA_COLUMNS = (
    "revision_id",
    "parent_id",
    "actor_type_id",
    "actor_id",
    "action",
    "description",
    "content_type_id",
    "content_id",
    "field_name",
    "old_value",
    "new_value",
    "created_at",
    "automatic",
)


class Change:
    """An object delta waiting to be written, with its attribute changes.

    `attributes` holds `(field index, action, old, new, actor, description)` tuples of Python
    values, the index being into `config.attnames`; `data` is the JSON text of the row's state
    (see `state_json`) or of a custom event's data; `values` the row's state as a tuple (in
    `config.attnames` order), when the change has one.
    """

    __slots__ = (
        "action",
        "actor",
        "attributes",
        "config",
        "data",
        "description",
        "event_type",
        "instance",
        "pk",
        "values",
    )

    def __init__(
        self,
        config: ModelConfig,
        pk: Any,
        action: str,
        *,
        actor: Any,
        description: str,
        data: str | None,
        attributes: Sequence[tuple] = (),
        event_type: str | None = None,
        instance: models.Model | None = None,
        values: tuple | None = None,
    ) -> None:
        self.config = config
        self.pk = pk
        self.action = action
        self.actor = actor
        self.description = description
        self.data = data
        self.attributes = attributes
        self.event_type = event_type or f"{config.event_prefix}.{_EVENT_SUFFIX[action]}"
        self.instance = instance
        self.values = values


_EVENT_SUFFIX = {
    "Create": "created",
    "Update": "updated",
    "Delete": "deleted",
    "Baseline": "baseline",
    "Event": "event",
}


def state_json(config: ModelConfig, values: Sequence) -> str:
    """Encode a row's state as a JSON object of its recorded, unmasked, loaded fields."""
    masked = config.masked
    attnames = config.attnames
    indexes = [
        index
        for index in config.recorded
        if index not in masked and values[index] is not models.DEFERRED
    ]
    try:
        return encode({attnames[index]: values[index] for index in indexes})
    except TypeError:
        return encode(
            {attnames[index]: json_safe(config, index, values[index]) for index in indexes}
        )


def json_value(config: ModelConfig, index: int, value: Any) -> Any:
    """One field value as an attribute delta stores it, before encoding: masked fields become
    the mask (see `json_safe` for values JSON cannot encode)."""
    if value is not None and index in config.masked:
        # An empty value hides nothing (the action already says Unset); anything else is masked.
        return revy_settings.MASK
    return value


def value_json(config: ModelConfig, index: int, value: Any) -> str | None:
    """Encode one field value for an attribute delta (masked fields become the mask)."""
    if value is None:
        return None
    value = json_value(config, index, value)
    try:
        return encode(value)
    except TypeError:
        return encode(json_safe(config, index, value))


def json_safe(config: ModelConfig, index: int, value: Any) -> Any:
    """`value`, or where JSON cannot encode it (a custom field's own type), the form the
    database stores."""
    try:
        encode(value)
    except TypeError:
        return registry.stored_form(config.fields[index], value)
    return value


def attribute_action(value: Any) -> str:
    return ACTION_UNSET if value is None or value == "" else ACTION_SET


# Actors -----------------------------------------------------------------------------------


def actor_key(actor: Any, using: str = "default") -> tuple[int | None, str | None]:
    """Return (content type id, pk as text) for an actor; (None, None) for the system."""
    if actor is None:
        return None, None
    if not isinstance(actor, models.Model):
        raise TypeError(
            f"A revy actor must be a model instance or None (the system), not {actor!r}."
        )
    if actor.pk is None:
        raise ValueError(f"The actor {actor!r} must be saved before it can act.")
    # __class__, not type(): request.user is a lazy proxy of the user.
    return registry.content_type_id(actor.__class__, using), str(actor.pk)


# Writing deltas ---------------------------------------------------------------------------


def write(using: str, changes: Iterable[Change]) -> list[int]:
    """Insert the object and attribute deltas of `changes`; return the object delta ids.

    Each batch of `REVY_BATCH_SIZE` object deltas costs one INSERT for them and one
    (executemany) for their attribute deltas, plus one for aggregates when there are any.
    """
    changes = list(changes)
    if not changes:
        return []
    revision_id = current_revision_id(using)
    size = revy_settings.batch_size()
    ids: list[int] = []
    for start in range(0, len(changes), size):
        ids.extend(_write_batch(using, revision_id, changes[start : start + size]))
    return ids


def _write_batch(using: str, revision_id: Any, changes: list[Change]) -> list[int]:
    connection = connections[using]
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    actors: dict[int, tuple] = {}
    content_types: dict[ModelConfig, int] = {}

    def type_of(config: ModelConfig) -> int:
        # Django's get_for_model() consults the router on every call: once per batch is enough.
        content_type_id = content_types.get(config)
        if content_type_id is None:
            content_type_id = content_types[config] = config.content_type_id(using)
        return content_type_id

    def key_of(actor: Any) -> tuple:
        if actor is None or actor is AUTOMATIC:
            return (None, None)
        cached = actors.get(id(actor))
        if cached is None:
            cached = actors[id(actor)] = actor_key(actor, using)
        return cached

    rows = [
        (
            revision_id,
            *key_of(change.actor),
            change.action,
            change.event_type,
            change.description or "",
            type_of(change.config),
            change.config.content_id(change.pk),
            change.data,
            now,
        )
        for change in changes
    ]
    ids = table(get_object_delta_model(), OBJECT_DELTA_COLUMNS).insert(using, rows)
    attribute_rows = []
    for change, delta_id in zip(changes, ids, strict=True):
        if not change.attributes:
            continue
        config = change.config
        content_type_id = type_of(config)
        content_id = config.content_id(change.pk)
        attnames = config.attnames
        for index, action, old, new, actor, description in change.attributes:
            attribute_rows.append(
                (
                    revision_id,
                    delta_id,
                    *key_of(actor),
                    action,
                    description or "",
                    content_type_id,
                    content_id,
                    attnames[index],
                    value_json(config, index, old),
                    value_json(config, index, new),
                    now,
                    actor is AUTOMATIC,
                )
            )
    table(get_attribute_delta_model(), ATTRIBUTE_DELTA_COLUMNS).insert(
        using, attribute_rows, returning=False
    )
    written(using, changes, ids)
    return ids


def written(using: str, changes: Sequence[Change], ids: Sequence[int]) -> None:
    """Run the `after_write` hooks of deltas written (by `write`, or by the write's own
    statement: `onestatement`)."""
    for hook in _after_write:
        hook(using, changes, ids)


AfterWrite = Callable[[str, Sequence[Change], Sequence[int]], None]
_after_write: list[AfterWrite] = []


def after_write(hook: AfterWrite) -> AfterWrite:
    """Call `hook(using, changes, delta_ids)` after each batch of deltas is written, in the
    same transaction. `events` registers the aggregates and listeners this way, so that the
    recorder does not depend on what is built on it."""
    if hook not in _after_write:
        _after_write.append(hook)
    return hook
