"""Turn GraphQL arguments into models, primary keys and points in history.

`type` arguments are `"app_label.model"` (lower case), `id` arguments the row's primary key as
a string, `revision` and `delta` arguments the Relay ids of a `Revision` or an `ObjectDelta`.
Lookups of revisions and deltas go through `revy_api.operations`, as REST's do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from django.db import models
from django.utils.dateparse import parse_datetime
from strawberry import relay

from revy.contrib.django import history
from revy_api import inputs, operations
from revy_api.errors import BadRequest
from revy_api.graphql.errors import bad_request

if TYPE_CHECKING:
    from revy.contrib.django.models import AbstractRevision

__all__ = [
    "checked",
    "diff_point",
    "model_for",
    "node_pk",
    "pk_for",
    "point",
    "revision_for",
]


T = TypeVar("T")


def checked(parse: Callable[..., T], *values: Any, argument: str) -> T:
    """Return `parse(*values)` (one of `revy_api.inputs`' parsers); BAD_REQUEST on bad input.

    The error's `extensions.argument` names the GraphQL argument at fault.
    """
    try:
        return parse(*values)
    except BadRequest as error:
        raise bad_request(error.detail, argument=argument) from None


def model_for(label: str) -> type[models.Model]:
    """Return the model named `app_label.model`; BAD_REQUEST if there is none."""
    return checked(inputs.model, label, "type", argument="type")


def pk_for(model: type[models.Model], value: Any) -> Any:
    """Return `value` as a primary key of `model`; BAD_REQUEST if it cannot be one."""
    return checked(inputs.primary_key, model, value, "id", argument="id")


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


def revision_for(value: Any, argument: str = "id") -> AbstractRevision:
    """Return the revision a Relay id names (NOT_FOUND when there is none)."""
    return operations.get_revision(node_pk(value, "Revision", argument))


@overload
def point(
    *, revision: Any = None, delta: Any = None, at: Any = None, required: Literal[True]
) -> history.Point: ...
@overload
def point(
    *, revision: Any = None, delta: Any = None, at: Any = None, required: bool
) -> history.Point | None: ...
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
    checked(inputs.text, value, argument, argument=argument)
    try:
        moment = parse_datetime(value)
    except ValueError:
        moment = None
    if moment is not None:
        return checked(inputs.moment, moment, argument, argument=argument)
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
