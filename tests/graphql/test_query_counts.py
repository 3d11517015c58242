"""Reading history costs a fixed number of SQL queries, whatever the number of rows."""

from __future__ import annotations

import datetime

import pytest

from revy import Context
from tests.conftest import count_queries
from tests.factories import make_author, make_book
from tests.graphql.conftest import grant
from tests.testapp.models import Organization

HISTORY = """
query($id: ID!) {
  objectHistory(type: "testapp.book", id: $id, first: 100) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges {
      cursor
      node {
        id action eventType description createdAt data
        actor { type id display }
        content { type id display }
        revision { id description createdAt metadata actors { type id display } deltaCount }
        changes { id field action old new description createdAt actor { type id display } }
      }
    }
  }
}
"""


def book_with_history(deltas: int, actors: list) -> object:
    """A book with `deltas` object deltas: its creation, then updates of 5 fields each."""
    author = make_author()
    with Context(actor=actors[0]):
        book = make_book(author=author, title="v0")
    for number in range(1, deltas):
        with Context(actor=actors[number % len(actors)], revision_description=f"r{number}"):
            book.title = f"v{number}"
            book.pages = number
            book.price = number
            book.published = datetime.date(2000, 1, 1) + datetime.timedelta(days=number)
            book.author = author if number % 2 == 0 else make_author()
            book.save()
    return book


def _count(gql, book) -> tuple[int, dict]:
    with count_queries() as queries:
        response = gql(HISTORY, {"id": str(book.pk)})
    data = response.ok()
    return len(queries), data


@pytest.mark.parametrize("aggregates", [False])
def test_object_history_costs_the_same_for_5_and_50_deltas(gql, user, other_user, aggregates):
    grant(user, "testapp.view_book")
    organization = Organization.objects.create(slug="acme", name="Acme")
    actors = [user, other_user, organization, None]
    small, large = book_with_history(5, actors), book_with_history(50, actors)
    gql.login(user)
    _count(gql, small)  # warm caches (content types, permissions of the session)
    small_queries, small_data = _count(gql, small)
    large_queries, large_data = _count(gql, large)
    assert len(small_data["objectHistory"]["edges"]) == 5
    assert len(large_data["objectHistory"]["edges"]) == 50
    changes = [len(edge["node"]["changes"]) for edge in large_data["objectHistory"]["edges"]]
    assert changes[:-1] == [5] * 49
    print(
        f"objectHistory ({gql.view}): {small_queries} queries for 5 deltas, {large_queries} for 50"
    )
    assert small_queries == large_queries


REVISIONS = """
query($first: Int) {
  revisions(first: $first) {
    totalCount
    edges {
      cursor
      node {
        id description metadata deltaCount
        actors { type id display }
        deltas(first: 3) {
          totalCount
          pageInfo { hasNextPage endCursor }
          edges {
            node {
              action actor { display } content { type id display }
              revision { id deltaCount }
              changes { field old new actor { display } }
            }
          }
        }
      }
    }
  }
}
"""


def test_revisions_with_their_deltas_cost_the_same_for_5_and_50(gql, user, other_user):
    grant(user, "testapp.view_book", "testapp.view_author")
    organization = Organization.objects.create(slug="acme", name="Acme")
    book_with_history(55, [user, other_user, organization, None])
    gql.login(user)
    gql(REVISIONS, {"first": 5}).ok()  # warm caches

    def count(first: int) -> tuple[int, dict]:
        with count_queries() as queries:
            data = gql(REVISIONS, {"first": first}).ok()
        return len(queries), data

    small_queries, small = count(5)
    large_queries, large = count(50)
    assert len(small["revisions"]["edges"]) == 5
    assert len(large["revisions"]["edges"]) == 50
    # Every other update also creates an author: two deltas, so more than one per revision.
    assert {len(edge["node"]["deltas"]["edges"]) for edge in large["revisions"]["edges"]} == {1, 2}
    print(f"revisions ({gql.view}): {small_queries} queries for 5, {large_queries} for 50")
    assert small_queries == large_queries


def test_the_next_page_of_a_revisions_deltas_uses_the_cursor(gql, user):
    grant(user, "testapp.view_note")
    with Context(revision_description="bulk"):
        from tests.factories import make_note

        for _ in range(5):
            make_note()
    gql.login(user)
    query = """
    query($first: Int, $after: String) {
      revisions { edges { node { deltas(first: $first, after: $after) {
        totalCount pageInfo { hasNextPage endCursor } edges { node { content { id } } }
      } } } }
    }
    """
    first = gql(query, {"first": 2}).ok()["revisions"]["edges"][0]["node"]["deltas"]
    assert first["totalCount"] == 5 and first["pageInfo"]["hasNextPage"]
    after = first["pageInfo"]["endCursor"]
    rest = gql(query, {"first": 10, "after": after}).ok()["revisions"]["edges"][0]["node"]
    ids = [edge["node"]["content"]["id"] for edge in first["edges"] + rest["deltas"]["edges"]]
    assert len(ids) == len(set(ids)) == 5
    assert rest["deltas"]["pageInfo"]["hasNextPage"] is False


def test_the_policy_is_computed_once_per_operation_and_reads_no_content_type(gql, user):
    from django.apps import apps
    from django.test import override_settings

    from tests.contrib.django.test_access import CountingPolicy

    grant(user, "testapp.view_book")
    book = book_with_history(3, [user])
    gql.login(user)
    query = """
    query($id: ID!) {
      a: objectHistory(type: "testapp.book", id: $id, aggregates: true) { totalCount }
      b: objectHistory(type: "testapp.book", id: $id, aggregates: true) { totalCount }
      revisions { totalCount edges { node { deltaCount actors { id } } } }
      found: revisions(filters: {search: "book"}) { edges { node { deltaCount } } }
    }
    """
    gql(query, {"id": str(book.pk)}).ok()  # warm Django's caches
    models = len([m for m in apps.get_models(include_auto_created=True) if not m._meta.proxy])
    CountingPolicy.calls = 0

    path = f"{CountingPolicy.__module__}.CountingPolicy"
    with override_settings(REVY_API={"VISIBILITY_POLICY": path}), count_queries() as queries:
        gql(query, {"id": str(book.pk)}).ok()

    # One computation of the visible models, and one check per objectHistory field.
    assert CountingPolicy.calls == models + 2
    assert not [sql for sql in queries.statements if 'FROM "django_content_type"' in sql]


ACTORS = """
query($first: Int) {
  revisions(first: $first) { edges { node { id actors { type id display } } } }
}
"""


def test_revisions_of_as_many_actors_as_rows_cost_the_same_for_5_and_50(gql, user):
    """Each revision by an actor of its own: the actors of a page load in one batch."""
    from django.contrib.auth import get_user_model

    grant(user, "testapp.view_author")
    for number in range(55):
        actor = get_user_model().objects.create_user(f"actor{number}")
        with Context(actor=actor):
            make_author()
    gql.login(user)
    gql(ACTORS, {"first": 5}).ok()  # warm caches

    def count(first: int) -> tuple[int, dict]:
        with count_queries() as queries:
            data = gql(ACTORS, {"first": first}).ok()
        return len(queries), data

    small_queries, _ = count(5)
    large_queries, large = count(50)
    actors = {edge["node"]["actors"][0]["id"] for edge in large["revisions"]["edges"]}
    assert len(actors) == 50
    assert small_queries == large_queries
