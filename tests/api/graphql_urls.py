"""The test suite's GraphQL endpoints: one schema behind strawberry's sync and async views,
and the demo project's schema."""

from django.urls import path
from strawberry.django.views import AsyncGraphQLView, GraphQLView

from example.api.graphql import schema as example_schema
from tests.api.graphql_schema import schema

urlpatterns = [
    path("", GraphQLView.as_view(schema=schema), name="graphql"),
    path("async/", AsyncGraphQLView.as_view(schema=schema), name="graphql-async"),
    path("example/", GraphQLView.as_view(schema=example_schema), name="graphql-example"),
    path(
        "example/async/",
        AsyncGraphQLView.as_view(schema=example_schema),
        name="graphql-example-async",
    ),
]
