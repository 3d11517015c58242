"""Context.capture() / Context.restore(): a context carried to another thread or a task."""

from __future__ import annotations

import json
import threading

import pytest
from django.db import connection

from revy import Context
from revy.contrib.django.revisions import update_revision_metadata
from tests.conftest import count_queries
from tests.factories import make_author, only
from tests.history_models import ObjectDelta, Revision
from tests.testapp.models import Author, Organization


def roundtrip(token: dict) -> dict:
    """What a task queue hands the worker: the token through JSON."""
    return json.loads(json.dumps(token))


def in_thread(function, *args):
    """Run `function` in a new thread (its own connection and context); re-raise its error."""
    errors: list[BaseException] = []

    def run():
        try:
            function(*args)
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


@pytest.mark.django_db
def test_the_token_is_small_json_naming_actor_revision_descriptions_and_metadata(user):
    with Context(actor=user, revision_description="Import", object_delta_description="row"):
        update_revision_metadata({"request_id": "r-7"})
        make_author()
        token = Context.capture()
    revision = only(Revision.objects.all())
    assert roundtrip(token) == token
    assert token == {
        "revy": 1,
        "revision_description": "Import",
        "object_delta_description": "row",
        "actor": {"type": "auth.user", "id": str(user.pk)},
        "revisions": {"default": revision.pk},
        "metadata": {"request_id": "r-7"},
    }
    assert len(json.dumps(token)) < 300


@pytest.mark.django_db
def test_outside_any_context_the_token_is_empty_and_restores_a_plain_context():
    token = Context.capture()
    assert token == {"revy": 1}
    with Context.restore(token):
        assert Context.is_enabled() and Context.get_actor() is None


@pytest.mark.django_db
def test_capturing_writes_nothing_and_creates_no_lazy_revision(user):
    def factory():
        raise AssertionError("capture() must not create the revision")

    with Context(actor=user, revision=factory), count_queries() as queries:
        token = Context.capture()
    assert "revisions" not in token
    assert len(queries) == 0


@pytest.mark.django_db(transaction=True)
def test_a_thread_continues_the_revision_with_the_right_actor(user):
    with Context(actor=user, revision_description="Import"):
        make_author(name="in the request")
        token = roundtrip(Context.capture())
    revision = only(Revision.objects.all())

    def task():
        assert Context.get_actor() is None  # nothing leaks from the other thread
        with Context.restore(token):
            assert Context.get_actor() == user
            make_author(name="in the task")

    in_thread(task)
    request, background = ObjectDelta.objects.order_by("id")
    assert background.revision_id == revision.pk == request.revision_id
    assert (background.actor_type_id, background.actor_id) == (
        request.actor_type_id,
        str(user.pk),
    )


@pytest.mark.django_db(transaction=True)
def test_a_revision_gone_since_gives_a_new_one_with_the_captured_metadata(user):
    with Context(actor=user, revision_description="Import"):
        update_revision_metadata({"request_id": "r-9"})
        make_author()
        token = roundtrip(Context.capture())
    Revision.objects.all().delete()

    def task():
        with Context.restore(token):
            make_author()

    in_thread(task)
    revision = only(Revision.objects.all())
    assert revision.pk != token["revisions"]["default"]
    assert (revision.description, revision.metadata) == ("Import", {"request_id": "r-9"})
    assert only(ObjectDelta.objects.all()).actor_id == str(user.pk)


@pytest.mark.django_db(transaction=True)
def test_an_actor_deleted_since_is_still_recorded_by_reference(user):
    organization = Organization.objects.create(slug="acme", name="ACME")
    with Context(actor=organization):
        token = roundtrip(Context.capture())
    pk = organization.pk
    organization.delete()

    in_thread(lambda: Context.restore(token)(make_author)())
    delta = only(ObjectDelta.objects.filter(action="Create", event_type="testapp.author.created"))
    assert delta.actor_id == str(pk)


@pytest.mark.django_db
def test_the_system_as_actor_and_a_disabled_block_are_carried(user):
    with Context(actor=user), Context.via_actor(None), Context.as_disabled():
        token = roundtrip(Context.capture())
    assert token["actor"] is None and token["enabled"] is False
    with Context.restore(token):
        assert Context.get_actor() is None and Context.is_disabled()
        make_author()
    assert not ObjectDelta.objects.exists()


@pytest.mark.django_db
def test_a_restored_context_decorates_a_function_each_call_its_own_block(user):
    with Context(actor=user):
        token = Context.capture()

    @Context.restore(token)
    def task(name):
        return make_author(name=name)

    task("one")
    task("two")
    assert Revision.objects.count() == 2
    assert {d.actor_id for d in ObjectDelta.objects.all()} == {str(user.pk)}


@pytest.mark.parametrize(
    "token, message",
    [
        ({}, "Not a context token"),
        ({"revy": 2}, "Not a context token"),
        ("revy", "Not a context token"),
        ({"revy": 1, "user": 5}, "Unknown keys"),
        ({"revy": 1, "revision_description": 5}, "must be text"),
        ({"revy": 1, "enabled": "yes"}, "true or false"),
        ({"revy": 1, "actor": {"type": "nope.model", "id": "1"}}, "no installed model"),
        ({"revy": 1, "actor": {"type": "auth.user", "id": "x"}}, "not a primary key"),
        ({"revy": 1, "actor": "auth.user:5"}, "actor must be"),
        ({"revy": 1, "revisions": {"default": "5"}}, "revisions must map"),
        ({"revy": 1, "metadata": [1]}, "metadata must be"),
    ],
)
@pytest.mark.django_db
def test_a_token_capture_did_not_write_is_refused(token, message):
    with pytest.raises(ValueError, match=message):
        Context.restore(token)


# The Celery recipe of the README, in Celery's eager mode ---------------------------------------


@pytest.fixture
def celery_app():
    celery = pytest.importorskip("celery")
    app = celery.Celery("revy-tests", set_as_current=False)
    app.conf.update(task_always_eager=True, task_eager_propagates=True, task_serializer="json")
    return app


@pytest.mark.django_db(transaction=True)
def test_the_celery_recipe_records_the_task_in_the_request_revision(celery_app, user):
    @celery_app.task
    def rename(token, author_id, name):
        with Context.restore(token):
            author = Author.objects.get(pk=author_id)
            author.name = name
            author.save()

    with Context(actor=user, revision_description="Rename"):
        author = make_author(name="Ann")
        token = Context.capture()
    # As transaction.on_commit() queues it, after the request's block.
    rename.delay(roundtrip(token), author.pk, "Anne").get()

    created, renamed = ObjectDelta.objects.order_by("id")
    assert renamed.action == "Update" and renamed.revision_id == created.revision_id
    assert renamed.actor_id == str(user.pk)
    assert Author.objects.get(pk=author.pk).name == "Anne"
