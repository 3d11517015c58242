from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("tests.api.rest_urls")),
    path("graphql/", include("tests.api.graphql_urls")),
]
