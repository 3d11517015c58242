"""Event types, listeners, custom events and aggregates.

Every object delta has an `event_type`: `app_label.model.created|updated|deleted` for the
automatic ones, any string matching `^[a-zA-Z0-9._@/-]+$` for custom events. Listeners run
after the transaction that wrote the delta commits, never for a rolled-back change; a failing
listener is logged and does not undo anything.

Aggregates are objects indirectly affected by a change: a model's `get_event_aggregates()`
(recursive, cycles ignored) and the foreign keys named in `REVY_AGGREGATES`. They are stored
next to the delta so that `ObjectDelta.objects.for_aggregate(obj)` is one query.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.db import models, router, transaction

from revy.context import Context
from revy.contrib.django import recorder, registry
from revy.contrib.django._meta import concrete_model
from revy.contrib.django.encoding import encode
from revy.contrib.django.inserts import table
from revy.contrib.django.models import ObjectDeltaAggregate
from revy.contrib.django.utils import get_object_delta_model

__all__ = [
    "after_write",
    "aggregates_of",
    "event_listener",
    "has_listeners",
    "model_event_listener",
    "record_event",
    "remove_listener",
]

logger = logging.getLogger("revy.events")

EVENT_TYPE_PATTERN = re.compile(r"^[a-zA-Z0-9._@/-]+$")

Listener = Callable[[models.Model], Any]
_listeners: dict[str, list[Listener]] = {}


def event_listener(*event_types: str) -> Callable[[Listener], Listener]:
    """Register the decorated function for deltas of these event types.

    The function is called with each matching ObjectDelta once its transaction commits::

        @event_listener("auth.user.created")
        def welcome(delta): ...
    """
    for event_type in event_types:
        _check_event_type(event_type)

    def register(listener: Listener) -> Listener:
        for event_type in event_types:
            handlers = _listeners.setdefault(event_type, [])
            if listener not in handlers:
                handlers.append(listener)
        return listener

    return register


def model_event_listener(
    model: type[models.Model], event_types: Iterable[str]
) -> Callable[[Listener], Listener]:
    """Like `event_listener`, with event types relative to `model` (`["created"]`)."""
    if isinstance(event_types, str):
        event_types = [event_types]
    prefix = model._meta.label_lower
    return event_listener(*(f"{prefix}.{event_type}" for event_type in event_types))


def has_listeners(event_type: str) -> bool:
    """True when a listener is registered for `event_type`."""
    return bool(_listeners.get(event_type))


def remove_listener(listener: Listener) -> None:
    """Unregister `listener` from every event type."""
    for event_type, handlers in list(_listeners.items()):
        if listener in handlers:
            handlers.remove(listener)
        if not handlers:  # an event type nobody listens to costs writes nothing
            del _listeners[event_type]


def record_event(target: models.Model, event_type: str, data: Any = None) -> models.Model | None:
    """Record a custom `Event` delta about `target` in the current revision.

    Opens a context when none is open; records nothing (returns None) where tracking was
    disabled on purpose. Returns the new ObjectDelta.
    """
    _check_event_type(event_type)
    if target.pk is None:
        raise ValueError(f"Cannot record an event about an unsaved {target._meta.label}.")
    if not Context.is_active():
        with Context():
            return record_event(target, event_type, data)
    if Context.is_disabled():
        return None
    config = registry.config_for(type(target)) or registry.ModelConfig(concrete_model(type(target)))
    using = router.db_for_write(get_object_delta_model(), instance=target)
    change = recorder.Change(
        config,
        target.pk,
        "Event",
        actor=Context.get_actor(),
        description=Context.get_object_delta_description(),
        data=None if data is None else encode(data),
        event_type=event_type,
        instance=target,
    )
    with transaction.atomic(using=using, savepoint=False):
        (delta_id,) = recorder.write(using, [change])
    return get_object_delta_model()._base_manager.using(using).get(pk=delta_id)


def _check_event_type(event_type: str) -> None:
    if not isinstance(event_type, str) or not EVENT_TYPE_PATTERN.match(event_type):
        raise ValueError(
            f"Invalid event type {event_type!r}: use letters, digits and . _ @ / - only."
        )


# Called by the recorder after each batch of deltas ---------------------------------------


_AGGREGATE_COLUMNS = ("delta_id", "content_type_id", "content_id")


@recorder.after_write
def after_write(using: str, changes: Sequence[recorder.Change], ids: Sequence[int]) -> None:
    """Store the aggregates of each new delta, and call its listeners once it commits."""
    rows = []
    for change, delta_id in zip(changes, ids, strict=True):
        config = change.config
        if config.links and change.values is not None:
            # A many-to-many link belongs to the history of both rows it links; the keys are
            # in the row itself, so no instance is loaded.
            for index, model in config.links:
                value = change.values[index]
                if value is not None:
                    rows.append(
                        (
                            delta_id,
                            registry.content_type_id(model, using),
                            registry.content_id(model, value),
                        )
                    )
        if change.instance is None or not config.has_aggregates:
            continue
        for content_type_id, content_id in aggregates_of(change.instance, using):
            rows.append((delta_id, content_type_id, content_id))
    if rows:
        table(ObjectDeltaAggregate, _AGGREGATE_COLUMNS).insert(using, rows, returning=False)
    if _listeners:
        wanted = [
            delta_id
            for change, delta_id in zip(changes, ids, strict=True)
            if _listeners.get(change.event_type)
        ]
        if wanted:
            transaction.on_commit(lambda: _dispatch(using, wanted), using=using)


def aggregates_of(instance: models.Model, using: str = "default") -> list[tuple[int, str]]:
    """Return (content type id, pk) of every aggregate of `instance`, itself excluded, with
    content type ids of the database `using`."""
    seen: set[tuple[int, str]] = set()
    start = (
        registry.content_type_id(type(instance), using),
        registry.content_id(type(instance), instance.pk),
    )
    seen.add(start)
    found: list[tuple[int, str]] = []
    stack = list(_direct_aggregates(instance))
    while stack:
        aggregate = stack.pop()
        if aggregate is None or aggregate.pk is None:
            continue
        key = (
            registry.content_type_id(type(aggregate), using),
            registry.content_id(type(aggregate), aggregate.pk),
        )
        if key in seen:
            continue
        seen.add(key)
        found.append(key)
        stack.extend(_direct_aggregates(aggregate))
    return found


def _direct_aggregates(instance: models.Model) -> list[models.Model | None]:
    result: list[models.Model | None] = []
    method = getattr(instance, "get_event_aggregates", None)
    if method is not None:
        result.extend(method() or ())
    config = registry.config_for(type(instance))
    if config is not None:
        for name in config.aggregate_fields:
            try:
                result.append(getattr(instance, name, None))
            except ObjectDoesNotExist:
                # The related row is gone (a row re-created by a restore): the database's
                # foreign key check answers for it, as it would without revy.
                continue
    return result


def _dispatch(using: str, delta_ids: list[int]) -> None:
    deltas = get_object_delta_model()._base_manager.using(using).filter(pk__in=delta_ids)
    for delta in deltas.order_by("id"):
        for listener in list(_listeners.get(delta.event_type, ())):
            try:
                listener(delta)
            except Exception:
                logger.exception(
                    "revy event listener %r failed for delta %s (%s)",
                    listener,
                    delta.pk,
                    delta.event_type,
                )
