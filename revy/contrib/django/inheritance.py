"""Multi-table inheritance: one change, recorded in the history of every model it touched.

A `Restaurant(Place)` is one row in each table. Saving the restaurant changes the place too,
and changing the place through `Place` changes the restaurant's state. Each model keeps its
own history (its own content type, its own state), so a change recorded for one model is
mirrored in the history of the others: upwards to every ancestor (its fields are part of the
child's row, so its state is known), downwards to the descendants whose rows exist (their
state is read from the database, one query per model and batch).

Deletions need none of this: Django's collector deletes (and revy records) the rows of every
table involved.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any, cast

from revy.contrib.django.recorder import Change, attribute_action, state_json
from revy.contrib.django.registry import ModelConfig, children_of, config_for

__all__ = ["existing_parents", "related_changes", "with_relatives"]

_MIRRORED = ("Create", "Update")


def with_relatives(using: str, changes: list[Change]) -> list[Change]:
    """Return `changes` followed by the changes they make to related models' rows."""
    if not any(change.config.relatives for change in changes):
        return changes  # hot path: no inheritance involved
    return changes + related_changes(using, changes)


def related_changes(using: str, changes: list[Change]) -> list[Change]:
    """Return the changes to record for the ancestors and descendants of `changes`' rows."""
    related: list[Change] = []
    upward = [change for change in changes if _mirrored(change) and change.config.relatives]
    pending: list[tuple[Change, str]] = [(change, "both") for change in upward]
    while pending:
        downward: dict[type, list[Change]] = {}
        next_round: list[tuple[Change, str]] = []
        for change, direction in pending:
            model = change.config.model
            if direction in ("both", "up"):
                for parent in model._meta.parents:
                    mirrored = _for_parent(change, parent)
                    if mirrored is not None:
                        related.append(mirrored)
                        next_round.append((mirrored, "up"))
            if direction in ("both", "down") and change.action == "Update":
                for child in children_of(model):
                    downward.setdefault(child, []).append(change)
        for child, parents in downward.items():
            for mirrored in _for_child(using, child, parents):
                related.append(mirrored)
                next_round.append((mirrored, "down"))
        pending = next_round
    return related


def _mirrored(change: Change) -> bool:
    return change.action in _MIRRORED and change.values is not None


def _translate(source: ModelConfig, target: ModelConfig, change: Change) -> list[tuple]:
    """The change's attribute changes, as indexes of `target`'s fields."""
    attributes = []
    for index, action, old, new, actor, description in change.attributes:
        position = target.indexes.get(source.attnames[index])
        if position is not None and position in target.recorded:
            attributes.append((position, action, old, new, actor, description))
    return attributes


# Parent rows that existed before a child row was inserted onto them, with their stored
# values: Django then updates the parent's table instead of inserting into it.
_existing: contextvars.ContextVar[dict[tuple, tuple] | None] = contextvars.ContextVar(
    "revy_existing_parents", default=None
)


@contextlib.contextmanager
def existing_parents(rows: dict[tuple, tuple]) -> Iterator[None]:
    """While a child row is inserted onto parent rows that exist (`{(model, key): values}`,
    values as stored), record the parents' changes as updates of those values, not creations.
    A restore of a multi-table child uses it (the parent row may have been restored first)."""
    token = _existing.set(rows)
    try:
        yield
    finally:
        _existing.reset(token)


def _for_parent(change: Change, parent: type) -> Change | None:
    config = config_for(parent)
    if config is None:
        return None
    source = change.config
    # Only mirrored changes come here, and those have their row's values.
    own = cast("tuple[Any, ...]", change.values)
    values = tuple(own[source.indexes[attname]] for attname in config.attnames)
    attributes = _translate(source, config, change)
    existing = _existing.get()
    before = None if existing is None else existing.get((parent, config.key(change.pk)))
    if change.action == "Create" and before is not None:
        # Inserted onto an existing parent row: the parent was updated, if at all.
        attributes = [
            (index, attribute_action(values[index]), before[index], values[index], actor, text)
            for index, _, _, _, actor, text in attributes
            if values[index] != before[index]
        ]
        if not attributes:
            return None
        return _like(change, config, values, attributes, action="Update")
    if change.action == "Update" and not attributes:
        return None  # only the child's own fields changed
    return _like(change, config, values, attributes)


def _for_child(using: str, child: type, changes: list[Change]) -> list[Change]:
    config = config_for(child)
    if config is None:
        return []
    rows = config.read_rows(using, [change.pk for change in changes])
    mirrored = []
    for change in changes:
        row = rows.get(config.key(change.pk))
        if row is None:
            continue  # this parent row has no child row of that model
        attributes = _translate(change.config, config, change)
        if attributes:
            # The parent's new values, whether the child's row was read before the write
            # (deletions record first) or after it.
            values = list(row)
            for position, _, _, new, _, _ in attributes:
                values[position] = new
            mirrored.append(_like(change, config, tuple(values), attributes))
    return mirrored


def _like(
    change: Change,
    config: ModelConfig,
    values: tuple,
    attributes: list[Any],
    action: str | None = None,
) -> Change:
    return Change(
        config,
        config.pk_of(values),
        action or change.action,
        actor=change.actor,
        description=change.description,
        data=state_json(config, values),
        attributes=attributes,
        values=values,
    )
