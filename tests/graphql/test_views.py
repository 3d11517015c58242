"""`revy_api.graphql.GraphQLView` (and its async twin) for API clients.

Through Django's real request stack (middleware included, CSRF enforced as a browser would
meet it): token clients query and mutate without a CSRF cookie, sessions are CSRF-checked,
refusals are GraphQL JSON errors, GraphQL over HTTP's media type is honoured, and every error
carries a code. strawberry's own view, kept at `/graphql/strawberry/`, shows what was wrong
before: a body that is not an object made it fail with a server error.
"""

from __future__ import annotations

import base64
import json
import sys

import pytest
from django.test import Client, override_settings
from rest_framework.authtoken.models import Token

from revy import Context
from revy.contrib.django.access import VisibilityPolicy
from revy_api.graphql.views import (
    _FRESH_STACK_SLOTS,
    GRAPHQL_RESPONSE_MEDIA_TYPE,
    _on_fresh_stack,
)
from tests.factories import make_book, object_deltas, revisions
from tests.graphql.conftest import grant

pytestmark = pytest.mark.django_db

VIEWS = ["/graphql/", "/graphql/async/"]
QUERY = "{ revisions { totalCount } }"
UPDATE = 'mutation($id: ID!) { updateBook(data: {id: $id, title: "After"}) { title } }'


@pytest.fixture
def book(db):
    with Context():
        return make_book(title="Before")


@pytest.fixture
def token(user):
    grant(user, "testapp.view_book", "testapp.change_book")
    return Token.objects.create(user=user).key


def _post(client, url, body, **extra):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(url, data=data, content_type="application/json", **extra)


@pytest.mark.parametrize("url", VIEWS)
def test_a_token_client_mutates_without_csrf(url, user, token, book):
    client = Client(enforce_csrf_checks=True)  # as a browser would meet it
    response = _post(
        client,
        url,
        {"query": UPDATE, "variables": {"id": str(book.pk)}},
        HTTP_AUTHORIZATION=f"Token {token}",
    )

    assert response.status_code == 200, response.content
    assert response.json()["data"] == {"updateBook": {"title": "After"}}
    revision = revisions()[-1]
    assert response["X-Revision-Id"] == str(revision.pk)
    update = object_deltas(book)[-1]
    assert (update.actor_type.model, update.actor_id) == ("user", str(user.pk))


@pytest.mark.parametrize("url", VIEWS)
def test_a_token_client_queries(url, user, token, book):
    response = _post(Client(), url, {"query": QUERY}, HTTP_AUTHORIZATION=f"Token {token}")
    assert response.json() == {"data": {"revisions": {"totalCount": 1}}}


@pytest.mark.parametrize("url", VIEWS)
def test_a_session_without_the_csrf_token_is_refused_as_json(url, user, book):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)

    response = _post(client, url, {"query": UPDATE, "variables": {"id": str(book.pk)}})

    assert response.status_code == 403
    assert response["Content-Type"] == "application/json"
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert error["message"].startswith("CSRF Failed")
    book.refresh_from_db()
    assert book.title == "Before"


@pytest.mark.parametrize("url", VIEWS)
def test_a_session_with_the_csrf_token_mutates(url, user, book):
    grant(user, "testapp.change_book")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.get("/admin/login/")  # sets the CSRF cookie
    csrf = client.cookies["csrftoken"].value

    response = _post(
        client, url, {"query": UPDATE, "variables": {"id": str(book.pk)}}, HTTP_X_CSRFTOKEN=csrf
    )

    assert response.json()["data"] == {"updateBook": {"title": "After"}}


@pytest.mark.parametrize(
    ("url", "status", "challenge"),
    [("/graphql/", 403, None), ("/graphql/token-only/", 401, "Token")],
)
def test_a_refused_token_is_a_graphql_error(url, status, challenge, db):
    response = _post(Client(), url, {"query": QUERY}, HTTP_AUTHORIZATION="Token nope")

    # 401 with a challenge when the first authentication class names a scheme, as in DRF.
    assert response.status_code == status
    assert response.get("WWW-Authenticate") == challenge
    assert response.json() == {
        "errors": [{"message": "Invalid token.", "extensions": {"code": "UNAUTHENTICATED"}}]
    }


def test_basic_authentication_works_when_configured(user, book, settings):
    grant(user, "testapp.view_book")
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.BasicAuthentication"],
    }
    credentials = base64.b64encode(b"alice:s3cret-Pass").decode()
    response = _post(
        Client(), "/graphql/", {"query": QUERY}, HTTP_AUTHORIZATION=f"Basic {credentials}"
    )
    assert response.json() == {"data": {"revisions": {"totalCount": 1}}}


# HTTP-level errors -----------------------------------------------------------------------------


@pytest.mark.parametrize("url", VIEWS)
def test_a_mutation_over_get_is_405_with_allow(url, user):
    client = Client()
    client.force_login(user)
    response = client.get(url, {"query": UPDATE, "variables": json.dumps({"id": "1"})})

    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert response.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"


@pytest.mark.parametrize("url", VIEWS)
def test_other_methods_are_405_with_allow(url, db):
    response = Client().put(url, data="{}", content_type="application/json")
    assert response.status_code == 405
    assert response["Allow"] == "GET, POST"


@pytest.mark.parametrize("url", VIEWS)
def test_queries_over_get_are_answered(url, user):
    client = Client()
    client.force_login(user)
    response = client.get(url, {"query": QUERY}, HTTP_ACCEPT="application/json")
    assert response.json() == {"data": {"revisions": {"totalCount": 0}}}


BAD_BODIES = [
    "[]",
    '"query"',
    "1",
    "null",
    "not json",
    b"\xff\xfe",
    "[" * 100_000 + "]" * 100_000,
    json.dumps({"query": QUERY, "variables": {"a": "DEEP"}}).replace('"DEEP"', "[" * 80 + "]" * 80),
    '{"query": 1}',
    '{"query": "{ revisions { totalCount } }", "variables": []}',
]


@pytest.mark.parametrize("url", VIEWS)
@pytest.mark.parametrize("body", BAD_BODIES)
def test_bodies_that_are_no_graphql_request_are_400_json(url, body, user):
    client = Client()
    client.force_login(user)
    response = _post(client, url, body)
    assert response.status_code == 400, response.content
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


def test_strawberrys_own_view_fails_on_a_body_that_is_not_an_object(user):
    client = Client(raise_request_exception=False)
    client.force_login(user)
    assert _post(client, "/graphql/strawberry/", '"query"').status_code == 500


# Media types ------------------------------------------------------------------------------


@pytest.mark.parametrize("url", VIEWS)
def test_graphql_response_json_is_answered_when_accepted(url, user):
    client = Client()
    client.force_login(user)
    accept = f"{GRAPHQL_RESPONSE_MEDIA_TYPE}, application/json;q=0.9"

    ok = _post(client, url, {"query": QUERY}, HTTP_ACCEPT=accept)
    assert ok.status_code == 200
    assert ok["Content-Type"] == GRAPHQL_RESPONSE_MEDIA_TYPE
    assert ok.json() == {"data": {"revisions": {"totalCount": 0}}}

    # A request error (it does not validate): 400 and no `data`, as GraphQL over HTTP says.
    invalid = _post(client, url, {"query": "{ nope }"}, HTTP_ACCEPT=accept)
    assert invalid.status_code == 400
    assert invalid["Content-Type"] == GRAPHQL_RESPONSE_MEDIA_TYPE
    assert "data" not in invalid.json()
    assert invalid.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"

    # A field error: the request ran, so 200 with `data`.
    field_error = _post(client, url, {"query": '{ revision(id: "x") { id } }'}, HTTP_ACCEPT=accept)
    assert field_error.status_code == 200
    assert field_error.json()["data"] is None
    assert field_error.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


@pytest.mark.parametrize("url", VIEWS)
def test_application_json_keeps_request_errors_at_200(url, user):
    client = Client()
    client.force_login(user)
    response = _post(client, url, {"query": "{ nope }"})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"


# Every error has a code --------------------------------------------------------------------


@pytest.mark.parametrize("url", VIEWS)
@pytest.mark.parametrize(
    ("query", "variables", "code"),
    [
        ("{ revisions { totalCount }", {}, "GRAPHQL_PARSE_FAILED"),
        ("{ nope }", {}, "GRAPHQL_VALIDATION_FAILED"),
        (
            "query($first: Int) { revisions(first: $first) { totalCount } }",
            {"first": "x"},
            "GRAPHQL_VALIDATION_FAILED",
        ),
        ("{ revisions(first: 99999999999) { totalCount } }", {}, "GRAPHQL_VALIDATION_FAILED"),
        ('{ node(id: "xyz") { id } }', {}, "BAD_REQUEST"),
        # An unexpected failure of a resolver (the test schema's updateBook with a bad id):
        # coded, and its own message (the database's words) is not shown.
        ('mutation { updateBook(data: {id: "x"}) { title } }', {}, "INTERNAL_SERVER_ERROR"),
    ],
)
def test_every_error_has_a_code(url, query, variables, code, user, book):
    client = Client()
    client.force_login(user)
    response = _post(client, url, {"query": query, "variables": variables})
    assert response.status_code == 200
    errors = response.json()["errors"]
    assert [error["extensions"]["code"] for error in errors] == [code]
    if code == "INTERNAL_SERVER_ERROR":
        assert errors[0]["message"] == "Internal server error."


class StackRecordingPolicy(VisibilityPolicy):
    """The default policy, noting the functions beneath each resolver that asks it."""

    callers: list[set[str]] = []

    def filter_deltas(self, user, queryset):
        frame, names = sys._getframe(), set()
        while frame is not None:
            names.add(frame.f_code.co_name)
            frame = frame.f_back
        self.callers.append(names)
        return super().filter_deltas(user, queryset)


@override_settings(REVY_API={"VISIBILITY_POLICY": f"{__name__}.StackRecordingPolicy"})
def test_the_operation_runs_on_a_stack_of_its_own(user, book):
    # CPython maps a chunk for a frame that does not fit in the current one: a frame that
    # claims this much space gets one of its own, and the execution runs in its rest.
    assert _on_fresh_stack.__code__.co_stacksize >= _FRESH_STACK_SLOTS >= 8192
    assert _on_fresh_stack(lambda *args, **kwargs: (args, kwargs), 1, two=2) == ((1,), {"two": 2})
    StackRecordingPolicy.callers.clear()
    client = Client()
    client.force_login(user)

    response = _post(client, "/graphql/", {"query": QUERY})

    assert response.status_code == 200, response.content
    assert StackRecordingPolicy.callers, "no resolver asked the policy"
    assert all("_on_fresh_stack" in names for names in StackRecordingPolicy.callers)
