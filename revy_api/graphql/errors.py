"""GraphQL errors with stable `extensions.code` values.

revy's resolvers never let a client error escape as an anonymous GraphQL error: the shared
`revy_api.operations.OperationError`s, the header errors of `revy.contrib.django.headers` and
the history errors of `revy.contrib.django.history` all become a `GraphQLError` whose
`extensions.code` is one of:

- `BAD_REQUEST`: an argument or header that cannot be honoured;
- `FORBIDDEN`: the user may not see or change that history (or act as that organization);
- `NOT_FOUND`: no such revision, delta or recorded history;
- `CONFLICT`: a revert that later changes would overwrite (`extensions.conflicts` lists the
  ones the user may see, `extensions.hiddenConflicts` counts the others), or a restore the
  database refuses (`extensions.reason`: `unique`, `missing-related`, `concurrent`,
  `constraint`; `extensions.fields`: the columns at fault);
- `PRECONDITION_FAILED`: `expectedEtag` no longer matches the row;
- `PRECONDITION_REQUIRED`: `expectedEtag` is missing and `REVY_API["REQUIRE_IF_MATCH"]` is on.

Like every GraphQL error, they are answered with HTTP 200 in the response's `errors`.
`revy_api.graphql.GraphQLView` gives every other error a code too (`with_code()`):

- `GRAPHQL_PARSE_FAILED`: the document is not GraphQL;
- `GRAPHQL_VALIDATION_FAILED`: it does not fit the schema, or its variables do not;
- `QUERY_TOO_COMPLEX`: it exceeds a limit of `revy_api.graphql.QueryLimits`;
- `UNAUTHENTICATED`: the credentials sent were refused;
- `INTERNAL_SERVER_ERROR`: an unexpected failure of a resolver (its message is not shown).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from django.core.exceptions import PermissionDenied
from graphql import GraphQLError, GraphQLSyntaxError
from strawberry import relay

from revy.contrib.django import history
from revy.contrib.django.headers import HeaderError
from revy_api import operations
from revy_api.references import type_label

__all__ = [
    "BAD_REQUEST",
    "CONFLICT",
    "FORBIDDEN",
    "GRAPHQL_PARSE_FAILED",
    "GRAPHQL_VALIDATION_FAILED",
    "INTERNAL_SERVER_ERROR",
    "NOT_FOUND",
    "PRECONDITION_FAILED",
    "QUERY_TOO_COMPLEX",
    "UNAUTHENTICATED",
    "bad_request",
    "forbidden",
    "header_error",
    "not_found",
    "operation_error",
    "translating_errors",
    "with_code",
]

BAD_REQUEST = "BAD_REQUEST"
FORBIDDEN = "FORBIDDEN"
NOT_FOUND = "NOT_FOUND"
CONFLICT = "CONFLICT"
PRECONDITION_FAILED = "PRECONDITION_FAILED"
GRAPHQL_PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
GRAPHQL_VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"
UNAUTHENTICATED = "UNAUTHENTICATED"
INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"
# graphql-core's message when a document exceeds the parser's `max_tokens`.
_TOO_MANY_TOKENS = "Document contains more than"


def _error(message: str, code: str, **extensions: Any) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code, **extensions})


def bad_request(message: str, **extensions: Any) -> GraphQLError:
    """Return a `BAD_REQUEST` error (raise it)."""
    return _error(message, BAD_REQUEST, **extensions)


def forbidden(message: str, **extensions: Any) -> GraphQLError:
    """Return a `FORBIDDEN` error (raise it)."""
    return _error(message, FORBIDDEN, **extensions)


def not_found(message: str, **extensions: Any) -> GraphQLError:
    """Return a `NOT_FOUND` error (raise it)."""
    return _error(message, NOT_FOUND, **extensions)


def header_error(error: HeaderError) -> GraphQLError:
    """Translate a revision header error: 403 cases are `FORBIDDEN`, the rest `BAD_REQUEST`."""
    code = FORBIDDEN if error.status == 403 else BAD_REQUEST
    return _error(error.detail, code, header=error.header, type=error.type)


def operation_error(error: operations.OperationError) -> GraphQLError:
    """Translate an `OperationError` of `revy_api.operations` (it carries its `code`)."""
    extensions: dict[str, Any] = {"type": error.type}
    for name, value in error.extra.items():
        if name == "conflicts":
            extensions["conflicts"] = [_conflict(delta) for delta in value]
        elif name == "field":  # the REST parameter at fault is a GraphQL argument here
            extensions["argument"] = value
        elif name == "hidden_conflicts":
            extensions["hiddenConflicts"] = value
        else:
            extensions[name] = value
    return _error(error.detail, error.code, **extensions)


def _conflict(delta: Any) -> dict[str, Any]:
    """Describe a delta that blocks a revert: JSON-safe, with Relay ids where they exist."""
    field_name = getattr(delta, "field_name", None)
    described: dict[str, Any] = {
        "kind": "AttributeDelta" if field_name is not None else "ObjectDelta",
        "id": str(delta.pk),
        "objectDelta": relay.to_base64("ObjectDelta", delta.parent_id if field_name else delta.pk),
        "revision": relay.to_base64("Revision", delta.revision_id),
        "type": type_label(delta.content_type_id),
        "objectId": delta.content_id,
        "action": delta.action,
        "createdAt": delta.created_at.isoformat(),
    }
    if field_name is not None:
        described["field"] = field_name
    return described


@contextlib.contextmanager
def translating_errors() -> Iterator[None]:
    """Turn the errors revy raises for bad requests into coded GraphQL errors."""
    try:
        yield
    except operations.OperationError as error:
        raise operation_error(error) from error
    except HeaderError as error:
        raise header_error(error) from error
    except history.HistoryNotFound as error:
        raise not_found(str(error)) from error
    except history.ObjectAbsent as error:
        raise bad_request(str(error)) from error
    except PermissionDenied as error:
        raise forbidden(str(error) or "You may not do this.") from error


def with_code(error: GraphQLError) -> GraphQLError:
    """Return `error` with an `extensions.code`: its own, or one saying what kind it is.

    An unexpected exception raised by a resolver becomes `INTERNAL_SERVER_ERROR` with a
    generic message: its own text may describe the server (SQL, file paths).
    """
    if (error.extensions or {}).get("code"):
        return error
    original = error.original_error
    if isinstance(original, GraphQLError) and (original.extensions or {}).get("code"):
        code, message = (original.extensions or {})["code"], error.message
    elif error.path is not None and original is not None:
        code, message = INTERNAL_SERVER_ERROR, "Internal server error."
    elif _TOO_MANY_TOKENS in error.message:
        code, message = QUERY_TOO_COMPLEX, error.message
    elif isinstance(error, GraphQLSyntaxError) or error.message.startswith("Syntax Error"):
        code, message = GRAPHQL_PARSE_FAILED, error.message
    elif error.path is None:
        code, message = GRAPHQL_VALIDATION_FAILED, error.message
    else:
        code, message = INTERNAL_SERVER_ERROR, error.message
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions={**(error.extensions or {}), "code": code},
    )
