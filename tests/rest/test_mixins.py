"""RevisionContextMixin: one revision per request, its actor, description and metadata."""

from __future__ import annotations

import pytest
from django.contrib.contenttypes.models import ContentType
from django.test import override_settings
from rest_framework.test import APIClient

from tests.factories import actor_of, actor_ref, history_counts, make_author, object_deltas, only
from tests.rest.conftest import assert_problem, header, token_client
from tests.testapp.models import Author, Note

pytestmark = pytest.mark.django_db


def _revision(response):
    from tests.history_models import Revision

    return Revision.objects.get(pk=int(response["X-Revision-Id"]))


# Actor and revision ----------------------------------------------------------------------


def test_token_authenticated_user_is_the_actor_of_every_delta(editor, editor_api):
    response = editor_api.post("/api/authors/", {"name": "Ann"}, format="json")

    assert response.status_code == 201
    revision = _revision(response)
    delta = only(object_deltas(Author))
    assert delta.revision_id == revision.pk
    assert actor_of(delta) == actor_ref(editor)
    changed = {child.field_name: actor_of(child) for child in delta.children.all()}
    assert changed == {  # the pk is assigned by the database: the system's
        "id": (None, None),
        "name": actor_ref(editor),
        "email": actor_ref(editor),
        "user_id": actor_ref(editor),
    }


def test_session_authenticated_user_is_the_actor(editor):
    client = APIClient()
    client.force_login(editor)

    response = client.post("/api/authors/", {"name": "Ann"}, format="json")

    assert response.status_code == 201
    assert actor_of(only(object_deltas(Author))) == actor_ref(editor)


def test_one_request_is_one_revision_whatever_it_saves(user):
    response = token_client(user).post("/api/two-notes/", {}, format="json")

    assert response.status_code == 201
    deltas = object_deltas(Note)
    assert [delta.action for delta in deltas] == ["Create", "Create", "Update"]
    assert {delta.revision_id for delta in deltas} == {int(response["X-Revision-Id"])}


def test_each_request_is_its_own_revision(editor_api):
    first = editor_api.post("/api/authors/", {"name": "Ann"}, format="json")
    pk = first.json()["id"]
    second = editor_api.patch(f"/api/authors/{pk}/", {"name": "Bea"}, format="json")

    assert int(second["X-Revision-Id"]) > int(first["X-Revision-Id"])
    assert history_counts()[0] == 2


def test_reads_and_writes_that_change_nothing_name_no_revision(editor_api):
    author = make_author(name="Ann")

    read = editor_api.get(f"/api/authors/{author.pk}/")
    unchanged = editor_api.patch(f"/api/authors/{author.pk}/", {"name": "Ann"}, format="json")

    assert read.status_code == unchanged.status_code == 200
    assert "X-Revision-Id" not in read and "X-Revision-Id" not in unchanged
    assert history_counts() == (0, 0, 0)


def test_deletes_answer_the_revision_too(editor_api):
    author = make_author(name="Ann")

    response = editor_api.delete(f"/api/authors/{author.pk}/")

    assert response.status_code == 204
    assert only(object_deltas(Author)).revision_id == int(response["X-Revision-Id"])


# X-Commit-Message --------------------------------------------------------------------------


def test_commit_message_is_the_revision_description(editor_api):
    message = header("Fix the spelling of Ännchen's name\n\twith a tab")

    response = editor_api.post(
        "/api/authors/", {"name": "Ann"}, format="json", HTTP_X_COMMIT_MESSAGE=message
    )

    assert _revision(response).description == "Fix the spelling of Ännchen's name\n\twith a tab"


def test_commit_message_of_exactly_1000_characters_is_accepted(editor_api):
    response = editor_api.post(
        "/api/authors/", {"name": "Ann"}, format="json", HTTP_X_COMMIT_MESSAGE=header("é" * 1000)
    )

    assert response.status_code == 201
    assert _revision(response).description == "é" * 1000


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("x" * 1001, "1001 characters"),
        ("ä" * 1001, "1001 characters"),  # counted in characters, not bytes
        ("bell\x07", "control characters"),
        ("nul\x00", "control characters"),
        ("escape\x1b[31m", "control characters"),
        ("delete\x7f", "control characters"),
        ("c1\x85", "control characters"),
        ("line\u2028separator", "control characters"),
        ("carriage\rreturn", "control characters"),
    ],
)
def test_bad_commit_message_is_400_and_nothing_is_written(editor_api, message, reason):
    response = editor_api.post(
        "/api/authors/", {"name": "Ann"}, format="json", HTTP_X_COMMIT_MESSAGE=header(message)
    )

    body = assert_problem(response, 400, "invalid-commit-message")
    assert body["header"] == "X-Commit-Message"
    assert reason in body["detail"]
    assert body["instance"] == "/api/authors/"
    assert not Author.objects.exists()
    assert history_counts() == (0, 0, 0)


def test_commit_message_that_is_not_utf8_is_400_and_nothing_is_written(editor_api):
    latin1_bytes = "Café".encode("latin-1").decode("latin-1")  # b"Caf\xe9": invalid UTF-8

    response = editor_api.post(
        "/api/authors/", {"name": "Ann"}, format="json", HTTP_X_COMMIT_MESSAGE=latin1_bytes
    )

    body = assert_problem(response, 400, "invalid-commit-message")
    assert "UTF-8" in body["detail"]
    assert history_counts() == (0, 0, 0)
    assert not Author.objects.exists()


def test_bad_header_on_a_rollback_writes_nothing(editor_api):
    author = make_author(name="Ann")
    from revy import Context

    with Context():
        author.name = "Bea"
        author.save()
    before = history_counts()

    response = editor_api.post(
        f"/api/authors/{author.pk}/rollback/",
        {"delta": object_deltas(author)[0].pk},
        format="json",
        HTTP_X_COMMIT_MESSAGE="x" * 1001,
    )

    assert_problem(response, 400, "invalid-commit-message")
    assert history_counts() == before
    author.refresh_from_db()
    assert author.name == "Bea"


# X-Perform-As-Organization -----------------------------------------------------------------


def test_member_acting_as_organization_records_it_as_actor_and_the_user_in_metadata(
    editor, editor_api, organization
):
    response = editor_api.post(
        "/api/authors/", {"name": "Ann"}, format="json", HTTP_X_PERFORM_AS_ORGANIZATION="acme"
    )

    assert response.status_code == 201
    delta = only(object_deltas(Author))
    assert actor_of(delta) == actor_ref(organization)
    assert {actor_of(child) for child in delta.children.exclude(field_name="id")} == {
        actor_ref(organization)
    }
    assert _revision(response).metadata == {"user": {"type": "auth.user", "id": str(editor.pk)}}


def test_non_member_acting_as_organization_gets_403_and_nothing_is_written(
    other_user, organization
):
    from tests.rest.conftest import grant

    grant(other_user, "testapp.add_author", "testapp.change_author")

    response = token_client(other_user).post(
        "/api/authors/", {"name": "Ann"}, format="json", HTTP_X_PERFORM_AS_ORGANIZATION="acme"
    )

    body = assert_problem(response, 403, "organization-forbidden")
    assert body["header"] == "X-Perform-As-Organization"
    assert not Author.objects.exists()
    assert history_counts() == (0, 0, 0)


@pytest.mark.parametrize("value", ["no-such-org", " ", "ACME"])
def test_unknown_or_empty_organization_gets_403_and_nothing_is_written(
    editor_api, organization, value
):
    response = editor_api.post(
        "/api/authors/", {"name": "Ann"}, format="json", HTTP_X_PERFORM_AS_ORGANIZATION=value
    )

    assert_problem(response, 403, "organization-forbidden")
    assert history_counts() == (0, 0, 0)


@override_settings(REVY_API={})
def test_organization_header_without_a_resolver_is_403(editor_api, organization):
    response = editor_api.post(
        "/api/authors/", {"name": "Ann"}, format="json", HTTP_X_PERFORM_AS_ORGANIZATION="acme"
    )

    body = assert_problem(response, 403, "organization-forbidden")
    assert "ORGANIZATION_RESOLVER" in body["detail"]
    assert not Author.objects.exists()


# X-Request-ID ------------------------------------------------------------------------------


def test_request_id_and_user_are_kept_in_the_metadata(editor, editor_api):
    response = editor_api.post(
        "/api/authors/", {"name": "Ann"}, format="json", HTTP_X_REQUEST_ID="req-42/abc"
    )

    assert _revision(response).metadata == {
        "user": {"type": "auth.user", "id": str(editor.pk)},
        "request_id": "req-42/abc",
    }


@pytest.mark.parametrize("value", ["has space", "x" * 201, header("ünïcode")])
def test_invalid_request_id_is_400_and_nothing_is_written(editor_api, value):
    response = editor_api.post(
        "/api/authors/", {"name": "Ann"}, format="json", HTTP_X_REQUEST_ID=value
    )

    body = assert_problem(response, 400, "invalid-request-id")
    assert body["header"] == "X-Request-ID"
    assert history_counts() == (0, 0, 0)


# Hooks and plain APIViews ------------------------------------------------------------------


def test_get_revision_description_hook_on_an_apiview(user):
    client = token_client(user)

    plain = client.post("/api/notes/", {"text": "a"}, format="json")
    described = client.post(
        "/api/notes/", {"text": "b"}, format="json", HTTP_X_COMMIT_MESSAGE="why"
    )

    assert _revision(plain).description == "[notes]"
    assert _revision(described).description == "[notes] why"


def test_get_revision_actor_hook_makes_the_system_the_actor(user):
    response = token_client(user).post("/api/system-notes/", {"text": "a"}, format="json")

    assert response.status_code == 201
    assert actor_of(only(object_deltas(Note))) == (None, None)
    # The person who asked is still known.
    assert _revision(response).metadata["user"] == {"type": "auth.user", "id": str(user.pk)}


def test_anonymous_request_is_refused_before_any_header_is_read():
    response = APIClient().post(
        "/api/notes/", {"text": "a"}, format="json", HTTP_X_PERFORM_AS_ORGANIZATION="acme"
    )

    assert response.status_code in (401, 403)
    assert history_counts() == (0, 0, 0)


def test_errors_of_the_viewsets_own_actions_keep_the_projects_format(editor_api):
    response = editor_api.post("/api/authors/", {"email": "not an email"}, format="json")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert set(response.json()) == {"name", "email"}


# With RevisionMiddleware -------------------------------------------------------------------


def test_inside_revision_middleware_the_request_is_still_one_revision(settings, editor_api):
    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE,
        "revy.contrib.django.middleware.RevisionMiddleware",
    ]

    response = editor_api.post(
        "/api/authors/", {"name": "Ann"}, format="json", HTTP_X_COMMIT_MESSAGE="both"
    )

    assert response.status_code == 201
    revision = _revision(response)
    assert history_counts()[0] == 1
    assert revision.description == "both"
    assert only(object_deltas(Author)).revision_id == revision.pk


def test_content_types_of_actors_are_the_concrete_models(editor, editor_api):
    editor_api.post("/api/authors/", {"name": "Ann"}, format="json")

    delta = only(object_deltas(Author))
    assert delta.actor_type == ContentType.objects.get_for_model(type(editor))
