"""Turn GraphQL arguments into models, primary keys and points in history.

`type` arguments are `"app_label.model"` (lower case), `id` arguments the row's primary key as
a string, `revision` and `delta` arguments the Relay ids of a `Revision` or an `ObjectDelta`.
Lookups of revisions and deltas go through `revy_api.operations`, as REST's do.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.dateparse import parse_datetime
from strawberry import relay

from revy.contrib.django import history
from revy_api import operations
from revy_api.graphql.errors import bad_request
from revy_api.references import content_type_for_label


def model_for(label: str) -> type[models.Model]:
    """Return the model named `app_label.model`; BAD_REQUEST if there is none."""
    content_type = content_type_for_label(label)
    model = content_type.model_class() if content_type is not None else None
    if model is None:
        raise bad_request(
            f"type {label!r} names no model; use `app_label.model`, e.g. `auth.user`.",
            argument="type",
        )
    return model


def pk_for(model: type[models.Model], value: Any) -> Any:
    """Return `value` as a primary key of `model`; BAD_REQUEST if it cannot be one."""
    field = model._meta.concrete_model._meta.pk
    try:
        pk = field.to_python(str(value))
        field.run_validators(pk)  # integers out of the database's range, among others
    except (ValidationError, ValueError, TypeError, OverflowError):
        pk = None
    if pk is None or str(value) == "":
        raise bad_request(
            f"id {value!r} is not a valid primary key for {model._meta.label}.", argument="id"
        )
    return pk


def node_pk(value: Any, type_name: str, argument: str) -> str:
    """Return the primary key a Relay id of `type_name` holds; BAD_REQUEST otherwise."""
    global_id = value
    if not isinstance(global_id, relay.GlobalID):
        try:
            global_id = relay.GlobalID.from_id(str(value))
        except (relay.GlobalIDValueError, ValueError, TypeError):
            raise bad_request(
                f"{argument} must be the Relay id of a {type_name}, not {value!r}.",
                argument=argument,
            ) from None
    if global_id.type_name != type_name:
        raise bad_request(
            f"{argument} must be the id of a {type_name}, not of a {global_id.type_name}.",
            argument=argument,
        )
    return global_id.node_id


def revision_for(value: Any, argument: str = "id") -> models.Model:
    """Return the revision a Relay id names (NOT_FOUND when there is none)."""
    return operations.get_revision(node_pk(value, "Revision", argument))


def point(
    *, revision: Any = None, delta: Any = None, at: Any = None, required: bool
) -> history.Point | None:
    """Return the point in history the `revision`, `delta` or `at` argument names."""
    return operations.parse_point(
        revision=node_pk(revision, "Revision", "revision") if revision is not None else None,
        delta=node_pk(delta, "ObjectDelta", "delta") if delta is not None else None,
        at=at,
        required=required,
    )


def diff_point(value: str | None, argument: str) -> history.Point | None:
    """A diff bound: a Revision or ObjectDelta Relay id, or an ISO 8601 datetime."""
    if value in (None, ""):
        return None
    try:
        moment = parse_datetime(value)
    except ValueError:
        moment = None
    if moment is not None:
        return operations.parse_datetime_value(moment, argument)
    try:
        global_id = relay.GlobalID.from_id(value)
    except (relay.GlobalIDValueError, ValueError, TypeError):
        raise bad_request(
            f"{argument} must be a Revision or ObjectDelta id, or an ISO 8601 datetime, "
            f"not {value!r}.",
            argument=argument,
        ) from None
    if global_id.type_name == "ObjectDelta":
        return operations.get_delta(global_id.node_id)
    return revision_for(global_id, argument)
