"""`rollbackObject` and `revertRevision` of a state the database refuses: `CONFLICT`.

The REST side (`tests/rest/test_restore_conflicts.py`) answers the same cases with 409
`restore-conflict` problems; here `extensions.reason` and `extensions.fields` say the same.
"""

from __future__ import annotations

import pytest

from revy import Context
from tests.factories import history_counts, make_author, object_deltas
from tests.graphql.conftest import delta_id, revision_id
from tests.testapp.models import Book, Tag

ROLLBACK = """
mutation($type: String!, $id: ID!, $delta: ID) {
  rollbackObject(type: $type, id: $id, delta: $delta) { created }
}
"""
REVERT = "mutation($id: ID!) { revertRevision(id: $id, force: true) { reverted { id } } }"


@pytest.fixture
def admin_gql(gql, django_user_model):
    admin = django_user_model.objects.create_superuser("root", password="x")
    gql.login(admin)
    gql.admin = admin
    return gql


def test_a_rollback_to_a_unique_value_taken_since_is_a_conflict(admin_gql):
    with Context(actor=admin_gql.admin):
        tag = Tag.objects.create(name="red")
    with Context(actor=admin_gql.admin):
        tag.name = "blue"
        tag.save()
    with Context(actor=admin_gql.admin):
        Tag.objects.create(name="red")
    before = history_counts()

    response = admin_gql(
        ROLLBACK,
        {"type": "testapp.tag", "id": str(tag.pk), "delta": delta_id(object_deltas(tag)[0])},
    )

    assert response.codes == ["CONFLICT"]
    extensions = response.errors[0]["extensions"]
    assert (extensions["reason"], extensions["fields"]) == ("unique", ["name"])
    assert extensions["type"] == "https://revy.dev/problems/restore-conflict"
    assert "revisionId" not in response.extensions
    assert history_counts() == before


def test_a_revert_to_a_parent_that_is_gone_is_a_conflict(admin_gql):
    first, second = make_author(name="First"), make_author(name="Second")
    with Context(actor=admin_gql.admin):
        book = Book.objects.create(author=first, title="Dune")
    with Context(actor=admin_gql.admin):
        book.author = second
        book.save()
    with Context(actor=admin_gql.admin):
        first.delete()
    moved = object_deltas(book)[1].revision
    before = history_counts()

    response = admin_gql(REVERT, {"id": revision_id(moved)})

    assert response.codes == ["CONFLICT"]
    assert response.errors[0]["extensions"]["reason"] == "missing-related"
    assert history_counts() == before
