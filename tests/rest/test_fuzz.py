"""Fuzz the demo's REST API from its checked-in OpenAPI document with schemathesis, in-process.

Every check schemathesis has, every phase: the examples of the document, the coverage phase
(boundary and invalid values of every parameter), random valid and invalid requests (mode
"all"), and the stateful phase, which follows the document's OpenAPI links (create ->
history -> rollback -> revert) as a client would. Requests go to the demo's WSGI application
on the test database (SQLite or PostgreSQL), as a superuser and as a plain user (token
authentication). The document is the checked-in `openapi/openapi.yaml`, which
`test_schema.py` proves equal to what the code generates.

Exceptions to the checks' defaults, each a documented behaviour that an OpenAPI document
cannot express:

- `If-Match` that does not match is a 412 whatever else the request holds, so 412 counts as a
  rejection and as an acceptable answer to valid data (RFC 9110 evaluates preconditions
  before the content);
- `use_after_free` is off for `history/`, `snapshot/` and `diff/`: a deleted row's history
  stays readable (it is how a deleted row is found and restored); and a read of a deleted row
  that a revert brought back is not a use after free (`filter_failure` below);
- `snapshot/` takes one of `revision`, `delta` and `at` (400 for more): query parameters
  cannot be declared mutually exclusive;
- `changes/` answers 400 for an `after` cursor it did not sign, and `deleted/` for a
  `content_type` label that names no installed model: which strings those are cannot be
  written as a pattern;
- the demo's own model writes answer 400 for rows they refer to that do not exist, values
  taken by another row (unique slugs) and the empty decimals drf-spectacular's pattern lets
  through: Django REST framework's validation, not revy's.

The default profile (every operation as the superuser, ten workflows of 20 steps per user) sends
over 1,000 requests in about a minute and a half of CPU time. `REVY_FUZZ_EXAMPLES=200` (and
`REVY_FUZZ_STEPS=`) run longer, randomized profiles, every operation as both users; the figures
are printed at the end.
"""

from __future__ import annotations

import datetime
import os
from collections import Counter
from decimal import Decimal

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections, transaction
from django.test import override_settings
from django.urls import resolve
from hypothesis import HealthCheck, settings

schemathesis = pytest.importorskip("schemathesis")

from jsonschema import Draft202012Validator, FormatChecker  # noqa: E402
from schemathesis.config import SchemathesisConfig  # noqa: E402
from schemathesis.core.failures import AcceptedNegativeData  # noqa: E402
from schemathesis.openapi.checks import UseAfterFree  # noqa: E402

from example.api import contracts  # noqa: E402
from revy import Context  # noqa: E402
from revy.contrib.django.utils import get_object_delta_model  # noqa: E402
from tests.conftest import report_line  # noqa: E402
from tests.history_models import Revision  # noqa: E402
from tests.rest.conftest import grant, token_client  # noqa: E402

# A search for counterexamples: once per database per CI run (see noxfile.py).
pytestmark = [
    pytest.mark.search,
    # The checked-in document is the demo's with revy's own history models: with custom ones
    # swapped in (tests.settings_custom_history), the `content_type` labels it lists include
    # models that are not installed, which the API rightly refuses.
    pytest.mark.skipif(
        Revision._meta.label != "revy.Revision",
        reason="the checked-in OpenAPI document describes revy's own history models",
    ),
]

EXAMPLES = int(os.environ.get("REVY_FUZZ_EXAMPLES", "4"))
STEPS = int(os.environ.get("REVY_FUZZ_STEPS", "20"))
LONG = "REVY_FUZZ_EXAMPLES" in os.environ
# The test suite runs in five CI sessions: the default profile fuzzes every operation as the
# superuser, the workflows as both users; the long profiles every operation as both users.
OPERATION_USERS = ["root", "plain"] if LONG else ["root"]
SCENARIOS = EXAMPLES * 10 if LONG else 10
HISTORY_READS = r"/(history|snapshot|diff)/$"
DEMO_MODELS = (
    r"^/api/(organizations|memberships|accounts|transactions|cars|engines|cylinders)/(\{id\}/)?$"
)
ACCEPTED = ["2xx", "401", "403", "404", "409", "412"]
LENIENT = {"expected-statuses": [*ACCEPTED, "400"]}

CONFIG = SchemathesisConfig.from_dict(
    {
        "generation": {
            "mode": "all",
            "max-examples": EXAMPLES,
            "deterministic": not LONG,
            # The users' tokens are the credentials: no generated session cookies.
            "with-security-parameters": False,
        },
        "phases": {
            "examples": {"enabled": True},
            "coverage": {"enabled": True},
            "fuzzing": {"enabled": True},
            "stateful": {"enabled": True, "max-steps": STEPS},
        },
        "checks": {
            "positive_data_acceptance": {"expected-statuses": ACCEPTED},
            "negative_data_rejection": {
                "expected-statuses": [
                    *("400", "401", "403", "404", "405", "409", "412", "415", "428")
                ]
            },
        },
        "operations": [
            {"include-path-regex": HISTORY_READS, "checks": {"use_after_free": {"enabled": False}}},
            {"include-path-regex": "/snapshot/$", "checks": {"positive_data_acceptance": LENIENT}},
            # A cursor the feed did not sign, a label of no installed model: 400.
            {
                "include-path-regex": "^/api/(changes|deleted)/$",
                "checks": {"positive_data_acceptance": LENIENT},
            },
            {
                "include-path-regex": DEMO_MODELS,
                "include-method-regex": "^(POST|PUT|PATCH)$",
                "checks": {"positive_data_acceptance": LENIENT},
            },
        ],
    }
)
schema = schemathesis.openapi.from_path(contracts.OPENAPI_SCHEMA, config=CONFIG)
# Requests (and the checks' own probes) go to the application in-process, as from_wsgi() does.
schema.app = WSGIHandler()


@schema.hook
def filter_failure(context, failure, case, response) -> bool:
    """Keep every failure but two that are not the API's.

    - Reads of a deleted row that a restore brought back: `use_after_free` knows that a POST
      to the row's own path may re-create it; it does not know that reverting the deletion's
      revision (`POST /api/revisions/{id}/revert/`) does. The history says whether that
      happened: a `Create` of the row after its `Delete`.
    - A request accepted whose only invalid part is query parameters the API does not
      declare: it ignores those, as web APIs do (a cache buster must not break a request).
      schemathesis means to skip these itself, but in some stateful cases it does not (seen
      with a `date-time` and an `enum` parameter next to two undeclared ones).
    """
    if isinstance(failure, UseAfterFree):
        return not _restored_since_deleted(case)
    if isinstance(failure, AcceptedNegativeData):
        return not _negated_only_by_undeclared_query_parameters(case)
    return True


_FORMATS = FormatChecker()


@_FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value) -> bool:
    # jsonschema checks `date-time` only with an optional package: RFC 3339 is a date, "T", a time.
    if isinstance(value, str):
        date, separator, time = value.upper().partition("T")
        datetime.datetime.fromisoformat(value)
        return bool(separator and date and time)
    return True


def _negated_only_by_undeclared_query_parameters(case) -> bool:
    """Whether the case's query has undeclared parameters and every declared one is valid,
    and nothing else of it was made invalid."""
    meta = case.meta
    if meta is not None and any(
        location.name != "QUERY" and component.mode.is_negative
        for location, component in meta.components.items()
    ):
        return False
    declared = {parameter.name: parameter.definition for parameter in case.operation.query}
    query = case.query or {}
    if not set(query) - set(declared):
        return False
    for name, value in query.items():
        if name in declared:
            validator = Draft202012Validator(
                declared[name].get("schema", {}), format_checker=_FORMATS
            )
            # Values reach the API as text: 84 generated for a string parameter is "84".
            if not any(validator.is_valid(each) for each in (value, str(value))):
                return False
    return True


def _restored_since_deleted(case) -> bool:
    match = resolve(case.formatted_path, urlconf="example.project.urls")
    model = match.func.cls.queryset.model
    actions = list(
        get_object_delta_model()
        ._base_manager.filter(
            content_type=ContentType.objects.get_for_model(model),
            content_id=str(case.path_parameters["id"]),
        )
        .order_by("id")
        .values_list("action", flat=True)
    )
    deleted = len(actions) - 1 - actions[::-1].index("Delete") if "Delete" in actions else None
    return deleted is not None and "Create" in actions[deleted:]


REQUESTS: Counter[str] = Counter()  # requests the application served, by kind of test
OPERATIONS: set[str] = set()  # the operations that were called


@pytest.fixture(scope="module", autouse=True)
def _report_figures(request):
    yield
    if REQUESTS:
        report_line(
            request.config,
            f"\nschemathesis: {sum(REQUESTS.values())} requests ({REQUESTS['stateful']} in "
            f"stateful scenarios) over {len(OPERATIONS)} operations",
        )


def _seed() -> dict[str, str]:
    """A little of everything, with history, so that ids 1 and 2 mostly exist.

    Returns the `Authorization` header of each user.
    """
    from django.contrib.auth import get_user_model

    from example.garage.models import Car, Cylinder, Engine
    from example.ledger.models import Account, Transaction
    from example.organizations.models import Membership, Organization

    superuser = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    plain = get_user_model().objects.create_user("plain", password="pw")
    grant(plain, "garage.view_car", "garage.change_car", "ledger.view_account")
    with Context(actor=superuser, revision_description="seed"):
        for number in (1, 2):
            organization = Organization.objects.create(slug=f"org-{number}", name=f"Org {number}")
            Membership.objects.create(organization=organization, user=superuser)
            account = Account.objects.create(organization=organization, name=f"Account {number}")
            transaction = Transaction(account=account, amount=Decimal("10.00") * number)
            transaction.correct_local_amount()
            transaction.save()
            car = Car.objects.create(manufacturer=f"Make {number}")
            engine = Engine.objects.create(car=car)
            Cylinder.objects.create(engine=engine, position=1)
    with Context(actor=plain, revision_description="edits"):
        Car.objects.filter(pk=1).update(model="II")
        Cylinder.objects.filter(pk=2).delete()
    return {
        user.username: token_client(user)._credentials["HTTP_AUTHORIZATION"]
        for user in (superuser, plain)
    }


@pytest.fixture(scope="module")
def demo_data(django_db_setup, django_db_blocker):
    """Seed once for the module, in a transaction each test nests into and that is undone."""
    with django_db_blocker.unblock(), transaction.atomic():
        yield _seed()
        transaction.set_rollback(True)


@pytest.fixture
def demo_app(demo_data, db):
    """The demo's WSGI application, as its settings configure it, on the test database."""
    resolver = {"ORGANIZATION_RESOLVER": "example.organizations.resolvers.member_organization"}
    # Like Django's test client: a request must not close the test's database connection.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        with (
            override_settings(
                ROOT_URLCONF="example.project.urls", ALLOWED_HOSTS=["*"], REVY_API=resolver
            ),
            contracts.demo_api_settings(),
        ):
            yield schema.app
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


COUNTING: list[str] = []  # the kind of test running, while one runs


def _served(**kwargs) -> None:
    if COUNTING:
        REQUESTS[COUNTING[-1]] += 1


signals.request_started.connect(_served, dispatch_uid="revy-fuzz-requests")


@pytest.fixture
def counted(request):
    """Count the requests the application serves during the test, under `name`."""

    def count(name: str):
        COUNTING.append(name)
        request.addfinalizer(COUNTING.pop)

    return count


@pytest.mark.django_db
@pytest.mark.parametrize("who", OPERATION_USERS)
@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,  # the same cases each run, nothing written into the work tree
    derandomize=not LONG,
)
def test_every_operation_answers_as_documented(case, who, demo_app, demo_data, counted):
    counted("operations")
    OPERATIONS.add(case.operation.label)
    case.call_and_validate(headers={"Authorization": demo_data[who]})


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["root", "plain"])
def test_workflows_follow_the_links_as_documented(who, demo_app, demo_data, counted):
    counted("stateful")
    headers = {"Authorization": demo_data[who]}

    class Workflow(schema.as_state_machine()):
        # Each scenario starts from the seeded data: its writes are undone when it ends, so
        # that hypothesis can replay (and shrink) a failing scenario exactly.
        def setup(self):
            self.scenario = transaction.atomic()
            self.scenario.__enter__()

        def teardown(self):
            transaction.set_rollback(True)
            self.scenario.__exit__(None, None, None)
            super().teardown()

        def get_call_kwargs(self, case):
            OPERATIONS.add(case.operation.label)
            return {"headers": headers}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            # Name the credentials as the caller's, as call_and_validate() does.
            case.validate_response(
                response,
                additional_checks=additional_checks,
                headers=headers,
                transport_kwargs=kwargs,
                recorder=self.recorder,
            )

    Workflow.run(
        settings=settings(
            max_examples=SCENARIOS,
            stateful_step_count=STEPS,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            derandomize=not LONG,
        )
    )


# The failure filter ------------------------------------------------------------------------


def _deltas_case(**query):
    return schema["/api/deltas/"]["GET"].Case(query=query)


def test_only_undeclared_query_parameters_are_recognised():
    found = {"object_id": "84", "since": "0796-08-07T03:14:56.0103Z", "format": "csv"}
    undeclared = {"\U0009f595h": "x", "The request's path.": "1896861189864792784896"}
    assert _negated_only_by_undeclared_query_parameters(_deltas_case(**found, **undeclared))
    # Declared parameters alone are no such case, and an invalid declared one is a failure.
    assert not _negated_only_by_undeclared_query_parameters(_deltas_case(**found))
    for invalid in ({"format": "xml"}, {"since": "yesterday"}, {"since": "2024-01-02"}):
        case = _deltas_case(**{**found, **invalid}, **undeclared)
        assert not _negated_only_by_undeclared_query_parameters(case), invalid
