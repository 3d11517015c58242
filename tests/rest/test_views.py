"""/revisions/ and /deltas/: JSON shapes, visibility, revert, authentication."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from revy import Context
from tests.factories import history_counts, make_author, make_book, object_deltas, only
from tests.rest.conftest import assert_problem, grant, token_client
from tests.testapp.models import Author, Book, Ledger, Organization

pytestmark = pytest.mark.django_db

REVISION_KEYS = {"id", "description", "created_at", "actors", "delta_count"}


@pytest.fixture
def mixed(user, other_user):
    """One revision touching an author and a book (by alice), one touching only a book."""
    with Context(actor=user, revision_description="author and book"):
        author = Author.objects.create(name="Ann")
        Book.objects.create(author=author, title="First")
    with Context(actor=other_user, revision_description="book only"):
        Book.objects.create(author=author, title="Second")
    return author


def _ref(user):
    return {"type": "auth.user", "id": str(user.pk), "display": user.username}


# /revisions/ -------------------------------------------------------------------------------


def test_revision_list_items(admin_api, mixed, user, other_user):
    response = admin_api.get("/api/revisions/")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"next", "previous", "results"}
    book_only, both = body["results"]
    assert set(both) == REVISION_KEYS
    assert both["description"] == "author and book"
    assert both["delta_count"] == 2
    # Primary keys the database assigned are the system's values, but nobody's action.
    assert both["actors"] == [_ref(user)]
    assert book_only["actors"] == [_ref(other_user)]


def test_revision_detail_has_metadata_and_deltas_oldest_first(editor_api, editor):
    created = editor_api.post(
        "/api/authors/", {"name": "Ann"}, format="json", HTTP_X_REQUEST_ID="r-1"
    )
    revision_id = created["X-Revision-Id"]

    response = editor_api.get(f"/api/revisions/{revision_id}/")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == REVISION_KEYS | {"metadata", "deltas", "deltas_next"}
    assert body["metadata"] == {
        "user": {"type": "auth.user", "id": str(editor.pk)},
        "request_id": "r-1",
    }
    delta = only(body["deltas"])
    assert delta["action"] == "Create"
    assert delta["revision"] == int(revision_id)
    assert {change["field"] for change in delta["changes"]} == {"id", "name", "email", "user_id"}


def test_the_detail_lists_the_actors_the_list_does(admin_api, mixed, user):
    # Keys the database assigned are the system's values, but make nobody an actor: in the
    # detail as in the list (and `Revision.get_actors()`).
    listed = admin_api.get("/api/revisions/").json()["results"][1]
    detail = admin_api.get(f"/api/revisions/{listed['id']}/").json()

    assert detail["actors"] == listed["actors"] == [_ref(user)]
    assert detail["delta_count"] == listed["delta_count"] == 2


@pytest.fixture
def big_revision(user, other_user):
    """A revision of 5 authors' creations: 4 by alice, the last one by bob."""
    with Context(actor=user, revision_description="many"):
        for number in range(4):
            Author.objects.create(name=f"Author {number}")
        with Context(actor=other_user):
            Author.objects.create(name="Author 4")
    return object_deltas(Author, Author.objects.latest("pk").pk)[0].revision


def test_the_detail_pages_through_a_large_revision_oldest_first(
    admin_api, big_revision, user, other_user, monkeypatch
):
    from revy_api.rest.serializers import RevisionDetailSerializer

    monkeypatch.setattr(RevisionDetailSerializer, "deltas_page_size", 2)
    url, pages = f"/api/revisions/{big_revision.pk}/", []
    while url:
        body = admin_api.get(url).json()
        pages.append(body)
        url = body["deltas_next"]

    assert [len(page["deltas"]) for page in pages] == [2, 2, 1]
    shown = [delta["id"] for page in pages for delta in page["deltas"]]
    assert shown == list(big_revision.object_deltas.order_by("id").values_list("pk", flat=True))
    listed = admin_api.get("/api/revisions/").json()["results"][0]
    assert listed["id"] == big_revision.pk
    for page in pages:  # every page describes the whole revision, as the list does
        assert page["delta_count"] == listed["delta_count"] == 5
        assert page["actors"] == listed["actors"]
        assert {actor["id"] for actor in page["actors"]} == {str(user.pk), str(other_user.pk)}
    assert pages[-1]["deltas_next"] is None


def test_a_small_revision_has_no_next_page_of_deltas(admin_api, mixed):
    listed = admin_api.get("/api/revisions/").json()["results"][1]
    assert admin_api.get(f"/api/revisions/{listed['id']}/").json()["deltas_next"] is None


def test_a_deltas_after_beyond_any_id_is_an_empty_page(admin_api, big_revision):
    after = "9" * 30
    body = admin_api.get(f"/api/revisions/{big_revision.pk}/", {"deltas_after": after}).json()
    assert body["deltas"] == [] and body["deltas_next"] is None
    assert body["delta_count"] == 5


@pytest.mark.parametrize("after", ["x", "-1", "1.5", "\u0661"])
def test_a_bad_deltas_after_is_a_400(admin_api, big_revision, after):
    response = admin_api.get(f"/api/revisions/{big_revision.pk}/", {"deltas_after": after})
    body = assert_problem(response, 400, "bad-request")
    assert "deltas_after" in body["detail"]


def test_the_detail_costs_the_same_queries_for_1_and_5_deltas(admin_api, big_revision, user):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with Context(actor=user):
        small = object_deltas(Author, Author.objects.create(name="Alone").pk)[0].revision_id

    def queries(revision_id) -> int:
        admin_api.get(f"/api/revisions/{revision_id}/")  # warm caches
        with CaptureQueriesContext(connection) as captured:
            assert admin_api.get(f"/api/revisions/{revision_id}/").status_code == 200
        return len(captured)

    assert queries(small) == queries(big_revision.pk)


def test_a_user_sees_only_the_deltas_of_models_they_may_view(mixed, user):
    grant(user, "testapp.view_author")
    client = token_client(user)

    revisions = client.get("/api/revisions/").json()["results"]
    deltas = client.get("/api/deltas/").json()["results"]
    both = revisions[0]
    detail = client.get(f"/api/revisions/{both['id']}/").json()

    assert [revision["description"] for revision in revisions] == ["author and book"]
    assert both["delta_count"] == 1
    assert [delta["content"]["type"] for delta in deltas] == ["testapp.author"]
    assert [delta["content"]["type"] for delta in detail["deltas"]] == ["testapp.author"]
    assert detail["delta_count"] == 1


def test_change_permission_is_enough_to_see_a_models_deltas(mixed, user):
    grant(user, "testapp.change_book")

    deltas = token_client(user).get("/api/deltas/").json()["results"]

    assert [delta["content"]["type"] for delta in deltas] == ["testapp.book"] * 2


def test_revisions_and_deltas_without_visible_deltas_are_404(mixed, user):
    grant(user, "testapp.view_author")
    client = token_client(user)
    book_only = object_deltas(Book)[-1]

    assert_problem(client.get(f"/api/revisions/{book_only.revision_id}/"), 404, "not-found")
    assert_problem(client.get(f"/api/deltas/{book_only.pk}/"), 404, "not-found")
    assert client.get(f"/api/deltas/{object_deltas(Author)[0].pk}/").status_code == 200


def test_a_user_without_view_permissions_sees_nothing(mixed, other_user):
    client = token_client(other_user)

    assert client.get("/api/revisions/").json()["results"] == []
    assert client.get("/api/deltas/").json()["results"] == []


@pytest.mark.parametrize("url", ["/api/revisions/", "/api/deltas/", "/api/revisions/1/"])
def test_anonymous_requests_are_refused_per_the_authentication_classes(mixed, url):
    # SessionAuthentication first: DRF answers 403 (there is no WWW-Authenticate to send).
    assert_problem(APIClient().get(url), 403, "not-authenticated")


def test_anonymous_requests_get_401_with_token_authentication_only(mixed):
    response = APIClient().get("/api/token-only/revisions/")

    assert_problem(response, 401, "not-authenticated")
    assert response["WWW-Authenticate"] == "Token"


def test_an_invalid_token_is_401(mixed):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token nope")

    response = client.get("/api/token-only/revisions/")

    assert_problem(response, 401, "authentication-failed")


def test_organization_actors_are_shown_like_users(editor_api, organization):
    editor_api.post(
        "/api/authors/", {"name": "Ann"}, format="json", HTTP_X_PERFORM_AS_ORGANIZATION="acme"
    )

    delta = editor_api.get("/api/deltas/").json()["results"][0]

    assert delta["actor"] == {
        "type": "testapp.organization",
        "id": str(organization.pk),
        "display": "ACME",
    }


def test_deleted_objects_and_actors_are_shown_as_deleted(admin_api, user):
    with Context(actor=user):
        author = make_author(name="Ann")
        author.name = "Bea"
        author.save()
    pk = author.pk
    Author.objects.filter(pk=pk).delete()  # outside any context: not recorded

    delta = admin_api.get("/api/deltas/").json()["results"][0]

    assert delta["content"] == {
        "type": "testapp.author",
        "id": str(pk),
        "display": f"testapp.author #{pk} (deleted)",
    }


def test_system_corrections_appear_as_a_null_actor_among_the_changes(admin_api, user):
    with Context(actor=user):
        ledger = Ledger(amount=10, exchange_rate=2)
        with Context.via_actor(None), Context.via_attribute_delta_description("corrected"):
            ledger.local_amount = 20
        ledger.save()

    delta = admin_api.get("/api/deltas/").json()["results"][0]

    local = [change for change in delta["changes"] if change["field"] == "local_amount"]
    # The default came with alice's construction; the correction is the system's.
    assert [(change["actor"], change["new"]) for change in local] == [
        (_ref(user), "0.00"),
        (None, "20.00"),
    ]
    assert local[-1]["description"] == "corrected"
    assert delta["actor"] == _ref(user)


# revert/ -----------------------------------------------------------------------------------


def test_revert_undoes_a_revision_as_a_new_one(editor_api, editor):
    with Context(actor=editor):
        author = make_author(name="Ann")
    with Context(actor=editor):
        author.name = "Bea"
        author.save()
    rename = object_deltas(author)[-1].revision_id

    response = editor_api.post(
        f"/api/revisions/{rename}/revert/", {}, format="json", HTTP_X_COMMIT_MESSAGE="undo"
    )

    assert response.status_code == 200
    undo = object_deltas(author)[-1]
    assert response.json() == {"reverted": rename, "revision": undo.revision_id}
    assert response["X-Revision-Id"] == str(undo.revision_id)
    assert undo.revision.description == "undo"
    assert undo.actor == editor
    author.refresh_from_db()
    assert author.name == "Ann"


def test_revert_with_a_later_conflicting_change_is_409_listing_the_conflicts(editor_api, editor):
    with Context(actor=editor):
        author = make_author(name="Ann")
    with Context(actor=editor):
        author.name = "Bea"
        author.save()
    with Context(actor=editor):
        author.name = "Cid"
        author.save()
    rename, later = (delta.revision_id for delta in object_deltas(author)[1:])
    before = history_counts()

    response = editor_api.post(f"/api/revisions/{rename}/revert/", {"force": False}, format="json")

    body = assert_problem(response, 409, "revision-conflict")
    conflict = only(body["conflicts"])
    assert conflict["kind"] == "attribute_delta"
    assert conflict["field"] == "name"
    assert conflict["revision"] == later
    assert conflict["content"]["type"] == "testapp.author"
    assert conflict["actor"] == _ref(editor)
    assert history_counts() == before

    forced = editor_api.post(f"/api/revisions/{rename}/revert/", {"force": True}, format="json")

    assert forced.status_code == 200
    author.refresh_from_db()
    assert author.name == "Ann"


def test_revert_needs_permission_to_change_every_row(user, other_user):
    with Context(actor=user):
        author = make_author(name="Ann")
        author.name = "Bea"
        author.save()
    grant(other_user, "testapp.view_author")
    before = history_counts()

    response = token_client(other_user).post(
        f"/api/revisions/{object_deltas(author)[0].revision_id}/revert/", {}, format="json"
    )

    assert_problem(response, 403, "forbidden")
    assert history_counts() == before


def test_revert_of_a_revision_you_cannot_see_is_404(mixed, user):
    grant(user, "testapp.view_author")
    book_only = object_deltas(Book)[-1].revision_id

    response = token_client(user).post(f"/api/revisions/{book_only}/revert/", {}, format="json")

    assert_problem(response, 404, "not-found")
    assert Book.objects.count() == 2


def test_revert_of_a_revision_with_only_events_undoes_nothing(admin_api):
    from revy.contrib.django.events import record_event

    author = make_author(name="Ann")
    with Context():
        record_event(author, "testapp.author.reviewed")
    event = only(object_deltas(author))

    response = admin_api.post(f"/api/revisions/{event.revision_id}/revert/", {}, format="json")

    assert response.status_code == 200
    assert response.json() == {"reverted": event.revision_id, "revision": None}
    assert "X-Revision-Id" not in response


@pytest.mark.parametrize("body", [{"force": "perhaps"}, {"force": [1]}])
def test_revert_with_an_invalid_body_is_400(admin_api, mixed, body):
    revision = object_deltas(Book)[-1].revision_id

    response = admin_api.post(f"/api/revisions/{revision}/revert/", body, format="json")

    assert_problem(response, 400, "validation-error")["errors"]
    assert Book.objects.count() == 2


def test_unknown_revision_and_delta_are_404(admin_api):
    for url in ("/api/revisions/999/", "/api/deltas/999/", "/api/revisions/x/"):
        assert_problem(admin_api.get(url), 404, "not-found")
    assert_problem(
        admin_api.post("/api/revisions/999/revert/", {}, format="json"), 404, "not-found"
    )


def test_revert_of_a_deleting_revision_re_creates_the_row(admin_api, superuser):
    book = make_book(title="Gone")
    pk = book.pk
    with Context(actor=superuser):
        book.delete()

    response = admin_api.post(
        f"/api/revisions/{object_deltas(Book, pk)[-1].revision_id}/revert/", {}, format="json"
    )

    assert response.status_code == 200
    assert Book.objects.get(pk=pk).title == "Gone"


def test_organizations_are_tracked_like_any_model(admin_api):
    with Context():
        Organization.objects.create(slug="x", name="X")

    delta = admin_api.get("/api/deltas/?content_type=testapp.organization").json()["results"]

    assert only(delta)["content"]["display"] == "X"


# Access --------------------------------------------------------------------------------------


def test_a_409_lists_only_the_conflicts_you_may_see_and_counts_the_others(user):
    with Context(revision_description="both"):
        author = make_author(name="Ann")
        book = make_book(author=author, title="First")
    with Context(revision_description="rename both"):
        author.name, book.title = "Bea", "Second"
        author.save()
        book.save()
    with Context(revision_description="later"):
        author.name, book.title = "Cid", "Third"
        author.save()
        book.save()
    renamed = object_deltas(author)[1].revision_id
    grant(user, "testapp.view_author", "testapp.change_author")  # books: nothing
    before = history_counts()

    response = token_client(user).post(f"/api/revisions/{renamed}/revert/", {}, format="json")

    body = assert_problem(response, 409, "revision-conflict")
    assert [conflict["content"]["type"] for conflict in body["conflicts"]] == ["testapp.author"]
    assert body["hidden_conflicts"] == 1
    assert "book" not in body["detail"].lower() and "Third" not in str(body)
    assert history_counts() == before
    # Forced, the revert would change the book: refused, without naming it.
    forced = token_client(user).post(
        f"/api/revisions/{renamed}/revert/", {"force": True}, format="json"
    )
    body = assert_problem(forced, 403, "forbidden")
    assert "Book" not in body["detail"] and "1 row you may not see" in body["detail"]
    assert history_counts() == before


def test_reverting_a_creation_needs_delete_and_names_only_visible_rows(user):
    with Context():
        author = make_author(name="Ann")
    with Context():
        book = make_book(author=author, title="Dune")
    grant(user, "testapp.view_author", "testapp.delete_author", "testapp.view_book")
    creation = object_deltas(author)[0].revision_id

    response = token_client(user).post(f"/api/revisions/{creation}/revert/", {}, format="json")

    body = assert_problem(response, 403, "forbidden")
    assert body["detail"] == (f"You may not delete testapp.Book {book.pk}; nothing was changed.")
    assert Author.objects.filter(pk=author.pk).exists() and Book.objects.count() == 1


def test_anonymous_changes_are_marked_in_the_revision_and_the_api(admin_api):
    response = APIClient().post("/api/public-notes/", {"text": "hi"}, format="json")
    assert response.status_code == 201
    with Context(revision_description="by the system"):
        make_author(name="Ann")
    anonymous, system = (int(response["X-Revision-Id"]), object_deltas(Author)[0].revision_id)

    shown = admin_api.get(f"/api/revisions/{anonymous}/").json()
    by_system = admin_api.get(f"/api/revisions/{system}/").json()

    assert shown["metadata"] == {"user": None, "anonymous": True}
    assert shown["actors"] == [None]
    assert by_system["metadata"] == {}
    assert by_system["actors"] == [None]


def test_the_policy_reads_no_content_type_per_request_and_computes_once(mixed, user):
    from django.apps import apps
    from django.test import override_settings

    from tests.conftest import count_queries
    from tests.contrib.django.test_access import CountingPolicy

    grant(user, "testapp.view_book", "testapp.view_author")
    client = token_client(user)
    client.get("/api/revisions/")  # warm Django's caches (content types)
    models = len([m for m in apps.get_models(include_auto_created=True) if not m._meta.proxy])
    revision = object_deltas(Book)[0].revision_id

    with override_settings(
        REVY_API={"VISIBILITY_POLICY": f"{CountingPolicy.__module__}.CountingPolicy"}
    ):
        for url in (
            "/api/revisions/",
            "/api/deltas/",
            f"/api/revisions/{revision}/",
            "/api/revisions/?search=book",
            "/api/deltas/?search=book",
        ):
            CountingPolicy.calls = 0
            with count_queries() as queries:
                assert client.get(url).status_code == 200
            # Django's permission cache joins content types; nothing scans them.
            assert not [sql for sql in queries.statements if 'FROM "django_content_type"' in sql]
            # The list, its filter and its serializer share one computation per request.
            assert CountingPolicy.calls == models, url
