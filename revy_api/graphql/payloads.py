"""Result types of snapshots, diffs, rollbacks and reverts.

A row's state is given as JSON: its recorded fields by attname, masked and excluded fields
left out, values as the history tables store them (the `data` of an object delta).
"""

from __future__ import annotations

import json
from typing import Any, cast

import strawberry
from django.db import models
from strawberry.scalars import JSON

from revy.contrib.django._meta import concrete_model
from revy.contrib.django.recorder import state_json
from revy.contrib.django.registry import ModelConfig, config_for
from revy_api import operations
from revy_api.graphql.types import Revision

__all__ = [
    "FieldChange",
    "ObjectDiff",
    "RevertResult",
    "RollbackResult",
    "Snapshot",
    "field_changes",
    "recorded_state",
]


@strawberry.type(description="One field's value at two points.")
class FieldChange:
    field: str = strawberry.field(description="The field's attname.")
    old: JSON | None = strawberry.field(description="The earlier value (JSON).")
    new: JSON | None = strawberry.field(description="The later value (JSON).")


def field_changes(changes: dict[str, dict[str, Any]]) -> list[FieldChange]:
    """Turn `{field: {"old", "new"}}` into a list of `FieldChange`, in field order."""
    return [
        FieldChange(field=name, old=value["old"], new=value["new"])
        for name, value in changes.items()
    ]


def recorded_state(instance: models.Model) -> dict[str, Any]:
    """Return the instance's recorded, unmasked fields as stored JSON values."""
    model = type(instance)
    config = config_for(model) or ModelConfig(concrete_model(model))
    return json.loads(state_json(config, config.values_of(instance)))


@strawberry.type(description="A row as it was at one point of its history.")
class Snapshot:
    type: str = strawberry.field(description="`app_label.model` of the row.")
    id: strawberry.ID = strawberry.field(description="The row's primary key.")
    state: JSON = strawberry.field(description="Its recorded fields by attname (JSON values).")
    etag: str = strawberry.field(
        description="The ETag of this state; a snapshot without a point gives the current "
        "one, to pass as `expectedEtag` to `rollbackObject`."
    )

    @classmethod
    def of(cls, label: str, pk: Any, instance: models.Model) -> Snapshot:
        return cls(
            type=label,
            id=strawberry.ID(str(pk)),
            state=cast(JSON, recorded_state(instance)),
            etag=operations.etag(instance),
        )


@strawberry.type(description="The fields that differ between two points of a row's history.")
class ObjectDiff:
    type: str = strawberry.field(description="`app_label.model` of the row.")
    id: strawberry.ID = strawberry.field(description="The row's primary key.")
    since: str | None = strawberry.field(description="The earlier point, as given.")
    until: str | None = strawberry.field(description="The later point, as given.")
    changes: list[FieldChange] = strawberry.field(
        description="The changed fields only; the same point twice gives none."
    )


@strawberry.type(description="What `rollbackObject` did, or would do for a dry run.")
class RollbackResult:
    type: str = strawberry.field(description="`app_label.model` of the row.")
    id: strawberry.ID = strawberry.field(description="The row's primary key.")
    state: JSON = strawberry.field(description="The row's state after the rollback.")
    etag: str = strawberry.field(description="The ETag of that state.")
    changes: list[FieldChange] = strawberry.field(
        description="The fields the rollback changes (old: now, new: restored)."
    )
    created: bool = strawberry.field(description="True when the row is (to be) re-created.")
    dry_run: bool = strawberry.field(description="True when nothing was written.")
    revision: Revision | None = strawberry.field(
        description="The revision the rollback was recorded in; null when nothing changed."
    )
    cascaded: list[Snapshot] = strawberry.field(
        default_factory=list,
        description="The rows re-created with it (`cascade`), in the order they are created.",
    )


@strawberry.type(description="What `revertRevision` did.")
class RevertResult:
    reverted: Revision = strawberry.field(description="The revision that was undone.")
    revision: Revision | None = strawberry.field(
        description="The revision recording the undo; null when there was nothing to undo."
    )
