"""URLs of the API-at-scale run: revy's REST endpoints and a GraphQL schema with its queries."""

import strawberry
from django.urls import include, path
from strawberry.django.views import GraphQLView
from strawberry_django.optimizer import DjangoOptimizerExtension

from revy_api.graphql import RevisionQuery


@strawberry.type
class Query(RevisionQuery):
    pass


schema = strawberry.Schema(query=Query, extensions=[DjangoOptimizerExtension])

urlpatterns = [
    path("api/", include("revy_api.rest.urls")),
    path("graphql/", GraphQLView.as_view(schema=schema)),
]
