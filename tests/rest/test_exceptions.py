"""Problem details: revy's own errors always; every error with the handler as the default."""

from __future__ import annotations

import pytest
from django.http import Http404
from rest_framework import exceptions
from rest_framework.test import APIClient, APIRequestFactory

from revy.contrib.django.headers import InvalidCommitMessage
from revy_api.operations import Conflict, PreconditionFailed
from revy_api.rest.exceptions import PROBLEM_MEDIA_TYPE, problem_exception_handler
from tests.rest.conftest import assert_problem

pytestmark = pytest.mark.django_db


def _handle(exc):
    request = APIRequestFactory().get("/somewhere/?x=1")
    return problem_exception_handler(exc, {"request": request, "view": None})


@pytest.mark.parametrize(
    ("exc", "status", "slug"),
    [
        (exceptions.ValidationError({"name": ["Required."]}), 400, "validation-error"),
        (exceptions.ParseError(), 400, "malformed-request"),
        (exceptions.NotAuthenticated(), 401, "not-authenticated"),
        (exceptions.AuthenticationFailed(), 401, "authentication-failed"),
        (exceptions.PermissionDenied(), 403, "forbidden"),
        (exceptions.NotFound(), 404, "not-found"),
        (Http404(), 404, "not-found"),
        (exceptions.MethodNotAllowed("PUT"), 405, "method-not-allowed"),
        (exceptions.NotAcceptable(), 406, "not-acceptable"),
        (exceptions.UnsupportedMediaType("text/csv"), 415, "unsupported-media-type"),
        (exceptions.Throttled(wait=3), 429, "throttled"),
        (InvalidCommitMessage("X-Commit-Message", "Too long."), 400, "invalid-commit-message"),
        (PreconditionFailed("Stale."), 412, "precondition-failed"),
    ],
)
def test_each_error_has_a_stable_problem_type(exc, status, slug):
    response = _handle(exc)

    assert response.status_code == status
    assert response.data["type"] == f"https://revy.dev/problems/{slug}"
    assert response.data["status"] == status
    assert response.data["instance"] == "/somewhere/?x=1"
    assert response.data["title"] and response.data["detail"]


def test_validation_errors_keep_drfs_structure():
    response = _handle(exceptions.ValidationError({"name": ["Required."]}))

    assert response.data["errors"] == {"name": ["Required."]}


def test_throttling_answers_retry_after():
    assert _handle(exceptions.Throttled(wait=3.2))["Retry-After"] == "4"  # rounded up by DRF


def test_header_errors_name_the_header():
    response = _handle(InvalidCommitMessage("X-Commit-Message", "Too long."))

    assert response.data["header"] == "X-Commit-Message"


def test_conflicts_are_listed():
    assert _handle(Conflict("Later changes.", conflicts=[])).data["conflicts"] == []


def test_other_exceptions_are_left_to_django():
    assert _handle(ValueError("a bug")) is None


def test_problem_details_are_json_even_for_a_browser(superuser):
    client = APIClient()
    client.force_login(superuser)

    response = client.get("/api/revisions/999/", HTTP_ACCEPT="text/html")

    assert_problem(response, 404, "not-found")


def test_as_the_projects_handler_every_error_is_problem_details(settings, editor_api):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "EXCEPTION_HANDLER": "revy_api.rest.exceptions.problem_exception_handler",
    }

    invalid = editor_api.post("/api/authors/", {"email": "x"}, format="json")
    missing = editor_api.get("/api/authors/999/")

    body = assert_problem(invalid, 400, "validation-error")
    assert set(body["errors"]) == {"name", "email"}
    assert_problem(missing, 404, "not-found")


def test_without_it_the_viewsets_own_errors_keep_drfs_format(editor_api):
    missing = editor_api.get("/api/authors/999/")

    assert missing.status_code == 404
    assert missing["Content-Type"] != PROBLEM_MEDIA_TYPE
    assert missing.json() == {"detail": "No Author matches the given query."}
