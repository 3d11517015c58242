"""`rollbackObject(expectedEtag:)` follows REST's `If-Match` rules (`revy_api.operations`)."""

from __future__ import annotations

import pytest
from django.test import override_settings

from revy import Context
from revy_api.operations import etag
from tests.factories import history_counts, make_book, object_deltas
from tests.graphql.conftest import delta_id

ROLLBACK = """
mutation($id: ID!, $delta: ID!, $tag: String) {
  rollbackObject(type: "testapp.book", id: $id, delta: $delta, expectedEtag: $tag) { etag }
}
"""


@pytest.fixture
def admin_gql(gql, django_user_model):
    admin = django_user_model.objects.create_superuser("root", password="x")
    gql.login(admin)
    with Context(actor=admin):
        gql.book = make_book(title="Dune")
    with Context(actor=admin):
        gql.book.title = "Dune Messiah"
        gql.book.save()
    return gql


def _rollback(gql, tag):
    created = object_deltas(gql.book)[0]
    return gql(ROLLBACK, {"id": str(gql.book.pk), "delta": delta_id(created), "tag": tag})


def test_a_weak_etag_never_matches(admin_gql):
    before = history_counts()
    response = _rollback(admin_gql, f"W/{etag(admin_gql.book)}")
    assert response.codes == ["PRECONDITION_FAILED"]
    assert history_counts() == before


@override_settings(REVY_API={"REQUIRE_IF_MATCH": True})
def test_a_required_etag_that_is_missing_is_refused(admin_gql):
    assert _rollback(admin_gql, None).codes == ["PRECONDITION_REQUIRED"]
    assert _rollback(admin_gql, etag(admin_gql.book)).ok()["rollbackObject"]["etag"]
