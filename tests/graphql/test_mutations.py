"""`rollbackObject` and `revertRevision`: permissions, dry runs, ETags, conflicts."""

from __future__ import annotations

import datetime

import pytest

from revy import Context
from revy_api.operations import etag
from tests.factories import history_counts, make_book, object_deltas, revisions
from tests.graphql.conftest import delta_id, grant, revision_id
from tests.testapp.models import Book

ROLLBACK = """
mutation($id: ID!, $revision: ID, $delta: ID, $at: DateTime, $dryRun: Boolean,
         $expectedEtag: String) {
  rollbackObject(type: "testapp.book", id: $id, revision: $revision, delta: $delta, at: $at,
                 dryRun: $dryRun, expectedEtag: $expectedEtag) {
    type id state etag created dryRun
    changes { field old new }
    revision { id description actors { display } deltaCount }
  }
}
"""
REVERT = """
mutation($id: ID!, $force: Boolean) {
  revertRevision(id: $id, force: $force) {
    reverted { id description }
    revision {
      id description deltaCount
      deltas { edges { node { action changes { field old new } } } }
    }
  }
}
"""


@pytest.fixture
def book(user):
    with Context(actor=user, revision_description="create"):
        book = make_book(title="Dune", pages=100)
    with Context(actor=user, revision_description="edit"):
        book.title = "Dune Messiah"
        book.pages = 256
        book.save()
    return book


def _rollback(gql, book, headers=None, **variables):
    return gql(ROLLBACK, {"id": str(book.pk), **variables}, **(headers or {}))


def test_rollback_to_a_revision_records_a_new_revision(gql, editor, book):
    gql.login(editor)
    create = revisions()[0]
    response = _rollback(gql, book, revision=revision_id(create))
    data = response.ok()["rollbackObject"]
    book.refresh_from_db()
    assert (book.title, book.pages) == ("Dune", 100)
    assert data["created"] is False and data["dryRun"] is False
    assert data["changes"] == [
        {"field": "title", "old": "Dune Messiah", "new": "Dune"},
        {"field": "pages", "old": 256, "new": 100},
    ]
    assert data["state"]["title"] == "Dune"
    assert data["etag"] == etag(book)
    new_revision = revisions()[-1]
    assert data["revision"]["id"] == revision_id(new_revision)
    assert data["revision"]["actors"] == [{"display": "alice"}]
    assert response.extensions["revisionId"] == revision_id(new_revision)
    assert object_deltas(book)[-1].actor_id == str(editor.pk)


def test_rollback_to_a_delta_and_to_a_time(gql, editor, book):
    gql.login(editor)
    first = object_deltas(book)[0]
    _rollback(gql, book, delta=delta_id(first)).ok()
    book.refresh_from_db()
    assert book.title == "Dune"
    later = object_deltas(book)[1].created_at + datetime.timedelta(microseconds=1)
    _rollback(gql, book, at=later.isoformat()).ok()
    book.refresh_from_db()
    assert book.title == "Dune Messiah"


def test_rollback_with_a_commit_message(gql, editor, book):
    gql.login(editor)
    response = _rollback(
        gql, book, revision=revision_id(revisions()[0]), headers={"x_commit_message": "Undo edit"}
    )
    assert response.ok()["rollbackObject"]["revision"]["description"] == "Undo edit"


def test_rollback_of_a_deleted_row_recreates_it(gql, editor, book):
    gql.login(editor)
    pk = book.pk
    with Context():
        book.delete()
    before_deletion = object_deltas(Book, pk)[-1]
    data = gql(ROLLBACK, {"id": str(pk), "delta": delta_id(before_deletion)}).ok()
    assert data["rollbackObject"]["created"] is True
    restored = Book.objects.get(pk=pk)
    assert (restored.title, restored.pages) == ("Dune Messiah", 256)
    assert object_deltas(Book, pk)[-1].action == "Create"


def test_rollback_to_the_current_state_records_nothing(gql, editor, book):
    gql.login(editor)
    before = history_counts()
    response = _rollback(gql, book, revision=revision_id(revisions()[-1]))
    data = response.ok()["rollbackObject"]
    assert data["changes"] == [] and data["revision"] is None
    assert history_counts() == before
    assert "revisionId" not in response.extensions


def test_a_dry_run_writes_nothing(gql, editor, book):
    gql.login(editor)
    before = history_counts()
    data = _rollback(gql, book, revision=revision_id(revisions()[0]), dryRun=True).ok()
    result = data["rollbackObject"]
    assert result["dryRun"] is True and result["revision"] is None
    assert {change["field"] for change in result["changes"]} == {"title", "pages"}
    # The state is what the rollback would make of the row, not the row as it is.
    assert result["state"]["title"] != "Dune Messiah"
    assert result["state"]["title"] == next(
        change["new"] for change in result["changes"] if change["field"] == "title"
    )
    assert history_counts() == before
    book.refresh_from_db()
    assert book.title == "Dune Messiah"


def test_the_expected_etag_is_checked(gql, editor, book):
    gql.login(editor)
    current = gql(
        'query($id: ID!) { snapshot(type: "testapp.book", id: $id) { etag } }', {"id": str(book.pk)}
    ).ok()["snapshot"]["etag"]
    first = revision_id(revisions()[0])
    stale = _rollback(gql, book, revision=first, expectedEtag='"0123"')
    assert stale.codes == ["PRECONDITION_FAILED"]
    book.refresh_from_db()
    assert book.title == "Dune Messiah"
    _rollback(gql, book, revision=first, expectedEtag=current).ok()
    book.refresh_from_db()
    assert book.title == "Dune"


def test_rollback_needs_the_change_permission(gql, viewer, book):
    gql.login(viewer)
    before = history_counts()
    response = _rollback(gql, book, revision=revision_id(revisions()[0]))
    assert response.codes == ["FORBIDDEN"]
    assert history_counts() == before


def test_recreating_a_deleted_row_needs_the_add_permission(gql, user, book):
    grant(user, "testapp.view_book", "testapp.change_book")
    gql.login(user)
    pk = book.pk
    with Context():
        book.delete()
    response = gql(ROLLBACK, {"id": str(pk), "revision": revision_id(revisions()[0])})
    assert response.codes == ["FORBIDDEN"]
    assert not Book.objects.filter(pk=pk).exists()


def test_rollback_is_not_for_anonymous_users(gql, book):
    response = _rollback(gql, book, revision=revision_id(revisions()[0]))
    assert response.codes == ["FORBIDDEN"]


@pytest.mark.parametrize(
    ("variables", "code"),
    [
        ({}, "BAD_REQUEST"),  # no point
        ({"revision": "UmV2aXNpb246MQ==", "at": "2020-01-01T00:00:00Z"}, "BAD_REQUEST"),
        ({"revision": "UmV2aXNpb246OTk5OQ=="}, "NOT_FOUND"),
        ({"delta": "T2JqZWN0RGVsdGE6OTk5OQ=="}, "NOT_FOUND"),
        ({"at": "1990-01-01T00:00:00Z"}, "BAD_REQUEST"),  # the row did not exist yet
        ({"delta": "UmV2aXNpb246MQ=="}, "BAD_REQUEST"),  # a revision id
    ],
)
def test_rollback_errors_write_nothing(gql, editor, book, variables, code):
    gql.login(editor)
    before = history_counts()
    response = _rollback(gql, book, **variables)
    assert response.codes == [code]
    assert history_counts() == before


def test_rollback_of_a_bad_type_or_id(gql, editor, book):
    gql.login(editor)
    query = ROLLBACK.replace('"testapp.book"', '"no.such"')
    assert gql(query, {"id": "1", "at": "2020-01-01T00:00:00Z"}).codes == ["BAD_REQUEST"]
    assert gql(ROLLBACK, {"id": "x", "at": "2020-01-01T00:00:00Z"}).codes == ["BAD_REQUEST"]


def test_rollback_with_a_bad_header_writes_nothing(gql, editor, book):
    gql.login(editor)
    before = history_counts()
    response = _rollback(
        gql,
        book,
        revision=revision_id(revisions()[0]),
        headers={"x_perform_as_organization": "nope"},
    )
    assert response.codes == ["FORBIDDEN"]
    assert history_counts() == before
    book.refresh_from_db()
    assert book.title == "Dune Messiah"


# Revert -------------------------------------------------------------------------------------


def test_revert_undoes_a_revision_as_a_new_one(gql, editor, book):
    gql.login(editor)
    edit = revisions()[-1]
    response = gql(REVERT, {"id": revision_id(edit)}, x_commit_message="Revert the edit")
    data = response.ok()["revertRevision"]
    book.refresh_from_db()
    assert (book.title, book.pages) == ("Dune", 100)
    assert data["reverted"] == {"id": revision_id(edit), "description": "edit"}
    new = revisions()[-1]
    assert data["revision"]["id"] == revision_id(new) == response.extensions["revisionId"]
    assert data["revision"]["description"] == "Revert the edit"
    changes = data["revision"]["deltas"]["edges"][0]["node"]["changes"]
    assert {change["field"]: change["new"] for change in changes} == {"title": "Dune", "pages": 100}


def test_revert_conflicts_list_the_later_changes_and_write_nothing(gql, editor, book):
    gql.login(editor)
    edit = revisions()[-1]
    with Context(revision_description="later"):
        book.title = "Children of Dune"
        book.save()
    later = revisions()[-1]
    before = history_counts()
    response = gql(REVERT, {"id": revision_id(edit)})
    assert response.codes == ["CONFLICT"]
    assert response.data is None
    conflicts = response.errors[0]["extensions"]["conflicts"]
    assert [(c["kind"], c["field"], c["revision"]) for c in conflicts] == [
        ("AttributeDelta", "title", revision_id(later))
    ]
    assert conflicts[0]["type"] == "testapp.book" and conflicts[0]["objectId"] == str(book.pk)
    assert conflicts[0]["objectDelta"] == delta_id(object_deltas(book)[-1])
    assert history_counts() == before
    book.refresh_from_db()
    assert book.title == "Children of Dune"

    forced = gql(REVERT, {"id": revision_id(edit), "force": True}).ok()["revertRevision"]
    assert forced["revision"] is not None
    book.refresh_from_db()
    assert (book.title, book.pages) == ("Dune", 100)


def test_reverting_a_creation_deletes_the_row(gql, editor, book):
    grant(editor, "testapp.delete_book")
    gql.login(editor)
    with Context():
        extra = make_book(author=book.author, title="Extra")
    creation = revisions()[-1]
    gql(REVERT, {"id": revision_id(creation)}).ok()
    assert not Book.objects.filter(pk=extra.pk).exists()


def test_revert_needs_the_change_permission_for_every_row(gql, viewer, book):
    gql.login(viewer)
    before = history_counts()
    response = gql(REVERT, {"id": revision_id(revisions()[-1])})
    assert response.codes == ["FORBIDDEN"]
    assert history_counts() == before


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("UmV2aXNpb246OTk5OQ==", "NOT_FOUND"),
        ("T2JqZWN0RGVsdGE6MQ==", "BAD_REQUEST"),  # an ObjectDelta id
        ("???", "BAD_REQUEST"),
    ],
)
def test_revert_of_an_unknown_revision(gql, editor, book, value, code):
    gql.login(editor)
    assert gql(REVERT, {"id": value}).codes == [code]


def test_revert_with_a_bad_commit_message_writes_nothing(gql, editor, book):
    gql.login(editor)
    before = history_counts()
    response = gql(REVERT, {"id": revision_id(revisions()[-1])}, x_commit_message="\x00")
    assert response.codes == ["BAD_REQUEST"]
    assert history_counts() == before


# Access ---------------------------------------------------------------------------------------

REVERT_DETAILS = """
mutation($id: ID!) { revertRevision(id: $id) { reverted { description metadata } } }
"""


def test_reverting_a_revision_you_may_not_see_reveals_nothing(gql, user, book):
    """Not even a revision of custom events only (which a revert leaves alone)."""
    from revy.contrib.django.events import record_event

    with Context(revision_description="confidential review"):
        record_event(book, "testapp.book.reviewed", {"verdict": "no"})
    grant(user, "testapp.view_author")
    gql.login(user)

    response = gql(REVERT_DETAILS, {"id": revision_id(revisions()[-1])})

    assert response.codes == ["NOT_FOUND"]
    assert response.data is None
    assert "confidential" not in str(response.body)


def test_reverting_a_creation_needs_the_delete_permission(gql, editor, book):
    gql.login(editor)
    with Context():
        extra = make_book(author=book.author, title="Extra")
    before = history_counts()

    response = gql(REVERT, {"id": revision_id(revisions()[-1])})

    assert response.codes == ["FORBIDDEN"]
    assert response.errors[0]["message"] == (
        f"You may not delete testapp.Book {extra.pk}; nothing was changed."
    )
    assert history_counts() == before
    assert Book.objects.filter(pk=extra.pk).exists()


def test_conflicts_list_only_what_you_may_see_and_count_the_rest(gql, user):
    with Context():
        book = make_book(title="Dune")
        author = book.author
    with Context(revision_description="both"):
        book.title, author.name = "Dune!", "Frank"
        book.save()
        author.save()
    with Context():
        book.title, author.name = "Dune?", "F."
        book.save()
        author.save()
    grant(user, "testapp.view_book", "testapp.change_book")  # authors: nothing
    gql.login(user)
    both = object_deltas(book)[1].revision

    response = gql(REVERT, {"id": revision_id(both)})

    assert response.codes == ["CONFLICT"]
    extensions = response.errors[0]["extensions"]
    assert [conflict["type"] for conflict in extensions["conflicts"]] == ["testapp.book"]
    assert extensions["hiddenConflicts"] == 1
    assert "author" not in response.errors[0]["message"].lower()
