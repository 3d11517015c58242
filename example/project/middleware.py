"""`AdminRevisionMiddleware`: revy's request context for the admin pages only.

The API opens its own revy context (`RevisionContextMixin`, `RevisionContextExtension`) after
Django REST framework has authenticated the request, which is when a token user may be allowed
to act as an organization (`X-Perform-As-Organization`). `RevisionMiddleware` runs before
that, so the demo gives it the admin only: changes made in the admin are recorded with the
logged-in user as actor, and the API keeps its own handling of the headers.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from revy.contrib.django.middleware import RevisionMiddleware


class AdminRevisionMiddleware(RevisionMiddleware):
    """`RevisionMiddleware` for request paths under `prefix` (default `/admin/`)."""

    prefix = "/admin/"

    def __call__(self, request: HttpRequest) -> Any:
        if not request.path.startswith(self.prefix):
            return self.get_response(request)
        return super().__call__(request)
