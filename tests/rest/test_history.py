"""HistoryMixin: history, snapshot, diff, rollback and ETags on a ModelViewSet."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from revy import Context
from revy_api.operations import etag
from tests.factories import history_counts, make_author, object_deltas, only, revisions
from tests.rest.conftest import assert_problem, grant, token_client
from tests.testapp.models import Author, Car, Cylinder, Engine

pytestmark = pytest.mark.django_db

DELTA_KEYS = {
    "id",
    "revision",
    "action",
    "event_type",
    "description",
    "created_at",
    "actor",
    "content",
    "changes",
}


@pytest.fixture
def ann(editor):
    """An author created as Ann, renamed Bea, then Cid (three revisions, by alice)."""
    with Context(actor=editor):
        author = Author.objects.create(name="Ann", email="ann@example.com")
    for name in ("Bea", "Cid"):
        with Context(actor=editor, revision_description=f"rename to {name}"):
            author.name = name
            author.save()
    return author


def _revision_ids(author):
    return [delta.revision_id for delta in object_deltas(author)]


# history/ ----------------------------------------------------------------------------------


def test_history_lists_the_objects_deltas_newest_first(editor, editor_api, ann):
    response = editor_api.get(f"/api/authors/{ann.pk}/history/")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"next", "previous", "results"}
    results = body["results"]
    assert [delta["action"] for delta in results] == ["Update", "Update", "Create"]
    latest = results[0]
    assert set(latest) == DELTA_KEYS
    user_ref = {"type": "auth.user", "id": str(editor.pk), "display": "alice"}
    assert latest["actor"] == user_ref
    assert latest["content"] == {"type": "testapp.author", "id": str(ann.pk), "display": "Cid"}
    assert latest["event_type"] == "testapp.author.updated"
    assert latest["changes"] == [
        {
            "field": "name",
            "action": "Set",
            "old": "Bea",
            "new": "Cid",
            "actor": user_ref,
            "description": "",
        }
    ]
    assert results[-1]["changes"][0]["actor"] is None  # the pk: assigned by the database


def test_history_of_an_object_with_aggregates(editor, editor_api, superuser, admin_api):
    with Context(actor=editor):
        car = Car.objects.create(manufacturer="Saab")
        engine = Engine.objects.create(car=car)
        Cylinder.objects.create(engine=engine)

    own = editor_api.get(f"/api/cars/{car.pk}/history/").json()["results"]
    everything = admin_api.get(f"/api/cars/{car.pk}/history/?aggregates=true").json()
    visible = editor_api.get(f"/api/cars/{car.pk}/history/?aggregates=true").json()

    assert [delta["content"]["type"] for delta in own] == ["testapp.car"]
    assert [delta["content"]["type"] for delta in everything["results"]] == [
        "testapp.cylinder",
        "testapp.engine",
        "testapp.car",
    ]
    # alice may see cars, not engines or cylinders: the car's own deltas only.
    assert [delta["content"]["type"] for delta in visible["results"]] == ["testapp.car"]
    grant(editor, "testapp.view_engine")
    visible = editor_api.get(f"/api/cars/{car.pk}/history/?aggregates=true").json()
    assert [delta["content"]["type"] for delta in visible["results"]] == [
        "testapp.engine",
        "testapp.car",
    ]


def test_history_rejects_a_flag_that_is_not_a_boolean(editor_api, ann):
    response = editor_api.get(f"/api/authors/{ann.pk}/history/?aggregates=maybe")

    body = assert_problem(response, 400, "bad-request")
    assert body["field"] == "aggregates"


def test_history_is_paginated_with_a_cursor(editor_api, ann):
    first = editor_api.get(f"/api/authors/{ann.pk}/history/?page_size=2").json()
    second = editor_api.get(first["next"]).json()

    assert [delta["action"] for delta in first["results"]] == ["Update", "Update"]
    assert [delta["action"] for delta in second["results"]] == ["Create"]
    assert second["next"] is None


def test_history_of_an_object_the_viewset_does_not_show_is_404(other_user, user):
    author = make_author(name="Ann", user=user)
    with Context():
        author.name = "Bea"
        author.save()
    for each in (user, other_user):  # both may see authors' history: the queryset decides
        grant(each, "testapp.view_author")

    response = token_client(other_user).get(f"/api/own-authors/{author.pk}/history/")

    assert_problem(response, 404, "not-found")
    assert token_client(user).get(f"/api/own-authors/{author.pk}/history/").status_code == 200


def test_history_of_an_object_that_never_existed_is_404(editor_api):
    assert_problem(editor_api.get("/api/authors/999/history/"), 404, "not-found")
    assert_problem(editor_api.get("/api/authors/not-a-pk/history/"), 404, "not-found")


def test_history_of_a_deleted_object_needs_view_permission_on_the_model(
    editor_api, other_user, ann
):
    pk = ann.pk
    with Context():
        ann.delete()
    grant(other_user, "testapp.view_book")

    response = editor_api.get(f"/api/authors/{pk}/history/")
    refused = token_client(other_user).get(f"/api/authors/{pk}/history/")

    assert next(delta["action"] for delta in response.json()["results"]) == "Delete"
    # As for an existing row: the policy refuses (GraphQL answers FORBIDDEN alike).
    assert_problem(refused, 403, "forbidden")


def test_history_needs_authentication(ann):
    from rest_framework.test import APIClient

    response = APIClient().get(f"/api/authors/{ann.pk}/history/")

    # SessionAuthentication comes first in the settings: DRF answers 403, not 401.
    assert_problem(response, 403, "not-authenticated")


# snapshot/ ---------------------------------------------------------------------------------


def test_snapshot_at_a_revision_a_delta_and_a_moment(editor_api, ann):
    create, rename_bea, _rename_cid = object_deltas(ann)
    url = f"/api/authors/{ann.pk}/snapshot/"
    moment = rename_bea.created_at.isoformat()

    by_revision = editor_api.get(url, {"revision": create.revision_id})
    by_delta = editor_api.get(url, {"delta": rename_bea.pk})
    by_moment = editor_api.get(url, {"at": moment})
    latest = editor_api.get(url)

    assert by_revision.json() == {
        "id": ann.pk,
        "name": "Ann",
        "email": "ann@example.com",
        "user": None,
    }
    assert by_delta.json()["name"] == "Bea"
    assert by_moment.json()["name"] == "Bea"
    assert latest.json()["name"] == "Cid"


def test_snapshot_of_a_deleted_object_just_before_its_deletion(editor_api, ann):
    pk = ann.pk
    with Context():
        ann.delete()
    deletion = object_deltas(Author, pk)[-1]

    before = editor_api.get(f"/api/authors/{pk}/snapshot/", {"delta": deletion.pk})
    after = editor_api.get(f"/api/authors/{pk}/snapshot/", {"revision": deletion.revision_id})

    assert before.json()["name"] == "Cid"
    assert_problem(after, 404, "not-found")


def test_snapshot_before_the_object_existed_is_404(editor_api, ann):
    before = (object_deltas(ann)[0].created_at - datetime.timedelta(days=1)).isoformat()

    assert_problem(
        editor_api.get(f"/api/authors/{ann.pk}/snapshot/", {"at": before}), 404, "not-found"
    )


@pytest.mark.parametrize(
    ("params", "status", "problem"),
    [
        ({"revision": "abc"}, 400, "bad-request"),
        ({"delta": "1.5"}, 400, "bad-request"),
        ({"at": "yesterday"}, 400, "bad-request"),
        ({"revision": "1", "delta": "1"}, 400, "bad-request"),
        ({"revision": "99999"}, 404, "not-found"),
        ({"delta": "99999"}, 404, "not-found"),
    ],
)
def test_snapshot_with_a_bad_point(editor_api, ann, params, status, problem):
    assert_problem(editor_api.get(f"/api/authors/{ann.pk}/snapshot/", params), status, problem)


def test_snapshot_at_a_delta_of_another_object_is_404(editor_api, ann):
    other = make_author(name="Other")
    with Context():
        other.name = "Other 2"
        other.save()

    response = editor_api.get(
        f"/api/authors/{ann.pk}/snapshot/", {"delta": object_deltas(other)[0].pk}
    )

    assert_problem(response, 404, "not-found")


# diff/ -------------------------------------------------------------------------------------


def test_diff_between_two_revisions_and_to_now(editor_api, ann):
    first, second, _third = _revision_ids(ann)
    url = f"/api/authors/{ann.pk}/diff/"

    between = editor_api.get(url, {"since": first, "until": second}).json()
    to_now = editor_api.get(url, {"since": first}).json()
    same = editor_api.get(url, {"since": second, "until": second}).json()
    whole = editor_api.get(url).json()

    assert between == {
        "since": str(first),
        "until": str(second),
        "changes": {"name": {"old": "Ann", "new": "Bea"}},
    }
    assert to_now["changes"] == {"name": {"old": "Ann", "new": "Cid"}}
    assert to_now["until"] is None
    assert same["changes"] == {}
    assert whole["changes"]["name"] == {"old": None, "new": "Cid"}


def test_diff_between_datetimes(editor_api, ann):
    moment = object_deltas(ann)[1].created_at
    until = timezone.now().isoformat()

    response = editor_api.get(
        f"/api/authors/{ann.pk}/diff/", {"since": moment.isoformat(), "until": until}
    )

    assert response.json()["changes"] == {"name": {"old": "Bea", "new": "Cid"}}


@pytest.mark.parametrize("params", [{"since": "nope"}, {"until": "2024-13-45"}])
def test_diff_with_a_bad_point_is_400(editor_api, ann, params):
    assert_problem(editor_api.get(f"/api/authors/{ann.pk}/diff/", params), 400, "bad-request")


# rollback/ ---------------------------------------------------------------------------------


def test_rollback_restores_a_state_as_a_new_revision(editor, editor_api, ann):
    first = _revision_ids(ann)[0]

    response = editor_api.post(
        f"/api/authors/{ann.pk}/rollback/",
        {"revision": first},
        format="json",
        HTTP_X_COMMIT_MESSAGE="back to Ann",
    )

    assert response.status_code == 200
    body = response.json()
    ann.refresh_from_db()
    assert ann.name == "Ann"
    latest = object_deltas(ann)[-1]
    assert body == {
        "object": {"id": ann.pk, "name": "Ann", "email": "ann@example.com", "user": None},
        "changes": {"name": {"old": "Cid", "new": "Ann"}},
        "created": False,
        "dry_run": False,
        "revision": latest.revision_id,
    }
    assert response["X-Revision-Id"] == str(latest.revision_id)
    assert response["ETag"] == etag(ann)
    assert latest.revision.description == "back to Ann"
    assert (latest.actor_type_id, latest.actor_id) != (None, None)
    assert latest.actor == editor


def test_rollback_to_a_delta_and_to_a_moment(editor_api, ann):
    create, rename_bea, _ = object_deltas(ann)

    by_delta = editor_api.post(
        f"/api/authors/{ann.pk}/rollback/", {"delta": rename_bea.pk}, format="json"
    )
    by_moment = editor_api.post(
        f"/api/authors/{ann.pk}/rollback/", {"at": create.created_at.isoformat()}, format="json"
    )

    assert by_delta.json()["object"]["name"] == "Bea"
    assert by_moment.json()["object"]["name"] == "Ann"
    ann.refresh_from_db()
    assert ann.name == "Ann"


def test_rollback_to_the_current_state_is_200_and_records_nothing(editor_api, ann):
    latest = _revision_ids(ann)[-1]
    before = history_counts()

    response = editor_api.post(
        f"/api/authors/{ann.pk}/rollback/", {"revision": latest}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["changes"] == {}
    assert response.json()["revision"] is None
    assert "X-Revision-Id" not in response
    assert history_counts() == before


def test_dry_run_answers_what_would_change_and_writes_nothing(editor_api, ann):
    first = _revision_ids(ann)[0]
    before = history_counts()

    response = editor_api.post(
        f"/api/authors/{ann.pk}/rollback/?dry_run=true", {"revision": first}, format="json"
    )

    assert response.status_code == 200
    body = response.json()
    assert body["dry_run"] is True
    assert body["changes"] == {"name": {"old": "Cid", "new": "Ann"}}
    assert body["object"]["name"] == "Ann"  # what it would become
    assert body["revision"] is None
    assert "X-Revision-Id" not in response
    assert response["ETag"] == etag(ann)  # the current state, unchanged
    assert history_counts() == before
    ann.refresh_from_db()
    assert ann.name == "Cid"


def test_if_match_with_a_stale_etag_is_412_and_nothing_is_written(editor_api, ann):
    first = _revision_ids(ann)[0]
    stale = editor_api.get(f"/api/authors/{ann.pk}/")["ETag"]
    with Context():
        ann.email = "changed@example.com"
        ann.save()
    before = history_counts()

    response = editor_api.post(
        f"/api/authors/{ann.pk}/rollback/", {"revision": first}, format="json", HTTP_IF_MATCH=stale
    )

    assert_problem(response, 412, "precondition-failed")
    assert history_counts() == before
    ann.refresh_from_db()
    assert (ann.name, ann.email) == ("Cid", "changed@example.com")


@pytest.mark.parametrize("current", [True, False])
def test_if_match_with_the_current_etag_or_a_star_rolls_back(editor_api, ann, current):
    first = _revision_ids(ann)[0]
    tag = editor_api.get(f"/api/authors/{ann.pk}/")["ETag"] if current else "*"

    response = editor_api.post(
        f"/api/authors/{ann.pk}/rollback/", {"revision": first}, format="json", HTTP_IF_MATCH=tag
    )

    assert response.status_code == 200
    ann.refresh_from_db()
    assert ann.name == "Ann"


def test_rollback_of_a_deleted_object_re_creates_it(editor_api, ann):
    pk = ann.pk
    with Context():
        ann.delete()
    deletion = object_deltas(Author, pk)[-1]

    response = editor_api.post(
        f"/api/authors/{pk}/rollback/", {"delta": deletion.pk}, format="json"
    )

    assert response.status_code == 200
    body = response.json()
    assert body["created"] is True
    assert body["object"] == {"id": pk, "name": "Cid", "email": "ann@example.com", "user": None}
    restored = Author.objects.get(pk=pk)
    assert restored.name == "Cid"
    recreation = object_deltas(Author, pk)[-1]
    assert recreation.action == "Create"
    assert response["X-Revision-Id"] == str(recreation.revision_id)
    assert response["ETag"] == etag(restored)


def test_dry_run_of_re_creating_a_deleted_object_writes_nothing(editor_api, ann):
    pk = ann.pk
    with Context():
        ann.delete()
    before = history_counts()

    response = editor_api.post(
        f"/api/authors/{pk}/rollback/?dry_run=1",
        {"delta": object_deltas(Author, pk)[-1].pk},
        format="json",
    )

    assert response.json()["created"] is True
    assert "ETag" not in response
    assert not Author.objects.filter(pk=pk).exists()
    assert history_counts() == before


def test_re_creating_a_deleted_object_needs_the_add_permission(other_user, ann):
    pk = ann.pk
    with Context():
        ann.delete()
    grant(other_user, "testapp.view_author", "testapp.change_author")
    before = history_counts()

    response = token_client(other_user).post(
        f"/api/authors/{pk}/rollback/", {"delta": object_deltas(Author, pk)[-1].pk}, format="json"
    )

    assert_problem(response, 403, "forbidden")
    assert history_counts() == before
    assert not Author.objects.filter(pk=pk).exists()


def test_rollback_is_judged_as_a_patch_change_without_add_is_enough(other_user, ann):
    grant(other_user, "testapp.change_author")  # a POST would need add_author

    response = token_client(other_user).post(
        f"/api/authors/{ann.pk}/rollback/", {"revision": _revision_ids(ann)[0]}, format="json"
    )

    assert response.status_code == 200
    ann.refresh_from_db()
    assert ann.name == "Ann"


def test_rollback_without_change_permission_is_403_and_writes_nothing(other_user, ann):
    grant(other_user, "testapp.view_author", "testapp.add_author")
    before = history_counts()

    response = token_client(other_user).post(
        f"/api/authors/{ann.pk}/rollback/", {"revision": _revision_ids(ann)[0]}, format="json"
    )

    assert_problem(response, 403, "forbidden")
    assert history_counts() == before


def test_rollback_of_an_object_the_viewset_does_not_show_is_404(other_user, user):
    author = make_author(name="Ann", user=user)
    with Context():
        author.name = "Bea"
        author.save()

    response = token_client(other_user).post(
        f"/api/own-authors/{author.pk}/rollback/",
        {"delta": object_deltas(author)[0].pk},
        format="json",
    )

    assert_problem(response, 404, "not-found")
    author.refresh_from_db()
    assert author.name == "Bea"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({}, "bad-request"),
        ({"revision": 1, "at": "2024-01-01T00:00:00Z"}, "bad-request"),
        ({"revision": "one"}, "validation-error"),
        ({"at": "not a date"}, "validation-error"),
    ],
)
def test_rollback_with_a_bad_point_is_400(editor_api, ann, body, problem):
    before = history_counts()

    response = editor_api.post(f"/api/authors/{ann.pk}/rollback/", body, format="json")

    problem_body = assert_problem(response, 400, problem)
    if problem == "validation-error":
        assert set(problem_body["errors"]) <= {"revision", "at"}
    assert history_counts() == before


def test_rollback_to_before_the_object_existed_is_400(editor_api, ann):
    before = object_deltas(ann)[0].created_at - datetime.timedelta(seconds=5)

    response = editor_api.post(
        f"/api/authors/{ann.pk}/rollback/", {"at": before.isoformat()}, format="json"
    )

    assert_problem(response, 400, "bad-request")


# ETags ------------------------------------------------------------------------------------


def test_retrieve_and_update_answer_the_objects_etag(editor_api, ann):
    retrieved = editor_api.get(f"/api/authors/{ann.pk}/")
    assert retrieved["ETag"] == etag(Author.objects.get(pk=ann.pk))

    patched = editor_api.patch(f"/api/authors/{ann.pk}/", {"name": "Dee"}, format="json")
    again = editor_api.get(f"/api/authors/{ann.pk}/")

    assert patched["ETag"] != retrieved["ETag"]
    assert patched["ETag"] == again["ETag"]
    assert "ETag" not in editor_api.get("/api/authors/")


def test_each_history_endpoint_records_nothing(editor_api, ann):
    before = history_counts()
    for url in ("history/", "snapshot/", "diff/"):
        assert editor_api.get(f"/api/authors/{ann.pk}/{url}").status_code == 200
    assert history_counts() == before
    assert len(revisions()) == 3
    assert only([d for d in object_deltas(ann) if d.action == "Create"]).action == "Create"


def test_without_the_context_mixin_a_rollback_still_records_as_the_user(editor, editor_api):
    with Context(actor=editor):
        car = Car.objects.create(manufacturer="Saab")
    with Context(actor=editor):
        car.manufacturer = "Volvo"
        car.save()
    first = object_deltas(car)[0]

    response = editor_api.post(
        f"/api/history-only-cars/{car.pk}/rollback/",
        {"revision": first.revision_id},
        format="json",
        HTTP_X_COMMIT_MESSAGE="not read: no RevisionContextMixin",
    )

    assert response.status_code == 200
    undo = object_deltas(car)[-1]
    assert undo.actor == editor
    assert response["X-Revision-Id"] == str(undo.revision_id)
    assert undo.revision.description == ""
    assert editor_api.get(f"/api/history-only-cars/{car.pk}/")["ETag"] == response["ETag"]


# Access: the viewset's scope and the policy --------------------------------------------------


def test_a_logged_in_user_without_permission_reads_no_history_through_is_authenticated(user):
    author = make_author(name="Ann", user=user)  # in alice's own queryset

    response = token_client(user).get(f"/api/own-authors/{author.pk}/history/")

    assert_problem(response, 403, "forbidden")


@pytest.fixture
def deleted_own_author(user, other_user):
    """alice's author, renamed then deleted; alice and bob may view and add authors."""
    for each in (user, other_user):
        grant(each, "testapp.view_author", "testapp.add_author", "testapp.change_author")
    with Context(actor=user):
        author = make_author(name="Ann", user=user)
    with Context(actor=user):
        author.name = "Bea"
        author.save()
    pk = author.pk
    with Context(actor=user):
        author.delete()
    return pk


@pytest.mark.parametrize("action", ["history/", "snapshot/?delta={deletion}", "diff/"])
def test_a_deleted_row_outside_the_viewsets_queryset_is_not_found(
    deleted_own_author, user, other_user, action
):
    deletion = object_deltas(Author, deleted_own_author)[-1].pk
    url = f"/api/own-authors/{deleted_own_author}/{action.format(deletion=deletion)}"

    assert_problem(token_client(other_user).get(url), 404, "not-found")
    assert token_client(user).get(url).status_code == 200


def test_a_deleted_row_outside_the_viewsets_queryset_cannot_be_re_created(
    deleted_own_author, user, other_user
):
    deletion = object_deltas(Author, deleted_own_author)[-1].pk
    url = f"/api/own-authors/{deleted_own_author}/rollback/"
    before = history_counts()

    refused = token_client(other_user).post(url, {"delta": deletion}, format="json")

    assert_problem(refused, 404, "not-found")
    assert history_counts() == before
    done = token_client(user).post(url, {"delta": deletion}, format="json")
    assert done.status_code == 200 and done.json()["created"] is True
    assert Author.objects.get(pk=deleted_own_author).name == "Bea"


def test_a_queryset_joining_other_tables_hides_deleted_rows(deleted_own_author, user):
    """Its filter cannot be judged on a recorded state: refused rather than guessed."""
    with Context():
        kept = make_author(name="Kept", user=user)
    client = token_client(user)

    assert client.get(f"/api/authors-by-username/{kept.pk}/history/").status_code == 200
    gone = client.get(f"/api/authors-by-username/{deleted_own_author}/history/")
    assert_problem(gone, 404, "not-found")


def test_a_hidden_existing_row_is_not_taken_for_a_deleted_one(user, other_user):
    grant(other_user, "testapp.view_author", "testapp.add_author", "testapp.change_author")
    with Context():
        author = make_author(name="Ann", user=user)
    with Context():
        author.name = "Bea"
        author.save()
    url = f"/api/own-authors/{author.pk}/rollback/"

    response = token_client(other_user).post(
        url, {"delta": object_deltas(author)[0].pk}, format="json"
    )

    assert_problem(response, 404, "not-found")
    assert Author.objects.get(pk=author.pk).name == "Bea"


def test_an_object_policy_decides_per_row(user, other_user):
    from django.test import override_settings

    with Context():
        mine = make_author(name="Mine", user=user)
        theirs = make_author(name="Theirs", user=other_user)
    client = token_client(user)
    policy = {"VISIBILITY_POLICY": "tests.contrib.django.test_access.OwnAuthorsPolicy"}

    with override_settings(REVY_API=policy):
        assert client.get(f"/api/authors/{mine.pk}/history/").status_code == 200
        refused = client.get(f"/api/authors/{theirs.pk}/history/")

    body = assert_problem(refused, 403, "forbidden")
    assert "Theirs" not in body["detail"]
