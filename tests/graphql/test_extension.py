"""RevisionContextExtension: one revision per mutation operation, shaped by the headers."""

from __future__ import annotations

import pytest
from strawberry import relay

from revy import Context
from revy.contrib.django.utils import get_revision_model
from tests.factories import history_counts, make_book, object_deltas, only, revisions
from tests.graphql.conftest import grant
from tests.testapp.models import Book, Organization

UPDATE = """
mutation($id: ID!, $title: String) { updateBook(data: {id: $id, title: $title}) { title } }
"""
TWO_UPDATES = """
mutation($a: ID!, $b: ID!) {
  first: updateBook(data: {id: $a, title: "one"}) { title }
  second: updateBook(data: {id: $b, title: "two"}) { title }
}
"""


@pytest.fixture
def book(db):
    with Context():
        return make_book(title="Before")


@pytest.fixture
def member(user):
    """`user`, a member of the organization `acme`."""
    organization = Organization.objects.create(slug="acme", name="Acme")
    organization.members.add(user)
    return user


def _update(gql, book, title="After", **headers):
    return gql(UPDATE, {"id": str(book.pk), "title": title}, **headers)


def test_a_mutation_is_one_revision_named_in_the_response(gql, user, book):
    gql.login(user)
    before = history_counts()
    response = _update(gql, book)
    assert response.ok() == {"updateBook": {"title": "After"}}
    revision = revisions()[-1]
    assert history_counts()[0] == before[0] + 1
    assert response.extensions == {"revisionId": relay.to_base64("Revision", revision.pk)}
    assert response.headers["X-Revision-Id"] == str(revision.pk)
    update = only([delta for delta in object_deltas(book) if delta.action == "Update"])
    assert update.revision_id == revision.pk
    assert (update.actor_type.model, update.actor_id) == ("user", str(user.pk))
    assert revision.metadata == {"user": {"type": "auth.user", "id": str(user.pk)}}


def test_every_field_of_one_operation_lands_in_one_revision(gql, user, book):
    with Context():
        other = make_book()
    gql.login(user)
    before = history_counts()[0]
    response = gql(TWO_UPDATES, {"a": str(book.pk), "b": str(other.pk)})
    response.ok()
    assert history_counts()[0] == before + 1
    assert {delta.revision_id for delta in object_deltas(Book)[-2:]} == {revisions()[-1].pk}


def test_the_commit_message_describes_the_revision(gql, user, book):
    gql.login(user)
    _update(gql, book, x_commit_message="Fix the title\n\tper the author's wish").ok()
    assert revisions()[-1].description == "Fix the title\n\tper the author's wish"


def test_a_utf8_commit_message_is_read_as_utf8(gql, user, book):
    gql.login(user)
    message = "Résumé, ünïcødé ✓"
    _update(gql, book, x_commit_message=message.encode().decode("latin-1")).ok()
    assert revisions()[-1].description == message


def test_the_request_id_is_kept_in_the_metadata(gql, user, book):
    gql.login(user)
    _update(gql, book, x_request_id="req-42").ok()
    assert revisions()[-1].metadata["request_id"] == "req-42"


def test_a_member_acts_as_the_organization_and_the_user_is_kept(gql, member, book):
    gql.login(member)
    response = _update(gql, book, x_perform_as_organization="acme")
    response.ok()
    update = object_deltas(book)[-1]
    organization = Organization.objects.get(slug="acme")
    assert update.actor_id == str(organization.pk)
    assert update.actor_type.model == "organization"
    assert revisions()[-1].metadata["user"] == {"type": "auth.user", "id": str(member.pk)}


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({"x_commit_message": "x" * 1001}, "BAD_REQUEST"),
        ({"x_commit_message": "bell\x07"}, "BAD_REQUEST"),
        ({"x_commit_message": "escape\x1b[31m"}, "BAD_REQUEST"),
        ({"x_commit_message": b"\xff\xfe".decode("latin-1")}, "BAD_REQUEST"),
        ({"x_request_id": "has spaces"}, "BAD_REQUEST"),
        ({"x_perform_as_organization": "acme"}, "FORBIDDEN"),  # not a member
        ({"x_perform_as_organization": "nowhere"}, "FORBIDDEN"),  # no such organization
        ({"x_perform_as_organization": "  "}, "FORBIDDEN"),
    ],
)
def test_a_bad_header_is_an_error_and_nothing_is_written(gql, user, book, headers, code):
    Organization.objects.create(slug="acme", name="Acme")
    gql.login(user)
    before = history_counts()
    response = _update(gql, book, **headers)
    assert response.status == 200
    assert response.data is None
    assert response.codes == [code]
    assert "revisionId" not in response.extensions
    assert "X-Revision-Id" not in response.headers
    assert history_counts() == before
    book.refresh_from_db()
    assert book.title == "Before"


def test_a_commit_message_of_1000_characters_is_accepted(gql, user, book):
    gql.login(user)
    _update(gql, book, x_commit_message="x" * 1000).ok()
    assert revisions()[-1].description == "x" * 1000


def test_an_anonymous_request_may_not_act_as_an_organization(gql, book):
    Organization.objects.create(slug="acme", name="Acme")
    before = history_counts()
    response = _update(gql, book, x_perform_as_organization="acme")
    assert response.codes == ["FORBIDDEN"]
    assert history_counts() == before


def test_an_anonymous_change_has_no_actor_and_says_it_was_anonymous(gql, book):
    response = _update(gql, book)
    response.ok()
    update = object_deltas(book)[-1]
    assert (update.actor_type_id, update.actor_id) == (None, None)
    # Told apart from the system's changes, whose revisions name no user at all.
    assert revisions()[-1].metadata == {"user": None, "anonymous": True}


def test_queries_open_no_revision(gql, user, book):
    grant(user, "testapp.view_book")
    gql.login(user)
    response = gql("{ revisions { totalCount } }", x_commit_message="bell\x07")
    response.ok()
    assert "revisionId" not in response.extensions


def test_a_mutation_that_writes_nothing_names_no_revision(gql, user, book):
    gql.login(user)
    before = history_counts()
    response = _update(gql, book, title="Before")  # the title it already has
    response.ok()
    assert history_counts() == before
    assert "revisionId" not in response.extensions
    assert "X-Revision-Id" not in response.headers


def test_an_operation_that_fails_validation_writes_nothing(gql, user, book):
    gql.login(user)
    before = history_counts()
    response = gql("mutation { updateBook(data: {id: 1, nope: 2}) { title } }")
    assert response.errors and response.data is None
    assert history_counts() == before


def test_each_operation_has_its_own_revision(gql, user, book):
    gql.login(user)
    first = _update(gql, book, title="One").extensions["revisionId"]
    second = _update(gql, book, title="Two").extensions["revisionId"]
    assert first != second
    assert get_revision_model().objects.count() >= 2


def test_the_actor_hook_can_be_overridden(db, other_user, book):
    import strawberry

    from revy_api.graphql import RevisionContextExtension
    from tests.api.graphql_schema import Mutation

    @strawberry.type
    class Query:
        ok: bool = True

    class AlwaysBob(RevisionContextExtension):
        def get_revision_actor(self, request):
            return other_user

    schema = strawberry.Schema(query=Query, mutation=Mutation, extensions=[AlwaysBob])
    result = schema.execute_sync(UPDATE, variable_values={"id": str(book.pk), "title": "Bob"})
    assert not result.errors
    assert object_deltas(book)[-1].actor_id == str(other_user.pk)
    assert result.extensions["revisionId"] == relay.to_base64("Revision", revisions()[-1].pk)


def test_the_async_view_runs_the_async_hooks(gql, user, book, monkeypatch):
    from revy_api.graphql import extensions

    used = []
    original = extensions._AsyncHooks.on_execute

    async def spy(self):
        used.append(type(self).__mro__[1])
        async for _ in original(self):
            yield

    monkeypatch.setattr(extensions._AsyncHooks, "on_execute", spy)
    gql.login(user)
    _update(gql, book).ok()
    assert used == ([extensions._AsyncHooks] if gql.view == "async" else [])


def test_the_api_tells_anonymous_changes_from_the_systems(gql, superuser_for_metadata, book):
    _update(gql, book).ok()  # anonymous
    with Context(revision_description="system"):
        book.pages = 1
        book.save()
    gql.login(superuser_for_metadata)
    query = "{ revisions { edges { node { description metadata actors { id } } } } }"

    nodes = [edge["node"] for edge in gql(query).ok()["revisions"]["edges"]]

    assert nodes[0] == {"description": "system", "metadata": {}, "actors": [None]}
    assert nodes[1]["metadata"] == {"user": None, "anonymous": True}
    assert nodes[1]["actors"] == [None]


@pytest.fixture
def superuser_for_metadata(db):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_superuser("root", "root@example.com", "pw")
