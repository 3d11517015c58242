"""The demo project's GraphQL: editing ledger transactions and cylinders records history."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import override_settings

from example.garage.models import Car, Cylinder, Engine
from example.ledger.models import Account, Transaction
from example.organizations.models import Membership, Organization
from revy import Context
from tests.factories import history_counts
from tests.graphql.conftest import grant

UPDATE_TRANSACTION = """
mutation($id: ID!, $amount: Decimal, $rate: Decimal, $memo: String) {
  updateTransaction(id: $id, amount: $amount, exchangeRate: $rate, memo: $memo) {
    id amount localAmount memo
    history(first: 1) {
      edges {
        node { action actor { type display } changes { field new actor { type } description } }
      }
    }
  }
}
"""
UPDATE_CYLINDER = """
mutation($id: ID!, $volume: Int) { updateCylinder(id: $id, volumeCc: $volume) { id volumeCc } }
"""


@pytest.fixture
def ledger(db):
    with Context():
        acme = Organization.objects.create(slug="acme", name="Acme")
        account = Account.objects.create(organization=acme, name="Cash", currency="EUR")
        transaction = Transaction.objects.create(
            account=account, amount=Decimal("10.00"), exchange_rate=Decimal("1.5")
        )
    return transaction


@pytest.fixture
def clerk(user):
    grant(user, "ledger.view_transaction", "ledger.change_transaction")
    return user


def test_update_transaction_lets_the_system_correct_the_local_amount(example_gql, clerk, ledger):
    example_gql.login(clerk)
    response = example_gql(UPDATE_TRANSACTION, {"id": str(ledger.pk), "amount": "20.00"})
    data = response.ok()["updateTransaction"]
    assert Decimal(data["localAmount"]) == Decimal("30.00")
    node = data["history"]["edges"][0]["node"]
    assert node["action"] == "UPDATE"
    assert node["actor"] == {"type": "auth.user", "display": "alice"}
    changes = {change["field"]: change for change in node["changes"]}
    assert changes["amount"]["actor"] == {"type": "auth.user"}
    assert changes["local_amount"]["actor"] is None
    assert changes["local_amount"]["description"] == "Corrected by the system."
    assert "revisionId" in response.extensions


@override_settings(
    REVY_API={"ORGANIZATION_RESOLVER": "example.organizations.resolvers.member_organization"}
)
def test_update_transaction_as_the_organization(example_gql, clerk, ledger):
    Membership.objects.create(organization=ledger.account.organization, user=clerk)
    example_gql.login(clerk)
    response = example_gql(
        UPDATE_TRANSACTION,
        {"id": str(ledger.pk), "memo": "Lunch"},
        x_perform_as_organization="acme",
        x_commit_message="Expense report",
    )
    node = response.ok()["updateTransaction"]["history"]["edges"][0]["node"]
    assert node["actor"] == {"type": "organizations.organization", "display": "Acme"}


def test_update_transaction_needs_the_change_permission(example_gql, user, ledger):
    example_gql.login(user)
    before = history_counts()
    response = example_gql(UPDATE_TRANSACTION, {"id": str(ledger.pk), "amount": "1"})
    assert response.codes == ["FORBIDDEN"]
    assert history_counts() == before


@pytest.mark.parametrize("amount", ["12345678901234", "NaN", "-Infinity"])
def test_invalid_amounts_are_bad_requests(example_gql, clerk, ledger, amount):
    example_gql.login(clerk)
    before = history_counts()
    response = example_gql(UPDATE_TRANSACTION, {"id": str(ledger.pk), "amount": amount})
    assert response.codes == ["BAD_REQUEST"]
    assert history_counts() == before


def test_an_unknown_transaction_is_not_found(example_gql, clerk, ledger):
    example_gql.login(clerk)
    assert example_gql(UPDATE_TRANSACTION, {"id": "999"}).codes == ["NOT_FOUND"]


def test_a_cylinder_change_is_part_of_the_cars_history(example_gql, user):
    grant(
        user,
        "garage.change_cylinder",
        "garage.view_car",
        "garage.view_engine",
        "garage.view_cylinder",
    )
    with Context():
        car = Car.objects.create(manufacturer="Volvo", model="240")
        engine = Engine.objects.create(car=car, num_cylinders=1)
        cylinder = Cylinder.objects.create(engine=engine, position=1)
    example_gql.login(user)
    example_gql(UPDATE_CYLINDER, {"id": str(cylinder.pk), "volume": 550}).ok()
    data = example_gql("{ cars { history { edges { node { action content { type } } } } } }").ok()
    contents = [edge["node"]["content"]["type"] for edge in data["cars"][0]["history"]["edges"]]
    assert contents[0] == "garage.cylinder"
    assert set(contents) == {"garage.car", "garage.engine", "garage.cylinder"}


def test_negative_volumes_are_bad_requests(example_gql, user):
    grant(user, "garage.change_cylinder")
    with Context():
        car = Car.objects.create(manufacturer="Volvo")
        cylinder = Cylinder.objects.create(engine=Engine.objects.create(car=car), position=1)
    example_gql.login(user)
    response = example_gql(UPDATE_CYLINDER, {"id": str(cylinder.pk), "volume": -1})
    assert response.codes == ["BAD_REQUEST"]


def test_the_demo_schema_has_the_revision_fields(example_gql, clerk, ledger):
    example_gql.login(clerk)
    query = 'query($id: ID!) { objectHistory(type: "ledger.transaction", id: $id) { totalCount } }'
    data = example_gql(query, {"id": str(ledger.pk)}).ok()
    assert data["objectHistory"]["totalCount"] == 1


def test_graphiql_is_served(client):
    response = client.get("/graphql/example/", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert b"graphiql" in response.content.lower()
