"""The history admins and HistoryAdminMixin, through the admin's real views."""

from __future__ import annotations

import pytest
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from revy import Context
from revy.contrib.django.access import VisibilityPolicy
from revy.contrib.django.admin import HistoryAdminMixin
from tests.factories import history_counts, make_author, make_book, object_deltas
from tests.history_models import ObjectDelta, Revision
from tests.testapp.models import Author, Book, Car, Cylinder, Engine

pytestmark = pytest.mark.django_db

# The history page: session, user, the object, its deltas, their actors, their attribute
# deltas, those's actors, and one query per related model named in the diffs.
HISTORY_PAGE_QUERIES = 8


def admin_url(model, view: str) -> str:
    opts = model._meta
    return f"admin:{opts.app_label}_{opts.model_name}_{view}"


class BookAdmin(HistoryAdminMixin, admin.ModelAdmin):
    pass


class CarAdmin(HistoryAdminMixin, admin.ModelAdmin):
    pass


class OwnAuthorAdmin(HistoryAdminMixin, admin.ModelAdmin):
    """Staff see the authors linked to them only."""

    def get_queryset(self, request):
        return super().get_queryset(request).filter(user=request.user)


def _reload_urls() -> None:
    """The admin's URLs are built when the URLconf is imported: build them again."""
    import importlib
    import sys

    from django.conf import settings
    from django.urls import clear_url_caches

    if settings.ROOT_URLCONF in sys.modules:  # imported by an earlier test of this process
        importlib.reload(sys.modules[settings.ROOT_URLCONF])
    clear_url_caches()


@pytest.fixture(autouse=True)
def registered_admins():
    """Register the test ModelAdmins on the default site for the duration of a test."""
    admin.site.register(Book, BookAdmin)
    admin.site.register(Car, CarAdmin)
    admin.site.register(Author, OwnAuthorAdmin)
    _reload_urls()
    yield
    admin.site.unregister(Book)
    admin.site.unregister(Car)
    admin.site.unregister(Author)
    _reload_urls()


def staff(*permissions: str):
    user = get_user_model().objects.create_user(
        f"staff{len(permissions)}", password="pw", is_staff=True
    )
    for codename in permissions:
        app_label, _, codename = codename.rpartition(".")  # "app.codename" when ambiguous
        found = Permission.objects.filter(codename=codename)
        found = found.filter(content_type__app_label=app_label) if app_label else found
        user.user_permissions.add(found.get())
    client = Client()
    client.force_login(user)
    return user, client


@pytest.fixture
def superuser_client():
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return user, client


@pytest.fixture
def book():
    with Context(revision_description="Created"):
        created = Book.objects.create(author=make_author(), title="First", pages=10)
    with Context(revision_description="Retitled"):
        created.title = "Second"
        created.save()
    return created


def history_url(obj) -> str:
    return reverse("admin:testapp_book_history", args=[obj.pk])


def restore_url(obj, delta) -> str:
    return reverse("admin:testapp_book_revy_restore", args=[obj.pk, delta.pk])


def test_history_page_shows_each_change_with_its_diff(superuser_client, book):
    _, client = superuser_client
    response = client.get(history_url(book))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Retitled" in page and "Created" in page
    assert "<del>First</del>" in page and "<ins>Second</ins>" in page
    assert page.count('class="button revy-restore"') == 2


def test_restoring_a_version_is_a_post_recorded_as_the_users_revision(superuser_client, book):
    user, client = superuser_client
    created = object_deltas(book)[0]
    page = client.get(history_url(book))
    token = page.cookies["csrftoken"].value

    response = client.post(restore_url(book, created), {"csrfmiddlewaretoken": token})

    assert response.status_code == 302 and response.url == history_url(book)
    book.refresh_from_db()
    assert book.title == "First"
    last = object_deltas(book)[-1]
    assert last.action == "Update" and last.actor == user
    assert last.revision.description.startswith("Restored the version of")


def test_restore_without_a_csrf_token_is_refused(superuser_client, book):
    _, client = superuser_client
    response = client.post(restore_url(book, object_deltas(book)[0]))
    assert response.status_code == 403
    book.refresh_from_db()
    assert book.title == "Second"


def test_restore_by_get_shows_the_diff_between_now_and_that_version_and_writes_nothing(
    superuser_client, book
):
    _, client = superuser_client
    before = history_counts()

    response = client.get(restore_url(book, object_deltas(book)[0]))

    assert response.status_code == 200
    page = response.content.decode()
    assert "<del>Second</del>" in page and "<ins>First</ins>" in page
    assert 'class="button default revy-confirm-restore"' in page
    assert f'action="{restore_url(book, object_deltas(book)[0])}"' in page
    assert history_counts() == before
    book.refresh_from_db()
    assert book.title == "Second"


def test_view_only_staff_sees_history_without_restore_buttons_and_cannot_restore(book):
    _, client = staff("view_book")
    response = client.get(history_url(book))
    assert response.status_code == 200
    assert "revy-restore" not in response.content.decode()
    assert client.post(restore_url(book, object_deltas(book)[0])).status_code == 403
    book.refresh_from_db()
    assert book.title == "Second"


def test_staff_without_permissions_cannot_see_history(book):
    _, client = staff()
    assert client.get(history_url(book)).status_code == 403


def test_the_history_page_pages_through_every_change_newest_first(
    superuser_client, book, monkeypatch
):
    from tests.contrib.django.test_admin_review import _older_pages

    _, client = superuser_client
    monkeypatch.setattr(BookAdmin, "history_page_size", 2)
    for number in range(4):
        with Context():
            book.title = f"Title {number}"
            book.save()
    from revy.contrib.django.history import history_of

    expected = [str(pk) for pk in history_of(book, aggregates=True).values_list("pk", flat=True)]

    pages = _older_pages(client, reverse(admin_url(Book, "history"), args=[book.pk]), "revy-delta")

    assert len(expected) >= 5  # the book's create and four updates, at least
    assert all(len(page) == 2 for page in pages[:-1]) and 1 <= len(pages[-1]) <= 2
    assert [pk for page in pages for pk in page] == expected


def test_a_deleted_object_keeps_its_history_page_and_can_be_restored(superuser_client, book):
    _, client = superuser_client
    with Context():
        Book.objects.get(pk=book.pk).delete()
    deletion = object_deltas(book)[-1]
    page = client.get(history_url(book))
    assert page.status_code == 200
    assert "This object has been deleted" in page.content.decode()

    client.post(
        restore_url(book, deletion), {"csrfmiddlewaretoken": page.cookies["csrftoken"].value}
    )
    assert Book.objects.get(pk=book.pk).title == "Second"
    assert object_deltas(book)[-1].action == "Create"


def test_a_delta_of_another_object_cannot_be_restored_through_this_page(superuser_client, book):
    _, client = superuser_client
    other = Book.objects.create(author=book.author, title="Other")
    with Context():
        other.title = "Other 2"
        other.save()
    page = client.get(history_url(book))
    response = client.post(
        restore_url(book, object_deltas(other)[-1]),
        {"csrfmiddlewaretoken": page.cookies["csrftoken"].value},
    )
    assert response.status_code == 404


def test_history_page_includes_the_changes_of_aggregated_objects(superuser_client):
    _, client = superuser_client
    with Context():
        car = Car.objects.create(manufacturer="Volvo")
        engine = Engine.objects.create(car=car)
        cylinder = Cylinder.objects.create(engine=engine, volume=400)
    with Context():
        cylinder.volume = 420
        cylinder.save()
    page = client.get(reverse("admin:testapp_car_history", args=[car.pk])).content.decode()
    assert "testapp.cylinder.updated" in page
    assert "<ins>420</ins>" in page
    # Only the car's own versions can be restored from its page.
    assert page.count("revy-restore") == 1


def test_revision_and_delta_admins_are_read_only_lists_with_filters(superuser_client, book):
    _, client = superuser_client
    revision = Revision.objects.order_by("id").first()
    delta = ObjectDelta.objects.order_by("id").first()

    changelist = client.get(reverse(admin_url(ObjectDelta, "changelist")) + "?action__exact=Update")
    assert changelist.status_code == 200
    assert "testapp.book.updated" in changelist.content.decode()
    assert client.get(reverse(admin_url(Revision, "changelist")) + "?q=Retitled").status_code == 200
    assert client.get(reverse(admin_url(Revision, "change"), args=[revision.pk])).status_code == 200
    detail = client.get(reverse(admin_url(ObjectDelta, "change"), args=[delta.pk]))
    assert detail.status_code == 200
    assert "Save" not in detail.content.decode().split("submit-row")[-1][:200]
    assert client.get(reverse(admin_url(ObjectDelta, "add"))).status_code == 403
    assert client.get(reverse(admin_url(Revision, "delete"), args=[revision.pk])).status_code == 403


# Access: the ModelAdmin's queryset and the visibility policy ---------------------------------


def _author_urls(pk, delta):
    return (
        reverse("admin:testapp_author_history", args=[pk]),
        reverse("admin:testapp_author_revy_restore", args=[pk, delta.pk]),
    )


def _author_staff(name):
    user = get_user_model().objects.create_user(name, password="pw", is_staff=True)
    for codename in ("view_author", "change_author", "add_author"):
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label="testapp", codename=codename)
        )
    client = Client()
    client.force_login(user)
    return user, client


def test_a_row_hidden_by_get_queryset_is_not_treated_as_deleted():
    owner, _ = _author_staff("owner")
    _, other = _author_staff("other")
    with Context():
        author = make_author(name="Ann", user=owner)
    with Context():
        author.name = "Bea"
        author.save()
    history_page, restore = _author_urls(author.pk, object_deltas(author)[0])
    before = history_counts()

    assert other.get(history_page).status_code == 404
    assert other.post(restore).status_code == 404
    assert history_counts() == before
    assert Author.objects.get(pk=author.pk).name == "Bea"


def test_a_deleted_row_is_scoped_by_get_queryset_on_its_last_state():
    owner, mine = _author_staff("owner")
    _, other = _author_staff("other")
    with Context():
        author = make_author(name="Ann", user=owner)
    pk = author.pk
    with Context():
        author.delete()
    history_page, restore = _author_urls(pk, object_deltas(Author, pk)[-1])

    assert other.get(history_page).status_code == 404
    assert other.post(restore).status_code == 404
    assert not Author.objects.filter(pk=pk).exists()
    page = mine.get(history_page)
    assert page.status_code == 200 and "revy-restore" in page.content.decode()
    assert mine.post(restore).status_code == 302
    assert Author.objects.get(pk=pk).name == "Ann"


def test_non_integer_ids_are_not_found():
    _, client = _author_staff("owner")
    assert client.get(reverse("admin:testapp_author_history", args=["abc"])).status_code == 404


class ReadOnlyBooksPolicy(VisibilityPolicy):
    """Books' history may be read, never restored; titles starting with "X" are secret."""

    def can_view_object(self, user, model, pk, obj=None):
        if model is Book and obj is not None and obj.title.startswith("X"):
            return False
        return super().can_view_object(user, model, pk, obj)

    def can_restore_object(self, user, model, pk, *, action, obj=None):
        return model is not Book and super().can_restore_object(
            user, model, pk, action=action, obj=obj
        )


POLICY = {"VISIBILITY_POLICY": f"{__name__}.ReadOnlyBooksPolicy"}


def test_the_policy_decides_the_page_and_the_restore(superuser_client, book):
    _, client = superuser_client
    page = client.get(history_url(book))
    token = page.cookies["csrftoken"].value
    before = history_counts()

    with override_settings(REVY_API=POLICY):
        shown = client.get(history_url(book))
        refused = client.post(
            restore_url(book, object_deltas(book)[0]), {"csrfmiddlewaretoken": token}
        )
        Book.objects.filter(pk=book.pk).update(title="X-files")
        hidden = client.get(history_url(book))

    assert shown.status_code == 200 and "revy-restore" not in shown.content.decode()
    assert refused.status_code == 403
    assert hidden.status_code == 403
    assert history_counts() == before


def _car_with_resized_engine():
    """A car whose engine went from 6 to 8 cylinders (a change in the car's history)."""
    with Context():
        car = Car.objects.create(manufacturer="Volvo")
        engine = Engine.objects.create(car=car, num_cylinders=6)
    with Context():
        engine.num_cylinders = 8
        engine.save()
    return car


def test_the_page_shows_only_the_aggregated_changes_the_viewer_may_see():
    _, client = staff("testapp.view_car")
    car = _car_with_resized_engine()
    url = reverse("admin:testapp_car_history", args=[car.pk])

    page = client.get(url).content.decode()

    assert "testapp.car.created" in page
    # (Not "<ins>8</ins>": on PostgreSQL the car itself may get id 8.)
    assert "testapp.engine" not in page and 'title="num_cylinders"' not in page


def test_the_delta_and_revision_admins_list_only_what_the_policy_shows(book):
    _, client = staff(
        f"view_{ObjectDelta._meta.model_name}", f"view_{Revision._meta.model_name}", "view_book"
    )
    with Context(revision_description="Secret author"):
        make_author(name="Hidden")

    deltas = client.get(reverse(admin_url(ObjectDelta, "changelist"))).content.decode()
    revisions = client.get(reverse(admin_url(Revision, "changelist"))).content.decode()

    assert "testapp.book.created" in deltas and "testapp.author" not in deltas
    assert "Retitled" in revisions and "Secret author" not in revisions
    author_delta = object_deltas(Author)[-1]
    detail = client.get(reverse(admin_url(ObjectDelta, "change"), args=[author_delta.pk]))
    assert detail.status_code == 302  # the admin's answer for an object it does not find


# Restoring the current version; labels and related names in diffs ---------------------------


def test_restoring_the_current_version_says_so_and_records_nothing(superuser_client, book):
    _, client = superuser_client
    current = object_deltas(book)[-1]
    token = client.get(history_url(book)).cookies["csrftoken"].value
    before = history_counts()

    response = client.post(restore_url(book, current), {"csrfmiddlewaretoken": token}, follow=True)

    assert response.redirect_chain == [(history_url(book), 302)]
    shown = [(message.level, str(message)) for message in response.context["messages"]]
    assert shown == [(messages.INFO, "The object already is in this state: nothing was restored.")]
    assert history_counts() == before
    book.refresh_from_db()
    assert book.title == "Second"


def _retitle_author(book, names, actor=None):
    """Point `book` at a new author per name, one revision each; return the authors."""
    authors = []
    for name in names:
        with Context(actor=actor):
            book.author = make_author(name=name)
            book.save()
        authors.append(book.author)
    return authors


def test_diffs_show_field_labels_and_related_objects_names(superuser_client, book):
    _, client = superuser_client
    first_author = book.author
    _, gone = _retitle_author(book, ["Ann", "Gone"])
    _retitle_author(book, ["Bea"])
    gone_pk = gone.pk
    with Context():
        gone.delete()  # no book refers to it any more: the diff shows its id

    page = client.get(history_url(book)).content.decode()

    assert ">author_id<" not in page
    assert '<code title="author_id">author</code>' in page
    assert f"<del>{first_author.name}</del>" in page and "<ins>Ann</ins>" in page
    assert f"<del>{gone_pk}</del>" in page and "<ins>Bea</ins>" in page


def test_diffs_of_aggregated_rows_show_their_own_fields_labels(superuser_client):
    _, client = superuser_client
    car = _car_with_resized_engine()

    page = client.get(reverse("admin:testapp_car_history", args=[car.pk])).content.decode()

    assert '<code title="num_cylinders">num cylinders</code>' in page


def _history_page_queries(client, user, changes):
    """Queries of the history page of a book whose author changed `changes` times."""
    book = make_book(title=f"Book with {changes} authors")
    names = [f"Author {changes}.{number}" for number in range(changes)]
    _retitle_author(book, names, actor=user)
    client.get(history_url(book))  # the session and the user, loaded as on every page
    with CaptureQueriesContext(connection) as queries:
        page = client.get(history_url(book)).content.decode()
    assert page.count(f"<ins>Author {changes}.") == changes
    return [query["sql"] for query in queries]


def test_the_history_page_needs_the_same_queries_for_1_and_5_changed_relations(superuser_client):
    user, client = superuser_client
    one, five = _history_page_queries(client, user, 1), _history_page_queries(client, user, 5)
    assert len(one) == len(five) == HISTORY_PAGE_QUERIES, five
