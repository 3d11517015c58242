"""Property-based tests of the GraphQL endpoints: generated operations never break them.

hypothesis-graphql (the GraphQL engine of schemathesis) writes valid operations for revy's
root fields from the schema; they are posted to revy's sync and async views, for the test
schema and the demo's. Whatever the arguments, the answer is HTTP 200 with a JSON body,
every error carries an `extensions.code`, and none is an `INTERNAL_SERVER_ERROR` (a server
error). Arguments mix real values (existing ids, model labels, cursors, datetimes) with
arbitrary text, so that resolvers are reached beyond argument parsing.

`REVY_FUZZ_EXAMPLES` sets the number of operations per test (default 25); the figures
(operations sent, errors by code) are printed at the end.
"""

from __future__ import annotations

import datetime
import os
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import mutations, nodes, queries
from strawberry import relay

from example.api.graphql import schema as example_schema
from example.garage.models import Car as DemoCar
from example.garage.models import Cylinder as DemoCylinder
from example.garage.models import Engine as DemoEngine
from example.ledger.models import Account, Transaction
from example.organizations.models import Organization
from revy import Context
from revy.contrib.django.utils import get_object_delta_model, get_revision_model
from tests.api.graphql_schema import schema
from tests.conftest import report_line
from tests.factories import make_book
from tests.testapp.models import Car, Engine

# A search for counterexamples: once per database per CI run (see noxfile.py).
pytestmark = pytest.mark.search

EXAMPLES = int(os.environ.get("REVY_FUZZ_EXAMPLES", "25"))
SDL = schema.as_str()
HISTORY_QUERY_FIELDS = [
    "revisions",
    "revision",
    "node",
    "objectHistory",
    "snapshot",
    "objectDiff",
    "deletedObjects",
    "objectsAsOf",
]
QUERY_FIELDS = [*HISTORY_QUERY_FIELDS, "books", "cars"]
MUTATION_FIELDS = ["rollbackObject", "revertRevision"]
EXAMPLE_SDL = example_schema.as_str()

# Real values, refreshed for each test from the database it runs on.
REAL_IDS: list[str] = ["1"]
REAL_STRINGS: list[str] = ["testapp.book"]


def _real(values: list[str]) -> st.SearchStrategy[str]:
    # Reads the list when drawing, so that each test's values are used.
    return st.integers(min_value=0, max_value=10**6).map(lambda index: values[index % len(values)])


def _text() -> st.SearchStrategy[str]:
    return st.text(max_size=30)


IDS = st.one_of(_real(REAL_IDS), _text(), st.integers().map(str)).map(nodes.String)
STRINGS = st.one_of(_real(REAL_STRINGS), _real(REAL_IDS), _text()).map(nodes.String)
_OFFSETS = st.sampled_from(
    [datetime.UTC, *(datetime.timezone(datetime.timedelta(hours=h)) for h in (-5, 5))]
)
DATETIMES = (
    st.one_of(
        st.datetimes(
            min_value=datetime.datetime(1900, 1, 1), max_value=datetime.datetime(2200, 1, 1)
        ),
        # The whole range, offsets included: some overflow once converted to UTC.
        st.datetimes(timezones=_OFFSETS),
    )
    .map(lambda moment: moment.isoformat())
    .map(nodes.String)
)
DECIMALS = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["0", "1.5", "-0.01", "1e10", "99999999999.99"]),
    _text(),
).map(nodes.String)
SCALARS = {"ID": IDS, "String": STRINGS, "DateTime": DATETIMES, "Decimal": DECIMALS}
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # nothing written into the work tree
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def fuzz_client(gql, django_user_model):
    """A superuser's client, and history to read, roll back and revert."""
    admin = django_user_model.objects.create_superuser("root", password="x")
    gql.login(admin)
    with Context(actor=admin, revision_description="create"):
        book = make_book(title="Dune")
        car = Car.objects.create(manufacturer="Volvo")
        Engine.objects.create(car=car)
        make_book(title="Gone").delete()  # for deletedObjects
    for number in range(3):
        with Context(revision_description=f"edit {number}"):
            book.pages = number
            book.save()
    REAL_IDS[:] = [str(book.pk), str(car.pk)]
    for revision in get_revision_model().objects.all():
        REAL_IDS.append(relay.to_base64("Revision", revision.pk))
    for delta in get_object_delta_model().objects.all():
        REAL_IDS.append(relay.to_base64("ObjectDelta", delta.pk))
        REAL_STRINGS.append(delta.created_at.isoformat())
    REAL_STRINGS[:] = [
        *REAL_STRINGS,
        "testapp.book",
        "testapp.car",
        "auth.user",
        f"auth.user:{admin.pk}",
        "testapp.book.updated",
    ]
    return gql


SENT: Counter[str] = Counter()  # operations sent, and errors answered by code


@pytest.fixture(scope="module", autouse=True)
def _report_figures(request):
    yield
    if SENT:
        codes = ", ".join(f"{code} {n}" for code, n in sorted(SENT.items()) if code != "sent")
        report_line(
            request.config,
            f"\nhypothesis-graphql: {SENT['sent']} operations; errors by code: {codes or 'none'}",
        )


def _check(gql, operation: str) -> None:
    response = gql(operation)
    SENT["sent"] += 1
    assert response.status == 200, (operation, response.body)
    assert isinstance(response.data, dict | None), (operation, response.body)
    for error in response.errors:
        code = error.get("extensions", {}).get("code")
        SENT[str(code)] += 1
        assert code, (operation, error)
        assert code != "INTERNAL_SERVER_ERROR", (operation, error)


@given(operation=queries(SDL, fields=QUERY_FIELDS, custom_scalars=SCALARS))
@FUZZ
def test_generated_queries_answer_with_coded_errors(fuzz_client, operation):
    _check(fuzz_client, operation)


@given(operation=mutations(SDL, fields=MUTATION_FIELDS, custom_scalars=SCALARS))
@FUZZ
def test_generated_mutations_answer_with_coded_errors(fuzz_client, operation):
    _check(fuzz_client, operation)


@pytest.fixture
def example_fuzz_client(example_gql, django_user_model):
    """A superuser's client of the demo schema, with a transaction and a cylinder."""
    admin = django_user_model.objects.create_superuser("root", password="x")
    example_gql.login(admin)
    with Context(actor=admin):
        acme = Organization.objects.create(slug="acme", name="Acme")
        account = Account.objects.create(organization=acme, name="Cash")
        transaction = Transaction.objects.create(account=account, amount=1)
        engine = DemoEngine.objects.create(car=DemoCar.objects.create(manufacturer="Volvo"))
        cylinder = DemoCylinder.objects.create(engine=engine, position=1)
    REAL_IDS[:] = [str(transaction.pk), str(cylinder.pk), str(engine.car_id)]
    for revision in get_revision_model().objects.all():
        REAL_IDS.append(relay.to_base64("Revision", revision.pk))
    REAL_STRINGS[:] = ["ledger.transaction", "garage.car", "garage.cylinder", "Lunch"]
    return example_gql


DEMO_FIELDS = {
    "queries": (queries, [*HISTORY_QUERY_FIELDS, "transactions", "cars"]),
    "demo mutations": (mutations, ["updateTransaction", "updateCylinder"]),
    "history mutations": (mutations, ["rollbackObject", "revertRevision"]),
}


@pytest.mark.parametrize("kind", list(DEMO_FIELDS))
def test_generated_demo_operations_answer_with_coded_errors(example_fuzz_client, kind):
    generate, fields = DEMO_FIELDS[kind]

    @given(operation=generate(EXAMPLE_SDL, fields=fields, custom_scalars=SCALARS))
    @FUZZ
    def check(operation):
        _check(example_fuzz_client, operation)

    check()
