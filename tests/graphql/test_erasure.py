"""GraphQL on erased history: no errors, nothing erased shows."""

from __future__ import annotations

import pytest

from revy import Context
from revy.contrib.django import history
from tests.factories import make_author, make_book
from tests.graphql.conftest import GraphQLClient

REVISIONS = """
{ revisions { edges { node { id metadata actors { type id }
  deltas { edges { node { data actor { id } changes { old new } } } } } } } }
"""


@pytest.mark.django_db
def test_graphql_serves_erased_history(gql: GraphQLClient, user, admin_user):
    with Context(actor=user):
        author = make_author(name="Ann", email="ann@example.com")
        make_book(author=author, title="One")
    history.erase(actor=user, obj=author, reason="asked")
    gql.login(admin_user)
    revisions = gql(REVISIONS).ok()["revisions"]["edges"]
    assert "ann@example.com" not in str(revisions)
    assert revisions[-1]["node"]["actors"] == [None]
