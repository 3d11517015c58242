"""The access policy's core: object-aware checks, restore checks, `in_queryset`, caching."""

from __future__ import annotations

import functools

import pytest
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.db.models.functions import Length, Lower
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from revy import Context
from revy.contrib.django import access, history
from revy.contrib.django.access import (
    RestoreForbidden,
    VisibilityPolicy,
    get_policy,
    in_queryset,
    last_recorded_state,
)
from tests.conftest import count_queries
from tests.factories import (
    grant,
    history_counts,
    make_author,
    make_book,
    make_note,
    make_review,
    object_deltas,
)
from tests.history_models import ObjectDelta
from tests.testapp.models import Author, Book, Car, Engine, Note, Restaurant, Tag

pytestmark = pytest.mark.django_db


def _copy(instance):
    """An unsaved instance with the same values: what a deleted row's last state is."""
    model = type(instance)
    return model(
        **{field.attname: getattr(instance, field.attname) for field in model._meta.concrete_fields}
    )


# in_queryset -------------------------------------------------------------------------------------


def test_an_unfiltered_queryset_holds_every_state():
    assert in_queryset(Author.objects.all(), Author(name="Ann"))
    assert in_queryset(Author.objects.order_by("name"), Author(name="Ann"))


def test_a_filter_on_the_rows_own_columns_is_evaluated_on_the_state(user, other_user):
    own = Author.objects.filter(user=user)
    assert in_queryset(own, Author(name="Ann", user=user))
    assert not in_queryset(own, Author(name="Ann", user=other_user))
    assert not in_queryset(own, Author(name="Ann"))  # NULL owner: as SQL says
    assert in_queryset(Author.objects.filter(user__isnull=True), Author(name="Ann"))


def test_no_row_of_the_table_is_read():
    author = make_author(name="Ann")
    state = _copy(author)
    author.delete()
    with count_queries() as queries:
        assert in_queryset(Author.objects.filter(name__startswith="A"), state)
    # One SELECT (in a savepoint, so that a failure cannot break the test's transaction).
    selects = [sql for sql in queries.statements if sql.startswith("SELECT")]
    assert len(selects) == 1 and len(queries) <= 3
    assert "testapp_author" not in selects[0]


def test_filters_that_need_other_tables_refuse(user):
    joined = Author.objects.filter(user__username="alice")
    assert not in_queryset(joined, Author(name="Ann", user=user))
    correlated = Author.objects.filter(Exists(Book.objects.filter(author=OuterRef("pk"))))
    assert not in_queryset(correlated, Author(pk=1, name="Ann"))


def test_empty_sliced_and_combined_querysets_hold_nothing():
    state = Author(pk=1, name="Ann")
    assert not in_queryset(Author.objects.none(), state)
    assert not in_queryset(Author.objects.filter(pk__in=[]), state)
    assert not in_queryset(Author.objects.all()[:5], state)
    assert not in_queryset(Author.objects.filter(pk=1).union(Author.objects.all()), state)


def test_an_uncorrelated_subquery_is_evaluated():
    author = make_author(name="Ann")
    make_book(author=author)
    with_books = Author.objects.filter(pk__in=Book.objects.values("author_id"))
    assert in_queryset(with_books, _copy(author))
    assert not in_queryset(with_books, Author(pk=author.pk + 1000, name="Bea"))


def test_a_failing_evaluation_keeps_the_callers_transaction_usable():
    with transaction.atomic():
        assert not in_queryset(Author.objects.extra(where=["nonsense_column = 1"]), Author())
        assert Author.objects.count() == 0  # the transaction still works (PostgreSQL)


NAMES = st.sampled_from(["Ann", "ann", "Bea", "Émile", "", "Zoë"])
EMAILS = st.sampled_from(["", "a@example.com", "b@example.org"])


def _leaf(users):
    owners = st.sampled_from(users)
    return st.one_of(
        NAMES.map(lambda name: Q(name=name)),
        NAMES.map(lambda name: Q(name__iexact=name)),
        st.sampled_from(["a", "n", "É", "z"]).map(lambda part: Q(name__icontains=part)),
        st.sampled_from(["A", "B", "Z"]).map(lambda start: Q(name__startswith=start)),
        st.lists(NAMES, max_size=3).map(lambda names: Q(name__in=names)),
        EMAILS.map(lambda email: Q(email=email)),
        st.booleans().map(lambda flag: Q(user__isnull=flag)),
        owners.map(lambda owner: Q(user=owner)),
        st.lists(owners, max_size=2).map(lambda some: Q(user_id__in=[u.pk for u in some])),
        st.integers(0, 6).map(lambda n: Q(name_length__gte=n)),
        NAMES.map(lambda name: Q(lower_name=name.lower())),
    )


def _filters(users):
    return st.recursive(
        _leaf(users),
        lambda inner: st.one_of(
            st.tuples(inner, inner).map(lambda pair: pair[0] & pair[1]),
            st.tuples(inner, inner).map(lambda pair: pair[0] | pair[1]),
            inner.map(lambda q: ~q),
        ),
        max_leaves=5,
    )


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
    derandomize=True,
)
@given(data=st.data())
def test_in_queryset_agrees_with_the_database_for_every_filter(data, user, other_user):
    """Property: a row's values pass a filter exactly when the row passes it in its table."""
    users = [user, other_user]
    rows = data.draw(
        st.lists(st.tuples(NAMES, EMAILS, st.sampled_from([None, *users])), min_size=1, max_size=4)
    )
    condition = data.draw(_filters(users))
    with transaction.atomic():
        authors = [Author.objects.create(name=n, email=e, user=u) for n, e, u in rows]
        queryset = Author.objects.alias(name_length=Length("name"), lower_name=Lower("name"))
        queryset = queryset.filter(condition)
        for author in authors:
            expected = queryset.filter(pk=author.pk).exists()
            assert in_queryset(queryset, _copy(author)) is expected, (condition, author.name)
        transaction.set_rollback(True)


# last_recorded_state ---------------------------------------------------------------------------


def test_last_recorded_state_of_a_deleted_row_is_its_state_before_deletion():
    with Context():
        author = make_author(name="Ann", email="ann@example.com")
    with Context():
        author.name = "Bea"
        author.save()
    pk = author.pk
    with Context():
        author.delete()

    state = last_recorded_state(Author, pk)

    assert (state.pk, state.name, state.email) == (pk, "Bea", "ann@example.com")
    assert state._state.adding  # unsaved
    assert last_recorded_state(Author, pk + 1000) is None
    existing = make_author(name="Cid")
    assert last_recorded_state(Author, existing.pk) == existing


# Object-aware checks -----------------------------------------------------------------------------


class OwnAuthorsPolicy(VisibilityPolicy):
    """Object permissions in a policy: a user sees and restores the authors they own."""

    def can_view_object(self, user, model, pk, obj=None):
        if model is Author:
            obj = obj if obj is not None else last_recorded_state(model, pk)
            return obj is not None and obj.user_id == user.pk
        return super().can_view_object(user, model, pk, obj)

    def can_restore_object(self, user, model, pk, *, action, obj=None):
        if model is Author:
            return obj is not None and obj.user_id == user.pk
        return super().can_restore_object(user, model, pk, action=action, obj=obj)


def test_the_default_policy_asks_model_then_object_permissions(user):
    author = make_author(name="Ann")
    policy = VisibilityPolicy()
    assert not policy.can_view_object(user, Author, author.pk, obj=author)
    grant(user, "testapp.change_author")
    assert policy.can_view_object(user, Author, author.pk)
    assert policy.can_restore_object(user, Author, author.pk, action="change", obj=author)
    assert not policy.can_restore_object(user, Author, author.pk, action="delete", obj=author)
    with pytest.raises(ValueError, match="action"):
        policy.can_restore_object(user, Author, author.pk, action="destroy")


def test_anonymous_users_may_do_nothing_by_default():
    from django.contrib.auth.models import AnonymousUser

    author = make_author(name="Ann")
    policy = VisibilityPolicy()
    for user in (None, AnonymousUser()):
        assert not policy.can_view_object(user, Author, author.pk)
        assert policy.visible_content_type_ids(user) == frozenset()
        with pytest.raises(RestoreForbidden):
            policy.check_restore(user, "change", author)


def test_the_policy_is_configurable_and_checked(user):
    path = f"{__name__}.OwnAuthorsPolicy"
    with override_settings(REVY_API={"VISIBILITY_POLICY": path}):
        assert type(get_policy()) is OwnAuthorsPolicy
    with (
        override_settings(REVY_API={"VISIBILITY_POLICY": "no.such.Policy"}),
        pytest.raises(ImproperlyConfigured, match="cannot be imported"),
    ):
        get_policy()
    with (
        override_settings(REVY_API={"VISIBILITY_POLICY": "tests.testapp.models.Author"}),
        pytest.raises(ImproperlyConfigured, match="subclass"),
    ):
        get_policy()
    assert type(get_policy()) is VisibilityPolicy


def test_revy_api_names_the_same_policy():
    from revy_api import visibility

    assert visibility.VisibilityPolicy is access.VisibilityPolicy
    assert visibility.get_policy is access.get_policy


# Restore checks ----------------------------------------------------------------------------------


def test_deleting_needs_delete_on_every_row_the_deletion_cascades_to(user):
    author = make_author(name="Ann")
    book = make_book(author=author)
    review = make_review(book=book)
    policy = VisibilityPolicy()
    grant(user, "testapp.view_author", "testapp.delete_author", "testapp.view_book")

    with pytest.raises(RestoreForbidden) as refused:
        policy.check_restore(user, "delete", author)

    # Books are visible and named; reviews are not: counted only.
    assert str(refused.value) == (
        f"You may not delete testapp.Book {book.pk} or touch 1 row you may not see; "
        "nothing was changed."
    )
    assert f"testapp.Review {review.pk}" not in str(refused.value)
    grant(user, "testapp.delete_book", "testapp.delete_review")
    policy.check_restore(user, "delete", author)


def test_deleting_needs_change_on_the_rows_whose_foreign_keys_it_clears(user):
    author = make_author(name="Ann")
    note = make_note(author=author)
    grant(user, "testapp.delete_author", "testapp.view_note")

    with pytest.raises(RestoreForbidden, match=f"change testapp.Note {note.pk}"):
        VisibilityPolicy().check_restore(user, "delete", author)
    grant(user, "testapp.change_note")
    VisibilityPolicy().check_restore(user, "delete", author)


def test_the_parents_of_a_multi_table_row_and_m2m_links_are_part_of_it(user):
    restaurant = Restaurant.objects.create(name="Chez", serves_pizza=True)
    book = make_book()
    book.tags.create(name="sf")
    grant(user, "testapp.delete_restaurant", "testapp.delete_book")
    VisibilityPolicy().check_restore(user, "delete", restaurant)  # no delete_place needed
    VisibilityPolicy().check_restore(user, "delete", book)  # the tag links go with the book


def test_the_check_refuses_before_anything_is_written(user):
    """A revert that would delete a row the user may not delete writes nothing."""
    with Context(actor=user):
        car = Car.objects.create(manufacturer="Saab")
        Engine.objects.create(car=car)
    creation = history.history_of(car).get().revision
    grant(user, "testapp.delete_car")  # not delete_engine
    before = history_counts()
    check = functools.partial(VisibilityPolicy().check_restore, user)

    with pytest.raises(PermissionDenied):
        history.revert(creation, check=check)

    assert history_counts() == before
    assert Car.objects.filter(pk=car.pk).exists() and Engine.objects.count() == 1


def test_rollback_checks_the_row_as_it_is_written(user):
    with Context():
        author = make_author(name="Ann", user=user)
    with Context():
        author.name = "Bea"
        author.save()
    first = history.history_of(author).last()
    policy = OwnAuthorsPolicy()
    check = functools.partial(policy.check_restore, user)
    history.rollback(Author, author.pk, delta=first, check=check)
    assert Author.objects.get(pk=author.pk).name == "Ann"

    Author.objects.filter(pk=author.pk).update(user=None)  # no longer alice's
    with pytest.raises(RestoreForbidden, match="you may not see"):
        history.rollback(Author, author.pk, delta=history.history_of(author).first(), check=check)


# Cost --------------------------------------------------------------------------------------------


class CountingPolicy(VisibilityPolicy):
    calls = 0

    def can_view_model(self, user, model):
        CountingPolicy.calls += 1
        return super().can_view_model(user, model)


def test_visible_content_types_cost_one_computation_per_user_and_no_query(user):
    grant(user, "testapp.view_book")
    user = get_user_model().objects.get(pk=user.pk)  # as a request loads it
    policy = CountingPolicy()
    user.has_perm("testapp.view_book")  # Django loads the user's permissions once

    with count_queries() as queries:
        first = policy.visible_content_type_ids(user)
        calls = CountingPolicy.calls
        for _ in range(20):
            assert policy.visible_content_type_ids(user) == first
            CountingPolicy().filter_deltas(user, ObjectDelta.objects.none())

    assert len(queries) == 0
    assert CountingPolicy.calls == calls  # computed once, then read from the user
    assert first == {ContentType.objects.get_for_model(Book).pk}
    fresh = get_user_model().objects.get(pk=user.pk)  # the next request's user
    grant(fresh, "testapp.view_note")
    assert ContentType.objects.get_for_model(Note).pk in policy.visible_content_type_ids(fresh)


def test_superusers_see_everything_without_a_computation(db):
    root = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    with count_queries() as queries:
        assert VisibilityPolicy().visible_content_type_ids(root) is None
    assert len(queries) == 0


def test_many_to_many_links_are_changes_of_the_row_declaring_the_relation(user):
    with Context():
        book = make_book(title="Dune")
        tag = Tag.objects.create(name="sf")
    with Context(revision_description="tagged"):
        book.tags.add(tag)
    tagged = next(d for d in object_deltas() if d.revision.description == "tagged").revision
    grant(user, "testapp.view_book")
    check = functools.partial(VisibilityPolicy().check_restore, user)

    with pytest.raises(RestoreForbidden, match=f"change testapp.Book {book.pk}"):
        history.revert(tagged, check=check)
    assert list(book.tags.all()) == [tag]
    grant(user, "testapp.change_book")
    history.revert(tagged, check=functools.partial(VisibilityPolicy().check_restore, user))
    assert list(book.tags.all()) == []
