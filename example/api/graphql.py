"""The demo's GraphQL schema: revy's history fields next to the ledger and the garage.

Served with GraphiQL at /graphql/. Try, logged in through /admin/::

    mutation { updateTransaction(id: "1", amount: "12.50") { localAmount } }
    { objectHistory(type: "ledger.transaction", id: "1") {
        edges { node { action actor { display } changes { field old new actor { display } } } } } }

Every mutation operation is one revision (`RevisionContextExtension`); send
`X-Commit-Message` to describe it, `X-Perform-As-Organization: <slug>` to act as your
organization.
"""

from __future__ import annotations

import decimal
from typing import Any

import strawberry
import strawberry_django
from django.core.exceptions import ValidationError
from strawberry import Info
from strawberry.extensions import ParserCache, ValidationCache
from strawberry_django.optimizer import DjangoOptimizerExtension

from example.garage import models as garage
from example.ledger import models as ledger
from example.organizations import models as organizations
from revy_api.graphql import (
    ObjectDeltaConnection,
    QueryLimits,
    RevisionContextExtension,
    RevisionMutation,
    RevisionQuery,
    history_field,
)
from revy_api.graphql.errors import bad_request, forbidden, not_found
from revy_api.graphql.state import state_of


@strawberry_django.type(organizations.Organization)
class Organization:
    id: strawberry.ID
    slug: str
    name: str
    history: ObjectDeltaConnection = history_field()


@strawberry_django.type(ledger.Account)
class Account:
    id: strawberry.ID
    name: str
    currency: str
    organization: Organization
    history: ObjectDeltaConnection = history_field()


@strawberry_django.type(ledger.Transaction)
class Transaction:
    id: strawberry.ID
    account: Account
    memo: str
    amount: decimal.Decimal
    exchange_rate: decimal.Decimal
    local_amount: decimal.Decimal = strawberry_django.field(
        description="`amount * exchangeRate`, corrected by the system on every change."
    )
    history: ObjectDeltaConnection = history_field()


@strawberry_django.type(garage.Cylinder)
class Cylinder:
    id: strawberry.ID
    position: int
    volume_cc: int
    history: ObjectDeltaConnection = history_field()


@strawberry_django.type(garage.Engine)
class Engine:
    id: strawberry.ID
    num_cylinders: int
    fuel: str
    cylinders: list[Cylinder]
    history: ObjectDeltaConnection = history_field(aggregates=True)


@strawberry_django.type(garage.Car)
class Car:
    id: strawberry.ID
    manufacturer: str
    model: str
    engine: Engine | None
    history: ObjectDeltaConnection = history_field(
        aggregates=True, description="Changes to the car, its engine and its cylinders."
    )


@strawberry.type
class Query(RevisionQuery):
    organizations: list[Organization] = strawberry_django.field()
    accounts: list[Account] = strawberry_django.field()
    transactions: list[Transaction] = strawberry_django.field()
    cars: list[Car] = strawberry_django.field()


def _editable(info: Info, model: type, pk: str) -> Any:
    """Return the row to change, if the user has the change permission."""
    user = state_of(info).user
    opts = model._meta
    if not user.has_perm(f"{opts.app_label}.change_{opts.model_name}"):
        raise forbidden(f"You may not change {opts.verbose_name_plural}.")
    instance = model.objects.filter(pk=pk).first() if str(pk).isdigit() else None
    if instance is None:
        raise not_found(f"There is no {opts.verbose_name} {pk}.")
    return instance


def _save(instance: Any, before_validation: Any = None) -> None:
    """Validate and save; invalid values are a BAD_REQUEST, and nothing is written."""
    try:
        if before_validation is not None:
            before_validation()
        instance.full_clean()
    except (ValidationError, decimal.InvalidOperation) as error:
        messages = getattr(error, "message_dict", None) or {"__all__": [str(error)]}
        raise bad_request("Invalid values.", fields=messages) from None
    instance.save()


@strawberry.type
class Mutation(RevisionMutation):
    @strawberry.mutation(
        description="Change a transaction; the system then corrects its local amount."
    )
    @strawberry_django.django_resolver
    def update_transaction(
        self,
        info: Info,
        id: strawberry.ID,
        memo: str | None = None,
        amount: decimal.Decimal | None = None,
        exchange_rate: decimal.Decimal | None = None,
    ) -> Transaction:
        transaction = _editable(info, ledger.Transaction, id)
        if memo is not None:
            transaction.memo = memo
        if amount is not None:
            transaction.amount = amount
        if exchange_rate is not None:
            transaction.exchange_rate = exchange_rate
        _save(transaction, before_validation=transaction.correct_local_amount)
        return transaction

    @strawberry.mutation(description="Change a cylinder: part of its engine's and car's history.")
    @strawberry_django.django_resolver
    def update_cylinder(
        self,
        info: Info,
        id: strawberry.ID,
        volume_cc: int | None = None,
        position: int | None = None,
    ) -> Cylinder:
        cylinder = _editable(info, garage.Cylinder, id)
        if volume_cc is not None:
            cylinder.volume_cc = volume_cc
        if position is not None:
            cylinder.position = position
        _save(cylinder)
        return cylinder


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
