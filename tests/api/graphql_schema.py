"""The test suite's GraphQL schema: revy's mixins plus test models with a `history` field."""

from __future__ import annotations

import strawberry
import strawberry_django
from strawberry import relay
from strawberry.extensions import ParserCache, ValidationCache
from strawberry_django.optimizer import DjangoOptimizerExtension

from revy_api.graphql import (
    ObjectDeltaConnection,
    QueryLimits,
    RevisionContextExtension,
    RevisionMutation,
    RevisionQuery,
    history_field,
)
from tests.testapp import models


@strawberry_django.type(models.Book)
class Book(relay.Node):
    title: str
    pages: int
    history: ObjectDeltaConnection = history_field()


@strawberry_django.type(models.Car)
class Car(relay.Node):
    manufacturer: str
    history: ObjectDeltaConnection = history_field(aggregates=True)


@strawberry.type
class Query(RevisionQuery):
    books: list[Book] = strawberry_django.field()
    cars: list[Car] = strawberry_django.field()


@strawberry.input
class BookInput:
    id: strawberry.ID
    title: str | None = None
    pages: int | None = None


@strawberry.type
class Mutation(RevisionMutation):
    @strawberry.mutation
    @strawberry_django.django_resolver
    def update_book(self, data: BookInput) -> Book:
        book = models.Book.objects.get(pk=data.id)
        if data.title is not None:
            book.title = data.title
        if data.pages is not None:
            book.pages = data.pages
        book.save()
        return book


schema = strawberry.Schema(
    query=Query,
    mutation=Mutation,
    extensions=[
        DjangoOptimizerExtension,
        QueryLimits,
        ParserCache,
        ValidationCache,
        RevisionContextExtension,
    ],
)
