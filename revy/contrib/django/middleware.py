"""`RevisionMiddleware`: one revision context per request, sync or async.

Add it after `AuthenticationMiddleware`. The actor is read from `request.user` when the first
change is written, not when the request arrives, so users authenticated later by the view
(Django REST framework token or JWT authentication) are recorded; so is who made the request
in the revision's metadata (the user, or `"anonymous": true`). The headers of
`revy.contrib.django.headers` apply; a bad header answers 400 or 403 before the view runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponse

from revy.context import Context
from revy.contrib.django.headers import (
    REVISION_ID,
    HeaderError,
    apply_headers,
    authenticated_user,
    identify_request,
    read_headers,
)
from revy.contrib.django.revisions import pending_revision


def problem_response(error: HeaderError) -> HttpResponse:
    """Answer a header error as RFC 9457 problem details."""
    body = {
        "type": error.type,
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
        "header": error.header,
    }
    return HttpResponse(
        json.dumps(body), status=error.status, content_type="application/problem+json"
    )


class RevisionMiddleware:
    """Open a revy context around each request; answer `X-Revision-Id` when it wrote."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def get_actor(self, request: HttpRequest) -> Any:
        """Return the actor of the request's changes (read at the first write)."""
        return authenticated_user(request)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        try:
            headers = read_headers(request)
        except HeaderError as error:
            return problem_response(error)
        with Context(actor=lambda: self._read_actor(request)):
            try:
                self._apply(request, headers)
            except HeaderError as error:
                return problem_response(error)
            response = self.get_response(request)
            return self._finish(response)

    async def __acall__(self, request: HttpRequest) -> Any:
        try:
            headers = read_headers(request)
        except HeaderError as error:
            return problem_response(error)
        async with Context(actor=lambda: self._read_actor(request)):
            try:
                # Reading request.user may query the session: not in the event loop. The
                # values it sets in the context come back with asgiref's context copy.
                await sync_to_async(self._apply)(request, headers)
            except HeaderError as error:
                return problem_response(error)
            response = await self.get_response(request)
            # Whether the revision still exists may take a query, on the connection (and in
            # the thread) that wrote it.
            return await sync_to_async(self._finish)(response)

    def _apply(self, request: HttpRequest, headers) -> None:
        # A user the view authenticates itself (token, JWT) is not known yet: an anonymous
        # request is only told so at its first change (`_read_actor`).
        known = authenticated_user(request) is not None
        request._revy_identified = known  # type: ignore[attr-defined]
        organization = apply_headers(request, headers, identify=known)
        if organization is not None:
            Context.set_actor(organization)

    def _read_actor(self, request: HttpRequest) -> Any:
        # Called on every read of the actor (hot path): one attribute test after the first.
        if not getattr(request, "_revy_identified", True):
            request._revy_identified = True  # type: ignore[attr-defined]
            identify_request(request)
        return self.get_actor(request)

    def _finish(self, response: HttpResponse) -> HttpResponse:
        revision = pending_revision()
        if revision is not None and REVISION_ID not in response:
            response[REVISION_ID] = str(revision.pk)
        return response
