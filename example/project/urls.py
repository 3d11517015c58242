"""The demo's URLs: the admin, the REST API under /api/, GraphQL under /graphql/."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from django.views import defaults

from revy_api.rest.exceptions import page_not_found

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("example.api.rest_urls")),
    path("graphql/", include("example.api.graphql_urls")),
]


def not_found(request: HttpRequest, exception: Any) -> HttpResponse:
    """API clients get problem details for a URL no endpoint serves; browsers get a page."""
    if request.path.startswith("/api/"):
        return page_not_found(request, exception)
    return defaults.page_not_found(request, exception)


handler404 = not_found
