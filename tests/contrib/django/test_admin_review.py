# ruff: noqa: F811 (the shared admin fixtures are imported, then requested by name)
"""The admin pages a reviewer works with: a revision and its revert, restore and recovery
previews, the deleted objects of a model, change messages kept as descriptions."""

from __future__ import annotations

import pytest
from django.contrib import messages
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from revy import Context
from revy.contrib.django.admin import RevisionAdmin
from tests.contrib.django.test_admin import (  # noqa: F401 (fixtures)
    admin_url,
    registered_admins,
    restore_url,
    staff,
    superuser_client,
)
from tests.factories import history_counts, make_author, make_book, object_deltas
from tests.history_models import ObjectDelta, Revision
from tests.testapp.models import Author, Book, Car, Cylinder, Engine

pytestmark = pytest.mark.django_db

# Session, user, the revision (with its visible delta count), its deltas, their actors, their
# attribute deltas, those's actors, the rows they name (one query per model), the revision's
# actors.
REVISION_PAGE_QUERIES = 9
# Session, user, the revision, its change deltas and their attribute deltas, the rows (one
# query per model), then `find_conflicts`: the revision's deltas and attribute deltas again,
# and the later object and attribute deltas of those rows.
REVERT_PREVIEW_QUERIES = 10
# Session, user, the object (absent) and its last recorded state (the admin's lookups), the
# version, its state, the row again; `cascade_of`: the deletion, the rows deleted with it, and
# per model taken along (2) the later deltas and the rows that exist; one query per related
# model named in the diffs (2).
RECOVERY_PREVIEW_QUERIES = 16
# Session, user, the deletions (one query, with their last state and revision).
DELETED_PAGE_QUERIES = 3


def revision_url(revision) -> str:
    return reverse(admin_url(Revision, "change"), args=[revision.pk])


def revert_url(revision) -> str:
    return reverse(admin_url(Revision, "revy_revert"), args=[revision.pk])


def deleted_url(model) -> str:
    return reverse(admin_url(model, "revy_deleted"))


def csrf(client, url: str) -> dict[str, str]:
    """The form field a POST needs, from the cookie a GET of `url` set."""
    return {"csrfmiddlewaretoken": client.get(url).cookies["csrftoken"].value}


def revision_staff(*permissions: str):
    """Staff who may open revision pages, with `permissions` (codenames of the test app)."""
    codename = f"{Revision._meta.app_label}.view_{Revision._meta.model_name}"
    return staff(codename, *(f"testapp.{name}" for name in permissions))


def _retitle(books, title_prefix: str, description: str = "Retitle"):
    with Context(revision_description=description):
        for number, book in enumerate(books):
            book.title = f"{title_prefix} {number}"
            book.save()
    return ObjectDelta.objects.filter(content_id=str(books[0].pk)).latest("id").revision


@pytest.fixture
def books():
    with Context():
        author = make_author(name="Ann")
        return [make_book(author=author, title=f"Book {number}") for number in range(3)]


# The revision page -------------------------------------------------------------------------


def test_the_revision_page_lists_its_changes_objects_diffs_actors_and_description(
    superuser_client, books
):
    user, client = superuser_client
    with Context(actor=user, revision_description="Retitle the series"):
        for book in books[:2]:
            book.title = book.title.upper()
            book.save()
    revision = ObjectDelta.objects.latest("id").revision

    page = client.get(revision_url(revision))

    assert page.status_code == 200
    text = page.content.decode()
    assert "Retitle the series" in text
    assert text.count('class="revy-delta"') == 2
    assert "<del>Book 0</del>" in text and "<ins>BOOK 0</ins>" in text
    assert "book: BOOK 1" in text
    assert reverse("admin:testapp_book_history", args=[books[0].pk]) in text
    assert '<dd class="revy-actors">root</dd>' in text
    assert f'href="{revert_url(revision)}"' in text


def _revision_page_queries(client, count: int) -> int:
    author = make_author(name=f"Author of {count}")
    books = [make_book(author=author, title=f"Book {number}") for number in range(count)]
    revision = _retitle(books, f"Set of {count}")
    client.get(revision_url(revision))
    with CaptureQueriesContext(connection) as queries:
        assert client.get(revision_url(revision)).status_code == 200
    return len(queries)


def test_the_revision_page_needs_the_same_queries_for_1_and_5_changes(superuser_client):
    _, client = superuser_client
    assert _revision_page_queries(client, 1) == _revision_page_queries(client, 5)
    assert _revision_page_queries(client, 5) == REVISION_PAGE_QUERIES


def test_the_revision_page_shows_only_the_changes_the_viewer_may_see(books):
    _, client = revision_staff("view_book")
    with Context(revision_description="Mixed"):
        books[0].title = "Seen"
        books[0].save()
        make_author(name="Hidden author")
    revision = ObjectDelta.objects.latest("id").revision

    text = client.get(revision_url(revision)).content.decode()

    assert "<ins>Seen</ins>" in text and "Hidden author" not in text
    assert "1 more change is not listed." in text


def test_the_revision_page_pages_through_its_changes_oldest_first(superuser_client, monkeypatch):
    _, client = superuser_client
    monkeypatch.setattr(RevisionAdmin, "revision_page_size", 2)
    with Context():
        author = make_author(name="Ann")
        for number in range(4):
            make_book(author=author, title=f"Book {number}")
    revision = ObjectDelta.objects.latest("id").revision
    expected = [
        str(pk) for pk in revision.object_deltas.order_by("id").values_list("pk", flat=True)
    ]

    pages = _older_pages(client, revision_url(revision), "revy-delta", link="revy-later")

    assert len(expected) == 5
    assert [len(page) for page in pages] == [2, 2, 1]
    assert [pk for page in pages for pk in page] == expected
    text = client.get(revision_url(revision)).content.decode()
    assert "not listed" not in text  # the other pages' changes are not hidden ones


@pytest.mark.parametrize("after", ["x", "-1", "9" * 20])
def test_a_bad_page_key_of_the_revision_page_is_a_400(superuser_client, after):
    _, client = superuser_client
    with Context():
        make_author(name="Ann")
    revision = ObjectDelta.objects.latest("id").revision
    assert client.get(revision_url(revision), {"after": after}).status_code == 400


def test_a_revision_without_visible_changes_is_not_found(books):
    _, client = revision_staff("view_book")
    with Context():
        make_author(name="Hidden author")
    revision = ObjectDelta.objects.latest("id").revision
    assert client.get(revision_url(revision)).status_code == 404
    assert client.get(revert_url(revision)).status_code == 404
    assert client.get(revision_url(revision).replace(str(revision.pk), "abc")).status_code == 404


# Reverting a revision: preview, then confirm -----------------------------------------------


def test_the_revert_preview_lists_every_change_and_writes_nothing(superuser_client, books):
    _, client = superuser_client
    with Context(revision_description="Everything at once"):
        books[0].title = "Changed"
        books[0].save()
        make_book(author=books[0].author, title="Created")
        Book.objects.get(pk=books[1].pk).delete()
    revision = ObjectDelta.objects.latest("id").revision
    before = history_counts()

    page = client.get(revert_url(revision))

    assert page.status_code == 200
    text = page.content.decode()
    assert text.count('class="revy-write revy-write-change"') == 1
    assert "<del>Changed</del>" in text and "<ins>Book 0</ins>" in text
    assert text.count('class="revy-write revy-write-delete"') == 1
    assert "book: Created" in text
    assert text.count('class="revy-write revy-write-add"') == 1
    assert "<ins>Book 1</ins>" in text
    assert "revy-conflict" not in text
    assert 'class="button default revy-confirm-revert"' in text
    assert history_counts() == before
    assert Book.objects.filter(title="Created").exists()


def test_the_revert_preview_shows_what_a_deletion_takes_along(superuser_client):
    _, client = superuser_client
    with Context(revision_description="Build"):
        car = Car.objects.create(manufacturer="Saab")
        engine = Engine.objects.create(car=car)
        Cylinder.objects.create(engine=engine, volume=500)
    revision = ObjectDelta.objects.latest("id").revision

    text = client.get(revert_url(revision)).content.decode()

    # The revert deletes the three rows; the car's deletion cascades to the others.
    assert text.count('class="revy-write revy-write-delete"') == 3
    assert '<ul class="revy-effects"><li>Delete engine:' in text


def test_confirming_a_revert_is_a_csrf_checked_post_recorded_as_the_users_revision(
    superuser_client, books
):
    user, client = superuser_client
    revision = _retitle(books, "Wrong")

    refused = client.post(revert_url(revision))  # no CSRF token
    assert refused.status_code == 403
    assert Book.objects.filter(title__startswith="Wrong").count() == 3

    response = client.post(revert_url(revision), csrf(client, revert_url(revision)), follow=True)

    assert sorted(Book.objects.values_list("title", flat=True)) == ["Book 0", "Book 1", "Book 2"]
    undo = ObjectDelta.objects.latest("id").revision
    assert undo.pk != revision.pk
    assert undo.description == f"Reverted revision {revision.pk} from the admin."
    assert list(undo.get_actors()) == [user]
    assert response.redirect_chain[-1][0] == revision_url(undo)
    shown = [str(message) for message in response.context["messages"]]
    assert shown == [f"Revision {revision.pk} was reverted, recorded as revision {undo.pk}."]


def test_the_preview_shows_conflicts_and_confirming_overwrites_only_those(superuser_client, books):
    _, client = superuser_client
    revision = _retitle(books[:1], "Wrong")
    with Context(revision_description="Later"):
        books[0].title = "Later"
        books[0].save()

    text = client.get(revert_url(revision)).content.decode()
    assert text.count('class="revy-conflict"') == 1
    assert "<ins>Later</ins>" in text
    assert 'name="force" value="1"' in text
    form = csrf(client, revert_url(revision))
    keys = text.split('name="conflicts" value="')[1].split('"')[0]

    # A change made after the preview is not overwritten: the page is shown again.
    with Context(revision_description="Even later"):
        books[0].title = "Even later"
        books[0].save()
    before = history_counts()
    response = client.post(revert_url(revision), {**form, "force": "1", "conflicts": keys})
    assert response.status_code == 302 and response.url == revert_url(revision)
    assert history_counts() == before
    assert Book.objects.get(pk=books[0].pk).title == "Even later"

    # Without force, a conflict refuses too.
    response = client.post(revert_url(revision), form, follow=True)
    assert {message.level for message in response.context["messages"]} == {messages.ERROR}
    assert history_counts() == before

    text = client.get(revert_url(revision)).content.decode()
    keys = text.split('name="conflicts" value="')[1].split('"')[0]
    client.post(revert_url(revision), {**form, "force": "1", "conflicts": keys})
    assert Book.objects.get(pk=books[0].pk).title == "Book 0"


def test_staff_who_may_not_change_the_rows_see_why_and_get_403_writing_nothing(books):
    _, client = revision_staff("view_book")
    revision = _retitle(books, "Wrong")
    before = history_counts()

    preview = client.get(revert_url(revision))
    response = client.post(revert_url(revision))

    text = preview.content.decode()
    assert preview.status_code == 200
    assert "You may not change testapp.Book" in text
    assert "revy-confirm-revert" not in text
    assert response.status_code == 403
    assert history_counts() == before
    assert Book.objects.filter(title__startswith="Wrong").count() == 3


def test_reverting_a_creation_needs_the_delete_permission_of_each_row(books):
    _, client = revision_staff("view_book", "view_author", "delete_author", "change_book")
    with Context(revision_description="New author"):
        author = make_author(name="New")
        make_book(author=author, title="Their book")
    revision = object_deltas(author)[0].revision
    before = history_counts()

    assert client.post(revert_url(revision)).status_code == 403

    assert history_counts() == before
    assert Author.objects.filter(pk=author.pk).exists()


def _revert_preview_queries(client, count: int) -> int:
    author = make_author(name=f"Author of {count}")
    books = [make_book(author=author, title=f"Book {number}") for number in range(count)]
    revision = _retitle(books, f"Set of {count}")
    client.get(revert_url(revision))
    with CaptureQueriesContext(connection) as queries:
        assert client.get(revert_url(revision)).status_code == 200
    return len(queries)


def test_the_revert_preview_needs_the_same_queries_for_1_and_5_changes(superuser_client):
    _, client = superuser_client
    assert _revert_preview_queries(client, 1) == _revert_preview_queries(client, 5)
    assert _revert_preview_queries(client, 5) == REVERT_PREVIEW_QUERIES


# Restoring a version and recovering a deleted object, after a preview -----------------------


def _scrapped_car(cylinders: int):
    with Context(revision_description="Build"):
        car = Car.objects.create(manufacturer="Trabant")
        engine = Engine.objects.create(car=car, num_cylinders=cylinders)
        for volume in range(cylinders):
            Cylinder.objects.create(engine=engine, volume=300 + volume)
    pk = car.pk
    with Context(revision_description="Scrap"):
        car.delete()
    return pk, object_deltas(Car, pk)[-1]


def car_restore_url(pk, delta) -> str:
    return reverse("admin:testapp_car_revy_restore", args=[pk, delta.pk])


def test_recovering_a_deleted_car_previews_then_recreates_its_engine_and_cylinders(
    superuser_client,
):
    _, client = superuser_client
    pk, deletion = _scrapped_car(2)
    before = history_counts()

    preview = client.get(car_restore_url(pk, deletion))

    text = preview.content.decode()
    assert preview.status_code == 200
    assert text.count('class="revy-write revy-write-add"') == 4
    assert "Confirm: recover it with the 3 rows its deletion took along" in text
    assert history_counts() == before
    assert not Car.objects.filter(pk=pk).exists()

    url = car_restore_url(pk, deletion)
    response = client.post(url, {**csrf(client, url), "cascade": "1"}, follow=True)

    car = Car.objects.get(pk=pk)
    assert car.engine.cylinders.count() == 2
    shown = [str(message) for message in response.context["messages"]]
    assert shown == [
        "The object was recovered with 3 rows its deletion took along, recorded as a new revision."
    ]


def test_recovering_without_cascade_recreates_the_object_alone(superuser_client):
    _, client = superuser_client
    pk, deletion = _scrapped_car(2)

    text = client.get(car_restore_url(pk, deletion) + "?cascade=0").content.decode()
    assert text.count("revy-write-add") == 1
    client.post(car_restore_url(pk, deletion), csrf(client, car_restore_url(pk, deletion)))

    assert Car.objects.filter(pk=pk).exists() and not Engine.objects.filter(car_id=pk).exists()


def _restore_preview_queries(client, cylinders: int) -> int:
    pk, deletion = _scrapped_car(cylinders)
    client.get(car_restore_url(pk, deletion))
    with CaptureQueriesContext(connection) as queries:
        assert client.get(car_restore_url(pk, deletion)).status_code == 200
    return len(queries)


def test_the_recovery_preview_needs_the_same_queries_for_1_and_4_cylinders(superuser_client):
    _, client = superuser_client
    one, four = _restore_preview_queries(client, 1), _restore_preview_queries(client, 4)
    assert one == four == RECOVERY_PREVIEW_QUERIES


def test_the_restore_preview_of_the_current_version_says_nothing_would_change(
    superuser_client, books
):
    _, client = superuser_client
    text = client.get(restore_url(books[0], object_deltas(books[0])[-1])).content.decode()
    assert "restoring it would change nothing" in text
    assert "revy-confirm-restore" not in text


def test_view_only_staff_get_403_for_a_restore_preview(books):
    _, client = staff("testapp.view_book")
    assert client.get(restore_url(books[0], object_deltas(books[0])[0])).status_code == 403


def test_recovery_is_refused_when_the_cascade_needs_a_permission_the_user_lacks():
    _, client = staff("testapp.view_car", "testapp.add_car")
    pk, deletion = _scrapped_car(1)
    before = history_counts()

    text = client.get(car_restore_url(pk, deletion)).content.decode()
    response = client.post(car_restore_url(pk, deletion), {"cascade": "1"})

    assert "You may not touch 1 row you may not see" in text
    assert "num cylinders" not in text and "a row you may not see" in text
    assert "revy-confirm-restore" not in text
    assert response.status_code == 403
    assert history_counts() == before
    assert not Car.objects.filter(pk=pk).exists()


# The deleted objects of a model ----------------------------------------------------------------


def test_the_changelist_links_to_the_deleted_objects(superuser_client):
    _, client = superuser_client
    text = client.get(reverse("admin:testapp_car_changelist")).content.decode()
    assert f'href="{deleted_url(Car)}"' in text and "Recover deleted" in text


def test_the_deleted_list_shows_last_state_when_and_by_whom_with_a_recover_link(
    superuser_client,
):
    user, client = superuser_client
    with Context():
        kept = make_book(title="Kept")
        gone = make_book(author=kept.author, title="Gone")
    gone_pk = gone.pk
    with Context(actor=user, revision_description="Clean up"):
        gone.delete()
    deletion = object_deltas(Book, gone_pk)[-1]

    text = client.get(deleted_url(Book)).content.decode()

    assert text.count('class="revy-deleted-row"') == 1
    assert ">Gone</a>" in text and "Clean up" in text and "root" in text
    assert f'href="{restore_url(Book(pk=gone_pk), deletion)}"' in text
    assert "Kept" not in text


def _deleted_page_queries(client, count: int) -> int:
    author = make_author(name=f"Author of {count}")
    for number in range(count):
        book = make_book(author=author, title=f"Deleted {count}.{number}")
        with Context(revision_description=f"Delete {number}"):
            book.delete()
    client.get(deleted_url(Book))
    with CaptureQueriesContext(connection) as queries:
        text = client.get(deleted_url(Book)).content.decode()
    assert text.count(f">Deleted {count}.") == count
    return len(queries)


def test_the_deleted_list_needs_the_same_queries_for_1_and_5_rows(superuser_client):
    _, client = superuser_client
    one = _deleted_page_queries(client, 1)
    Book.objects.all().delete()  # outside a context: not recorded, the list is unchanged
    assert _deleted_page_queries(client, 5) == one == DELETED_PAGE_QUERIES


def _older_pages(client, url: str, row_class: str, link: str = "revy-older") -> list[list[str]]:
    """Follow the next-page links (class `link`) from `url`: the rows' `data-*` keys of each
    page."""
    import re

    pages = []
    while url:
        text = client.get(url).content.decode()
        pages.append(re.findall(rf'class="{row_class}" data-[a-z]+="([^"]+)"', text))
        older = re.search(rf'class="{link}" href="([^"]+)"', text)
        url = url.split("?")[0] + older.group(1).replace("&amp;", "&") if older else None
    return pages


def test_the_deleted_list_pages_through_every_deletion_newest_first(superuser_client, monkeypatch):
    from tests.contrib.django.test_admin import BookAdmin

    _, client = superuser_client
    monkeypatch.setattr(BookAdmin, "history_page_size", 2)
    with Context():
        author = make_author(name="Ann")
        books = [make_book(author=author, title=f"Gone {number}") for number in range(5)]
    for book in books:
        pk = book.pk
        with Context():
            book.delete()
        book.pk = pk

    pages = _older_pages(client, deleted_url(Book), "revy-deleted-row")

    assert pages == [
        [str(books[4].pk), str(books[3].pk)],
        [str(books[2].pk), str(books[1].pk)],
        [str(books[0].pk)],
    ]


@pytest.mark.parametrize("before", ["x", "-1", "1.5", "9" * 20, "\u0661"])
def test_a_bad_page_key_of_the_deleted_list_is_a_400(superuser_client, before):
    _, client = superuser_client
    assert client.get(deleted_url(Book), {"before": before}).status_code == 400


def test_the_deleted_list_without_add_permission_has_no_recover_buttons(books):
    _, client = staff("testapp.view_book")
    with Context():
        Book.objects.get(pk=books[0].pk).delete()
    text = client.get(deleted_url(Book)).content.decode()
    assert "revy-deleted-row" in text and "revy-recover" not in text


def test_staff_without_permissions_cannot_see_deleted_objects():
    _, client = staff()
    assert client.get(deleted_url(Book)).status_code == 403


def test_the_deleted_list_is_scoped_by_get_queryset():
    owner, _ = staff("testapp.view_author")
    _, other = staff("testapp.view_author", "testapp.add_author")
    with Context():
        author = make_author(name="Owned", user=owner)
    with Context():
        author.delete()
    assert "Owned" not in other.get(deleted_url(Author)).content.decode()


# Admin change messages as revision descriptions --------------------------------------------------

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "revy.contrib.django.middleware.RevisionMiddleware",
]


@override_settings(MIDDLEWARE=MIDDLEWARE)
def test_admin_change_messages_are_kept_as_the_revisions_description(superuser_client):
    user, client = superuser_client
    author = make_author(name="Ann")
    add = reverse("admin:testapp_book_add")
    client.post(add, {**csrf(client, add), "author": author.pk, "title": "New", "pages": 1})
    book = Book.objects.get(title="New")
    change = reverse("admin:testapp_book_change", args=[book.pk])
    client.post(change, {**csrf(client, change), "author": author.pk, "title": "Newer", "pages": 1})
    delete = reverse("admin:testapp_book_delete", args=[book.pk])
    client.post(delete, {**csrf(client, delete), "post": "yes"})

    created, changed, deleted = object_deltas(Book, book.pk)
    assert created.revision.description == "Added."
    assert changed.revision.description == "Changed Title."
    assert deleted.revision.description == "Deleted “Newer”."
    assert {delta.actor for delta in (created, changed, deleted)} == {user}


@override_settings(MIDDLEWARE=MIDDLEWARE)
def test_a_commit_message_wins_over_the_change_message(superuser_client):
    _, client = superuser_client
    book = make_book(title="Old")
    change = reverse("admin:testapp_book_change", args=[book.pk])
    form = {**csrf(client, change), "author": book.author_id, "title": "New", "pages": 1}
    client.post(change, form, headers={"X-Commit-Message": "Fix the typo"})
    assert object_deltas(book)[-1].revision.description == "Fix the typo"


def test_permissions_of_the_revision_pages_are_the_revision_admins():
    _, client = staff("testapp.view_book", "testapp.change_book")
    with Context():
        make_book()
    revision = Revision.objects.latest("id")
    assert client.get(revision_url(revision)).status_code == 403
    assert Permission.objects.filter(codename=f"view_{Revision._meta.model_name}").exists()


# Rows whose name needs a row deleted with them (the demo's engines name their car) -----------


@pytest.fixture
def scrapped_demo_car():
    from example.garage.models import Car as DemoCar
    from example.garage.models import Cylinder as DemoCylinder
    from example.garage.models import Engine as DemoEngine

    with Context(revision_description="Build"):
        car = DemoCar.objects.create(manufacturer="Trabant", model="601")
        engine = DemoEngine.objects.create(car=car, num_cylinders=2)
        for position in (1, 2):
            DemoCylinder.objects.create(engine=engine, position=position)
    pk = car.pk
    with Context(revision_description="Scrap"):
        car.delete()
    return pk, object_deltas(DemoCar, pk)[-1]


@pytest.mark.urls("example.project.urls")
def test_pages_name_deleted_rows_whose_name_needs_a_row_deleted_with_them(
    superuser_client, scrapped_demo_car
):
    _, client = superuser_client
    pk, deletion = scrapped_demo_car

    recover = client.get(f"/admin/garage/car/{pk}/history/restore/{deletion.pk}/")
    revision = client.get(revision_url(deletion.revision))
    revert = client.get(revert_url(deletion.revision))
    engines = client.get("/admin/garage/engine/revy-deleted/")

    assert recover.status_code == revision.status_code == revert.status_code == 200
    # Re-created together: the engine is named after the car re-created with it.
    assert "engine: Engine of Trabant 601" in recover.content.decode()
    assert "Cylinder 2 of Engine of Trabant 601" in recover.content.decode()
    # The engine's car, about to be re-created, is named too (not by its id).
    assert '<code title="car_id">car</code>' in recover.content.decode()
    assert "<ins>Trabant 601</ins>" in recover.content.decode()
    assert "Restore Trabant 601?" in recover.content.decode()
    assert "engine #" in revision.content.decode()
    assert "Engine of Trabant 601" in revert.content.decode()
    assert engines.status_code == 200 and "engine #" in engines.content.decode()
