"""RevisionMiddleware: a revision per request, sync and async, and the revision headers."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.http import HttpResponse, JsonResponse
from django.test import AsyncClient, Client, override_settings
from django.urls import path
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from revy import Context
from tests.factories import actor_of, actor_ref, history_counts, object_deltas, only
from tests.history_models import Revision
from tests.testapp.models import Author, Organization

pytestmark = pytest.mark.django_db


# Views under test ---------------------------------------------------------------------------


def create_author(request):
    author = Author.objects.create(name=request.GET.get("name", "Ann"))
    return JsonResponse({"id": author.pk}, status=201)


async def acreate_author(request):
    author = await Author.objects.acreate(name=request.GET.get("name", "Ann"))
    return JsonResponse({"id": author.pk}, status=201)


async def aauthenticate_then_create(request):
    """Authenticates inside the view (as DRF or a JWT library does), then writes."""
    request.user = await get_user_model().objects.aget(pk=request.GET["user"])
    author = await Author.objects.acreate(name="Late")
    return JsonResponse({"id": author.pk}, status=201)


def read_only(request):
    return HttpResponse(str(Author.objects.count()))


def write_then_roll_back(request):
    """Writes inside a savepoint that rolls back, then answers 200."""
    try:
        with transaction.atomic():
            Author.objects.create(name="gone")
            raise RuntimeError
    except RuntimeError:
        pass
    return HttpResponse("ok")


class TokenAuthorView(APIView):
    """DRF authenticates in the view, after the middleware has opened the context."""

    authentication_classes = [TokenAuthentication]
    permission_classes = [IsAuthenticated]

    def post(self, request):
        return Response({"id": Author.objects.create(name="Tok").pk}, status=201)


urlpatterns = [
    path("create/", create_author),
    path("acreate/", acreate_author),
    path("aauthenticate/", aauthenticate_then_create),
    path("read/", read_only),
    path("rolled-back/", write_then_roll_back),
    path("token/", TokenAuthorView.as_view()),
]

MIDDLEWARE = [*settings.MIDDLEWARE, "revy.contrib.django.middleware.RevisionMiddleware"]


class _Caller:
    """Calls the sync or the async view through Client or AsyncClient."""

    def __init__(self, mode: str, node: pytest.Item) -> None:
        self.mode = mode
        self.node = node
        self.client = Client() if mode == "sync" else AsyncClient()

    def login(self, user) -> None:
        if self.mode == "sync":
            self.client.force_login(user)
        else:
            async_to_sync(self.client.aforce_login)(user)

    def create(self, name: str = "Ann", **headers: str):
        url = ("/create/" if self.mode == "sync" else "/acreate/") + f"?name={name}"
        if self.mode == "sync":
            return self.client.post(url, headers=headers)
        return async_to_sync(self.client.post)(url, headers=headers)


@pytest.fixture(params=["sync", "async"])
def call(request, db):
    with override_settings(ROOT_URLCONF=__name__, MIDDLEWARE=MIDDLEWARE):
        yield _Caller(request.param, request.node)


def _problem(response, status: int, problem: str) -> dict:
    assert response.status_code == status
    assert response["Content-Type"] == "application/problem+json"
    body = json.loads(response.content)
    assert body["type"] == f"https://revy.dev/problems/{problem}"
    assert body["status"] == status
    return body


# Tests --------------------------------------------------------------------------------------


def test_a_request_is_one_revision_by_the_logged_in_user(call, user):
    call.login(user)

    response = call.create(**{"X-Commit-Message": "Add Ann", "X-Request-ID": "req-7"})

    assert response.status_code == 201
    delta = only(object_deltas(Author))
    assert actor_of(delta) == actor_ref(user)
    revision = Revision.objects.get(pk=int(response["X-Revision-Id"]))
    assert delta.revision_id == revision.pk
    assert revision.description == "Add Ann"
    assert revision.metadata == {
        "user": {"type": "auth.user", "id": str(user.pk)},
        "request_id": "req-7",
    }


def test_anonymous_changes_have_no_actor_and_say_they_were_anonymous(call):
    response = call.create()

    assert response.status_code == 201
    assert actor_of(only(object_deltas(Author))) == (None, None)
    # What tells them from the system's changes, whose revisions name no user.
    assert Revision.objects.get().metadata == {"user": None, "anonymous": True}


def test_the_systems_changes_name_no_user(db):
    with Context():
        Author.objects.create(name="Ann")
    assert Revision.objects.get().metadata == {}


@pytest.mark.parametrize(
    ("message", "problem"),
    [("x" * 1001, "invalid-commit-message"), ("bell\x07", "invalid-commit-message")],
)
def test_a_bad_commit_message_is_400_and_nothing_is_written(call, message, problem):
    response = call.create(**{"X-Commit-Message": message})

    body = _problem(response, 400, problem)
    assert body["header"] == "X-Commit-Message"
    assert not Author.objects.exists()
    assert history_counts() == (0, 0, 0)


def test_a_commit_message_that_is_not_utf8_is_400(call):
    response = call.create(**{"X-Commit-Message": "Caf\xe9"})  # latin-1 bytes, not UTF-8

    _problem(response, 400, "invalid-commit-message")
    assert not Author.objects.exists()


def test_utf8_commit_messages_are_decoded(call):
    response = call.create(**{"X-Commit-Message": "Ärger".encode().decode("latin-1")})

    assert Revision.objects.get(pk=int(response["X-Revision-Id"])).description == "Ärger"


def test_a_non_member_acting_as_an_organization_gets_403_and_nothing_is_written(call, other_user):
    Organization.objects.create(slug="acme", name="ACME")
    call.login(other_user)

    response = call.create(**{"X-Perform-As-Organization": "acme"})

    _problem(response, 403, "organization-forbidden")
    assert not Author.objects.exists()
    assert history_counts() == (0, 0, 0)


def test_a_member_acts_as_the_organization(call, user):
    acme = Organization.objects.create(slug="acme", name="ACME")
    acme.members.add(user)
    call.login(user)

    response = call.create(**{"X-Perform-As-Organization": "acme"})

    assert response.status_code == 201
    assert actor_of(only(object_deltas(Author))) == actor_ref(acme)
    assert Revision.objects.get().metadata["user"] == {"type": "auth.user", "id": str(user.pk)}


def test_an_anonymous_organization_header_is_403(call):
    Organization.objects.create(slug="acme", name="ACME")

    _problem(call.create(**{"X-Perform-As-Organization": "acme"}), 403, "organization-forbidden")
    assert history_counts() == (0, 0, 0)


def test_an_invalid_request_id_is_400(call):
    _problem(call.create(**{"X-Request-ID": "two words"}), 400, "invalid-request-id")
    assert history_counts() == (0, 0, 0)


@override_settings(ROOT_URLCONF=__name__, MIDDLEWARE=MIDDLEWARE)
def test_a_request_that_writes_nothing_names_no_revision():
    response = Client().get("/read/")

    assert response.status_code == 200
    assert "X-Revision-Id" not in response


@override_settings(ROOT_URLCONF=__name__, MIDDLEWARE=MIDDLEWARE)
def test_a_request_whose_write_was_rolled_back_names_no_revision():
    response = Client().get("/rolled-back/")

    assert response.status_code == 200
    assert "X-Revision-Id" not in response
    assert Revision.objects.count() == 0


@override_settings(ROOT_URLCONF=__name__, MIDDLEWARE=MIDDLEWARE)
def test_the_actor_is_read_at_the_first_write_so_drf_token_users_count(user):
    token = Token.objects.create(user=user)

    response = Client().post("/token/", headers={"Authorization": f"Token {token.key}"})

    assert response.status_code == 201
    delta = only(object_deltas(Author))
    assert actor_of(delta) == actor_ref(user)
    assert response["X-Revision-Id"] == str(delta.revision_id)
    # Anonymous when the request arrived, not when it wrote: the user is recorded.
    assert delta.revision.metadata == {"user": {"type": "auth.user", "id": str(user.pk)}}


@override_settings(ROOT_URLCONF=__name__, MIDDLEWARE=MIDDLEWARE)
def test_async_the_actor_is_read_at_the_first_write(user):
    response = async_to_sync(AsyncClient().post)(f"/aauthenticate/?user={user.pk}")

    assert response.status_code == 201
    delta = only(object_deltas(Author))
    assert actor_of(delta) == actor_ref(user)
    assert response["X-Revision-Id"] == str(delta.revision_id)
    assert delta.revision.metadata == {"user": {"type": "auth.user", "id": str(user.pk)}}
