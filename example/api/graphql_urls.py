"""GraphQL of the demo at /graphql/: POST operations there, or open it in a browser for GraphiQL.

GraphiQL is served from local static files: strawberry renders the template
`graphql/graphiql.html` (example/api/templates) when it exists, and that template loads React
and GraphiQL from the graphene-django-graphiql-static package instead of a CDN.
"""

from django.urls import path

from example.api.graphql import schema
from revy_api.graphql import GraphQLView

urlpatterns = [
    path("", GraphQLView.as_view(schema=schema, graphql_ide="graphiql"), name="graphql"),
]
