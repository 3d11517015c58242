"""Fixtures of the GraphQL tests: a client posting to strawberry's sync and async views."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.test import Client

from tests.factories import grant

__all__ = ["GraphQLClient", "Response", "delta_id", "grant", "revision_id"]

URLS = {
    "sync": "/graphql/",
    "async": "/graphql/async/",
    "example-sync": "/graphql/example/",
    "example-async": "/graphql/example/async/",
}


@dataclass
class Response:
    """A GraphQL answer: its HTTP status, JSON body and headers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def data(self) -> Any:
        return self.body.get("data")

    @property
    def errors(self) -> list[dict[str, Any]]:
        return self.body.get("errors") or []

    @property
    def codes(self) -> list[str | None]:
        return [error.get("extensions", {}).get("code") for error in self.errors]

    @property
    def extensions(self) -> dict[str, Any]:
        return self.body.get("extensions") or {}

    def ok(self) -> Any:
        """Return `data`, failing the test with the errors if there are any."""
        assert self.status == 200, self.body
        assert not self.errors, json.dumps(self.errors, indent=2)
        return self.data


class GraphQLClient:
    """Posts operations as JSON to one of the two views, with optional headers."""

    def __init__(self, view: str) -> None:
        self.view = view
        self.url = URLS[view]
        self.client = Client()

    def login(self, user) -> None:
        self.client.force_login(user)

    def logout(self) -> None:
        self.client.logout()

    def __call__(
        self, query: str, variables: dict[str, Any] | None = None, **headers: str
    ) -> Response:
        extra = {f"HTTP_{name.upper()}": value for name, value in headers.items()}
        response = self.client.post(
            self.url,
            data=json.dumps({"query": query, "variables": variables or {}}),
            content_type="application/json",
            **extra,
        )
        return Response(response.status_code, response.json(), dict(response.headers))


@pytest.fixture(params=["sync", "async"])
def gql(request, db) -> GraphQLClient:
    """A client of the sync view, then of the async one."""
    return GraphQLClient(request.param)


@pytest.fixture(params=["sync", "async"])
def example_gql(request, db) -> GraphQLClient:
    """A client of the demo project's schema, through the sync view, then the async one."""
    return GraphQLClient(f"example-{request.param}")


@pytest.fixture
def viewer(user):
    """A user who may see (not change) books, authors and reviews."""
    grant(user, "testapp.view_book", "testapp.view_author", "testapp.view_review")
    return user


@pytest.fixture
def editor(user):
    """A user who may see, change and add books and authors."""
    grant(
        user,
        "testapp.view_book",
        "testapp.change_book",
        "testapp.add_book",
        "testapp.view_author",
        "testapp.change_author",
        "testapp.add_author",
    )
    return user


def revision_id(revision) -> str:
    """The Relay id the API gives a revision."""
    from strawberry import relay

    return relay.to_base64("Revision", revision.pk)


def delta_id(delta) -> str:
    """The Relay id the API gives an object delta."""
    from strawberry import relay

    return relay.to_base64("ObjectDelta", delta.pk)
