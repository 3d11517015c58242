"""revy's API plugin: REST (Django REST framework) and GraphQL (strawberry-graphql-django).

Both adapters share `revy_api.visibility` (who may see which history), `revy_api.references`
(how actors and objects are shown) and `revy.contrib.django.headers` (request headers).
"""

__all__: list[str] = []
