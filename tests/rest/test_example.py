"""The demo's REST API: ledger corrections by the system, garage aggregates, organizations."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import override_settings

from example.api import contracts
from example.garage.models import Car
from example.ledger.models import Transaction
from example.organizations.models import Membership, Organization
from tests.factories import history_counts, object_deltas, only
from tests.rest.conftest import assert_problem, token_client

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def demo_project():
    """Serve the demo's URLs with its API settings and organization resolver."""
    resolver = {"ORGANIZATION_RESOLVER": "example.organizations.resolvers.member_organization"}
    with (
        override_settings(ROOT_URLCONF="example.project.urls", REVY_API=resolver),
        contracts.demo_api_settings(),
    ):
        yield


@pytest.fixture
def acme(superuser):
    organization = Organization.objects.create(slug="acme", name="ACME")
    Membership.objects.create(organization=organization, user=superuser)
    return organization


@pytest.fixture
def account(admin_api, acme):
    response = admin_api.post(
        "/api/accounts/", {"organization": acme.pk, "name": "Cash"}, format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()


def _local_amount_changes(transaction_id):
    delta = object_deltas(Transaction, transaction_id)[-1]
    return [
        (child.actor_id, child.old_value, child.new_value, child.description)
        for child in delta.children.filter(field_name="local_amount")
    ]


def test_the_system_corrects_local_amount_on_create(admin_api, superuser, account):
    response = admin_api.post(
        "/api/transactions/",
        {"account": account["id"], "amount": "10.00", "exchange_rate": "1.5", "memo": "Lunch"},
        format="json",
        HTTP_X_COMMIT_MESSAGE="Book lunch",
    )

    assert response.status_code == 201, response.content
    assert response.json()["local_amount"] == "15.00"
    changes = _local_amount_changes(response.json()["id"])
    # The default came with the user's request; the correction is the system's.
    assert changes[-1] == (None, "0.00", "15.00", "Corrected by the system.")
    delta = only(object_deltas(Transaction))
    assert delta.actor_id == str(superuser.pk)
    assert delta.revision.description == "Book lunch"


def test_the_system_corrects_local_amount_on_update(admin_api, account):
    created = admin_api.post(
        "/api/transactions/",
        {"account": account["id"], "amount": "10.00"},
        format="json",
    ).json()

    response = admin_api.patch(
        f"/api/transactions/{created['id']}/", {"exchange_rate": "2"}, format="json"
    )

    assert response.json()["local_amount"] == "20.00"
    assert _local_amount_changes(created["id"]) == [
        (None, "10.00", "20.00", "Corrected by the system.")
    ]
    update = object_deltas(Transaction)[-1]
    assert {child.field_name: child.actor_id for child in update.children.all()} == {
        "exchange_rate": update.actor_id,
        "local_amount": None,
    }


def test_a_member_books_as_the_organization(admin_api, superuser, acme, account):
    response = admin_api.post(
        "/api/transactions/",
        {"account": account["id"], "amount": "3.00"},
        format="json",
        HTTP_X_PERFORM_AS_ORGANIZATION="acme",
        HTTP_X_REQUEST_ID="demo-1",
    )

    delta = only(object_deltas(Transaction))
    assert delta.actor == acme
    assert delta.revision.metadata == {
        "user": {"type": "auth.user", "id": str(superuser.pk)},
        "request_id": "demo-1",
    }
    assert response["X-Revision-Id"] == str(delta.revision_id)


def test_a_non_member_cannot_book_as_the_organization(other_user, acme, account):
    other_user.is_superuser = True
    other_user.save()

    response = token_client(other_user).post(
        "/api/transactions/",
        {"account": account["id"], "amount": "3.00"},
        format="json",
        HTTP_X_PERFORM_AS_ORGANIZATION="acme",
    )

    assert_problem(response, 403, "organization-forbidden")
    assert not Transaction.objects.exists()


def test_a_cars_history_with_aggregates_shows_its_engine_and_cylinders(admin_api):
    car = admin_api.post("/api/cars/", {"manufacturer": "Saab"}, format="json").json()
    engine = admin_api.post("/api/engines/", {"car": car["id"]}, format="json").json()
    admin_api.post("/api/cylinders/", {"engine": engine["id"], "position": 1}, format="json")

    history = admin_api.get(f"/api/cars/{car['id']}/history/?aggregates=true").json()

    assert [delta["content"]["type"] for delta in history["results"]] == [
        "garage.cylinder",
        "garage.engine",
        "garage.car",
    ]


def test_every_error_of_the_demo_is_problem_details(admin_api):
    invalid = admin_api.post("/api/cars/", {}, format="json")
    missing = admin_api.get("/api/cars/999/")

    assert "manufacturer" in assert_problem(invalid, 400, "validation-error")["errors"]
    assert_problem(missing, 404, "not-found")


def test_rollback_in_the_demo(admin_api):
    car = admin_api.post("/api/cars/", {"manufacturer": "Saab"}, format="json")
    admin_api.patch(f"/api/cars/{car.json()['id']}/", {"model": "900"}, format="json")

    response = admin_api.post(
        f"/api/cars/{car.json()['id']}/rollback/",
        {"revision": int(car["X-Revision-Id"])},
        format="json",
    )

    assert response.status_code == 200
    assert response.json()["changes"] == {"model": {"old": "900", "new": ""}}
    assert Car.objects.get().model == ""


def test_decimal_values_are_recorded_as_strings(admin_api, account):
    admin_api.post(
        "/api/transactions/", {"account": account["id"], "amount": "1.10"}, format="json"
    )

    delta = admin_api.get("/api/deltas/?content_type=ledger.transaction").json()["results"][0]

    amount = next(change for change in delta["changes"] if change["field"] == "amount")
    assert amount["new"] == "1.10"
    assert Decimal(amount["new"]) == Decimal("1.1")


def test_showing_rows_whose_str_follows_foreign_keys_costs_no_query_per_row(admin_api):
    """A cylinder shows as "Cylinder 1 of Engine of Saab": engine and car come in the batch."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from example.garage.models import Cylinder, Engine
    from revy import Context

    with Context():
        for number in range(60):
            car = Car.objects.create(manufacturer=f"Make {number}")
            Cylinder.objects.create(engine=Engine.objects.create(car=car), position=1)

    def queries(page_size: int) -> int:
        url = f"/api/deltas/?content_type=garage.cylinder&page_size={page_size}"
        admin_api.get(url)
        with CaptureQueriesContext(connection) as captured:
            results = admin_api.get(url).json()["results"]
        assert len(results) == page_size
        assert results[0]["content"]["display"].startswith("Cylinder 1 of Engine of Make")
        return len(captured)

    assert queries(5) == queries(50)


# The demo command: its banner says what each login may do --------------------------------------


def _demo(*args: str) -> str:
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("demo", "--no-serve", *args, stdout=out)
    return out.getvalue()


def test_the_demo_banner_says_what_each_login_may_do_as_the_database_has_it():
    banner = _demo()

    assert "Seeded the demo: 3 users, 2 organizations" in banner
    logins = " ".join(banner.split("Logins")[1].split("Try:")[0].split())
    assert "admin / admin no token superuser: everything" in logins
    assert (
        "alice / alice token alice-demo-token staff: garage, ledger, organizations "
        "(add, change, delete, view); acts as Acme Corp"
    ) in logins
    assert (
        "bob / bob token bob-demo-token staff: ledger (add, change, view), "
        "organizations (view); acts as Acme Corp, Globex"
    ) in logins


def test_what_the_banner_says_bob_may_do_holds_over_the_api():
    _demo()
    bob = token_client(Organization.objects.get(slug="globex").memberships.get().user)
    transaction = Transaction.objects.order_by("pk").first()

    # ledger: add, change, view; no delete
    assert bob.get(f"/api/transactions/{transaction.pk}/").status_code == 200
    patched = bob.patch(
        f"/api/transactions/{transaction.pk}/",
        {"memo": "bob was here"},
        format="json",
        HTTP_X_PERFORM_AS_ORGANIZATION="globex",  # acts as Globex
    )
    assert patched.status_code == 200, patched.content
    assert bob.delete(f"/api/transactions/{transaction.pk}/").status_code == 403
    # organizations: view only
    assert bob.post("/api/organizations/", {"slug": "x", "name": "X"}).status_code == 403
    # no garage: its history is hidden from him
    deltas = bob.get("/api/deltas/?content_type=garage.car").json()
    assert deltas["results"] == []


@pytest.mark.django_db(transaction=True)  # `flush` cannot run inside a test's transaction
def test_demo_reset_empties_the_database_and_seeds_it_again():
    _demo()
    Car.objects.all().delete()
    assert "Demo data: already there" in _demo()
    assert not Car.objects.exists()

    output = _demo("--reset")

    assert "Emptied the database." in output
    assert "Seeded the demo: 3 users, 2 organizations, 3 transactions, 1 car" in output
    assert Car.objects.count() == 1


def test_the_readme_shows_the_demo_banner_as_printed():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    banner = _demo().split("revy demo", 1)[1]
    for line in banner.splitlines():
        assert line.rstrip() in readme, f"README lacks the banner line {line!r}"


def test_an_amount_whose_local_amount_does_not_fit_is_a_400_and_writes_nothing(admin_api, account):
    # amount x exchange_rate must fit local_amount (14 digits, 2 places): the database
    # refused the UPDATE, a 500 (found by the schema fuzzer).
    created = admin_api.post(
        "/api/transactions/", {"account": account["id"], "amount": "10.00"}, format="json"
    ).json()
    before = history_counts()
    response = admin_api.put(
        f"/api/transactions/{created['id']}/",
        {"account": account["id"], "amount": "-3291462780.00", "exchange_rate": "3510.165141"},
        format="json",
    )
    errors = assert_problem(response, 400, "validation-error")["errors"]
    assert {"amount", "exchange_rate"} <= set(errors)
    assert history_counts() == before
    assert Transaction.objects.get(pk=created["id"]).amount == Decimal("10.00")
