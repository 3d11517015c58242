"""The test suite's GraphQL endpoints: one schema behind strawberry's sync and async views."""

from django.urls import path
from strawberry.django.views import AsyncGraphQLView, GraphQLView

from tests.api.graphql_schema import schema

urlpatterns = [
    path("", GraphQLView.as_view(schema=schema), name="graphql"),
    path("async/", AsyncGraphQLView.as_view(schema=schema), name="graphql-async"),
]
