"""The test suite's GraphQL endpoints: one schema behind revy's sync and async views, the demo
project's schema, and the test schema behind strawberry's own view (what revy's view adds is
tested against it)."""

from django.urls import path
from rest_framework.authentication import TokenAuthentication
from strawberry.django import views as strawberry_views

from example.api.graphql import schema as example_schema
from revy_api.graphql import AsyncGraphQLView, GraphQLView
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
    path("strawberry/", strawberry_views.GraphQLView.as_view(schema=schema), name="strawberry"),
    path(
        "token-only/",
        GraphQLView.as_view(schema=schema, authentication_classes=[TokenAuthentication]),
        name="graphql-token-only",
    ),
]
