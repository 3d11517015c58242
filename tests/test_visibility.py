"""One policy, two APIs: REST and GraphQL give the same answer in the same situation.

Each situation builds its data and permissions, then asks REST (DRF's test client, token
authentication) and GraphQL (strawberry's view, session login) the same thing, each in its own
savepoint. The answers are reduced to `ok`, `forbidden` or `not_found` and must match the
expected one; a refused write must write nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.db import transaction
from django.test import override_settings

from revy import Context
from revy.contrib.django.events import record_event
from revy_api.rest.exceptions import PROBLEM_MEDIA_TYPE
from tests.factories import grant, history_counts, make_author, make_book, object_deltas
from tests.graphql.conftest import GraphQLClient, delta_id, revision_id
from tests.rest.conftest import token_client
from tests.testapp.models import Author, Book

pytestmark = pytest.mark.django_db

OBJECT_POLICY = {"VISIBILITY_POLICY": "tests.contrib.django.test_access.OwnAuthorsPolicy"}

HISTORY = "query($type: String!, $id: ID!) { objectHistory(type: $type, id: $id) { totalCount } }"
SNAPSHOT = "query($type: String!, $id: ID!) { snapshot(type: $type, id: $id) { state } }"
DIFF = "query($type: String!, $id: ID!) { objectDiff(type: $type, id: $id) { changes { field } } }"
ROLLBACK = """
mutation($type: String!, $id: ID!, $delta: ID) {
  rollbackObject(type: $type, id: $id, delta: $delta) { created }
}
"""
REVERT = "mutation($id: ID!) { revertRevision(id: $id) { reverted { description metadata } } }"


@dataclass
class Ask:
    """One question in both forms: a REST request and a GraphQL operation."""

    method: str
    path: str
    query: str
    variables: dict[str, Any]
    body: dict[str, Any] | None = None
    settings: dict[str, Any] = field(default_factory=dict)


def _label(model) -> str:
    return f"{model._meta.app_label}.{model._meta.model_name}"


def _prefix(model) -> str:
    return {Author: "authors", Book: "books"}[model]


def read(action: str, model, pk, **settings) -> Ask:
    query = {"history": HISTORY, "snapshot": SNAPSHOT, "diff": DIFF}[action]
    return Ask(
        "get",
        f"/api/{_prefix(model)}/{pk}/{action}/",
        query,
        {"type": _label(model), "id": str(pk)},
        settings=settings,
    )


def rollback(model, pk, delta) -> Ask:
    return Ask(
        "post",
        f"/api/{_prefix(model)}/{pk}/rollback/",
        ROLLBACK,
        {"type": _label(model), "id": str(pk), "delta": delta_id(delta)},
        body={"delta": delta.pk},
    )


def revert(revision) -> Ask:
    return Ask(
        "post",
        f"/api/revisions/{revision.pk}/revert/",
        REVERT,
        {"id": revision_id(revision)},
        body={},
    )


# Situations: each takes the asking user and returns the question -------------------------------


def _book(user, *permissions: str) -> Book:
    with Context():
        book = make_book(title="Dune")
    with Context():
        book.title = "Dune!"
        book.save()
    grant(user, *permissions)
    return book


def _deleted_author(user, *permissions: str) -> int:
    with Context():
        author = make_author(name="Ann")
    pk = author.pk
    with Context():
        author.delete()
    grant(user, *permissions)
    return pk


def history_with_view(user) -> Ask:
    return read("history", Book, _book(user, "testapp.view_book").pk)


def history_with_change_only(user) -> Ask:
    return read("history", Book, _book(user, "testapp.change_book").pk)


def history_without_permission(user) -> Ask:
    return read("history", Book, _book(user, "testapp.view_author").pk)


def snapshot_without_permission(user) -> Ask:
    return read("snapshot", Book, _book(user).pk)


def diff_without_permission(user) -> Ask:
    return read("diff", Book, _book(user).pk)


def history_of_a_deleted_row_with_view(user) -> Ask:
    return read("history", Author, _deleted_author(user, "testapp.view_author"))


def history_of_a_deleted_row_without_permission(user) -> Ask:
    return read("history", Author, _deleted_author(user, "testapp.view_book"))


def own_row_under_an_object_policy(user) -> Ask:
    with Context():
        author = make_author(name="Ann", user=user)
    return read("history", Author, author.pk, **OBJECT_POLICY)


def others_row_under_an_object_policy(user) -> Ask:
    grant(user, "testapp.view_book")
    with Context():
        author = make_author(name="Ann")
    return read("history", Author, author.pk, **OBJECT_POLICY)


def others_deleted_row_under_an_object_policy(user) -> Ask:
    return read("snapshot", Author, _deleted_author(user), **OBJECT_POLICY)


def rollback_with_change(user) -> Ask:
    book = _book(user, "testapp.view_book", "testapp.change_book")
    return rollback(Book, book.pk, object_deltas(book)[0])


def rollback_without_change(user) -> Ask:
    book = _book(user, "testapp.view_book")
    return rollback(Book, book.pk, object_deltas(book)[0])


def recreating_without_add(user) -> Ask:
    pk = _deleted_author(user, "testapp.view_author", "testapp.change_author")
    return rollback(Author, pk, object_deltas(Author, pk)[-1])


def recreating_with_add(user) -> Ask:
    pk = _deleted_author(user, "testapp.change_author", "testapp.add_author")
    return rollback(Author, pk, object_deltas(Author, pk)[-1])


def reverting_a_creation_without_delete(user) -> Ask:
    book = _book(user, "testapp.view_book", "testapp.change_book", "testapp.add_book")
    with Context():
        extra = make_book(author=book.author, title="Extra")
    return revert(object_deltas(extra)[0].revision)


def reverting_a_creation_that_cascades_to_rows_without_delete(user) -> Ask:
    with Context():
        author = make_author(name="Ann")
    with Context():
        make_book(author=author)  # later: deleting the author would delete it too
    grant(user, "testapp.view_author", "testapp.delete_author", "testapp.view_book")
    return revert(object_deltas(author)[0].revision)


def reverting_a_creation_with_delete_everywhere(user) -> Ask:
    with Context():
        author = make_author(name="Ann")
    with Context():
        make_book(author=author)
    grant(user, "testapp.view_author", "testapp.delete_author", "testapp.delete_book")
    return revert(object_deltas(author)[0].revision)


def reverting_a_revision_of_hidden_events(user) -> Ask:
    book = _book(user, "testapp.view_author")
    with Context(revision_description="secret review"):
        record_event(book, "testapp.book.reviewed", {"verdict": "confidential"})
    return revert(object_deltas(book)[-1].revision)


SITUATIONS: dict[str, tuple[Callable[[Any], Ask], str]] = {
    "history with view": (history_with_view, "ok"),
    "history with change only": (history_with_change_only, "ok"),
    "history without permission": (history_without_permission, "forbidden"),
    "snapshot without permission": (snapshot_without_permission, "forbidden"),
    "diff without permission": (diff_without_permission, "forbidden"),
    "deleted row with view": (history_of_a_deleted_row_with_view, "ok"),
    "deleted row without permission": (history_of_a_deleted_row_without_permission, "forbidden"),
    "own row, object policy": (own_row_under_an_object_policy, "ok"),
    "other's row, object policy": (others_row_under_an_object_policy, "forbidden"),
    "other's deleted row, object policy": (others_deleted_row_under_an_object_policy, "forbidden"),
    "rollback with change": (rollback_with_change, "ok"),
    "rollback without change": (rollback_without_change, "forbidden"),
    "re-create without add": (recreating_without_add, "forbidden"),
    "re-create with add": (recreating_with_add, "ok"),
    "revert a creation without delete": (reverting_a_creation_without_delete, "forbidden"),
    "revert cascading without delete": (
        reverting_a_creation_that_cascades_to_rows_without_delete,
        "forbidden",
    ),
    "revert cascading with delete": (reverting_a_creation_with_delete_everywhere, "ok"),
    "revert a hidden revision": (reverting_a_revision_of_hidden_events, "not_found"),
}


def ask_rest(user, ask: Ask) -> tuple[str, Any]:
    client = token_client(user)
    if ask.method == "get":
        response = client.get(ask.path)
    else:
        response = client.post(ask.path, ask.body, format="json")
    outcomes = {200: "ok", 403: "forbidden", 404: "not_found"}
    assert response.status_code in outcomes, response.content
    if response.status_code != 200:
        assert response["Content-Type"] == PROBLEM_MEDIA_TYPE
    return outcomes[response.status_code], response.json()


def ask_graphql(user, ask: Ask) -> tuple[str, Any]:
    client = GraphQLClient("sync")
    client.login(user)
    response = client(ask.query, ask.variables)
    assert response.status == 200
    if not response.errors:
        return "ok", response.data
    # Nothing is answered next to the error (a nullable field is null).
    assert not any((response.data or {}).values()), response.data
    outcomes = {"FORBIDDEN": "forbidden", "NOT_FOUND": "not_found"}
    (code,) = response.codes
    assert code in outcomes, response.errors
    return outcomes[code], response.errors


@pytest.mark.parametrize("situation", list(SITUATIONS))
def test_rest_and_graphql_answer_alike(situation, user):
    build, expected = SITUATIONS[situation]
    answers = {}
    for api, ask_api in (("REST", ask_rest), ("GraphQL", ask_graphql)):
        with transaction.atomic():
            ask = build(user)
            before = history_counts()
            with override_settings(REVY_API=ask.settings):
                answers[api], body = ask_api(user, ask)
            if answers[api] != "ok":
                assert history_counts() == before, f"{api} wrote history in {situation!r}"
                assert "confidential" not in str(body) and "secret" not in str(body)
            transaction.set_rollback(True)
    assert answers == {"REST": expected, "GraphQL": expected}
