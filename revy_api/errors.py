"""The errors revy_api answers, shared by REST (problem details) and GraphQL (`extensions.code`).

Each `OperationError` carries its HTTP status, a stable problem `type` URI (RFC 9457) and the
GraphQL error code, so that both APIs give the same answer for the same situation. They are
importable from `revy_api.operations` too.
"""

from __future__ import annotations

from typing import Any

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
]

PROBLEM_BASE = "https://revy.dev/problems/"


class OperationError(Exception):
    """An API-level failure with an HTTP status and a stable problem type."""

    status = 400
    problem = "bad-request"
    title = "Bad request"
    code = "BAD_REQUEST"

    def __init__(self, detail: str, **extra: Any) -> None:
        self.detail = detail
        self.extra = extra
        super().__init__(detail)

    @property
    def type(self) -> str:
        return PROBLEM_BASE + self.problem


class BadRequest(OperationError):
    """A parameter, body member or argument that cannot be honoured (`field` names it)."""


class Forbidden(OperationError):
    status, problem, title, code = 403, "forbidden", "Forbidden", "FORBIDDEN"


class NotFound(OperationError):
    status, problem, title, code = 404, "not-found", "Not found", "NOT_FOUND"


class Conflict(OperationError):
    """A revert that later changes would overwrite (`conflicts` lists them)."""

    status, problem, title, code = 409, "revision-conflict", "Revision conflict", "CONFLICT"


class RestoreConflict(OperationError):
    """A rollback or revert the database refuses; `reason` says why, and nothing is written.

    Reasons: `unique` (a unique value is taken by another row since), `missing-related` (a
    row it refers to is gone), `concurrent` (another request restored or created the row
    meanwhile) and `constraint` (another database constraint).
    """

    status, problem, title, code = 409, "restore-conflict", "Restore conflict", "CONFLICT"


class PreconditionFailed(OperationError):
    status, problem, title, code = (
        412,
        "precondition-failed",
        "Precondition failed",
        "PRECONDITION_FAILED",
    )


class PreconditionRequired(OperationError):
    """`REVY_API["REQUIRE_IF_MATCH"]` is on and the write came without `If-Match`."""

    status, problem, title, code = (
        428,
        "precondition-required",
        "Precondition required",
        "PRECONDITION_REQUIRED",
    )
