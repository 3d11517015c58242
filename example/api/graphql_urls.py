"""GraphQL of the demo at /graphql/: POST operations there, or open it in a browser for GraphiQL.

GraphiQL is strawberry's page, which loads its scripts from a CDN (unpkg.com): offline it shows
a blank page, while the endpoint itself keeps answering POSTed operations.
"""

from django.urls import path
from strawberry.django.views import GraphQLView

from example.api.graphql import schema

urlpatterns = [
    path("", GraphQLView.as_view(schema=schema, graphql_ide="graphiql"), name="graphql"),
]
