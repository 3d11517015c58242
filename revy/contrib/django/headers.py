"""Request headers that shape a revision, parsed once for every integration.

`RevisionMiddleware`, the REST mixins and the GraphQL extension all call `read_headers()` and
`apply_headers()`, so the three cannot disagree on what a header means:

- `X-Commit-Message`: the revision's description; UTF-8, at most 1,000 characters, no
  control characters but newline and tab. (HTTP cannot carry a newline in a header value, so
  over the wire a description is one line; newlines come only from in-process callers.)
- `X-Perform-As-Organization`: act as that organization, resolved (and possibly refused) by
  `REVY_API["ORGANIZATION_RESOLVER"]`.
- `X-Request-ID`: kept in the revision's metadata.

Who made the request goes into the revision's metadata too: `{"user": {"type", "id"}}` for an
authenticated user (even when acting as an organization), `{"user": null, "anonymous": true}`
for an anonymous request, so that its changes (actor None) are told apart from the system's,
whose revisions carry no `user` at all.

Bad headers raise a `HeaderError` carrying the HTTP status and a stable problem type; callers
turn it into their own error format before anything is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from revy.context import Context
from revy.contrib.django import settings as revy_settings
from revy.contrib.django.revisions import update_revision_metadata

COMMIT_MESSAGE = "X-Commit-Message"
ORGANIZATION = "X-Perform-As-Organization"
REQUEST_ID = "X-Request-ID"
REVISION_ID = "X-Revision-Id"

MAX_COMMIT_MESSAGE = 1000
MAX_REQUEST_ID = 200
_FORBIDDEN_CHARACTERS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_REQUEST_ID = re.compile(rf"^[\x21-\x7e]{{1,{MAX_REQUEST_ID}}}$")

PROBLEM_BASE = "https://revy.dev/problems/"


class HeaderError(Exception):
    """A request header that cannot be honoured. Nothing may be written."""

    status = 400
    problem = "invalid-header"
    title = "Invalid header"

    def __init__(self, header: str, detail: str) -> None:
        self.header = header
        self.detail = detail
        super().__init__(detail)

    @property
    def type(self) -> str:
        return PROBLEM_BASE + self.problem


class InvalidCommitMessage(HeaderError):
    problem = "invalid-commit-message"
    title = "Invalid commit message"


class InvalidRequestId(HeaderError):
    problem = "invalid-request-id"
    title = "Invalid request id"


class OrganizationForbidden(HeaderError):
    status = 403
    problem = "organization-forbidden"
    title = "Not allowed to act as this organization"


@dataclass(frozen=True)
class RevisionHeaders:
    """The validated revision headers of one request."""

    description: str = ""
    organization_value: str | None = None
    request_id: str | None = None


def _header(request: HttpRequest, name: str) -> str | None:
    value = request.META.get("HTTP_" + name.upper().replace("-", "_"))
    if value is None:
        return None
    # WSGI and ASGI hand header bytes over as latin-1 text; headers are UTF-8 on the wire.
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeEncodeError:
        return value  # already decoded text (test clients pass str)
    except UnicodeDecodeError:
        raise HeaderError(name, f"The {name} header is not valid UTF-8.") from None


def read_headers(request: HttpRequest) -> RevisionHeaders:
    """Validate the revision headers of `request`; raise `HeaderError` on bad input."""
    try:
        message = _header(request, COMMIT_MESSAGE)
    except HeaderError as error:
        raise InvalidCommitMessage(error.header, error.detail) from None
    if message is not None:
        if len(message) > MAX_COMMIT_MESSAGE:
            raise InvalidCommitMessage(
                COMMIT_MESSAGE,
                f"The {COMMIT_MESSAGE} header has {len(message)} characters; "
                f"at most {MAX_COMMIT_MESSAGE} are allowed.",
            )
        if _FORBIDDEN_CHARACTERS.search(message):
            raise InvalidCommitMessage(
                COMMIT_MESSAGE,
                f"The {COMMIT_MESSAGE} header contains control characters; only newline "
                "and tab are allowed.",
            )
    request_id = _header(request, REQUEST_ID)
    if request_id is not None and not _REQUEST_ID.match(request_id):
        raise InvalidRequestId(
            REQUEST_ID,
            f"The {REQUEST_ID} header must be 1 to {MAX_REQUEST_ID} visible ASCII characters.",
        )
    organization = _header(request, ORGANIZATION)
    if organization is not None:
        organization = organization.strip()
        if not organization:
            raise OrganizationForbidden(ORGANIZATION, f"The {ORGANIZATION} header is empty.")
    return RevisionHeaders(message or "", organization, request_id)


def resolve_organization(request: HttpRequest, value: str) -> Any:
    """Return the organization `value` names, if the request's user may act as it.

    Delegates to `REVY_API["ORGANIZATION_RESOLVER"]`, a dotted path to a function
    `(request, value) -> instance or None`; None or PermissionDenied means refused.
    """
    # A path that does not import raises ImproperlyConfigured (revy_api.E002), as the check does.
    resolver = revy_settings.organization_resolver()
    if resolver is None:
        raise OrganizationForbidden(
            ORGANIZATION,
            f"This server does not accept {ORGANIZATION}: REVY_API['ORGANIZATION_RESOLVER'] "
            "is not configured.",
        )
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        organization = None
    else:
        try:
            organization = resolver(request, value)
        except PermissionDenied:
            organization = None
    if organization is None:
        raise OrganizationForbidden(
            ORGANIZATION, f"You may not act as the organization {value!r}, or it does not exist."
        )
    return organization


def authenticated_user(request: HttpRequest) -> Any:
    """Return the request's authenticated user, or None."""
    user = getattr(request, "user", None)
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return user


def request_metadata(request: HttpRequest) -> dict[str, Any]:
    """Return who made the request, as revision metadata: the user, or that it was anonymous."""
    user = authenticated_user(request)
    if user is None:
        return {"user": None, "anonymous": True}
    content_type = ContentType.objects.get_for_model(user)
    return {"user": {"type": f"{content_type.app_label}.{content_type.model}", "id": str(user.pk)}}


def identify_request(request: HttpRequest) -> None:
    """Record `request_metadata(request)` in the current context's revision."""
    update_revision_metadata(request_metadata(request))


def apply_headers(
    request: HttpRequest, headers: RevisionHeaders, actor: Any = None, *, identify: bool = True
) -> Any:
    """Put the headers into the current context; return the actor.

    Must run inside an open context, after authentication. The actor is the organization when
    one was asked for (checked here), else `actor`; who made the request (`request_metadata`,
    unless `identify` is false: the caller records it later) and the request id go into the
    revision's metadata.
    """
    if headers.organization_value is not None:
        actor = resolve_organization(request, headers.organization_value)
    if headers.description:
        Context.set_revision_description(headers.description)
    # Kept even when acting as an organization: the person behind a change is never lost.
    metadata: dict[str, Any] = request_metadata(request) if identify else {}
    if headers.request_id:
        metadata["request_id"] = headers.request_id
    if metadata:
        update_revision_metadata(metadata)
    return actor
