"""Optimistic concurrency on a HistoryMixin viewset's own writes: `If-Match` on PUT, PATCH, DELETE.

The ETag a GET answered is compared, strongly (RFC 9110), with the row as locked for the
write: stale is 412 and nothing is written; a weak ETag never matches; `*` matches any
existing row. With `REVY_API["REQUIRE_IF_MATCH"]`, a write without `If-Match` is 428 (a
rollback too, unless it re-creates a deleted row, which has no ETag to send).
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import override_settings

from revy import Context
from revy_api.operations import etag
from tests.conftest import count_queries
from tests.factories import history_counts, make_author, object_deltas
from tests.rest.conftest import assert_problem
from tests.testapp.models import Author

pytestmark = pytest.mark.django_db

WRITES = [
    ("put", {"name": "Bea", "email": ""}),
    ("patch", {"name": "Bea"}),
    ("delete", None),
]
REQUIRED = override_settings(
    REVY_API={
        "ORGANIZATION_RESOLVER": "tests.testapp.resolvers.member_organization",
        "REQUIRE_IF_MATCH": True,
    }
)


@pytest.fixture
def ann(superuser):
    with Context(actor=superuser):
        return make_author(name="Ann")


def _write(client, method, author, body, **headers):
    url = f"/api/authors/{author.pk}/"
    send = getattr(client, method)
    return send(url, body, format="json", **headers) if body is not None else send(url, **headers)


def _stale(client, author) -> str:
    tag = client.get(f"/api/authors/{author.pk}/")["ETag"]
    with Context():
        author.email = "changed@example.com"
        author.save()
    return tag


@pytest.mark.parametrize(("method", "body"), WRITES)
def test_a_stale_etag_is_412_and_nothing_is_written(admin_api, ann, method, body):
    stale = _stale(admin_api, ann)
    before = history_counts()

    response = _write(admin_api, method, ann, body, HTTP_IF_MATCH=stale)

    assert_problem(response, 412, "precondition-failed")
    assert history_counts() == before
    ann.refresh_from_db()
    assert (ann.name, ann.email) == ("Ann", "changed@example.com")


@pytest.mark.parametrize(("method", "body"), WRITES)
@pytest.mark.parametrize("tag", ["current", "*", "list"])
def test_the_current_etag_or_a_star_lets_the_write_happen(admin_api, ann, method, body, tag):
    current = admin_api.get(f"/api/authors/{ann.pk}/")["ETag"]
    value = {"current": current, "*": "*", "list": f'"other", {current}'}[tag]

    response = _write(admin_api, method, ann, body, HTTP_IF_MATCH=value)

    assert response.status_code == (204 if method == "delete" else 200), response.content
    if method != "delete":
        ann.refresh_from_db()
        assert response["ETag"] == etag(ann) != current  # the new state's


@pytest.mark.parametrize(("method", "body"), WRITES)
def test_a_weak_etag_never_matches(admin_api, ann, method, body):
    current = admin_api.get(f"/api/authors/{ann.pk}/")["ETag"]

    response = _write(admin_api, method, ann, body, HTTP_IF_MATCH=f"W/{current}")

    assert_problem(response, 412, "precondition-failed")


def test_a_weak_etag_never_matches_a_rollback(admin_api, ann):
    created = object_deltas(ann)[0]
    current = admin_api.get(f"/api/authors/{ann.pk}/")["ETag"]
    response = admin_api.post(
        f"/api/authors/{ann.pk}/rollback/",
        {"delta": created.pk},
        format="json",
        HTTP_IF_MATCH=f"W/{current}",
    )
    assert_problem(response, 412, "precondition-failed")


def test_a_star_does_not_match_a_deleted_row(admin_api, ann):
    pk = ann.pk
    with Context():
        ann.delete()
    deletion = object_deltas(Author, pk)[-1]
    response = admin_api.post(
        f"/api/authors/{pk}/rollback/", {"delta": deletion.pk}, format="json", HTTP_IF_MATCH="*"
    )
    assert_problem(response, 412, "precondition-failed")


def test_writes_without_if_match_are_unconditional_by_default(admin_api, ann):
    response = admin_api.patch(f"/api/authors/{ann.pk}/", {"name": "Bea"}, format="json")
    assert response.status_code == 200


@REQUIRED
@pytest.mark.parametrize(("method", "body"), WRITES)
def test_a_required_if_match_that_is_missing_is_428(admin_api, ann, method, body):
    before = history_counts()

    response = _write(admin_api, method, ann, body)

    body = assert_problem(response, 428, "precondition-required")
    assert body["header"] == "If-Match"
    assert history_counts() == before


@REQUIRED
def test_a_required_if_match_applies_to_rollback_of_an_existing_row(admin_api, ann):
    created = object_deltas(ann)[0]
    url = f"/api/authors/{ann.pk}/rollback/"
    assert_problem(
        admin_api.post(url, {"delta": created.pk}, format="json"), 428, "precondition-required"
    )
    current = admin_api.get(f"/api/authors/{ann.pk}/")["ETag"]
    response = admin_api.post(url, {"delta": created.pk}, format="json", HTTP_IF_MATCH=current)
    assert response.status_code == 200


@REQUIRED
def test_a_deleted_row_is_re_created_without_if_match(admin_api, ann):
    pk = ann.pk
    with Context():
        ann.delete()
    deletion = object_deltas(Author, pk)[-1]
    response = admin_api.post(f"/api/authors/{pk}/rollback/", {"delta": deletion.pk}, format="json")
    assert response.status_code == 200
    assert response.json()["created"] is True


@REQUIRED
def test_reads_and_creations_need_no_if_match(admin_api, ann):
    assert admin_api.get(f"/api/authors/{ann.pk}/").status_code == 200
    assert admin_api.post("/api/authors/", {"name": "Cid"}, format="json").status_code == 201


@pytest.mark.parametrize(("method", "body"), WRITES)
def test_the_row_is_read_for_update_in_the_writes_transaction(admin_api, ann, method, body):
    current = admin_api.get(f"/api/authors/{ann.pk}/")["ETag"]
    with count_queries() as queries:
        _write(admin_api, method, ann, body, HTTP_IF_MATCH=current)
    reads = [sql for sql in queries.statements if 'FROM "testapp_author"' in sql]
    if connection.features.has_select_for_update:
        assert "FOR UPDATE" in reads[0]
    else:  # SQLite: one writer at a time, no row locks to take
        assert "FOR UPDATE" not in reads[0]
