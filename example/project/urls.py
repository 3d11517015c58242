from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("example.api.rest_urls")),
    path("graphql/", include("example.api.graphql_urls")),
]
