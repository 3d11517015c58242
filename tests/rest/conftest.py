"""Fixtures of the REST tests: token-authenticated clients, permissions, organizations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from revy_api.rest.exceptions import PROBLEM_MEDIA_TYPE
from tests.factories import grant
from tests.testapp.models import Organization

__all__ = ["assert_problem", "grant", "header", "token_client"]


def header(value: str) -> str:
    """A header value as a WSGI server hands it to Django: UTF-8 bytes read as latin-1."""
    return value.encode("utf-8").decode("latin-1")


def token_client(user: Any) -> APIClient:
    """An APIClient sending `Authorization: Token ...` (real TokenAuthentication)."""
    token, _ = Token.objects.get_or_create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def assert_problem(response: Any, status: int, problem: str) -> dict[str, Any]:
    """Check an RFC 9457 answer of the given status and problem slug; return its body."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM_MEDIA_TYPE, response["Content-Type"]
    body = response.json()
    assert body["type"] == f"https://revy.dev/problems/{problem}", body
    assert body["status"] == status
    assert body["title"] and body["detail"]
    return body


@pytest.fixture
def superuser(db):
    return get_user_model().objects.create_superuser("root", "root@example.com", "pw")


@pytest.fixture
def client_for() -> Callable[[Any], APIClient]:
    """`client_for(user)`: a token-authenticated client of that user."""
    return token_client


@pytest.fixture
def admin_api(superuser) -> APIClient:
    return token_client(superuser)


@pytest.fixture
def editor(user):
    """alice: may view, add and change authors, books and cars (not engines, cylinders)."""
    return grant(
        user,
        *(
            f"testapp.{action}_{model}"
            for action in ("view", "add", "change", "delete")
            for model in ("author", "book", "car")
        ),
    )


@pytest.fixture
def editor_api(editor) -> APIClient:
    return token_client(editor)


@pytest.fixture
def organization(db, user):
    """ACME, whose member is alice (not bob)."""
    acme = Organization.objects.create(slug="acme", name="ACME")
    acme.members.add(user)
    return acme
