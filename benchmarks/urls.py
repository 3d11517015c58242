"""URLs of the API-at-scale run: revy's REST endpoints and a GraphQL schema with its queries."""

import strawberry
from django.urls import include, path
from strawberry.extensions import ParserCache, ValidationCache
from strawberry_django.optimizer import DjangoOptimizerExtension

from revy_api.graphql import GraphQLView, RevisionQuery


@strawberry.type
class Query(RevisionQuery):
    pass


# As the README recommends: a repeated document is parsed and validated once.
schema = strawberry.Schema(
    query=Query, extensions=[DjangoOptimizerExtension, ParserCache, ValidationCache]
)

urlpatterns = [
    path("api/", include("revy_api.rest.urls")),
    path("graphql/", GraphQLView.as_view(schema=schema)),
]
