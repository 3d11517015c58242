"""Fuzz the demo's REST API from its checked-in OpenAPI document (schemathesis, in-process).

Every operation of `openapi/openapi.yaml` gets generated requests, sent to the demo's WSGI
application on the test database, as a superuser and as a plain user (token authentication),
and every response is checked: no server error, a documented status code and content type,
documented headers, and a body that matches its schema.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections, transaction
from django.test import override_settings
from hypothesis import HealthCheck, settings

schemathesis = pytest.importorskip("schemathesis")

from schemathesis.config import SchemathesisConfig  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from example.api import contracts  # noqa: E402
from revy import Context  # noqa: E402
from tests.rest.conftest import grant, token_client  # noqa: E402

MAX_EXAMPLES = 10

CONFIG = SchemathesisConfig.from_dict(
    {
        # Valid requests only: the API must answer each with a documented response.
        "generation": {"mode": "positive", "max-examples": MAX_EXAMPLES, "deterministic": True},
        "phases": {"stateful": {"enabled": False}, "coverage": {"enabled": False}},
    }
)
schema = schemathesis.openapi.from_path(contracts.OPENAPI_SCHEMA, config=CONFIG)

CHECKS = [
    schemathesis.checks.not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
_counted: dict[str, int] = {}


@pytest.fixture(scope="module", autouse=True)
def _report_case_count(request):
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    total = sum(_counted.values())
    if reporter is not None and capture is not None and total:
        with capture.global_and_fixture_disabled():
            reporter.write_line(
                f"\nschemathesis: {total} requests over {len(_counted)} (operation, user) pairs"
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


@pytest.fixture(params=["superuser", "plain user"])
def fuzz_client(request, demo_data, db):
    """(WSGI app, auth headers, who) of the demo, as a superuser or as a plain user."""
    token = demo_data["root" if request.param == "superuser" else "plain"]
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
            yield WSGIHandler(), {"Authorization": token}, request.param
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,  # the same cases each run
    derandomize=True,
)
def test_the_demo_api_answers_as_documented(case, fuzz_client):
    app, headers, who = fuzz_client
    case.call_and_validate(app=app, headers=headers, checks=CHECKS)
    key = f"{case.operation.label} as {who}"
    _counted[key] = _counted.get(key, 0) + 1
